//! Opening the catalog: where it lives, which backend, and its schema version (migrations from
//! `crates/catalog/migrations/<backend>/`, one directory per backend, applied by `sqlx`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{ConnectOptions, Connection, Executor};

use super::SqlCatalog;
use crate::{CatalogError, Result};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Where the catalog lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file, created when missing: the embedded default.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres {
        /// `postgres://user@host:port/database`, without a password.
        url: String,
        /// The password, read from the environment variable `mesh.yaml` names; never shown.
        password: Option<String>,
    },
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

/// Shown in messages and logs: the path or the URL, never the password.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Location::Postgres { url, .. } => f.write_str(url),
        }
    }
}

/// The database behind a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        }
    }
}

/// What opening does with a schema older than this build's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Upgrade it: the embedded SQLite file, and `meshwork catalog migrate`.
    Upgrade,
    /// Refuse it and say to run `meshwork catalog migrate`, so replicas on a shared PostgreSQL
    /// never change its schema by themselves. A new, empty database is still initialised.
    Refuse,
}

/// A catalog's schema version against this build's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The newest migration applied to the store.
    pub applied: i64,
    /// The newest migration this build knows.
    pub known: i64,
}

impl SqlCatalog {
    /// Opens the catalog at `location`: SQLite files are upgraded, PostgreSQL databases are
    /// initialised when empty and otherwise must already be at this build's version.
    pub async fn open(location: &Location) -> Result<Self> {
        let mode = match location {
            Location::Sqlite(_) => OpenMode::Upgrade,
            Location::Postgres { .. } => OpenMode::Refuse,
        };
        Self::open_with(location, mode).await
    }

