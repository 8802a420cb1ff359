# A breaking contract change needs a new major version: removing or renaming a column, narrowing
# its type, or making it non-nullable breaks the queries of existing consumers.
package meshwork.governance.breaking_change_major_bump

old_columns := {column.name: column | some column in input.previous.contract.columns}

new_columns := {column.name: column | some column in input.product.contract.columns}

breaking contains sprintf("column `%s` was removed (or renamed)", [name]) if {
	some name, _ in old_columns
	not new_columns[name]
}

breaking contains sprintf("column `%s` changed type from %s to %s", [name, old.type, new.type]) if {
	some name, old in old_columns
	new := new_columns[name]
	old.type != new.type
	not widens(old.type_info, new.type_info)
}

breaking contains sprintf("column `%s` became non-nullable", [name]) if {
	some name, old in old_columns
	new := new_columns[name]
	old.nullable
	not new.nullable
}

# Widening conversions every reader of the old type can still read.
widens(old, new) if {
	old.family == new.family
	old.family in {"integer", "float"}
	new.bits >= old.bits
}

widens(old, new) if {
	old.family == "integer"
	new.family == "float"
	new.bits == 64
	old.bits <= 32
}

widens(old, new) if {
	old.family == "decimal"
	new.family == "decimal"
	new.scale >= old.scale
	new.precision - new.scale >= old.precision - old.scale
}

widens(old, new) if {
	old.family == "integer"
	new.family == "decimal"
	new.precision - new.scale >= {8: 3, 16: 5, 32: 10, 64: 19}[old.bits]
}

widens(old, new) if {
	old.family == "date"
	new.family == "timestamp"
}

major(version) := to_number(split(version, ".")[0])

violations contains {"field": "version", "message": sprintf("%s without a major version bump (%s -> %s); release it as %d.0.0 or keep the contract compatible", [change, input.previous.version, input.product.version, major(input.previous.version) + 1])} if {
	input.previous
	semver.is_valid(input.previous.version)
	semver.is_valid(input.product.version)
	major(input.product.version) <= major(input.previous.version)
	some change in breaking
}
