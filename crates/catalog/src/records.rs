//! Records the catalog stores and returns.

use meshwork_core::id::{DomainName, ProductId};
use meshwork_core::lineage::ProductLineage;

/// A domain as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    /// Name.
    pub name: DomainName,
    /// Human title.
    pub title: Option<String>,
    /// What the domain covers.
    pub description: Option<String>,
    /// Owning principals.
    pub owners: Vec<String>,
    /// The groups and attributes the domain holds as a principal (`domain.yaml` `principal:`).
    pub principal: meshwork_core::descriptor::DomainPrincipal,
}

/// A product as stored: its current descriptor and where its table lives. Serializable so a
/// publication can be journaled before its Delta commit and finished after a crash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProductRecord {
    /// Address.
    pub id: ProductId,
    /// Semantic version of the current descriptor.
    pub version: String,
    /// Human title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Owner reference.
    pub owner: Option<String>,
    /// Lifecycle state (`draft`, `active`, `deprecated`).
    pub status: String,
    /// Search tags.
    pub tags: Vec<String>,
    /// The current descriptor as JSON (see `meshwork_core::descriptor::ProductDescriptor`).
    pub descriptor_json: String,
    /// Fingerprint of the current descriptor.
    pub descriptor_hash: String,
    /// URL of the product's Delta table.
    pub table_uri: String,
    /// When the product row last changed (RFC 3339).
    pub updated_at: String,
}

/// One published version of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The product.
    pub product: ProductId,
    /// Publication number, 1 for the first publish of the product.
    pub seq: i64,
    /// Semantic version of the descriptor it was built from.
    pub version: String,
    /// Delta table version holding its data.
    pub delta_version: i64,
    /// Output schema as JSON: `[{"name", "type", "nullable"}]`.
    pub schema_json: String,
    /// Number of rows.
    pub row_count: i64,
    /// Fingerprint of the descriptor it was built from.
    pub descriptor_hash: String,
    /// Fingerprint of the input data it was built from.
    pub input_fingerprint: String,
    /// When it was published (RFC 3339, UTC).
    pub published_at: String,
}

/// A new version to record; see [`crate::CatalogStore::publish`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Publication {
    /// The product row to create or update.
    pub product: ProductRecord,
    /// Delta table version of the new data.
    pub delta_version: i64,
    /// Output schema as JSON.
    pub schema_json: String,
    /// Number of rows.
    pub row_count: i64,
    /// Fingerprint of the input data.
    pub input_fingerprint: String,
    /// Products it reads.
    pub upstream: Vec<ProductId>,
    /// Which input columns each output column comes from; empty in journals written before
    /// column lineage was recorded.
    #[serde(default)]
    pub lineage: ProductLineage,
    /// The quality run that admitted it; stored with `published_seq` set.
    pub quality: Option<QualityRun>,
    /// Lifecycle events appended in the same transaction (`product.published`, …).
    pub events: Vec<NewEvent>,
}

/// A product taken out of service by [`crate::CatalogStore::unpublish`]: no longer listed,
/// searched or read, its catalog rows and Delta data kept until
/// [`crate::CatalogStore::purge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpublishedProduct {
    /// The product row as it was last published.
    pub product: ProductRecord,
    /// The version that was current when it was unpublished.
    pub last_version: Option<VersionRecord>,
    /// When it was unpublished.
    pub unpublished_at: chrono::DateTime<chrono::Utc>,
}

/// `downstream` reads `upstream`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineageEdge {
    /// The product read.
    pub upstream: ProductId,
    /// The product reading it.
    pub downstream: ProductId,
}

/// A policy as stored: the catalog holds what was applied, so queries enforce the applied rules
/// and not uncommitted edits in a working copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// File stem or built-in name.
    pub name: String,
    /// Owning domain; `None` for global policies.
    pub domain: Option<DomainName>,
    /// Path in the mesh repository or `builtin:<name>`.
    pub file: String,
    /// The Rego module.
    pub source: String,
}

/// One row of a `policies:` map: `mesh.yaml` (`domain` is `None`) or a `domain.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStateRecord {
    /// The domain whose `domain.yaml` set it, if any.
    pub domain: Option<DomainName>,
    /// Policy name.
    pub name: String,
    /// The state.
    pub state: meshwork_core::descriptor::PolicyState,
}

/// Everything governance needs at query time, replaced as a whole by each apply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GovernanceSnapshot {
    /// Principals with resolved domain memberships.
    pub principals: Vec<meshwork_core::principal::Principal>,
    /// Every policy, built-ins included.
    pub policies: Vec<PolicyRecord>,
    /// Policy states.
    pub states: Vec<PolicyStateRecord>,
}

/// What one audit event says about one product.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditProduct {
    /// The product.
    pub product: String,
    /// `allow`, `deny`, or for applies `published`, `unchanged`, `failed`, `blocked`.
    pub decision: String,
    /// Policies that restricted or denied (`descriptor` for the access block).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Number of row filters applied.
    #[serde(default)]
    pub row_filters: usize,
    /// Masked columns with their mask kind, `column:kind`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<String>,
    /// Why the product was denied or failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Microseconds spent deciding access.
    #[serde(default)]
    pub decision_us: u64,
}

