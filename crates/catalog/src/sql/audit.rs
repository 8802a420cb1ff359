//! The audit log (append-only; a streamed query's event completed once) and API tokens.

use chrono::{DateTime, Utc};
use meshwork_core::id::ProductId;

use super::rows::{AuditRow, TokenRow, decode_all};
use super::{SqlCatalog, bump_generation, now};
use crate::keywords::AuditOutcome;
use crate::{ApiTokenRecord, AuditEvent, AuditFilter, ProductReader, Result, time};

impl SqlCatalog {
    pub(super) async fn insert_audit(&self, event: &AuditEvent) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_events (at, principal, interface, action, statement, products, rows_returned, duration_ms, outcome, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(time::format(&event.at))
        .bind(&event.principal)
        .bind(&event.interface)
        .bind(&event.action)
        .bind(&event.statement)
        .bind(serde_json::to_string(&event.products).expect("audit products serialize"))
        .bind(event.rows.map(|r| r as i64))
        .bind(event.duration_ms)
        .bind(event.outcome.as_str())
        .bind(&event.error)
        .fetch_one(&mut *tx)
        .await?;
        for product in &event.products {
            sqlx::query("INSERT INTO audit_event_products (event_id, product_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(&product.product)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub(super) async fn complete_audit_row(&self, id: i64, rows: Option<u64>, duration_ms: f64, outcome: AuditOutcome, error: Option<&str>) -> Result<()> {
        // Only an event still `running` is completed, once; a finished event is never rewritten.
        sqlx::query("UPDATE audit_events SET rows_returned = $1, duration_ms = $2, outcome = $3, error = $4 WHERE id = $5 AND outcome = 'running'")
            .bind(rows.map(|r| r as i64))
            .bind(duration_ms)
            .bind(outcome.as_str())
            .bind(error)
            .bind(id)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }

    pub(super) async fn audit_rows(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT * FROM audit_events e WHERE ($1 IS NULL OR e.principal = $1) AND ($2 IS NULL OR e.at >= $2) \
             AND ($3 IS NULL OR EXISTS (SELECT 1 FROM audit_event_products p WHERE p.event_id = e.id AND p.product_id = $3)) \
             ORDER BY e.id DESC LIMIT $4",
        )
        .bind(&filter.principal)
        .bind(filter.since.as_ref().map(time::format))
        .bind(filter.product.as_ref().map(ToString::to_string))
        .bind(filter.limit.map(i64::from).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        decode_all(rows)
    }

    pub(super) async fn apply_rows(&self, limit: u32) -> Result<Vec<AuditEvent>> {
        let rows: Vec<AuditRow> = sqlx::query_as("SELECT * FROM audit_events WHERE action IN ('apply', 'refresh') ORDER BY id DESC LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }

    pub(super) async fn query_outcome_counts(&self, product: &ProductId, since: DateTime<Utc>) -> Result<(u64, u64)> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT e.outcome, COUNT(*) AS n FROM audit_events e JOIN audit_event_products p ON p.event_id = e.id \
             WHERE p.product_id = $1 AND e.action = 'query' AND e.at >= $2 AND e.outcome IN ('ok', 'error') GROUP BY e.outcome",
        )
        .bind(product.to_string())
        .bind(time::format(&since))
        .fetch_all(&self.pool)
        .await?;
        let count = |outcome: AuditOutcome| rows.iter().find(|(o, _)| o == outcome.as_str()).map_or(0, |(_, n)| (*n).max(0) as u64);
        Ok((count(AuditOutcome::Ok), count(AuditOutcome::Error)))
    }

    pub(super) async fn reader_rows(&self, product: &ProductId, since: DateTime<Utc>) -> Result<Vec<ProductReader>> {
        // Timestamps are fixed-width RFC 3339 text, so MAX is the newest on both backends.
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT e.principal, e.interface, COUNT(*) AS queries, MAX(e.at) AS last_read \
             FROM audit_events e JOIN audit_event_products p ON p.event_id = e.id \
             WHERE p.product_id = $1 AND e.action = 'query' AND e.at >= $2 AND e.outcome IN ('ok', 'cancelled', 'running') \
             GROUP BY e.principal, e.interface ORDER BY 4 DESC, 1, 2",
        )
        .bind(product.to_string())
        .bind(time::format(&since))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(principal, interface, queries, last_read)| {
                Ok(ProductReader { principal, interface, queries: queries.max(0) as u64, last_read: time::parse(&last_read).map_err(|e| crate::CatalogError::Corrupt(format!("audit_events.at `{last_read}`: {e}")))? })
            })
            .collect()
    }

    pub(super) async fn insert_token(&self, token: &ApiTokenRecord) -> Result<()> {
        sqlx::query("INSERT INTO api_tokens (id, principal, description, hash, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)")
            .bind(&token.id)
            .bind(&token.principal)
            .bind(&token.description)
            .bind(&token.hash)
            .bind(time::format(&token.created_at))
            .bind(token.expires_at.as_ref().map(time::format))
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }

    pub(super) async fn token_row(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        let row: Option<TokenRow> = sqlx::query_as("SELECT * FROM api_tokens WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.map(ApiTokenRecord::try_from).transpose()
    }

    pub(super) async fn token_rows(&self) -> Result<Vec<ApiTokenRecord>> {
        let rows: Vec<TokenRow> = sqlx::query_as("SELECT * FROM api_tokens ORDER BY created_at, id").fetch_all(&self.pool).await?;
        decode_all(rows)
    }

    pub(super) async fn revoke_token_row(&self, id: &str) -> Result<bool> {
        // The generation moves with it: servers remember token records per generation.
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL").bind(now()).bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 1 {
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
