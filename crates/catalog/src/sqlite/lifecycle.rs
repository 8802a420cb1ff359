//! The end of a product's life in the SQLite catalog: unpublishing (out of service, rows kept)
//! and purging (rows deleted, audit and event history kept).

use meshwork_core::id::ProductId;
use sqlx::{AssertSqlSafe, Row};

use super::{SqliteCatalog, VERSION_COLUMNS, insert_event, now, product_row, version_row};
use crate::{CatalogError, NewEvent, Result, UnpublishedProduct};

impl SqliteCatalog {
    pub(super) async fn unpublish_product(&self, id: &ProductId, events: &[NewEvent]) -> Result<bool> {
        let key = id.to_string();
        let mut tx = self.pool.begin().await?;
        let marked = sqlx::query("UPDATE products SET unpublished_at = ? WHERE id = ? AND unpublished_at IS NULL")
            .bind(now())
            .bind(&key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        // It reads nothing any more; edges where it is the upstream stay until its readers
        // are rebuilt, so their published lineage stays true.
        sqlx::query("DELETE FROM lineage WHERE downstream = ?").bind(&key).execute(&mut *tx).await?;
        for event in events {
            insert_event(&mut tx, event).await?;
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn unpublished_products(&self) -> Result<Vec<UnpublishedProduct>> {
        let rows = sqlx::query("SELECT * FROM products WHERE unpublished_at IS NOT NULL ORDER BY id").fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let product = product_row(row)?;
            let at: String = row.try_get("unpublished_at")?;
            let unpublished_at = chrono::DateTime::parse_from_rfc3339(&at)
                .map_err(|e| CatalogError::Corrupt(format!("bad unpublished_at `{at}` of `{}`: {e}", product.id)))?
                .with_timezone(&chrono::Utc);
            let last = sqlx::query(AssertSqlSafe(format!(
                "SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = ? ORDER BY seq DESC LIMIT 1"
            )))
            .bind(product.id.to_string())
            .fetch_optional(&self.pool)
            .await?;
            out.push(UnpublishedProduct { last_version: last.as_ref().map(version_row).transpose()?, product, unpublished_at });
        }
        Ok(out)
    }

    pub(super) async fn purge_product(&self, id: &ProductId, events: &[NewEvent]) -> Result<bool> {
        let key = id.to_string();
        let mut tx = self.pool.begin().await?;
        let unpublished: Option<String> = sqlx::query_scalar("SELECT id FROM products WHERE id = ? AND unpublished_at IS NOT NULL")
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
        if unpublished.is_none() {
            return Ok(false);
        }
        // Versions first: they reference the product row. Audit rows and events are history
        // and stay.
        for statement in [
            "DELETE FROM product_versions WHERE product_id = ?",
            "DELETE FROM quality_runs WHERE product_id = ?",
            "DELETE FROM slo_checks WHERE product_id = ?",
            "DELETE FROM lineage WHERE upstream = ?",
            "DELETE FROM lineage WHERE downstream = ?",
            "DELETE FROM column_lineage WHERE product_id = ?",
            "DELETE FROM products WHERE id = ?",
        ] {
            sqlx::query(statement).bind(&key).execute(&mut *tx).await?;
        }
        for event in events {
            insert_event(&mut tx, event).await?;
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Tells long-running servers that what they cached is stale.
async fn bump_generation(tx: &mut sqlx::SqliteConnection) -> Result<()> {
    sqlx::query("UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'").execute(&mut *tx).await?;
    Ok(())
}
