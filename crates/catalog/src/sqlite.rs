//! SQLite adapter of the catalog: the embedded default, one file in `.meshwork/`.

use std::path::Path;
use std::time::Duration;

use meshwork_core::id::{DomainName, ProductId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
// Queries built with `format!` only splice the constant column list, never input.
use sqlx::{AssertSqlSafe, Row, sqlite::SqliteRow};

use crate::{CatalogError, CatalogStore, DomainRecord, LineageEdge, ProductRecord, Publication, Result, VersionRecord};

/// Schema migrations, applied in order; each runs once, recorded in `meshwork_migrations`.
/// Append new ones, never edit old ones.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE domains (
    name TEXT PRIMARY KEY,
    title TEXT,
    description TEXT,
    owners TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    title TEXT,
    description TEXT,
    owner TEXT,
    status TEXT NOT NULL,
    tags TEXT NOT NULL,
    descriptor TEXT NOT NULL,
    descriptor_hash TEXT NOT NULL,
    table_uri TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE product_versions (
    product_id TEXT NOT NULL REFERENCES products (id),
    seq BIGINT NOT NULL,
    version TEXT NOT NULL,
    delta_version BIGINT NOT NULL,
    schema_json TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    descriptor_hash TEXT NOT NULL,
    input_fingerprint TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (product_id, seq)
);
CREATE TABLE lineage (
    upstream TEXT NOT NULL,
    downstream TEXT NOT NULL,
    PRIMARY KEY (upstream, downstream)
);
"#];

/// The catalog in a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
}

