//! The SQL adapter of the catalog: one implementation of [`CatalogStore`] over `sqlx::Any`, for
//! the embedded SQLite file and for a PostgreSQL server.
//!
//! Every statement is written once in the SQL both backends speak (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`, text timestamps in one fixed width), so the two backends cannot
//! drift apart; what differs (identity columns, the migration history table) lives in the
//! migrations, one directory per backend under `crates/catalog/migrations/`. Rows come back as
//! plain text and numbers and are decoded once, in [`rows`], into the typed records.
//! Statements are grouped by resource, one file each.

mod access;
mod audit;
mod connect;
mod governance;
mod lifecycle;
mod locks;
mod operations;
mod portal;
mod privacy;
mod products;
mod rows;
mod subscriptions;
mod writes;

pub(crate) use connect::{SQLITE_BUSY_TIMEOUT, is_locked};

use std::collections::BTreeMap;

use meshwork_core::id::ProductId;
use meshwork_core::lineage::ProductLineage;
use sqlx::AnyConnection;
use sqlx::AnyPool;

pub use connect::{Backend, Location, MigrationStatus, OpenMode};
pub use locks::HeldLock;

use crate::keywords::AuditOutcome;
use crate::{
    ApiTokenRecord, AuditEvent, AuditFilter, CatalogStore, DeliveryRecord, DomainRecord, EventFilter, EventRecord, GovernanceSnapshot,
    LineageEdge, NewEvent, PortalSession, Publication, QualityRun, Result, SloCheck, Subscription, UnpublishedProduct, VersionRecord,
};
use crate::ProductRecord;

/// The catalog in a SQL database: SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlCatalog {
    pool: AnyPool,
    backend: Backend,
    /// How to open a connection of its own (a lock's); holds the password, never shown.
    connect: sqlx::any::AnyConnectOptions,
    /// SQLite: the directory of the lock files beside the database file.
    locks_dir: Option<std::path::PathBuf>,
    /// SQLite: this process's writers, queued for their turn.
    writes: writes::WriteTurns,
}

