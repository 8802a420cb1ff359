# The product version is semantic versioning (MAJOR.MINOR.PATCH), so consumers can tell breaking
# releases from compatible ones.
package meshwork.governance.semver_version

violations contains {"field": "version", "message": sprintf("`%s` is not a semantic version; write MAJOR.MINOR.PATCH, e.g. `1.0.0`", [input.product.version])} if {
	not semver.is_valid(input.product.version)
}