    /// Opens the SQLite catalog at `path` (creating it).
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        Self::open(&Location::Sqlite(path.to_owned())).await
    }

    /// Opens the catalog at `location`, doing `mode` with an older schema. A schema newer than
    /// this build's is always refused: this meshwork would misread it.
    pub async fn open_with(location: &Location, mode: OpenMode) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let shown = location.to_string();
        let open_error = |source: sqlx::Error| CatalogError::Open { location: shown.clone(), cause: source };
        let (options, backend) = match location {
            Location::Sqlite(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| open_error(sqlx::Error::Io(e)))?;
                }
                (sqlite_url(path), Backend::Sqlite)
            }
            Location::Postgres { url, password } => (with_password(url, password.as_deref()).map_err(open_error)?, Backend::Postgres),
        };
        let options: AnyConnectOptions = options.parse().map_err(open_error)?;
        // Statements are logged by the caller's tracing spans, not by sqlx at INFO.
        let options = options.disable_statement_logging();
        // One connection first: a refused connection, a wrong password or a file that is not a
        // database is reported at once, where the pool would retry until its timeout.
        let options_for_locks = options.clone();
        let mut first = sqlx::AnyConnection::connect_with(&options).await.map_err(open_error)?;
        prepare_connection(&mut first, backend).await.map_err(open_error)?;
        first.close().await.map_err(open_error)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            // No idle timeout and no lifetime, so sqlx starts no maintenance task: in sqlx 0.9.0
            // that task can spin at 100% CPU when `num_idle` underflows, which hung a CLI
            // process at exit (sqlx#3645, fixed by sqlx#4289 after 0.9.0). Connections are
            // still tested before use, and a catalog holds at most a handful.
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |conn, _| Box::pin(async move { prepare_connection(conn, backend).await }))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let locks_dir = match location {
            Location::Sqlite(path) => Some(path.with_extension("locks")),
            Location::Postgres { .. } => None,
        };
        let catalog = SqlCatalog { pool, backend, connect: options_for_locks, locks_dir, writes: super::writes::WriteTurns::for_backend(backend) };
        catalog.prepare_schema(mode).await?;
        Ok(catalog)
    }

    /// The schema version of the store against this build's.
    pub async fn migration_status(&self) -> Result<MigrationStatus> {
        let mut conn = self.pool.acquire().await?;
        let migrator = self.backend.migrator();
        let applied = applied_version(&mut conn, migrator).await?;
        Ok(MigrationStatus { applied, known: known_version(migrator) })
    }

    /// Brings the schema up to this build's version (`meshwork catalog migrate`).
    pub async fn migrate(&self) -> Result<MigrationStatus> {
        let migrator = self.backend.migrator();
        migrator.run(&self.pool).await.map_err(|e| migrate_error(e, migrator))?;
        self.migration_status().await
    }

    async fn prepare_schema(&self, mode: OpenMode) -> Result<()> {
        let migrator = self.backend.migrator();
        if self.backend == Backend::Sqlite {
            return self.prepare_sqlite_schema(migrator).await;
        }
        let status = self.migration_status().await?;
        if status.applied > status.known {
            return Err(newer(status));
        }
        if status.applied == status.known {
            return Ok(());
        }
        if mode == OpenMode::Refuse && status.applied > 0 {
            return Err(CatalogError::Outdated { applied: status.applied, known: status.known });
        }
        // Concurrent openers of an empty database wait on the migrator's advisory lock; the
        // second finds every migration applied.
        self.migrate().await.map(drop)
    }

    /// SQLite has no advisory lock: the whole upgrade runs in one `BEGIN IMMEDIATE`
    /// transaction (each migration a savepoint in it), so a second process opening the same
    /// file waits for the first and then finds the schema current.
    async fn prepare_sqlite_schema(&self, migrator: &Migrator) -> Result<()> {
        // The usual case, read-only: the schema is current, so no write lock is taken (an
        // apply publishing meanwhile does not delay the open).
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('meshwork_migrations', '_sqlx_migrations')")
                .fetch_all(&self.pool)
                .await?;
        if tables == ["_sqlx_migrations"] {
            let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await?;
            let status = MigrationStatus { applied: applied.unwrap_or(0), known: known_version(migrator) };
            if status.applied > status.known {
                return Err(newer(status));
            }
            if status.applied == status.known {
                return Ok(());
            }
        }
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let legacy: Option<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meshwork_migrations'")
            .fetch_optional(&mut *tx)
            .await?;
        if legacy.is_some() {
            // Catalogs written before migrations moved to sqlx recorded them in
            // `meshwork_migrations`: the same versions are marked applied, unrun.
            let applied: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM meshwork_migrations").fetch_one(&mut *tx).await?;
            if applied > known_version(migrator) {
                return Err(newer(MigrationStatus { applied, known: known_version(migrator) }));
            }
            migrator.run_direct(Some(applied), &mut *tx, true).await.map_err(|e| migrate_error(e, migrator))?;
            sqlx::query("DROP TABLE meshwork_migrations").execute(&mut *tx).await?;
        }
        let status = MigrationStatus { applied: applied_version(&mut tx, migrator).await?, known: known_version(migrator) };
        if status.applied > status.known {
            return Err(newer(status));
        }
        if status.applied < status.known {
            migrator.run_direct(None, &mut *tx, false).await.map_err(|e| migrate_error(e, migrator))?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Per-connection settings.
async fn prepare_connection(conn: &mut sqlx::AnyConnection, backend: Backend) -> std::result::Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        // The busy timeout first: it makes a second process wait for the lock instead of
        // failing. WAL lets readers run beside the one writer; switching a new file to it can
        // still answer "locked" at once while another process creates the same catalog (SQLite
        // does not always call the busy handler for it), so that switch is retried as long.
        conn.execute(BUSY_TIMEOUT_PRAGMA).await?;
        let started = std::time::Instant::now();
        loop {
            match conn.execute("PRAGMA journal_mode = WAL;").await {
                Ok(_) => break,
                Err(e) if is_locked(&e) && started.elapsed() < SQLITE_BUSY_TIMEOUT => tokio::time::sleep(Duration::from_millis(25)).await,
                Err(e) => return Err(e),
            }
        }
        conn.execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;").await?;
    }
    Ok(())
}

