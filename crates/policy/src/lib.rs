//! Meshwork's federated computational governance.
//!
//! Policies are Rego modules evaluated in-process by regorus. Two kinds exist, told apart by
//! their package:
//!
//! - **governance** (`package meshwork.governance.<name>`) is evaluated on each product's new
//!   descriptor and its currently published one at validate, plan and apply time, and yields
//!   `violations`;
//! - **access** (`package meshwork.access.<name>`) is evaluated per query per product for the
//!   principal asking, and yields `deny` reasons, extra `row_filters` and extra `masks`.
//!
//! Global policies come from the built-in library and `policies/`; domain policies from
//! `domains/<d>/policies/` and only see that domain's products. Each policy runs in its own
//! engine, so no module can redefine another's rules: a domain can add restrictions but never
//! lift a global one. [`Authorizer::decide`] is total: every failure is a deny.

mod access;
mod governance;
pub mod library;
mod lineage;
mod policy;

pub use access::{AccessDecision, AggregateRule, Authorizer, Grants, principal_json};
pub use governance::{GovernanceInput, Violation};
pub use lineage::{GovernanceLineage, GovernedColumn, GovernedSource};
pub use policy::{Policy, PolicyError, PolicyKind, PolicyScope, PolicySet, PolicySource, PolicyStates, StateProblem};