/// One audited action: a query or an apply.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Assigned by the store; 0 before recording.
    pub id: i64,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// Who did it.
    pub principal: String,
    /// `cli`, `http`, `flight_sql`, `postgres`, …
    pub interface: String,
    /// `query` or `apply`.
    pub action: String,
    /// The statement, normalised; for applies the mesh repository.
    pub statement: String,
    /// Products touched, with the decision on each.
    pub products: Vec<AuditProduct>,
    /// Rows returned (queries) or products published (applies).
    pub rows: Option<u64>,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// `ok`, `error`, `denied`, `cancelled`, `running` (a query still streaming) or `refused` (over the concurrency limit).
    pub outcome: String,
    /// The error shown to the user, if any.
    pub error: Option<String>,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events touching this product.
    pub product: Option<ProductId>,
    /// Only events of this principal.
    pub principal: Option<String>,
    /// Only events at or after this RFC 3339 time.
    pub since: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

/// An API token as stored: never the secret, only its Argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// Public id: the part of the token before the secret, safe to show and log.
    pub id: String,
    /// The principal the token authenticates as.
    pub principal: String,
    /// What the token is for.
    pub description: Option<String>,
    /// Argon2id hash of the secret, in PHC string format.
    pub hash: String,
    /// When it was created (RFC 3339, UTC); empty before storing means now.
    pub created_at: String,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// The result of one quality rule in one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleResult {
    /// Rule name from `product.yaml`.
    pub name: String,
    /// Rule keyword (`not_null`, `unique`, …).
    pub rule: String,
    /// `error` or `warn`.
    pub severity: String,
    /// `passed`, `failed`, or `error` when the rule itself could not be evaluated.
    pub status: String,
    /// Rows (or groups, or values) that break the rule.
    pub failing: u64,
    /// Rows checked.
    pub checked: u64,
    /// What was measured, in words.
    pub message: String,
    /// Up to 10 failing rows, column → value, as stored (unmasked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// One evaluation of a product's contract and quality rules on staged data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualityRun {
    /// Assigned by the store; 0 before recording.
    pub id: i64,
    /// The product (set when read back from the store).
    #[serde(skip)]
    pub product: Option<ProductId>,
    /// When it ran (RFC 3339, UTC); empty before recording means now.
    pub at: String,
    /// What started the build: `apply`, `refresh`, `schedule`, `upstream`.
    pub trigger: String,
    /// `passed`, `warned` (only `warn` rules failed) or `failed` (nothing was published).
    pub outcome: String,
    /// The publication number it became, if it was published.
    pub published_seq: Option<i64>,
    /// Rows staged.
    pub row_count: u64,
    /// Milliseconds spent building (ingest, transform, contract).
    pub build_ms: f64,
    /// Milliseconds spent writing the staged data.
    pub stage_ms: f64,
    /// Milliseconds spent evaluating the rules.
    pub quality_ms: f64,
    /// Every rule's result, in declaration order.
    pub results: Vec<RuleResult>,
}

/// A lifecycle event to append to the event log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewEvent {
    /// One of `meshwork_core::descriptor::EVENT_KINDS`.
    pub kind: String,
    /// The product it is about.
    pub product: Option<ProductId>,
    /// Kind-specific details.
    pub payload: serde_json::Value,
}

/// An event of the log as stored; ids increase, so an id is a cursor. Serialized as the JSON
/// that the HTTP feed, webhooks and `meshwork events` show: `{id, at, kind, product, payload}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRecord {
    /// Position in the log.
    pub id: i64,
    /// When it was appended (RFC 3339, UTC).
    pub at: String,
    /// Event kind.
    pub kind: String,
    /// The product it is about.
    pub product: Option<ProductId>,
    /// Kind-specific details.
    pub payload: serde_json::Value,
}

/// Which events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events with an id greater than this.
    pub after: i64,
    /// At most this many, oldest first.
    pub limit: Option<u32>,
    /// Only events about this product.
    pub product: Option<ProductId>,
    /// Only these kinds; empty means all.
    pub kinds: Vec<String>,
}

/// One evaluation of one service level objective.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SloCheck {
    /// The product.
    pub product: ProductId,
    /// `freshness`, `completeness` or `availability`.
    pub objective: String,
    /// When it was evaluated (RFC 3339, UTC).
    pub at: String,
    /// `met`, `at_risk`, `violated`, or `unknown` when it could not be measured.
    pub status: String,
    /// The measured value (seconds of age, a ratio, a percentage).
    pub value: Option<f64>,
    /// The objective's threshold in the same unit.
    pub threshold: f64,
    /// Share of the window's error budget left, 0..=1 (may go below 0 when overspent).
    pub budget_remaining: Option<f64>,
    /// The measurement in words.
    pub message: String,
}

/// One attempt to deliver an event to a webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// Webhook name.
    pub webhook: String,
    /// The event.
    pub event_id: i64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When (RFC 3339, UTC); empty before storing means now.
    pub at: String,
    /// HTTP status, if a response came.
    pub status: Option<u16>,
    /// `delivered`, `retrying` or `failed` (gave up).
    pub outcome: String,
    /// Why it did not succeed.
    pub error: Option<String>,
}
