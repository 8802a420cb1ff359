//! Throwaway PostgreSQL databases for tests and benchmarks: each is created on the server
//! [`SERVER_ENV`] names (the local one at 127.0.0.1:5432 by default) and dropped by
//! [`ScratchDatabase::drop_now`]. A server that cannot be reached is an error, never a skip.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AnyConnection, Connection};

use crate::{CatalogError, Location, Result};

/// The environment variable naming the PostgreSQL server scratch databases are created on.
pub const SERVER_ENV: &str = "MESHWORK_TEST_POSTGRES";
/// The server used when [`SERVER_ENV`] is not set.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists until [`ScratchDatabase::drop_now`].
#[derive(Debug)]
pub struct ScratchDatabase {
    server: String,
    name: String,
}

impl ScratchDatabase {
    /// Creates an empty database named after `prefix`, the process and a counter.
    pub async fn create(prefix: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        sqlx::any::install_default_drivers();
        let server = std::env::var(SERVER_ENV).unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
        let name = format!("{prefix}_{}_{}_{:04x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), rand::random::<u16>())
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let mut admin = connect(&server).await?;
        // The name is built from `[a-z0-9_]` above, so it needs no quoting beyond this.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await?;
        admin.close().await?;
        Ok(ScratchDatabase { server, name })
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&self.server).expect("the server URL parsed when the database was created");
        url.set_path(&self.name);
        url.to_string()
    }

    /// Where a catalog in this database lives.
    pub fn location(&self) -> Location {
        Location::Postgres { url: self.url(), password: None }
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_now(self) -> Result<()> {
        let mut admin = connect(&self.server).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))).execute(&mut admin).await?;
        admin.close().await?;
        Ok(())
    }
}

async fn connect(server: &str) -> Result<AnyConnection> {
    AnyConnection::connect(server).await.map_err(|source| {
        let mut shown = url::Url::parse(server).map(|u| u.to_string()).unwrap_or_default();
        if let Ok(mut url) = url::Url::parse(server) {
            let _ = url.set_password(None);
            shown = url.to_string();
        }
        CatalogError::Open { location: format!("{shown} (the PostgreSQL server for scratch databases; set {SERVER_ENV} to use another)"), cause: source }
    })
}
