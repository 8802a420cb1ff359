//! Meshwork's metadata store: the [`CatalogStore`] port and its SQL adapter (SQLite, the
//! embedded default, and PostgreSQL for a shared service).
//!
//! The catalog records what the mesh has published: domains, products with their current
//! descriptor, every published version (semver, Delta version, schema, row count, time,
//! descriptor hash, input fingerprint), lineage edges between products, and the column lineage of
//! every version. The pipeline writes
//! a publication in one transaction, so a reader never sees a version without its product row
//! or lineage. Records are typed here, at the edge of the store: descriptors, keywords and
//! timestamps are decoded once, and a stored value this build cannot read is
//! [`CatalogError::Corrupt`].

#![deny(missing_docs)]

mod access;
mod keywords;
mod privacy;
mod records;
pub mod scratch;
mod sql;
pub mod time;

pub use access::*;
pub use keywords::*;
pub use privacy::*;
pub use records::*;
pub use sql::{Backend, HeldLock, Location, MigrationStatus, OpenMode, SqlCatalog};

use chrono::{DateTime, Utc};
use meshwork_core::id::ProductId;
use meshwork_core::lineage::ProductLineage;
use meshwork_core::openlineage::RunEvent;

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The store could not be opened at `location`.
    #[error("cannot open the metadata store at `{location}`: {cause}; check that it is reachable and `metadata` in mesh.yaml")]
    Open {
        /// The URL or path given.
        location: String,
        /// The driver's error, shown in the message (not chained, so it is printed once).
        cause: sqlx::Error,
    },
    /// A query against the store failed.
    #[error("metadata store query failed: {0}")]
    Query(sqlx::Error),
    /// Another process kept SQLite's write lock past the busy timeout.
    #[error(
        "the metadata store is busy: another process has been writing to it for over {waited_s} s (another `meshwork` command or server on the same SQLite file?); wait for it to finish and run again"
    )]
    Locked {
        /// Seconds waited (SQLite's busy timeout).
        waited_s: u64,
    },
    /// The store holds data this version of Meshwork cannot read.
    #[error("the metadata store is corrupt or from a newer meshwork: {0}")]
    Corrupt(String),
    /// Another process holds a lock.
    #[error("{what} by another process ({holder}); waited {waited_s} s: wait for it to finish and run again")]
    Busy {
        /// What the lock protects, as the start of a sentence (``product `sales.orders` is being built``).
        what: String,
        /// Who holds it, as far as the store knows.
        holder: String,
        /// Seconds waited.
        waited_s: u64,
    },
    /// The store's schema is older than this build's and opening it must not upgrade it.
    #[error("the metadata store's schema is at version {applied}, this meshwork's is {known}; run `meshwork catalog migrate` to upgrade it")]
    Outdated {
        /// The newest migration applied to the store.
        applied: i64,
        /// The newest migration this build knows.
        known: i64,
    },
}

impl From<sqlx::Error> for CatalogError {
    /// The one decode of the driver's errors: SQLite's "database is locked" (`SQLITE_BUSY`,
    /// `SQLITE_LOCKED` and their extended codes), which says neither who holds the lock nor what
    /// to do, becomes [`CatalogError::Locked`].
    fn from(err: sqlx::Error) -> Self {
        if sql::is_locked(&err) {
            return CatalogError::Locked { waited_s: sql::SQLITE_BUSY_TIMEOUT.as_secs() };
        }
        CatalogError::Query(err)
    }
}

/// Locks named with this prefix and a product's address are its product lock: one build,
/// unpublish or purge of the product at a time, on any machine sharing the catalog.
pub const PRODUCT_LOCK_PREFIX: &str = "product:";

/// The name of `id`'s product lock.
pub fn product_lock(id: &ProductId) -> String {
    format!("{PRODUCT_LOCK_PREFIX}{id}")
}

