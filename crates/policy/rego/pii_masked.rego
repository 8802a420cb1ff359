# A `pii` column is masked for every reader outside the owning domain: it has a mask, and the
# principals that see it unmasked all belong to the owning domain.
package meshwork.governance.pii_masked

masks := object.get(object.get(input.product, "access", {}), "masks", {})

unmasked_for := object.get(object.get(input.product, "access", {}), "unmasked_for", [])

# References that stay inside the owning domain: the domain itself and its declared owners and members.
inside contains sprintf("domain:%s", [input.product.domain])

inside contains ref if some ref in input.domain.owners

inside contains ref if some ref in input.domain.members

violations contains {"field": sprintf("contract.columns[%d].classification", [i]), "message": sprintf("pii column `%s` has no mask; add `access.masks.%s: hash` (or redact, null, partial)", [column.name, column.name])} if {
	some i, column in input.product.contract.columns
	column.classification == "pii"
	not masks[column.name]
}

violations contains {"field": "access.unmasked_for", "message": sprintf("`%s` is outside domain `%s` but would see pii column%s %s unmasked; list only `domain:%s` or its owners and members", [ref, input.product.domain, plural, names, input.product.domain])} if {
	pii := [column.name | some column in input.product.contract.columns; column.classification == "pii"]
	count(pii) > 0
	some ref in unmasked_for
	not inside[ref]
	plural := {true: "s", false: ""}[count(pii) > 1]
	names := concat(", ", [sprintf("`%s`", [n]) | some n in pii])
}