impl SqliteCatalog {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        let location = path.display().to_string();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CatalogError::Open { location: location.clone(), source: sqlx::Error::Io(e) })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(options, location).await
    }

    async fn connect(options: SqliteConnectOptions, location: String) -> Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| CatalogError::Open { location, source })?;
        let catalog = SqliteCatalog { pool };
        catalog.migrate().await?;
        Ok(catalog)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS meshwork_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM meshwork_migrations").fetch_one(&mut *tx).await?;
        if applied as usize > MIGRATIONS.len() {
            return Err(CatalogError::Corrupt(format!(
                "it has {applied} schema migrations, this meshwork knows {}; upgrade meshwork",
                MIGRATIONS.len()
            )));
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            sqlx::raw_sql(*migration).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO meshwork_migrations (version, applied_at) VALUES (?, ?)")
                .bind(i as i64 + 1)
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_id(text: &str) -> Result<ProductId> {
    text.parse().map_err(|e| CatalogError::Corrupt(format!("bad product id `{text}`: {e}")))
}

fn string_list(json: &str) -> Result<Vec<String>> {
    serde_json::from_str(json).map_err(|e| CatalogError::Corrupt(format!("bad list `{json}`: {e}")))
}

fn product_row(row: &SqliteRow) -> Result<ProductRecord> {
    Ok(ProductRecord {
        id: parse_id(row.try_get("id")?)?,
        version: row.try_get("version")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        owner: row.try_get("owner")?,
        status: row.try_get("status")?,
        tags: string_list(row.try_get("tags")?)?,
        descriptor_json: row.try_get("descriptor")?,
        descriptor_hash: row.try_get("descriptor_hash")?,
        table_uri: row.try_get("table_uri")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn version_row(row: &SqliteRow) -> Result<VersionRecord> {
    Ok(VersionRecord {
        product: parse_id(row.try_get("product_id")?)?,
        seq: row.try_get("seq")?,
        version: row.try_get("version")?,
        delta_version: row.try_get("delta_version")?,
        schema_json: row.try_get("schema_json")?,
        row_count: row.try_get("row_count")?,
        descriptor_hash: row.try_get("descriptor_hash")?,
        input_fingerprint: row.try_get("input_fingerprint")?,
        published_at: row.try_get("published_at")?,
    })
}

const VERSION_COLUMNS: &str =
    "product_id, seq, version, delta_version, schema_json, row_count, descriptor_hash, input_fingerprint, published_at";

#[async_trait::async_trait]
impl CatalogStore for SqliteCatalog {
    async fn upsert_domain(&self, domain: &DomainRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO domains (name, title, description, owners, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET title = excluded.title, description = excluded.description, \
             owners = excluded.owners, updated_at = excluded.updated_at",
        )
        .bind(domain.name.as_str())
        .bind(&domain.title)
        .bind(&domain.description)
        .bind(serde_json::to_string(&domain.owners).expect("strings serialize"))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn domains(&self) -> Result<Vec<DomainRecord>> {
        let rows = sqlx::query("SELECT name, title, description, owners FROM domains ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                Ok(DomainRecord {
                    name: DomainName::new(&name).map_err(|e| CatalogError::Corrupt(e.to_string()))?,
                    title: row.try_get("title")?,
                    description: row.try_get("description")?,
                    owners: string_list(row.try_get("owners")?)?,
                })
            })
            .collect()
    }

    async fn publish(&self, publication: &Publication) -> Result<VersionRecord> {
        let p = &publication.product;
        let id = p.id.to_string();
        let at = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO products (id, domain, name, version, title, description, owner, status, tags, descriptor, \
             descriptor_hash, table_uri, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, title = excluded.title, \
             description = excluded.description, owner = excluded.owner, status = excluded.status, tags = excluded.tags, \
             descriptor = excluded.descriptor, descriptor_hash = excluded.descriptor_hash, \
             table_uri = excluded.table_uri, updated_at = excluded.updated_at",
        )
        .bind(&id)
        .bind(p.id.domain.as_str())
        .bind(p.id.name.as_str())
        .bind(&p.version)
        .bind(&p.title)
        .bind(&p.description)
        .bind(&p.owner)
        .bind(&p.status)
        .bind(serde_json::to_string(&p.tags).expect("strings serialize"))
        .bind(&p.descriptor_json)
        .bind(&p.descriptor_hash)
        .bind(&p.table_uri)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM product_versions WHERE product_id = ?")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        let record = VersionRecord {
            product: p.id.clone(),
            seq,
            version: p.version.clone(),
            delta_version: publication.delta_version,
            schema_json: publication.schema_json.clone(),
            row_count: publication.row_count,
            descriptor_hash: p.descriptor_hash.clone(),
            input_fingerprint: publication.input_fingerprint.clone(),
            published_at: at,
        };
        sqlx::query(AssertSqlSafe(format!("INSERT INTO product_versions ({VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")))
            .bind(&id)
            .bind(record.seq)
            .bind(&record.version)
            .bind(record.delta_version)
            .bind(&record.schema_json)
            .bind(record.row_count)
            .bind(&record.descriptor_hash)
            .bind(&record.input_fingerprint)
            .bind(&record.published_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM lineage WHERE downstream = ?").bind(&id).execute(&mut *tx).await?;
        for upstream in &publication.upstream {
            sqlx::query("INSERT INTO lineage (upstream, downstream) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .bind(upstream.to_string())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(record)
    }

    async fn products(&self) -> Result<Vec<ProductRecord>> {
        let rows = sqlx::query("SELECT * FROM products ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(product_row).collect()
    }

    async fn product(&self, id: &ProductId) -> Result<Option<ProductRecord>> {
        let row = sqlx::query("SELECT * FROM products WHERE id = ?").bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(product_row).transpose()
    }

    async fn versions(&self, id: &ProductId) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = ? ORDER BY seq")))
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(version_row).collect()
    }

    async fn current_version(&self, id: &ProductId) -> Result<Option<VersionRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = ? ORDER BY seq DESC LIMIT 1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_row).transpose()
    }

    async fn lineage(&self) -> Result<Vec<LineageEdge>> {
        let rows = sqlx::query("SELECT upstream, downstream FROM lineage ORDER BY upstream, downstream").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok(LineageEdge { upstream: parse_id(row.try_get("upstream")?)?, downstream: parse_id(row.try_get("downstream")?)? }))
            .collect()
    }
}
