# Every product names an accountable owner (`user:…`, `group:…` or `service:…`).
package meshwork.governance.owner_required

violations contains {"field": "owner", "message": "the product has no owner; add `owner: group:<team>` so consumers know who answers for it"} if {
	not input.product.owner
}