/// Result alias of this crate.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The metadata store port. Implementations must make [`CatalogStore::publish`] atomic.
#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync {
    /// Creates or updates a domain.
    async fn upsert_domain(&self, domain: &DomainRecord) -> Result<()>;
    /// All domains, by name.
    async fn domains(&self) -> Result<Vec<DomainRecord>>;
    /// Records a new published version of a product together with its product row and its
    /// upstream lineage, in one transaction. Returns the stored version.
    async fn publish(&self, publication: &Publication) -> Result<VersionRecord>;
    /// All products that are published (at least one version, not unpublished), by address.
    async fn products(&self) -> Result<Vec<ProductRecord>>;
    /// One published product; `None` when it does not exist or was unpublished.
    async fn product(&self, id: &ProductId) -> Result<Option<ProductRecord>>;
    /// Published versions of a product, oldest first (kept while it is unpublished).
    async fn versions(&self, id: &ProductId) -> Result<Vec<VersionRecord>>;
    /// The version queries read: the newest one of a published product; `None` for a product
    /// that was never published or is unpublished.
    async fn current_version(&self, id: &ProductId) -> Result<Option<VersionRecord>>;
    /// The current version of every published product, in one round trip (what a query
    /// session reads for all the products it registers).
    async fn current_versions(&self) -> Result<std::collections::BTreeMap<ProductId, VersionRecord>>;
    /// Takes a published product out of service, in one transaction: from then on
    /// [`CatalogStore::products`], [`CatalogStore::product`] and
    /// [`CatalogStore::current_version`] leave it out, so nothing lists, searches or reads it;
    /// its lineage edges as a reader are dropped; `events` are appended and the generation
    /// moves. Its versions, quality runs and SLO checks stay until [`CatalogStore::purge`];
    /// publishing it again brings it back. Returns `false` if it is not published.
    async fn unpublish(&self, id: &ProductId, events: &[NewEvent]) -> Result<bool>;
    /// Products unpublished and not yet purged, by address.
    async fn unpublished(&self) -> Result<Vec<UnpublishedProduct>>;
    /// Deletes what the catalog holds of an unpublished product (its row, versions, lineage,
    /// quality runs, SLO checks, subscriptions, access requests and grants) and appends `events`, in one transaction. The audit log and
    /// the event log keep its history. Returns `false` if the product is not unpublished: a
    /// published product is unpublished first.
    async fn purge(&self, id: &ProductId, events: &[NewEvent]) -> Result<bool>;
    /// Every lineage edge in the mesh.
    async fn lineage(&self) -> Result<Vec<LineageEdge>>;
    /// The column lineage recorded with publication `seq` of a product.
    async fn column_lineage(&self, id: &ProductId, seq: i64) -> Result<Option<ProductLineage>>;
    /// The column lineage of every product's current version, by product.
    async fn current_column_lineage(&self) -> Result<std::collections::BTreeMap<ProductId, ProductLineage>>;
    /// Replaces principals, policies and policy states in one transaction.
    async fn replace_governance(&self, snapshot: &GovernanceSnapshot) -> Result<()>;
    /// The principals, policies and states last applied.
    async fn governance(&self) -> Result<GovernanceSnapshot>;
    /// The mesh's secret salt for hash masks, created on first use. It never leaves the store,
    /// so hashed values cannot be reversed by hashing guesses outside Meshwork.
    async fn mask_salt(&self) -> Result<String>;
    /// Appends an audit event; returns its id. Audit rows are never deleted. An event recorded
    /// with outcome `running` (a streamed query, audited before its first row is sent) is
    /// completed once by [`CatalogStore::complete_audit`]; other events are never updated.
    async fn record_audit(&self, event: &AuditEvent) -> Result<i64>;
    /// Completes a `running` audit event with what the query returned and how it ended.
    async fn complete_audit(&self, id: i64, rows: Option<u64>, duration_ms: f64, outcome: AuditOutcome, error: Option<&str>) -> Result<()>;
    /// A number that changes whenever something is published or governance is replaced, so
    /// long-running servers know when to reload what they cached.
    async fn generation(&self) -> Result<i64>;
    /// Stores a new API token (its Argon2id hash only).
    async fn create_token(&self, token: &ApiTokenRecord) -> Result<()>;
    /// One API token by its public id.
    async fn token(&self, id: &str) -> Result<Option<ApiTokenRecord>>;
    /// Every API token, revoked ones included, oldest first.
    async fn tokens(&self) -> Result<Vec<ApiTokenRecord>>;
    /// Revokes a token and moves the generation (servers remember token records per
    /// generation); `false` if it does not exist or was already revoked.
    async fn revoke_token(&self, id: &str) -> Result<bool>;
    /// Audit events matching `filter`, newest first.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;
    /// The audit events of the last `limit` applies and refreshes, newest first: each names
    /// every product it evaluated with its outcome and the governance policies that found a
    /// violation in it (the governance dashboard's findings and their trend).
    async fn applies(&self, limit: u32) -> Result<Vec<AuditEvent>>;
    /// How audited queries that read `product` since `since` ended: `(ok, error)`.
    /// Denied, cancelled and still running queries are not counted.
    async fn query_outcomes(&self, product: &ProductId, since: DateTime<Utc>) -> Result<(u64, u64)>;
    /// Who read `product` since `since`: one row per principal and interface, the most recent
    /// reader first. Queries that were denied, refused or failed are not reads.
    async fn readers(&self, product: &ProductId, since: DateTime<Utc>) -> Result<Vec<ProductReader>>;
    /// Creates `subscription`, or replaces the principal's subscription to the same product.
    async fn subscribe(&self, subscription: &Subscription) -> Result<()>;
    /// Removes `principal`'s subscription to `product`; `false` if there was none.
    async fn unsubscribe(&self, product: &ProductId, principal: &str) -> Result<bool>;
    /// Subscriptions to `product` (to every product when `None`), by product and principal.
    async fn subscriptions(&self, product: Option<&ProductId>) -> Result<Vec<Subscription>>;
    /// Stores a pending access request and appends its `access.requested` event; `None` when
    /// the principal already has a pending request for the product (one at a time).
    async fn request_access(&self, request: &NewAccessRequest) -> Result<Option<AccessRequest>>;
    /// One access request.
    async fn access_request(&self, id: AccessRequestId) -> Result<Option<AccessRequest>>;
    /// Access requests matching `filter`, oldest first.
    async fn access_requests(&self, filter: &AccessRequestFilter) -> Result<Vec<AccessRequest>>;
    /// Approves or denies a pending request, in one transaction: its status, an approval's
    /// grant (ending at the request's `until`), the `access.approved`/`access.denied` event and,
    /// for an approval, a new generation. `None` when the request is not pending.
    async fn decide_access_request(&self, id: AccessRequestId, decision: &AccessDecisionRecord) -> Result<Option<(AccessRequest, Option<Grant>)>>;
    /// The requester takes back a pending request (`access.withdrawn`); `None` when it is not
    /// pending.
    async fn withdraw_access_request(&self, id: AccessRequestId, at: DateTime<Utc>) -> Result<Option<AccessRequest>>;
    /// Grants of `product` (of every product when `None`), ended ones included, oldest first.
    async fn grants(&self, product: Option<&ProductId>) -> Result<Vec<Grant>>;
    /// Grants neither revoked nor ended at `at`, oldest first (what governance loads).
    async fn open_grants(&self, at: DateTime<Utc>) -> Result<Vec<Grant>>;
    /// Ends an active grant now: `access.revoked` and a new generation in one transaction.
    /// `None` when it does not exist, was revoked or has already ended.
    async fn revoke_grant(&self, id: GrantId, by: &str, at: DateTime<Utc>) -> Result<Option<Grant>>;
    /// Appends `access.expired` once for each grant that ended by itself at or before `at` and
    /// was not recorded yet; returns those grants. The grants stopped counting at their end
    /// already (decisions compare it with the clock); this only records it.
    async fn record_grant_expiries(&self, at: DateTime<Utc>) -> Result<Vec<Grant>>;
    /// Records a quality run that published nothing (a failed run); runs that publish are
    /// recorded by [`CatalogStore::publish`]. Returns its id.
    async fn record_quality_run(&self, product: &ProductId, run: &QualityRun) -> Result<i64>;
    /// Quality runs of a product, newest first.
    async fn quality_runs(&self, product: &ProductId, limit: u32) -> Result<Vec<QualityRun>>;
    /// Appends events to the log, in order; returns the id of the last one.
    async fn append_events(&self, events: &[NewEvent]) -> Result<i64>;
    /// The id of the newest event in the log; 0 when it is empty.
    async fn last_event_id(&self) -> Result<i64>;
    /// Events matching `filter`, oldest first.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>>;
    /// Stores SLO evaluations.
    async fn record_slo_checks(&self, checks: &[SloCheck]) -> Result<()>;
    /// Evaluations of a product's SLOs at or after `since`, newest first.
    async fn slo_checks(&self, product: &ProductId, since: DateTime<Utc>, limit: u32) -> Result<Vec<SloCheck>>;
    /// The newest evaluation of each objective of a product.
    async fn latest_slo_checks(&self, product: &ProductId) -> Result<Vec<SloCheck>>;
    /// The newest quality run and SLO evaluation ids: changes whenever either is recorded,
    /// which the catalog generation does not (catalog search keys its health facets on it).
    async fn operations_mark(&self) -> Result<OperationsMark>;
    /// Every product's latest quality outcome and the latest status of each of its SLO
    /// objectives, in one read for the whole catalog.
    async fn latest_operations(&self) -> Result<LatestOperations>;
    /// Records one webhook delivery attempt.
    async fn record_delivery(&self, delivery: &DeliveryRecord) -> Result<()>;
    /// Delivery attempts of a webhook, newest first.
    async fn deliveries(&self, webhook: &str, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// Appends OpenLineage run events to the outbox their sinks deliver from, in order; returns
    /// the id of the last one.
    async fn append_openlineage(&self, events: &[RunEvent]) -> Result<i64>;
    /// Up to `limit` outbox entries with an id greater than `after`, oldest first.
    async fn openlineage_outbox(&self, after: i64, limit: u32) -> Result<Vec<OutboxEvent>>;
    /// Deletes the outbox entries up to and including id `through` (every sink delivered them);
    /// returns how many.
    async fn prune_openlineage(&self, through: i64) -> Result<u64>;
    /// Opens a portal session (sign-in).
    async fn open_portal_session(&self, session: &PortalSession) -> Result<()>;
    /// The portal session whose id hashes to `id_hash`, if it exists and has not expired at `now`.
    async fn portal_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<Option<PortalSession>>;
    /// Closes a portal session (sign-out, or its credential no longer holds); `false` if there
    /// was none.
    async fn close_portal_session(&self, id_hash: &str) -> Result<bool>;
    /// Deletes the portal sessions expired at `now`; returns how many.
    async fn prune_portal_sessions(&self, now: DateTime<Utc>) -> Result<u64>;
    /// Charges `spend.epsilon_micro` to the principal's budget for the product, atomically
    /// however many charges run at once, on any machine sharing the catalog. The budget counts
    /// per principal and product over a fixed window that starts at the first charge; once
    /// `spend.at` is `spend.window` or more past the window's start, the window renews and starts
    /// from this charge. A charge that would take the window past `spend.budget_micro`, or that
    /// costs more than the whole budget, is [`PrivacyCharge::Exhausted`] and writes nothing.
    async fn spend_privacy(&self, spend: &PrivacySpend) -> Result<PrivacyCharge>;
    /// What each principal (only `principal` when given) has spent of each product's budget,
    /// by principal and product.
    async fn privacy_budgets(&self, principal: Option<&str>) -> Result<Vec<PrivacyBudgetRow>>;
    /// A named value kept by background work (e.g. a webhook's delivery cursor).
    async fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Sets a named value.
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Takes the lock called `name` (`product:sales.orders`, `scheduler`), waiting up to `wait`
    /// for its holder, anywhere, to release it; [`CatalogError::Busy`] names the holder after
    /// that. It is held until the guard is dropped or its process dies: every process and
    /// machine sharing the catalog sees the same locks.
    async fn lock(&self, name: &str, wait: std::time::Duration) -> Result<HeldLock>;
}
