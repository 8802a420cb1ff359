# A breaking change needs a new major version. Which changes break consumers is decided once, in
# Meshwork's contract diff (docs/evolution.md), and handed over as `input.changes`: this policy
# only decides what to do about them. Narrowing access is breaking for whoever loses it, but an
# owner must be able to protect data at once: access changes never wait for a major version.
package meshwork.governance.breaking_change_major_bump

major(version) := to_number(split(version, ".")[0])

violations contains {"field": "version", "message": sprintf("%s without a major version bump (%s -> %s); release it as %d.0.0 or keep the contract compatible", [change.detail, input.previous.version, input.product.version, major(input.previous.version) + 1])} if {
	input.previous
	semver.is_valid(input.previous.version)
	semver.is_valid(input.product.version)
	major(input.product.version) <= major(input.previous.version)
	some change in input.changes
	change.breaking
	change.category != "access"
}