impl std::fmt::Debug for SqlCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlCatalog").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl SqlCatalog {
    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes a consistent copy of a SQLite catalog to `target` (a new file) while others keep
    /// using it; PostgreSQL catalogs are copied with PostgreSQL's own tools.
    pub async fn backup_to(&self, target: &std::path::Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(crate::CatalogError::Corrupt("only the embedded SQLite catalog is backed up by meshwork; use `pg_dump` for PostgreSQL".into()));
        }
        sqlx::query("VACUUM INTO $1").bind(target.to_string_lossy().into_owned()).execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the store answers a trivial query (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Now, as stored.
fn now() -> String {
    crate::time::format(&chrono::Utc::now())
}

/// Tells long-running servers that what they cached is stale.
async fn bump_generation(conn: &mut AnyConnection) -> Result<()> {
    sqlx::query("UPDATE settings SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'generation'").execute(&mut *conn).await?;
    Ok(())
}

/// Appends one event; returns its id.
async fn insert_event(conn: &mut AnyConnection, event: &NewEvent) -> Result<i64> {
    Ok(sqlx::query_scalar("INSERT INTO events (at, kind, product_id, payload) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(now())
        .bind(event.kind.as_str())
        .bind(event.product.as_ref().map(ToString::to_string))
        .bind(event.payload.to_string())
        .fetch_one(&mut *conn)
        .await?)
}

#[async_trait::async_trait]
impl CatalogStore for SqlCatalog {
    async fn upsert_domain(&self, domain: &DomainRecord) -> Result<()> {
        self.upsert_domain_row(domain).await
    }

    async fn domains(&self) -> Result<Vec<DomainRecord>> {
        self.domain_rows().await
    }

    async fn publish(&self, publication: &Publication) -> Result<VersionRecord> {
        self.publish_version(publication).await
    }

    async fn products(&self) -> Result<Vec<ProductRecord>> {
        self.product_rows(None).await
    }

    async fn product(&self, id: &ProductId) -> Result<Option<ProductRecord>> {
        Ok(self.product_rows(Some(id)).await?.pop())
    }

    async fn versions(&self, id: &ProductId) -> Result<Vec<VersionRecord>> {
        self.version_rows(id).await
    }

    async fn current_version(&self, id: &ProductId) -> Result<Option<VersionRecord>> {
        self.current_version_row(id).await
    }

    async fn current_versions(&self) -> Result<BTreeMap<ProductId, VersionRecord>> {
        self.current_version_rows().await
    }

    async fn unpublish(&self, id: &ProductId, events: &[NewEvent]) -> Result<bool> {
        self.unpublish_product(id, events).await
    }

    async fn unpublished(&self) -> Result<Vec<UnpublishedProduct>> {
        self.unpublished_products().await
    }

    async fn purge(&self, id: &ProductId, events: &[NewEvent]) -> Result<bool> {
        self.purge_product(id, events).await
    }

    async fn lineage(&self) -> Result<Vec<LineageEdge>> {
        self.lineage_edges().await
    }

    async fn column_lineage(&self, id: &ProductId, seq: i64) -> Result<Option<ProductLineage>> {
        self.column_lineage_of(id, seq).await
    }

    async fn current_column_lineage(&self) -> Result<BTreeMap<ProductId, ProductLineage>> {
        self.current_column_lineages().await
    }

    async fn replace_governance(&self, snapshot: &GovernanceSnapshot) -> Result<()> {
        self.replace_governance_rows(snapshot).await
    }

    async fn governance(&self) -> Result<GovernanceSnapshot> {
        self.governance_rows().await
    }

    async fn mask_salt(&self) -> Result<String> {
        self.mask_salt_value().await
    }

    async fn record_audit(&self, event: &AuditEvent) -> Result<i64> {
        self.insert_audit(event).await
    }

    async fn complete_audit(&self, id: i64, rows: Option<u64>, duration_ms: f64, outcome: AuditOutcome, error: Option<&str>) -> Result<()> {
        self.complete_audit_row(id, rows, duration_ms, outcome, error).await
    }

    async fn generation(&self) -> Result<i64> {
        self.generation_value().await
    }

    async fn create_token(&self, token: &ApiTokenRecord) -> Result<()> {
        self.insert_token(token).await
    }

    async fn token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        self.token_row(id).await
    }

    async fn tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        self.token_rows().await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        self.revoke_token_row(id).await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        self.audit_rows(filter).await
    }

    async fn applies(&self, limit: u32) -> Result<Vec<AuditEvent>> {
        self.apply_rows(limit).await
    }

    async fn query_outcomes(&self, product: &ProductId, since: chrono::DateTime<chrono::Utc>) -> Result<(u64, u64)> {
        self.query_outcome_counts(product, since).await
    }

    async fn readers(&self, product: &ProductId, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<crate::ProductReader>> {
        self.reader_rows(product, since).await
    }

    async fn subscribe(&self, subscription: &Subscription) -> Result<()> {
        self.upsert_subscription(subscription).await
    }

    async fn unsubscribe(&self, product: &ProductId, principal: &str) -> Result<bool> {
        self.delete_subscription(product, principal).await
    }

    async fn subscriptions(&self, product: Option<&ProductId>) -> Result<Vec<Subscription>> {
        self.subscription_rows(product).await
    }

    async fn request_access(&self, request: &crate::NewAccessRequest) -> Result<Option<crate::AccessRequest>> {
        self.insert_access_request(request).await
    }

    async fn access_request(&self, id: crate::AccessRequestId) -> Result<Option<crate::AccessRequest>> {
        self.access_request_row(id).await
    }

    async fn access_requests(&self, filter: &crate::AccessRequestFilter) -> Result<Vec<crate::AccessRequest>> {
        self.access_request_rows(filter).await
    }

    async fn decide_access_request(&self, id: crate::AccessRequestId, decision: &crate::AccessDecisionRecord) -> Result<Option<(crate::AccessRequest, Option<crate::Grant>)>> {
        self.decide_access_request_row(id, decision).await
    }

    async fn withdraw_access_request(&self, id: crate::AccessRequestId, at: chrono::DateTime<chrono::Utc>) -> Result<Option<crate::AccessRequest>> {
        self.withdraw_access_request_row(id, at).await
    }

    async fn grants(&self, product: Option<&ProductId>) -> Result<Vec<crate::Grant>> {
        self.grant_rows(product).await
    }

    async fn open_grants(&self, at: chrono::DateTime<chrono::Utc>) -> Result<Vec<crate::Grant>> {
        self.open_grant_rows(at).await
    }

    async fn revoke_grant(&self, id: crate::GrantId, by: &str, at: chrono::DateTime<chrono::Utc>) -> Result<Option<crate::Grant>> {
        self.revoke_grant_row(id, by, at).await
    }

    async fn record_grant_expiries(&self, at: chrono::DateTime<chrono::Utc>) -> Result<Vec<crate::Grant>> {
        self.record_grant_expiry_rows(at).await
    }

    async fn open_portal_session(&self, session: &PortalSession) -> Result<()> {
        self.insert_portal_session(session).await
    }

    async fn portal_session(&self, id_hash: &str, now: chrono::DateTime<chrono::Utc>) -> Result<Option<PortalSession>> {
        self.portal_session_row(id_hash, now).await
    }

    async fn close_portal_session(&self, id_hash: &str) -> Result<bool> {
        self.delete_portal_session(id_hash).await
    }

    async fn prune_portal_sessions(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        self.delete_expired_portal_sessions(now).await
    }

    async fn record_quality_run(&self, product: &ProductId, run: &QualityRun) -> Result<i64> {
        let mut conn = self.write_conn().await?;
        operations::insert_quality_run(&mut conn, product, run).await
    }

    async fn quality_runs(&self, product: &ProductId, limit: u32) -> Result<Vec<QualityRun>> {
        self.quality_run_rows(product, limit).await
    }

    async fn append_events(&self, events: &[NewEvent]) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let mut last = 0;
        for event in events {
            last = insert_event(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(last)
    }

    async fn last_event_id(&self) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&self.pool).await?;
        Ok(id)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        self.event_rows(filter).await
    }

    async fn record_slo_checks(&self, checks: &[SloCheck]) -> Result<()> {
        self.insert_slo_checks(checks).await
    }

    async fn slo_checks(&self, product: &ProductId, since: chrono::DateTime<chrono::Utc>, limit: u32) -> Result<Vec<SloCheck>> {
        self.slo_check_rows(product, since, limit).await
    }

    async fn latest_slo_checks(&self, product: &ProductId) -> Result<Vec<SloCheck>> {
        self.latest_slo_check_rows(product).await
    }

    async fn operations_mark(&self) -> Result<crate::OperationsMark> {
        self.operations_mark_row().await
    }

    async fn latest_operations(&self) -> Result<crate::LatestOperations> {
        self.latest_operation_rows().await
    }

    async fn record_delivery(&self, delivery: &DeliveryRecord) -> Result<()> {
        self.insert_delivery(delivery).await
    }

    async fn deliveries(&self, webhook: &str, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.delivery_rows(webhook, limit).await
    }

    async fn append_openlineage(&self, events: &[meshwork_core::openlineage::RunEvent]) -> Result<i64> {
        self.insert_openlineage(events).await
    }

    async fn openlineage_outbox(&self, after: i64, limit: u32) -> Result<Vec<crate::OutboxEvent>> {
        self.openlineage_rows(after, limit).await
    }

    async fn prune_openlineage(&self, through: i64) -> Result<u64> {
        self.delete_openlineage(through).await
    }

    async fn spend_privacy(&self, spend: &crate::PrivacySpend) -> Result<crate::PrivacyCharge> {
        self.charge_privacy(spend).await
    }

    async fn privacy_budgets(&self, principal: Option<&str>) -> Result<Vec<crate::PrivacyBudgetRow>> {
        self.privacy_budget_rows(principal).await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        self.setting_value(key).await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.set_setting_value(key, value).await
    }

    async fn lock(&self, name: &str, wait: std::time::Duration) -> Result<HeldLock> {
        self.take_lock(name, wait).await
    }
}
