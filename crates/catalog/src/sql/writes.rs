//! Writes to the catalog: on SQLite, one writer at a time per process, queued in the process.
//!
//! SQLite lets one connection write at a time. A second writer that finds the lock taken is
//! put to sleep by SQLite's busy handler for 1, 2, 5, 10, 15, 20… ms and tries again, however
//! soon the lock is released: under `meshwork serve`'s concurrent statements (each writes its
//! audit event and completes it) those sleeps were most of the small-query p99 and a good part
//! of the p50. Writers of this catalog (and its clones) now wait their turn on an async FIFO lock
//! instead and reach SQLite only when it is free; the busy timeout still arbitrates with other
//! processes (a CLI `apply` beside a server), and covers the rare moment a dropped
//! transaction's rollback, which sqlx only queues, is still running. Migrations run in `open`,
//! before the catalog is shared, without a turn. PostgreSQL takes row locks and needs no turn.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Backend, SqlCatalog};
use crate::Result;

/// The process's turn to write a catalog (SQLite), or none needed (PostgreSQL).
#[derive(Clone, Default)]
pub(super) struct WriteTurns(Option<Arc<Mutex<()>>>);

impl WriteTurns {
    pub(super) fn for_backend(backend: Backend) -> WriteTurns {
        WriteTurns((backend == Backend::Sqlite).then(Arc::default))
    }

    async fn take(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.0 {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        }
    }
}

/// A connection (or a transaction on one) that holds the process's turn to write until it is
/// dropped; it is used as the connection it holds.
pub(crate) struct Turned<C> {
    // Field order: the connection is released (a transaction rolled back if not committed)
    // before the turn passes on.
    conn: C,
    _turn: Option<OwnedMutexGuard<()>>,
}

/// A transaction that writes, holding the turn until it commits or is dropped.
pub(crate) type WriteTx = Turned<Transaction<'static, Any>>;

/// A connection for one self-committing write statement, holding the turn.
pub(crate) type WriteConn = Turned<PoolConnection<Any>>;

impl WriteTx {
    /// Commits the transaction; the turn passes on after.
    pub(crate) async fn commit(self) -> Result<()> {
        let Turned { conn, _turn } = self;
        conn.commit().await?;
        Ok(())
    }
}

impl<C: DerefMut<Target = AnyConnection>> Deref for Turned<C> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl<C: DerefMut<Target = AnyConnection>> DerefMut for Turned<C> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl SqlCatalog {
    /// A transaction that writes. SQLite's plain `BEGIN` is deferred: it takes the write lock at
    /// its first write, and when another connection has written since the transaction's first
    /// read, that upgrade fails at once with "database is locked" (waiting could deadlock, so
    /// `busy_timeout` does not apply). `BEGIN IMMEDIATE` takes the lock up front, where the busy
    /// timeout makes writers of other processes queue instead of failing. PostgreSQL needs
    /// neither. The turn is taken before a connection, so queued writers hold none.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx> {
        let turn = self.writes.take().await;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Turned { conn: tx, _turn: turn })
    }

    /// A connection for one write statement that commits by itself.
    pub(crate) async fn write_conn(&self) -> Result<WriteConn> {
        let turn = self.writes.take().await;
        Ok(Turned { conn: self.pool.acquire().await?, _turn: turn })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Location;

    async fn settings_value(catalog: &SqlCatalog, key: &str) -> Option<String> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&catalog.pool).await.unwrap()
    }

    /// A writer waits while another holds the turn, goes on when it commits, and a transaction
    /// dropped without committing leaves nothing behind and passes the turn on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_take_turns_and_a_dropped_transaction_passes_its_turn_on() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::open(&Location::Sqlite(dir.path().join("catalog.db"))).await.unwrap();

        let mut first = catalog.write_tx().await.unwrap();
        sqlx::query("INSERT INTO settings (key, value) VALUES ('first', '1')").execute(&mut *first).await.unwrap();
        let second = {
            let catalog = catalog.clone();
            tokio::spawn(async move {
                let mut tx = catalog.write_tx().await.unwrap();
                sqlx::query("INSERT INTO settings (key, value) VALUES ('second', '2')").execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second writer must wait for the first one's turn");
        assert_eq!(settings_value(&catalog, "first").await, None, "uncommitted writes are not visible");
        first.commit().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), second).await.expect("the second writer goes on after the commit").unwrap();
        assert_eq!(settings_value(&catalog, "second").await.as_deref(), Some("2"));

        let mut dropped = catalog.write_tx().await.unwrap();
        sqlx::query("INSERT INTO settings (key, value) VALUES ('dropped', '3')").execute(&mut *dropped).await.unwrap();
        drop(dropped);
        let mut after = tokio::time::timeout(Duration::from_secs(10), catalog.write_conn()).await.expect("a dropped transaction passes its turn on").unwrap();
        sqlx::query("INSERT INTO settings (key, value) VALUES ('after', '4')").execute(&mut *after).await.unwrap();
        drop(after);
        assert_eq!(settings_value(&catalog, "dropped").await, None, "a dropped transaction is rolled back");
        assert_eq!(settings_value(&catalog, "after").await.as_deref(), Some("4"));
    }
}
