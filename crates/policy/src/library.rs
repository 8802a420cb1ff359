//! The built-in policy library: governance rules every mesh gets, each switchable in `mesh.yaml`.

use meshwork_core::descriptor::PolicyState;

/// A policy shipped inside the binary.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinPolicy {
    /// Name used in `mesh.yaml` under `policies:`.
    pub name: &'static str,
    /// State when `mesh.yaml` does not mention the policy.
    pub default_state: PolicyState,
    /// One line for listings and docs.
    pub summary: &'static str,
    /// The Rego module.
    pub source: &'static str,
}

/// Every built-in policy, in the order they are reported.
pub const BUILTIN_POLICIES: &[BuiltinPolicy] = &[
    BuiltinPolicy {
        name: "owner_required",
        default_state: PolicyState::Enforce,
        summary: "every product names an accountable owner",
        source: include_str!("../rego/owner_required.rego"),
    },
    BuiltinPolicy {
        name: "descriptions_required",
        default_state: PolicyState::Warn,
        summary: "the product and every column have a description",
        source: include_str!("../rego/descriptions_required.rego"),
    },
    BuiltinPolicy {
        name: "classification_required",
        default_state: PolicyState::Warn,
        summary: "every column is classified public, internal, confidential or pii",
        source: include_str!("../rego/classification_required.rego"),
    },
    BuiltinPolicy {
        name: "pii_masked",
        default_state: PolicyState::Enforce,
        summary: "pii columns are masked for readers outside the owning domain",
        source: include_str!("../rego/pii_masked.rego"),
    },
    BuiltinPolicy {
        name: "pii_aggregate_only",
        default_state: PolicyState::Off,
        summary: "products with pii columns are read only in aggregate outside their domain (groups of 10 or more, pii columns hidden)",
        source: include_str!("../rego/pii_aggregate_only.rego"),
    },
    BuiltinPolicy {
        name: "classification_propagated",
        default_state: PolicyState::Enforce,
        summary: "a column carrying an unmasked pii or confidential upstream column is classified at least as high",
        source: include_str!("../rego/classification_propagated.rego"),
    },
    BuiltinPolicy {
        name: "snake_case_names",
        default_state: PolicyState::Enforce,
        summary: "column names and tags are lower snake_case",
        source: include_str!("../rego/snake_case_names.rego"),
    },
    BuiltinPolicy {
        name: "semver_version",
        default_state: PolicyState::Enforce,
        summary: "the product version is MAJOR.MINOR.PATCH",
        source: include_str!("../rego/semver_version.rego"),
    },
    BuiltinPolicy {
        name: "breaking_change_major_bump",
        default_state: PolicyState::Enforce,
        summary: "removing, renaming or narrowing a column, or making it non-nullable, needs a new major version",
        source: include_str!("../rego/breaking_change_major_bump.rego"),
    },
];