/// SQLITE_BUSY or SQLITE_LOCKED.
/// How long a SQLite connection waits for another process's write lock before it answers
/// "database is locked".
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// [`SQLITE_BUSY_TIMEOUT`] as the statement that sets it (a `'static` text, as the connection
/// hook needs; a unit test keeps the two equal).
const BUSY_TIMEOUT_PRAGMA: &str = "PRAGMA busy_timeout = 10000;";

/// Whether `error` is SQLite's "database is locked": `SQLITE_BUSY` or `SQLITE_LOCKED`, or one of
/// their extended codes (the driver reports extended codes).
pub(crate) fn is_locked(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<sqlx::sqlite::SqliteError>())
        .and_then(|e| sqlx::error::DatabaseError::code(e).and_then(|code| code.parse::<i32>().ok()))
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

fn known_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

async fn applied_version(conn: &mut sqlx::AnyConnection, migrator: &Migrator) -> Result<i64> {
    use sqlx::migrate::Migrate;
    conn.ensure_migrations_table(&migrator.table_name).await.map_err(|e| migrate_error(e, migrator))?;
    let applied = conn.list_applied_migrations(&migrator.table_name).await.map_err(|e| migrate_error(e, migrator))?;
    Ok(applied.iter().map(|m| m.version).max().unwrap_or(0))
}

fn newer(status: MigrationStatus) -> CatalogError {
    CatalogError::Corrupt(format!(
        "its schema is at version {}, newer than the {} this meshwork knows; upgrade meshwork to the version that wrote it",
        status.applied, status.known
    ))
}

fn migrate_error(error: MigrateError, migrator: &Migrator) -> CatalogError {
    match error {
        MigrateError::Execute(source) | MigrateError::ExecuteMigration(source, _) => CatalogError::Query(source),
        MigrateError::VersionMissing(_) => newer(MigrationStatus { applied: i64::MAX, known: known_version(migrator) }),
        other => CatalogError::Corrupt(format!("schema migration failed: {other}")),
    }
}

/// A `sqlite://` URL for `path`, which sqlx percent-decodes: `%`, `?` and `#` are escaped so
/// any file name works.
fn sqlite_url(path: &Path) -> String {
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '?' => escaped.push_str("%3F"),
            '#' => escaped.push_str("%23"),
            c => escaped.push(c),
        }
    }
    format!("sqlite://{escaped}?mode=rwc")
}

/// `url` with `password` set, for connecting only: the result is never shown.
fn with_password(url: &str, password: Option<&str>) -> std::result::Result<String, sqlx::Error> {
    let Some(password) = password else { return Ok(url.to_owned()) };
    let mut parsed = url::Url::parse(url).map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
    parsed.set_password(Some(password)).map_err(|()| sqlx::Error::Configuration("the metadata URL cannot carry a password".into()))?;
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_timeout_pragma_sets_the_documented_timeout() {
        assert_eq!(BUSY_TIMEOUT_PRAGMA, format!("PRAGMA busy_timeout = {};", SQLITE_BUSY_TIMEOUT.as_millis()));
    }

    #[test]
    fn locations_never_show_a_password() {
        let location = Location::Postgres { url: "postgres://meshwork@db:5432/mesh".into(), password: Some("s3cret".into()) };
        assert_eq!(location.to_string(), "postgres://meshwork@db:5432/mesh");
        assert!(!format!("{location:?}").contains("s3cret"));
        assert_eq!(with_password("postgres://meshwork@db:5432/mesh", Some("a b@c")).unwrap(), "postgres://meshwork:a%20b%40c@db:5432/mesh");
    }

    #[test]
    fn sqlite_paths_with_url_characters_round_trip() {
        assert_eq!(sqlite_url(Path::new("/tmp/a?b#c%d/catalog.db")), "sqlite:///tmp/a%3Fb%23c%25d/catalog.db?mode=rwc");
    }
}
