//! The end of a product's life in the catalog: unpublishing (out of service, rows kept) and
//! purging (rows deleted, audit and event history kept).

use meshwork_core::id::ProductId;
use sqlx::AssertSqlSafe;

use super::rows::{ProductRow, VERSION_COLUMNS, VersionRow, timestamp};
use super::{SqlCatalog, bump_generation, insert_event, now};
use crate::{NewEvent, ProductRecord, Result, UnpublishedProduct, VersionRecord};

/// A product row with the time it was unpublished.
#[derive(sqlx::FromRow)]
struct UnpublishedRow {
    #[sqlx(flatten)]
    product: ProductRow,
    unpublished_at: String,
}

impl SqlCatalog {
    pub(super) async fn unpublish_product(&self, id: &ProductId, events: &[NewEvent]) -> Result<bool> {
        let key = id.to_string();
        let mut tx = self.write_tx().await?;
        let marked = sqlx::query("UPDATE products SET unpublished_at = $1 WHERE id = $2 AND unpublished_at IS NULL")
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
        sqlx::query("DELETE FROM lineage WHERE downstream = $1").bind(&key).execute(&mut *tx).await?;
        for event in events {
            insert_event(&mut tx, event).await?;
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn unpublished_products(&self) -> Result<Vec<UnpublishedProduct>> {
        let rows: Vec<UnpublishedRow> =
            sqlx::query_as("SELECT * FROM products WHERE unpublished_at IS NOT NULL ORDER BY id").fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let product = ProductRecord::try_from(row.product)?;
            let unpublished_at = timestamp(&format!("products `{}` unpublished_at", product.id), &row.unpublished_at)?;
            let last: Option<VersionRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = $1 ORDER BY seq DESC LIMIT 1"
            )))
            .bind(product.id.to_string())
            .fetch_optional(&self.pool)
            .await?;
            out.push(UnpublishedProduct { last_version: last.map(VersionRecord::try_from).transpose()?, product, unpublished_at });
        }
        Ok(out)
    }

    pub(super) async fn purge_product(&self, id: &ProductId, events: &[NewEvent]) -> Result<bool> {
        let key = id.to_string();
        let mut tx = self.write_tx().await?;
        let unpublished: Option<String> = sqlx::query_scalar("SELECT id FROM products WHERE id = $1 AND unpublished_at IS NOT NULL")
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
        if unpublished.is_none() {
            return Ok(false);
        }
        // Versions first: they reference the product row. Audit rows and events are history
        // and stay.
        for statement in [
            "DELETE FROM product_versions WHERE product_id = $1",
            "DELETE FROM quality_runs WHERE product_id = $1",
            "DELETE FROM slo_checks WHERE product_id = $1",
            "DELETE FROM lineage WHERE upstream = $1",
            "DELETE FROM lineage WHERE downstream = $1",
            "DELETE FROM column_lineage WHERE product_id = $1",
            // A product published again later under the same address is another product: its
            // subscribers subscribe to it again.
            "DELETE FROM subscriptions WHERE product_id = $1",
            // Likewise its readers by grant ask again.
            "DELETE FROM grants WHERE product_id = $1",
            "DELETE FROM access_requests WHERE product_id = $1",
            "DELETE FROM products WHERE id = $1",
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
