//! Domains, products, their published versions and their lineage.

use std::collections::BTreeMap;

use meshwork_core::id::ProductId;
use meshwork_core::lineage::ProductLineage;
use sqlx::AssertSqlSafe;

use super::rows::{DomainRow, ProductRow, VERSION_COLUMNS, VersionRow, decode_all, json, product_id};
use super::{SqlCatalog, bump_generation, insert_event, now};
use crate::{DomainRecord, LineageEdge, Publication, QualityRun, Result, VersionRecord};
use crate::{ProductRecord, time};

impl SqlCatalog {
    pub(super) async fn upsert_domain_row(&self, domain: &DomainRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO domains (name, title, description, owners, principal, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET title = excluded.title, description = excluded.description, \
             owners = excluded.owners, principal = excluded.principal, updated_at = excluded.updated_at",
        )
        .bind(domain.name.as_str())
        .bind(&domain.title)
        .bind(&domain.description)
        .bind(serde_json::to_string(&domain.owners).expect("strings serialize"))
        .bind(serde_json::to_string(&domain.principal).expect("principal serializes"))
        .bind(now())
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    pub(super) async fn domain_rows(&self) -> Result<Vec<DomainRecord>> {
        let rows: Vec<DomainRow> =
            sqlx::query_as("SELECT name, title, description, owners, principal FROM domains ORDER BY name").fetch_all(&self.pool).await?;
        decode_all(rows)
    }

    pub(super) async fn publish_version(&self, publication: &Publication) -> Result<VersionRecord> {
        let p = &publication.product;
        let id = p.id.to_string();
        let at = chrono::Utc::now();
        let stamp = time::format(&at);
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO products (id, domain, name, version, title, description, owner, status, tags, descriptor, \
             descriptor_hash, table_uri, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, title = excluded.title, \
             description = excluded.description, owner = excluded.owner, status = excluded.status, tags = excluded.tags, \
             descriptor = excluded.descriptor, descriptor_hash = excluded.descriptor_hash, \
             table_uri = excluded.table_uri, updated_at = excluded.updated_at, unpublished_at = NULL",
        )
        .bind(&id)
        .bind(p.id.domain.as_str())
        .bind(p.id.name.as_str())
        .bind(&p.version)
        .bind(&p.title)
        .bind(&p.description)
        .bind(&p.owner)
        .bind(p.status.as_str())
        .bind(serde_json::to_string(&p.tags).expect("strings serialize"))
        .bind(serde_json::to_string(&p.descriptor).expect("descriptors serialize"))
        .bind(&p.descriptor_hash)
        .bind(&p.table_uri)
        .bind(&stamp)
        .execute(&mut *tx)
        .await?;
        let seq: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT) FROM product_versions WHERE product_id = $1")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        let record = VersionRecord {
            product: p.id.clone(),
            seq,
            version: p.version.clone(),
            delta_version: publication.delta_version,
            schema: publication.schema.clone(),
            row_count: publication.row_count,
            descriptor_hash: p.descriptor_hash.clone(),
            input_fingerprint: publication.input_fingerprint.clone(),
            published_at: at,
            watermark: publication.watermark.clone(),
            remote: publication.remote.clone(),
        };
        sqlx::query(AssertSqlSafe(format!("INSERT INTO product_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")))
            .bind(&id)
            .bind(record.seq)
            .bind(&record.version)
            .bind(record.delta_version)
            .bind(serde_json::to_string(&record.schema).expect("schemas serialize"))
            .bind(record.row_count)
            .bind(&record.descriptor_hash)
            .bind(&record.input_fingerprint)
            .bind(&stamp)
            .bind(record.watermark.as_ref().map(|w| serde_json::to_string(w).expect("watermarks serialize")))
            .bind(record.remote.as_ref().map(|r| serde_json::to_string(r).expect("remote sources serialize")))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO column_lineage (product_id, seq, lineage) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(seq)
            .bind(serde_json::to_string(&publication.lineage).expect("lineage serializes"))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM lineage WHERE downstream = $1").bind(&id).execute(&mut *tx).await?;
        for upstream in &publication.upstream {
            sqlx::query("INSERT INTO lineage (upstream, downstream) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(upstream.to_string())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(run) = &publication.quality {
            let run = QualityRun { published_seq: Some(seq), ..run.clone() };
            super::operations::insert_quality_run(&mut tx, &p.id, &run).await?;
        }
        for event in &publication.events {
            insert_event(&mut tx, event).await?;
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Published products, all or the one `id`, by address.
    pub(super) async fn product_rows(&self, id: Option<&ProductId>) -> Result<Vec<ProductRecord>> {
        let rows: Vec<ProductRow> =
            sqlx::query_as("SELECT * FROM products WHERE unpublished_at IS NULL AND ($1 IS NULL OR id = $1) ORDER BY id")
                .bind(id.map(ToString::to_string))
                .fetch_all(&self.pool)
                .await?;
        decode_all(rows)
    }

    pub(super) async fn version_rows(&self, id: &ProductId) -> Result<Vec<VersionRecord>> {
        let rows: Vec<VersionRow> =
            sqlx::query_as(AssertSqlSafe(format!("SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = $1 ORDER BY seq")))
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        decode_all(rows)
    }

    pub(super) async fn current_version_row(&self, id: &ProductId) -> Result<Option<VersionRecord>> {
        let row: Option<VersionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = $1 \
             AND product_id IN (SELECT id FROM products WHERE unpublished_at IS NULL) ORDER BY seq DESC LIMIT 1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(VersionRecord::try_from).transpose()
    }

    pub(super) async fn current_version_rows(&self) -> Result<BTreeMap<ProductId, VersionRecord>> {
        let rows: Vec<VersionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {} FROM product_versions v JOIN products p ON p.id = v.product_id \
             WHERE p.unpublished_at IS NULL AND v.seq = (SELECT MAX(w.seq) FROM product_versions w WHERE w.product_id = v.product_id)",
            VERSION_COLUMNS.split(", ").map(|c| format!("v.{c}")).collect::<Vec<_>>().join(", ")
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(decode_all::<_, VersionRecord>(rows)?.into_iter().map(|v| (v.product.clone(), v)).collect())
    }

    pub(super) async fn lineage_edges(&self) -> Result<Vec<LineageEdge>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT upstream, downstream FROM lineage ORDER BY upstream, downstream").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|(up, down)| Ok(LineageEdge { upstream: product_id("lineage upstream", up)?, downstream: product_id("lineage downstream", down)? }))
            .collect()
    }

    pub(super) async fn column_lineage_of(&self, id: &ProductId, seq: i64) -> Result<Option<ProductLineage>> {
        let text: Option<String> = sqlx::query_scalar("SELECT lineage FROM column_lineage WHERE product_id = $1 AND seq = $2")
            .bind(id.to_string())
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        text.map(|t| json(&format!("column_lineage `{id}` {seq}"), &t)).transpose()
    }

    pub(super) async fn current_column_lineages(&self) -> Result<BTreeMap<ProductId, ProductLineage>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.product_id, c.lineage FROM column_lineage c \
             WHERE c.seq = (SELECT MAX(v.seq) FROM product_versions v WHERE v.product_id = c.product_id)",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|(id, lineage)| {
                let what = format!("column_lineage `{id}`");
                Ok((product_id(&what, id)?, json(&what, lineage)?))
            })
            .collect()
    }
}
