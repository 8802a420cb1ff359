//! Throwaway source databases for tests and benchmarks, on the PostgreSQL server
//! `MESHWORK_TEST_POSTGRES` names and the MySQL/MariaDB server `MESHWORK_TEST_MYSQL` names (the
//! local ones by default). A server that cannot be reached is an error, never a skip.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use meshwork_core::descriptor::DatabaseKind;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection as _};

/// The environment variable naming the PostgreSQL server.
pub const POSTGRES_ENV: &str = "MESHWORK_TEST_POSTGRES";
/// The environment variable naming the MySQL/MariaDB server.
pub const MYSQL_ENV: &str = "MESHWORK_TEST_MYSQL";

/// A database that exists until [`ScratchSource::drop_now`].
#[derive(Debug)]
pub struct ScratchSource {
    kind: DatabaseKind,
    server: String,
    name: String,
}

impl ScratchSource {
    /// Creates an empty database of `kind` named after `prefix`, the process and a counter.
    pub async fn create(kind: DatabaseKind, prefix: &str) -> Result<ScratchSource, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = server(kind);
        let name = format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let scratch = ScratchSource { kind, server, name };
        // The name is built from `[a-z0-9_]` above, so it needs no quoting.
        scratch.admin(&format!("CREATE DATABASE {}", scratch.name)).await?;
        Ok(scratch)
    }

    /// The database's URL, as `mesh.yaml` would name it (no password).
    pub fn url(&self) -> String {
        let (scheme, rest) = self.server.split_once("://").expect("server URLs have a scheme");
        let authority = rest.split('/').next().unwrap_or(rest);
        // The servers' own password (CI may set one) is not part of a connection URL.
        let authority = match authority.rsplit_once('@') {
            Some((user, host)) => format!("{}@{host}", user.split(':').next().unwrap_or(user)),
            None => authority.to_owned(),
        };
        format!("{scheme}://{authority}/{}", self.name)
    }

    /// The password of the server's user, if its URL has one (for `password_env` in tests).
    pub fn password(&self) -> Option<String> {
        let rest = self.server.split_once("://")?.1;
        let user_info = rest.split('/').next()?.rsplit_once('@')?.0;
        user_info.split_once(':').map(|(_, p)| p.to_owned())
    }

    /// Runs `sql` (one or more statements) in the database.
    pub async fn execute(&self, sql: &str) -> Result<(), String> {
        let url = format!("{}/{}", self.server.rsplitn(2, '/').nth(1).unwrap_or(&self.server), self.name);
        run(self.kind, &url, sql).await
    }

    /// Runs `sql` as the server's administrator, outside the database.
    pub async fn admin(&self, sql: &str) -> Result<(), String> {
        run(self.kind, &self.server, sql).await
    }

    /// Drops the database.
    pub async fn drop_now(self) -> Result<(), String> {
        let sql = match self.kind {
            DatabaseKind::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            DatabaseKind::Mysql => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        self.admin(&sql).await
    }
}

/// The server URL for `kind`: the environment's, else the machine's own.
fn server(kind: DatabaseKind) -> String {
    match kind {
        DatabaseKind::Postgres => std::env::var(POSTGRES_ENV).unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        DatabaseKind::Mysql => std::env::var(MYSQL_ENV).unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned()),
    }
}

async fn run(kind: DatabaseKind, url: &str, sql: &str) -> Result<(), String> {
    let env = match kind {
        DatabaseKind::Postgres => POSTGRES_ENV,
        DatabaseKind::Mysql => MYSQL_ENV,
    };
    let fail = |e: sqlx::Error| format!("{kind} test server ({env}): {e}");
    match kind {
        DatabaseKind::Postgres => {
            let mut c: PgConnection = PgConnectOptions::from_str(url).map_err(fail)?.disable_statement_logging().connect().await.map_err(fail)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await.map_err(fail)?;
            c.close().await.map_err(fail)
        }
        DatabaseKind::Mysql => {
            let mut c: MySqlConnection = MySqlConnectOptions::from_str(url).map_err(fail)?.disable_statement_logging().connect().await.map_err(fail)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await.map_err(fail)?;
            c.close().await.map_err(fail)
        }
    }
}
