//! Records the catalog stores and returns.

use chrono::{DateTime, Utc};
use meshwork_core::column_type::ColumnType;
use meshwork_core::descriptor::{ProductDescriptor, ProductStatus, Severity};
use meshwork_core::event::EventKind;
use meshwork_core::id::{DomainName, ProductId};
use meshwork_core::lineage::ProductLineage;

use crate::keywords::{AuditOutcome, DeliveryOutcome, Objective, RuleStatus, RunOutcome, SloStatus, Trigger};

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Lifecycle state.
    pub status: ProductStatus,
    /// Search tags.
    pub tags: Vec<String>,
    /// The current descriptor, decoded once by the store.
    pub descriptor: ProductDescriptor,
    /// Fingerprint of the current descriptor.
    pub descriptor_hash: String,
    /// URL of the product's Delta table.
    pub table_uri: String,
    /// When the product row last changed; the store sets it when it publishes.
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl ProductRecord {
    /// The record of `descriptor` as a publication stores it: the searchable fields copied from
    /// the descriptor (one place decides which), its fingerprint `descriptor_hash` and table
    /// `table_uri`; `updated_at` is now, and the store sets it again when it publishes.
    pub fn of(descriptor: ProductDescriptor, descriptor_hash: String, table_uri: String) -> ProductRecord {
        ProductRecord {
            id: descriptor.id(),
            version: descriptor.version.clone(),
            title: descriptor.title.clone(),
            description: descriptor.description.clone(),
            owner: descriptor.owner.clone(),
            status: descriptor.status,
            tags: descriptor.tags.clone(),
            descriptor,
            descriptor_hash,
            table_uri,
            updated_at: Utc::now(),
        }
    }
}

/// One output column of a published version, stored as `{"name", "type", "nullable"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchemaColumn {
    /// Column name.
    pub name: String,
    /// Contract type.
    #[serde(rename = "type")]
    pub data_type: ColumnType,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// Where the catalog's operational records stand: the newest quality run and SLO evaluation
/// ids (0 when there is none). Recording a run or an evaluation changes it; neither changes the
/// catalog generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationsMark {
    /// Id of the newest quality run.
    pub quality_run: i64,
    /// Id of the newest SLO evaluation.
    pub slo_check: i64,
}

/// The latest operational state of every product, read at once for the whole catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatestOperations {
    /// The outcome of each product's newest quality run (products never run are absent).
    pub quality: std::collections::BTreeMap<ProductId, RunOutcome>,
    /// The newest status of each SLO objective of each product (products never evaluated are
    /// absent), in objective order.
    pub slo: std::collections::BTreeMap<ProductId, Vec<SloStatus>>,
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
    /// Output schema.
    pub schema: Vec<SchemaColumn>,
    /// Number of rows.
    pub row_count: i64,
    /// Fingerprint of the descriptor it was built from.
    pub descriptor_hash: String,
    /// Fingerprint of the input data it was built from.
    pub input_fingerprint: String,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// How far its incremental input was read; `None` for products without one.
    pub watermark: Option<Watermark>,
    /// Where a virtual product's rows are read; `None` for products copied into Delta.
    pub remote: Option<RemoteSource>,
}

/// Where a virtual product's rows are read when it is queried: the connection as `mesh.yaml`
/// declared it (never a password: the serving process reads it from `password_env`), what is
/// read of it, and the source column behind each contract column, as the publication checked
/// them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteSource {
    /// The connection's name in `mesh.yaml`.
    pub connection_name: String,
    /// The connection.
    pub connection: RemoteConnection,
    /// The table or query.
    pub read: meshwork_core::descriptor::DatabaseRead,
    /// One per contract column, in contract order.
    pub columns: Vec<RemoteColumn>,
}

/// What a virtual product's connection reaches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteConnection {
    /// A PostgreSQL or MySQL database.
    Database(meshwork_core::descriptor::Connection),
    /// A Flight SQL endpoint.
    FlightSql(meshwork_core::descriptor::FlightEndpoint),
}

/// A contract column of a virtual product and the source column it is read from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteColumn {
    /// The contract's name.
    pub name: String,
    /// The source's name (which may differ in case).
    pub source: String,
    /// The type the source reports, e.g. `INT8`.
    pub type_name: String,
}

/// The high-water mark of an incremental input: the highest value of its watermark column that
/// a publication read, as the source database writes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Watermark {
    /// The input port.
    pub input: String,
    /// The source's watermark column.
    pub column: String,
    /// The value.
    pub value: String,
}

/// A new version to record; see [`crate::CatalogStore::publish`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Publication {
    /// The product row to create or update.
    pub product: ProductRecord,
    /// Delta table version of the new data.
    pub delta_version: i64,
    /// Output schema.
    pub schema: Vec<SchemaColumn>,
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
    /// How far its incremental input was read, recorded with the version.
    #[serde(default)]
    pub watermark: Option<Watermark>,
    /// Where a virtual product's rows are read, recorded with the version.
    #[serde(default)]
    pub remote: Option<RemoteSource>,
}

/// A product taken out of service by [`crate::CatalogStore::unpublish`]: no longer listed,
/// searched or read, its catalog rows and Delta data kept until
/// [`crate::CatalogStore::purge`].
#[derive(Debug, Clone, PartialEq)]
pub struct UnpublishedProduct {
    /// The product row as it was last published.
    pub product: ProductRecord,
    /// The version that was current when it was unpublished.
    pub last_version: Option<VersionRecord>,
    /// When it was unpublished.
    pub unpublished_at: DateTime<Utc>,
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
    /// Earlier publications read by time travel (`domain."product@N"`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub as_of: Vec<i64>,
    /// The aggregate-only rule the read was held to, when the principal reads it only in
    /// aggregate (groups, hidden columns, privacy, and what asked for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<String>,
    /// Privacy loss (ε) the statement spent on the product, for differentially private reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<meshwork_core::aggregate::Finite>,
}

