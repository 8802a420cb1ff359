//! What running products leaves behind: quality runs, the event log, SLO evaluations, webhook
//! deliveries and the OpenLineage outbox.

use chrono::{DateTime, Utc};
use meshwork_core::id::ProductId;
use sqlx::{AnyConnection, AssertSqlSafe};

use meshwork_core::openlineage::RunEvent;

use super::rows::{DeliveryRow, EventRow, OutboxRow, QualityRunRow, SloRow, decode_all, parsed, product_id};
use super::SqlCatalog;
use crate::{DeliveryRecord, EventFilter, EventRecord, LatestOperations, OperationsMark, OutboxEvent, QualityRun, Result, SloCheck, time};

/// Records one quality run; returns its id.
pub(super) async fn insert_quality_run(conn: &mut AnyConnection, product: &ProductId, run: &QualityRun) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO quality_runs (product_id, at, trigger_kind, outcome, published_seq, row_count, build_ms, stage_ms, quality_ms, results) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(product.to_string())
    .bind(time::format(&run.at))
    .bind(run.trigger.as_str())
    .bind(run.outcome.as_str())
    .bind(run.published_seq)
    .bind(run.row_count as i64)
    .bind(run.build_ms)
    .bind(run.stage_ms)
    .bind(run.quality_ms)
    .bind(serde_json::to_string(&run.results).expect("rule results serialize"))
    .fetch_one(&mut *conn)
    .await?)
}

impl SqlCatalog {
    pub(super) async fn quality_run_rows(&self, product: &ProductId, limit: u32) -> Result<Vec<QualityRun>> {
        let rows: Vec<QualityRunRow> = sqlx::query_as("SELECT * FROM quality_runs WHERE product_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(product.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }

    pub(super) async fn event_rows(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        // One placeholder per kind: the same statement on every backend, no JSON functions.
        let mut sql = String::from("SELECT * FROM events WHERE id > $1 AND ($2 IS NULL OR product_id = $2)");
        if !filter.kinds.is_empty() {
            let marks: Vec<String> = (0..filter.kinds.len()).map(|i| format!("${}", i + 4)).collect();
            sql.push_str(&format!(" AND kind IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY id LIMIT $3");
        // Only placeholders are spliced in; every value is bound.
        let mut query = sqlx::query_as::<_, EventRow>(AssertSqlSafe(sql))
            .bind(filter.after)
            .bind(filter.product.as_ref().map(ToString::to_string))
            .bind(filter.limit.map(i64::from).unwrap_or(i64::MAX));
        for kind in &filter.kinds {
            query = query.bind(kind.as_str());
        }
        decode_all(query.fetch_all(&self.pool).await?)
    }

    pub(super) async fn insert_slo_checks(&self, checks: &[SloCheck]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for check in checks {
            sqlx::query(
                "INSERT INTO slo_checks (product_id, objective, at, status, value, threshold, budget_remaining, message) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(check.product.to_string())
            .bind(check.objective.as_str())
            .bind(time::format(&check.at))
            .bind(check.status.as_str())
            .bind(check.value)
            .bind(check.threshold)
            .bind(check.budget_remaining)
            .bind(&check.message)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn slo_check_rows(&self, product: &ProductId, since: DateTime<Utc>, limit: u32) -> Result<Vec<SloCheck>> {
        let rows: Vec<SloRow> = sqlx::query_as("SELECT * FROM slo_checks WHERE product_id = $1 AND at >= $2 ORDER BY at DESC, id DESC LIMIT $3")
            .bind(product.to_string())
            .bind(time::format(&since))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }

    pub(super) async fn latest_slo_check_rows(&self, product: &ProductId) -> Result<Vec<SloCheck>> {
        let rows: Vec<SloRow> = sqlx::query_as(
            "SELECT * FROM slo_checks WHERE id IN (SELECT MAX(id) FROM slo_checks WHERE product_id = $1 GROUP BY objective) ORDER BY objective",
        )
        .bind(product.to_string())
        .fetch_all(&self.pool)
        .await?;
        decode_all(rows)
    }

    pub(super) async fn operations_mark_row(&self) -> Result<OperationsMark> {
        let (quality_run, slo_check): (i64, i64) =
            sqlx::query_as("SELECT (SELECT COALESCE(MAX(id), 0) FROM quality_runs), (SELECT COALESCE(MAX(id), 0) FROM slo_checks)")
                .fetch_one(&self.pool)
                .await?;
        Ok(OperationsMark { quality_run, slo_check })
    }

    /// The newest run per product and the newest check per product and objective, found by
    /// their greatest id (ids grow with time), each table read once.
    pub(super) async fn latest_operation_rows(&self) -> Result<LatestOperations> {
        let runs: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, product_id, outcome FROM quality_runs WHERE id IN (SELECT MAX(id) FROM quality_runs GROUP BY product_id)")
                .fetch_all(&self.pool)
                .await?;
        let mut latest = LatestOperations::default();
        for (id, product, outcome) in runs {
            let what = format!("quality_runs {id}");
            latest.quality.insert(product_id(&what, &product)?, parsed(&format!("{what} outcome"), &outcome)?);
        }
        let checks: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, product_id, status FROM slo_checks WHERE id IN (SELECT MAX(id) FROM slo_checks GROUP BY product_id, objective) \
             ORDER BY product_id, objective",
        )
        .fetch_all(&self.pool)
        .await?;
        for (id, product, status) in checks {
            let what = format!("slo_checks {id}");
            latest.slo.entry(product_id(&what, &product)?).or_default().push(parsed(&format!("{what} status"), &status)?);
        }
        Ok(latest)
    }

    pub(super) async fn insert_delivery(&self, delivery: &DeliveryRecord) -> Result<()> {
        sqlx::query("INSERT INTO webhook_deliveries (webhook, event_id, attempt, at, status, outcome, error) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&delivery.webhook)
            .bind(delivery.event_id)
            .bind(i64::from(delivery.attempt))
            .bind(time::format(&delivery.at))
            .bind(delivery.status.map(i64::from))
            .bind(delivery.outcome.as_str())
            .bind(&delivery.error)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }

    pub(super) async fn delivery_rows(&self, webhook: &str, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as("SELECT * FROM webhook_deliveries WHERE webhook = $1 ORDER BY id DESC LIMIT $2")
            .bind(webhook)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }

    pub(super) async fn insert_openlineage(&self, events: &[RunEvent]) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let mut last = 0;
        for event in events {
            last = sqlx::query_scalar("INSERT INTO openlineage_outbox (at, event) VALUES ($1, $2) RETURNING id")
                .bind(super::now())
                .bind(serde_json::to_string(event).expect("run events serialize"))
                .fetch_one(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(last)
    }

    pub(super) async fn openlineage_rows(&self, after: i64, limit: u32) -> Result<Vec<OutboxEvent>> {
        let rows: Vec<OutboxRow> = sqlx::query_as("SELECT * FROM openlineage_outbox WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }

    pub(super) async fn delete_openlineage(&self, through: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM openlineage_outbox WHERE id <= $1").bind(through).execute(&mut *self.write_conn().await?).await?.rows_affected())
    }
}
