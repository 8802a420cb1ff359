# Column and input port names are lower snake_case, so SQL never needs to quote them.
package meshwork.governance.snake_case_names

snake(name) if regex.match(`^[a-z][a-z0-9_]*$`, name)

violations contains {"field": sprintf("contract.columns[%d].name", [i]), "message": sprintf("column `%s` is not snake_case; SQL lowercases unquoted names, so consumers would have to quote it", [column.name])} if {
	some i, column in input.product.contract.columns
	not snake(column.name)
}

violations contains {"field": sprintf("tags[%d]", [i]), "message": sprintf("tag `%s` is not snake_case", [tag])} if {
	some i, tag in input.product.tags
	not snake(tag)
}
