# The product and every column of its contract carry a description.
package meshwork.governance.descriptions_required

violations contains {"field": "description", "message": "the product has no description; say what one row means and what the product is for"} if {
	not input.product.description
}

violations contains {"field": sprintf("contract.columns[%d].description", [i]), "message": sprintf("column `%s` has no description", [column.name])} if {
	some i, column in input.product.contract.columns
	not column.description
}
