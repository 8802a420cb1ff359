//! Named locks every process sharing the catalog sees: the product lock (one build of a product
//! at a time, on any machine) and the scheduler's leadership. On PostgreSQL a session advisory
//! lock on a connection of the lock's own; on SQLite an OS file lock beside the database file.
//! Either is released when its holder drops it or dies (the connection closes, the kernel
//! drops the file lock), so a killed process never leaves one held.

use std::time::{Duration, Instant};

use sqlx::Connection;

use super::{Backend, SqlCatalog};
use crate::{CatalogError, Result};

/// How often a waiter asks again.
const POLL: Duration = Duration::from_millis(100);

/// A held lock, released when dropped.
pub struct HeldLock {
    name: String,
    inner: Inner,
}

enum Inner {
    File(std::fs::File),
    Postgres(sqlx::AnyConnection),
}

impl std::fmt::Debug for HeldLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLock").field("name", &self.name).finish_non_exhaustive()
    }
}

impl HeldLock {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is still held: on PostgreSQL, whether its connection still answers (a
    /// server restart or a network cut releases the lock, and the holder must stop acting on
    /// it).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.inner {
            Inner::File(_) => true,
            Inner::Postgres(conn) => conn.ping().await.is_ok(),
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Inner::File(file) = &self.inner {
            let _ = file.unlock();
        }
        // A PostgreSQL lock goes with its connection, which is dropped with this guard.
    }
}

/// The advisory lock key of `name`: 64-bit FNV-1a, the same in every build and on every
/// machine.
fn key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("meshwork:{name}").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Who holds what, as the holder announces itself.
fn holder_description() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "unknown host".into());
    format!("meshwork pid {} on {host} since {}", std::process::id(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"))
}

/// What a lock protects, as the start of a sentence.
fn what(name: &str) -> String {
    match name.strip_prefix(crate::PRODUCT_LOCK_PREFIX) {
        Some(product) => format!("product `{product}` is being built"),
        None => format!("lock `{name}` is held"),
    }
}

impl SqlCatalog {
    pub(super) async fn take_lock(&self, name: &str, wait: Duration) -> Result<HeldLock> {
        match self.backend {
            Backend::Sqlite => self.file_lock(name, wait).await,
            Backend::Postgres => self.advisory_lock(name, wait).await,
        }
    }

    async fn file_lock(&self, name: &str, wait: Duration) -> Result<HeldLock> {
        let dir = self.locks_dir.as_ref().expect("a SQLite catalog has a lock directory");
        let io = |source: std::io::Error, path: &std::path::Path| CatalogError::Open { location: path.display().to_string(), cause: sqlx::Error::Io(source) };
        std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
        let file_name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' { c } else { '_' }).collect();
        let path = dir.join(format!("{file_name}.lock"));
        let started = Instant::now();
        loop {
            let file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(|e| io(e, &path))?;
            match file.try_lock() {
                Ok(()) => {
                    use std::io::{Seek, Write};
                    let mut holder = &file;
                    let _ = holder.set_len(0);
                    let _ = holder.seek(std::io::SeekFrom::Start(0));
                    let _ = write!(holder, "{}", holder_description());
                    return Ok(HeldLock { name: name.to_owned(), inner: Inner::File(file) });
                }
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => tokio::time::sleep(POLL).await,
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(CatalogError::Busy {
                        what: what(name),
                        holder: std::fs::read_to_string(&path).unwrap_or_default().trim().to_owned(),
                        waited_s: started.elapsed().as_secs(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e, &path)),
            }
        }
    }

    async fn advisory_lock(&self, name: &str, wait: Duration) -> Result<HeldLock> {
        // The holder names itself in `application_name`, so a waiter can say who it waits for
        // and an operator sees it in `pg_stat_activity`.
        let mut options = self.connect.clone();
        let mut url = options.database_url.clone();
        url.query_pairs_mut().append_pair("application_name", &format!("{} holds {name}", holder_description()));
        options.database_url = url;
        let mut conn = sqlx::AnyConnection::connect_with(&options).await?;
        let key = key(name);
        let started = Instant::now();
        loop {
            let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut conn).await?;
            if taken {
                return Ok(HeldLock { name: name.to_owned(), inner: Inner::Postgres(conn) });
            }
            if started.elapsed() >= wait {
                let holder: Option<String> = sqlx::query_scalar(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.granted AND ((CAST(l.classid AS BIGINT) << 32) | CAST(l.objid AS BIGINT)) = $1 LIMIT 1",
                )
                .bind(key)
                .fetch_optional(&mut conn)
                .await
                .unwrap_or(None);
                let _ = conn.close().await;
                return Err(CatalogError::Busy { what: what(name), holder: holder.unwrap_or_else(|| "another meshwork".into()), waited_s: started.elapsed().as_secs() });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(super::key("product:sales.orders"), super::key("product:sales.orders"));
        assert_ne!(super::key("product:sales.orders"), super::key("product:sales.order"));
    }
}