impl AuditProduct {
    /// An action's outcome for `product` (`purged`, `access_approved`, …), with no access
    /// decision behind it: no policies, filters, masks or reasons.
    pub fn outcome(product: &ProductId, decision: &str) -> AuditProduct {
        AuditProduct {
            product: product.to_string(),
            decision: decision.to_owned(),
            policies: Vec::new(),
            row_filters: 0,
            masks: Vec::new(),
            reasons: Vec::new(),
            decision_us: 0,
            as_of: Vec::new(),
            aggregate: None,
            epsilon: None,
        }
    }
}

/// One audited action: a query or an apply.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Assigned by the store; 0 before recording.
    pub id: i64,
    /// When it happened.
    #[serde(with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
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
    /// How it ended (`running` while a query still streams).
    pub outcome: AuditOutcome,
    /// The error shown to the user, if any.
    pub error: Option<String>,
}

/// One principal's reads of a product over one interface, from the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProductReader {
    /// Who read.
    pub principal: String,
    /// Through what (`cli`, `http`, `flight_sql`, `postgres`).
    pub interface: String,
    /// How many queries read the product in the window.
    pub queries: u64,
    /// The newest of them.
    #[serde(with = "crate::time::rfc3339")]
    pub last_read: DateTime<Utc>,
}

/// A principal's declared interest in a product: it is listed among the product's consumers
/// (and so named by `plan` when a change affects them), sees the product's events in its event
/// feed, and, with a webhook, is sent them as they happen.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subscription {
    /// The product.
    pub product: ProductId,
    /// The subscriber.
    pub principal: String,
    /// Where its events are POSTed, signed with [`Subscription::secret`].
    pub webhook: Option<String>,
    /// The event kinds it wants; empty means all of the product's events.
    pub events: Vec<meshwork_core::event::EventKind>,
    /// The webhook's signing secret, created with the subscription and shown once.
    #[serde(skip)]
    pub secret: Option<String>,
    /// When it was made.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Who made it (the subscriber, an owner of the product or an administrator).
    pub created_by: String,
    /// The last event in the log when it was made: its webhook is sent what comes after.
    pub after_event: i64,
}

impl Subscription {
    /// Whether an event of `kind` is one this subscription asks for.
    pub fn wants(&self, kind: meshwork_core::event::EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// Never shows the signing secret.
impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("product", &self.product)
            .field("principal", &self.principal)
            .field("webhook", &self.webhook)
            .field("events", &self.events)
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

/// Which audit events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events touching this product.
    pub product: Option<ProductId>,
    /// Only events of this principal.
    pub principal: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
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
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The result of one quality rule in one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleResult {
    /// Rule name from `product.yaml`.
    pub name: String,
    /// Rule keyword (`not_null`, `unique`, …).
    pub rule: String,
    /// How bad a failure is.
    pub severity: Severity,
    /// How it came out.
    pub status: RuleStatus,
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
    /// When it ran.
    #[serde(with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
    /// What started the build.
    pub trigger: Trigger,
    /// How it came out; `failed` published nothing.
    pub outcome: RunOutcome,
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
    /// What happened.
    pub kind: EventKind,
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
    /// When it was appended.
    #[serde(with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
    /// Event kind.
    pub kind: EventKind,
    /// The product it is about.
    pub product: Option<ProductId>,
    /// Kind-specific details.
    pub payload: serde_json::Value,
}

/// An OpenLineage run event waiting in the outbox; ids increase, so an id is a sink's cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Position in the outbox.
    pub id: i64,
    /// When it was appended.
    pub at: DateTime<Utc>,
    /// The event, sent as is.
    pub event: meshwork_core::openlineage::RunEvent,
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
    pub kinds: Vec<EventKind>,
}

/// One evaluation of one service level objective.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SloCheck {
    /// The product.
    pub product: ProductId,
    /// The objective.
    pub objective: Objective,
    /// When it was evaluated.
    #[serde(with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
    /// The result.
    pub status: SloStatus,
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
    /// When.
    pub at: DateTime<Utc>,
    /// HTTP status, if a response came.
    pub status: Option<u16>,
    /// What became of it.
    pub outcome: DeliveryOutcome,
    /// Why it did not succeed.
    pub error: Option<String>,
}

/// A signed-in portal session as stored. The session id itself is never stored, only its
/// SHA-256 (hex), so a copy of the catalog cannot be replayed as cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    /// SHA-256 of the session id, hex.
    pub id_hash: String,
    /// The principal signed in.
    pub principal: String,
    /// What the principal signed in with; checked again on every request.
    pub credential: SessionCredential,
    /// When the session was opened.
    pub created_at: DateTime<Utc>,
    /// When it ends by itself.
    pub expires_at: DateTime<Utc>,
}

/// The credential a portal session was opened with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionCredential {
    /// An API token, by its public id: the session ends when the token is revoked or expires.
    ApiToken {
        /// The token's id.
        token_id: String,
    },
    /// An OIDC sign-in: the principal as the ID token's claims made it (groups and attributes
    /// the mesh does not declare), from this issuer.
    Oidc {
        /// The issuer.
        issuer: String,
        /// The principal made from the claims at sign-in.
        principal: meshwork_core::principal::Principal,
    },
}
