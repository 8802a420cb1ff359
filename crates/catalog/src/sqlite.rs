//! SQLite adapter of the catalog: the embedded default, one file in `.meshwork/`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meshwork_core::id::{DomainName, ProductId};
use meshwork_core::lineage::ProductLineage;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
// Queries built with `format!` only splice the constant column list, never input.
use sqlx::{AssertSqlSafe, Row, sqlite::SqliteRow};

use meshwork_core::descriptor::PolicyState;

use crate::{
    ApiTokenRecord, AuditEvent, AuditFilter, CatalogError, CatalogStore, DeliveryRecord, DomainRecord, EventFilter, EventRecord,
    GovernanceSnapshot, LineageEdge, NewEvent, PolicyRecord, PolicyStateRecord, ProductRecord, Publication, QualityRun, Result, SloCheck,
    UnpublishedProduct, VersionRecord,
};

mod lifecycle;

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
"#, r#"
CREATE TABLE principals (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain TEXT,
    file TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE policy_states (
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (domain, name)
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    principal TEXT NOT NULL,
    interface TEXT NOT NULL,
    action TEXT NOT NULL,
    statement TEXT NOT NULL,
    products TEXT NOT NULL,
    rows_returned BIGINT,
    duration_ms DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE TABLE audit_event_products (
    event_id BIGINT NOT NULL REFERENCES audit_events (id),
    product_id TEXT NOT NULL,
    PRIMARY KEY (event_id, product_id)
);
CREATE INDEX audit_event_products_product ON audit_event_products (product_id);
"#, r#"
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    description TEXT,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
INSERT INTO settings (key, value) VALUES ('generation', '0');
"#, r#"
CREATE TABLE quality_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id TEXT NOT NULL,
    at TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    published_seq BIGINT,
    row_count BIGINT NOT NULL,
    build_ms DOUBLE PRECISION NOT NULL,
    stage_ms DOUBLE PRECISION NOT NULL,
    quality_ms DOUBLE PRECISION NOT NULL,
    results TEXT NOT NULL
);
CREATE INDEX quality_runs_product ON quality_runs (product_id, id);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    product_id TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX events_product ON events (product_id, id);
CREATE TABLE slo_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id TEXT NOT NULL,
    objective TEXT NOT NULL,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    value DOUBLE PRECISION,
    threshold DOUBLE PRECISION NOT NULL,
    budget_remaining DOUBLE PRECISION,
    message TEXT NOT NULL
);
CREATE INDEX slo_checks_product ON slo_checks (product_id, objective, at);
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    at TEXT NOT NULL,
    status BIGINT,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, id);
