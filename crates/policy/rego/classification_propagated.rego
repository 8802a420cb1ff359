# Classification follows lineage: an output column that carries the value of a `pii` or
# `confidential` upstream column its domain reads unmasked is classified at least as high
# (public < internal < confidential < pii). Which expressions carry a value is decided by the
# lineage (`carries_value`, see docs/lineage.md): `lower(email)` does, `count(email)` does not.
package meshwork.governance.classification_propagated

rank := object.get(object.get(input, "lineage", {}), "sensitivity", {})

columns := object.get(object.get(input, "lineage", {}), "columns", [])

# The rank of what a contract column declares; an unclassified column ranks below `public`.
declared_rank(column) := rank[column.classification]

declared_rank(column) := -1 if not column.classification

declared_text(column) := sprintf("is classified `%s`", [column.classification])

declared_text(column) := "has no classification" if not column.classification

violations contains {"field": sprintf("contract.columns[%d].classification", [i]), "message": message} if {
	some i, column in input.product.contract.columns
	some lineage in columns
	lineage.name == column.name
	some source in lineage.sources
	source.carries_value
	not source.masked
	source.classification in {"pii", "confidential"}
	rank[source.classification] > declared_rank(column)
	message := sprintf(
		"column `%s` %s but carries the value of %s column `%s` of `%s` (%s through input `%s`); declare `classification: %s`, or have `%s` mask `%s` for domain `%s`",
		[column.name, declared_text(column), source.classification, source.column, source.product, source.derivation, source.input, source.classification, source.product, source.column, input.product.domain],
	)
}

violations contains {"field": "transform", "message": sprintf("cannot derive column lineage to check classifications: %s; the transform must plan against its inputs' declared columns", [input.lineage.error])} if {
	input.lineage.error
}
