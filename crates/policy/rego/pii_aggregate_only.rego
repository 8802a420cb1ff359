# Products holding `pii` columns are read only in aggregate outside their owning domain: a
# principal of another domain (administrators aside) gets aggregate-only access, groups of at
# least 10 rows, and the pii columns hidden. Copy it into `policies/` to change the numbers.
package meshwork.access.pii_aggregate_only

pii := [column.name | some column in input.product.contract.columns; column.classification == "pii"]

outside if {
	not input.principal.admin
	not input.product.domain in input.principal.domains
}

aggregate_only := {"min_group_size": 10, "columns_hidden": pii} if {
	count(pii) > 0
	outside
}