"#, r#"
ALTER TABLE domains ADD COLUMN principal TEXT NOT NULL DEFAULT '{}';
"#, r#"
ALTER TABLE products ADD COLUMN unpublished_at TEXT;
"#, r#"
CREATE TABLE column_lineage (
    product_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    lineage TEXT NOT NULL,
    PRIMARY KEY (product_id, seq)
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

fn product_lineage(json: &str) -> Result<ProductLineage> {
    serde_json::from_str(json).map_err(|e| CatalogError::Corrupt(format!("bad column lineage `{json}`: {e}")))
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
            "INSERT INTO domains (name, title, description, owners, principal, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET title = excluded.title, description = excluded.description, \
             owners = excluded.owners, principal = excluded.principal, updated_at = excluded.updated_at",
        )
        .bind(domain.name.as_str())
        .bind(&domain.title)
        .bind(&domain.description)
        .bind(serde_json::to_string(&domain.owners).expect("strings serialize"))
        .bind(serde_json::to_string(&domain.principal).expect("principal serializes"))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn domains(&self) -> Result<Vec<DomainRecord>> {
        let rows = sqlx::query("SELECT name, title, description, owners, principal FROM domains ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                Ok(DomainRecord {
                    name: DomainName::new(&name).map_err(|e| CatalogError::Corrupt(e.to_string()))?,
                    title: row.try_get("title")?,
                    description: row.try_get("description")?,
                    owners: string_list(row.try_get("owners")?)?,
                    principal: serde_json::from_str(&row.try_get::<String, _>("principal")?)
                        .map_err(|e| {
                            CatalogError::Corrupt(format!("principal of domain `{name}`: {e}"))
                        })?,
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
             table_uri = excluded.table_uri, updated_at = excluded.updated_at, unpublished_at = NULL",
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
        sqlx::query("INSERT INTO column_lineage (product_id, seq, lineage) VALUES (?, ?, ?)")
            .bind(&id)
            .bind(seq)
            .bind(serde_json::to_string(&publication.lineage).expect("lineage serializes"))
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
        if let Some(run) = &publication.quality {
            let run = QualityRun { published_seq: Some(seq), ..run.clone() };
            insert_quality_run(&mut tx, &p.id, &run).await?;
        }
        for event in &publication.events {
            insert_event(&mut tx, event).await?;
        }
        sqlx::query("UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn products(&self) -> Result<Vec<ProductRecord>> {
        let rows = sqlx::query("SELECT * FROM products WHERE unpublished_at IS NULL ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(product_row).collect()
    }

    async fn product(&self, id: &ProductId) -> Result<Option<ProductRecord>> {
        let row = sqlx::query("SELECT * FROM products WHERE id = ? AND unpublished_at IS NULL")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
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
            "SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = ? \
             AND product_id IN (SELECT id FROM products WHERE unpublished_at IS NULL) ORDER BY seq DESC LIMIT 1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_row).transpose()
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
        let rows = sqlx::query("SELECT upstream, downstream FROM lineage ORDER BY upstream, downstream").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok(LineageEdge { upstream: parse_id(row.try_get("upstream")?)?, downstream: parse_id(row.try_get("downstream")?)? }))
            .collect()
    }

    async fn column_lineage(&self, id: &ProductId, seq: i64) -> Result<Option<ProductLineage>> {
        let text: Option<String> = sqlx::query_scalar("SELECT lineage FROM column_lineage WHERE product_id = ? AND seq = ?")
            .bind(id.to_string())
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        text.as_deref().map(product_lineage).transpose()
    }

    async fn current_column_lineage(&self) -> Result<BTreeMap<ProductId, ProductLineage>> {
        let rows = sqlx::query(
            "SELECT c.product_id, c.lineage FROM column_lineage c \
             WHERE c.seq = (SELECT MAX(v.seq) FROM product_versions v WHERE v.product_id = c.product_id)",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((parse_id(row.try_get("product_id")?)?, product_lineage(row.try_get("lineage")?)?))).collect()
    }

    async fn replace_governance(&self, snapshot: &GovernanceSnapshot) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM principals").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM policies").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM policy_states").execute(&mut *tx).await?;
        for principal in &snapshot.principals {
            sqlx::query("INSERT INTO principals (name, definition) VALUES (?, ?)")
                .bind(&principal.name)
                .bind(serde_json::to_string(principal).expect("principals serialize"))
                .execute(&mut *tx)
                .await?;
        }
        for policy in &snapshot.policies {
            let id = match &policy.domain {
                Some(d) => format!("{d}/{}", policy.name),
                None => policy.name.clone(),
            };
            sqlx::query("INSERT INTO policies (id, name, domain, file, source) VALUES (?, ?, ?, ?, ?)")
                .bind(id)
                .bind(&policy.name)
                .bind(policy.domain.as_ref().map(DomainName::as_str))
                .bind(&policy.file)
                .bind(&policy.source)
                .execute(&mut *tx)
                .await?;
        }
        for state in &snapshot.states {
            // '' stands for mesh.yaml: a NULL would not take part in the primary key.
            sqlx::query("INSERT INTO policy_states (domain, name, state) VALUES (?, ?, ?)")
                .bind(state.domain.as_ref().map(DomainName::as_str).unwrap_or(""))
                .bind(&state.name)
                .bind(state.state.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn governance(&self) -> Result<GovernanceSnapshot> {
        let mut snapshot = GovernanceSnapshot::default();
        for row in sqlx::query("SELECT definition FROM principals ORDER BY name").fetch_all(&self.pool).await? {
            let json: String = row.try_get("definition")?;
            snapshot.principals.push(serde_json::from_str(&json).map_err(|e| CatalogError::Corrupt(format!("bad principal: {e}")))?);
        }
        for row in sqlx::query("SELECT name, domain, file, source FROM policies ORDER BY domain IS NOT NULL, domain, id").fetch_all(&self.pool).await? {
            let domain: Option<String> = row.try_get("domain")?;
            snapshot.policies.push(PolicyRecord {
                name: row.try_get("name")?,
                domain: domain.map(|d| domain_name(&d)).transpose()?,
                file: row.try_get("file")?,
                source: row.try_get("source")?,
            });
        }
        for row in sqlx::query("SELECT domain, name, state FROM policy_states ORDER BY domain, name").fetch_all(&self.pool).await? {
            let domain: String = row.try_get("domain")?;
            let state: String = row.try_get("state")?;
            snapshot.states.push(PolicyStateRecord {
                domain: if domain.is_empty() { None } else { Some(domain_name(&domain)?) },
                name: row.try_get("name")?,
                state: match state.as_str() {
                    "off" => PolicyState::Off,
                    "warn" => PolicyState::Warn,
                    "enforce" => PolicyState::Enforce,
                    other => return Err(CatalogError::Corrupt(format!("bad policy state `{other}`"))),
                },
            });
        }
        Ok(snapshot)
    }

    async fn mask_salt(&self) -> Result<String> {
        // SQLite's randomblob draws from its OS-seeded CSPRNG; INSERT OR IGNORE keeps the first
        // salt if two processes race.
        sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES ('mask_salt', lower(hex(randomblob(32))))").execute(&self.pool).await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = 'mask_salt'").fetch_one(&self.pool).await?)
    }

    async fn record_audit(&self, event: &AuditEvent) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_events (at, principal, interface, action, statement, products, rows_returned, duration_ms, outcome, error) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(if event.at.is_empty() { now() } else { event.at.clone() })
        .bind(&event.principal)
        .bind(&event.interface)
        .bind(&event.action)
        .bind(&event.statement)
        .bind(serde_json::to_string(&event.products).expect("audit products serialize"))
        .bind(event.rows.map(|r| r as i64))
        .bind(event.duration_ms)
        .bind(&event.outcome)
        .bind(&event.error)
        .fetch_one(&mut *tx)
        .await?;
        for product in &event.products {
            sqlx::query("INSERT INTO audit_event_products (event_id, product_id) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(&product.product)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn complete_audit(&self, id: i64, rows: Option<u64>, duration_ms: f64, outcome: &str, error: Option<&str>) -> Result<()> {
        // Only an event still `running` is completed, once; a finished event is never rewritten.
        sqlx::query("UPDATE audit_events SET rows_returned = ?, duration_ms = ?, outcome = ?, error = ? WHERE id = ? AND outcome = 'running'")
            .bind(rows.map(|r| r as i64))
            .bind(duration_ms)
            .bind(outcome)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn generation(&self) -> Result<i64> {
        let value: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'generation'").fetch_one(&self.pool).await?;
        value.parse().map_err(|_| CatalogError::Corrupt(format!("bad generation `{value}`")))
    }

    async fn create_token(&self, token: &ApiTokenRecord) -> Result<()> {
        sqlx::query("INSERT INTO api_tokens (id, principal, description, hash, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)")
            .bind(&token.id)
            .bind(&token.principal)
            .bind(&token.description)
            .bind(&token.hash)
            .bind(if token.created_at.is_empty() { now() } else { token.created_at.clone() })
            .bind(&token.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(token_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created_at, id").fetch_all(&self.pool).await?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").bind(now()).bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events e WHERE (? IS NULL OR e.principal = ?) AND (? IS NULL OR e.at >= ?) \
             AND (? IS NULL OR EXISTS (SELECT 1 FROM audit_event_products p WHERE p.event_id = e.id AND p.product_id = ?)) \
             ORDER BY e.id DESC LIMIT ?",
        )
        .bind(&filter.principal)
        .bind(&filter.principal)
        .bind(&filter.since)
        .bind(&filter.since)
        .bind(filter.product.as_ref().map(ToString::to_string))
        .bind(filter.product.as_ref().map(ToString::to_string))
        .bind(filter.limit.map(i64::from).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let products: String = row.try_get("products")?;
                let rows_returned: Option<i64> = row.try_get("rows_returned")?;
                Ok(AuditEvent {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    principal: row.try_get("principal")?,
                    interface: row.try_get("interface")?,
                    action: row.try_get("action")?,
                    statement: row.try_get("statement")?,
                    products: serde_json::from_str(&products).map_err(|e| CatalogError::Corrupt(format!("bad audit products: {e}")))?,
                    rows: rows_returned.map(|r| r as u64),
                    duration_ms: row.try_get("duration_ms")?,
                    outcome: row.try_get("outcome")?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }

    async fn query_outcomes(&self, product: &ProductId, since: &str) -> Result<(u64, u64)> {
        let rows = sqlx::query(
            "SELECT e.outcome, COUNT(*) AS n FROM audit_events e JOIN audit_event_products p ON p.event_id = e.id \
             WHERE p.product_id = ? AND e.action = 'query' AND e.at >= ? AND e.outcome IN ('ok', 'error') GROUP BY e.outcome",
        )
        .bind(product.to_string())
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let (mut ok, mut error) = (0, 0);
        for row in rows {
            let outcome: String = row.try_get("outcome")?;
            let n: i64 = row.try_get("n")?;
            if outcome == "ok" {
                ok = n as u64;
            } else {
                error = n as u64;
            }
        }
        Ok((ok, error))
    }

    async fn record_quality_run(&self, product: &ProductId, run: &QualityRun) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        insert_quality_run(&mut conn, product, run).await
    }

    async fn quality_runs(&self, product: &ProductId, limit: u32) -> Result<Vec<QualityRun>> {
        let rows = sqlx::query("SELECT * FROM quality_runs WHERE product_id = ? ORDER BY id DESC LIMIT ?")
            .bind(product.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let results: String = row.try_get("results")?;
                let rows: i64 = row.try_get("row_count")?;
                Ok(QualityRun {
                    id: row.try_get("id")?,
                    product: Some(parse_id(row.try_get("product_id")?)?),
                    at: row.try_get("at")?,
                    trigger: row.try_get("trigger_kind")?,
                    outcome: row.try_get("outcome")?,
                    published_seq: row.try_get("published_seq")?,
                    row_count: rows as u64,
                    build_ms: row.try_get("build_ms")?,
                    stage_ms: row.try_get("stage_ms")?,
                    quality_ms: row.try_get("quality_ms")?,
                    results: serde_json::from_str(&results).map_err(|e| CatalogError::Corrupt(format!("bad quality results: {e}")))?,
                })
            })
            .collect()
    }

    async fn append_events(&self, events: &[NewEvent]) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let mut last = 0;
        for event in events {
            last = insert_event(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(last)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        let kinds = serde_json::to_string(&filter.kinds).expect("strings serialize");
        let rows = sqlx::query(
            "SELECT * FROM events WHERE id > ? AND (? IS NULL OR product_id = ?) \
             AND (? = '[]' OR kind IN (SELECT value FROM json_each(?))) ORDER BY id LIMIT ?",
        )
        .bind(filter.after)
        .bind(filter.product.as_ref().map(ToString::to_string))
        .bind(filter.product.as_ref().map(ToString::to_string))
        .bind(&kinds)
        .bind(&kinds)
        .bind(filter.limit.map(i64::from).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let product: Option<String> = row.try_get("product_id")?;
                let payload: String = row.try_get("payload")?;
                Ok(EventRecord {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    product: product.as_deref().map(parse_id).transpose()?,
                    payload: serde_json::from_str(&payload).map_err(|e| CatalogError::Corrupt(format!("bad event payload: {e}")))?,
                })
            })
            .collect()
    }

    async fn record_slo_checks(&self, checks: &[SloCheck]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for check in checks {
            sqlx::query(
                "INSERT INTO slo_checks (product_id, objective, at, status, value, threshold, budget_remaining, message) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(check.product.to_string())
            .bind(&check.objective)
            .bind(if check.at.is_empty() { now() } else { check.at.clone() })
            .bind(&check.status)
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

    async fn slo_checks(&self, product: &ProductId, since: &str, limit: u32) -> Result<Vec<SloCheck>> {
        let rows = sqlx::query("SELECT * FROM slo_checks WHERE product_id = ? AND at >= ? ORDER BY at DESC, id DESC LIMIT ?")
            .bind(product.to_string())
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(slo_row).collect()
    }

    async fn latest_slo_checks(&self, product: &ProductId) -> Result<Vec<SloCheck>> {
        let rows = sqlx::query(
            "SELECT * FROM slo_checks WHERE id IN (SELECT MAX(id) FROM slo_checks WHERE product_id = ? GROUP BY objective) ORDER BY objective",
        )
        .bind(product.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(slo_row).collect()
    }

    async fn record_delivery(&self, delivery: &DeliveryRecord) -> Result<()> {
        sqlx::query("INSERT INTO webhook_deliveries (webhook, event_id, attempt, at, status, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&delivery.webhook)
            .bind(delivery.event_id)
            .bind(i64::from(delivery.attempt))
            .bind(if delivery.at.is_empty() { now() } else { delivery.at.clone() })
            .bind(delivery.status.map(i64::from))
            .bind(&delivery.outcome)
            .bind(&delivery.error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn deliveries(&self, webhook: &str, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let rows = sqlx::query("SELECT * FROM webhook_deliveries WHERE webhook = ? ORDER BY id DESC LIMIT ?")
            .bind(webhook)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let attempt: i64 = row.try_get("attempt")?;
                let status: Option<i64> = row.try_get("status")?;
                Ok(DeliveryRecord {
                    webhook: row.try_get("webhook")?,
                    event_id: row.try_get("event_id")?,
                    attempt: attempt as u32,
                    at: row.try_get("at")?,
                    status: status.map(|s| s as u16),
                    outcome: row.try_get("outcome")?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = ?").bind(key).fetch_optional(&self.pool).await?)
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn insert_quality_run(tx: &mut sqlx::SqliteConnection, product: &ProductId, run: &QualityRun) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO quality_runs (product_id, at, trigger_kind, outcome, published_seq, row_count, build_ms, stage_ms, quality_ms, results) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(product.to_string())
    .bind(if run.at.is_empty() { now() } else { run.at.clone() })
    .bind(&run.trigger)
    .bind(&run.outcome)
    .bind(run.published_seq)
    .bind(run.row_count as i64)
    .bind(run.build_ms)
    .bind(run.stage_ms)
    .bind(run.quality_ms)
    .bind(serde_json::to_string(&run.results).expect("rule results serialize"))
    .fetch_one(&mut *tx)
    .await?)
}

async fn insert_event(tx: &mut sqlx::SqliteConnection, event: &NewEvent) -> Result<i64> {
    Ok(sqlx::query_scalar("INSERT INTO events (at, kind, product_id, payload) VALUES (?, ?, ?, ?) RETURNING id")
        .bind(now())
        .bind(&event.kind)
        .bind(event.product.as_ref().map(ToString::to_string))
        .bind(event.payload.to_string())
        .fetch_one(&mut *tx)
        .await?)
}

fn slo_row(row: &SqliteRow) -> Result<SloCheck> {
    Ok(SloCheck {
        product: parse_id(row.try_get("product_id")?)?,
        objective: row.try_get("objective")?,
        at: row.try_get("at")?,
        status: row.try_get("status")?,
        value: row.try_get("value")?,
        threshold: row.try_get("threshold")?,
        budget_remaining: row.try_get("budget_remaining")?,
        message: row.try_get("message")?,
    })
}

fn token_row(row: &SqliteRow) -> Result<ApiTokenRecord> {
    Ok(ApiTokenRecord {
        id: row.try_get("id")?,
        principal: row.try_get("principal")?,
        description: row.try_get("description")?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn domain_name(text: &str) -> Result<DomainName> {
    DomainName::new(text).map_err(|e| CatalogError::Corrupt(e.to_string()))
}
