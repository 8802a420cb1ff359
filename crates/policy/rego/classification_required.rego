# Every column of the contract is classified (`public`, `internal`, `confidential` or `pii`).
package meshwork.governance.classification_required

violations contains {"field": sprintf("contract.columns[%d].classification", [i]), "message": sprintf("column `%s` has no classification; add `classification: public|internal|confidential|pii`", [column.name])} if {
	some i, column in input.product.contract.columns
	not column.classification
}
