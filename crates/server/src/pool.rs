//! Idle query sessions kept for reuse: opening a principal's session (the catalog's products and
//! versions, an access decision per product, a table provider and policy guard per readable
//! one) is most of a small query's cost, and the result only changes when the catalog does.
//!
//! A session is reused only for the same principal (name, groups, domains, attributes) on the
//! same interface, at the same catalog generation (no apply, publication, grant or revocation
//! since: every one of them moves the generation), on the same UTC day (sunsets are decided per
//! day) and before any of the principal's grants ends: exactly when a new session would decide
//! the same. One query uses a session at a time: it leaves the pool when taken and returns when
//! the query's stream is dropped, so each query keeps its own memory limit and audit journal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshwork_core::principal::Principal;
use meshwork_query::QuerySession;

/// Idle sessions kept per principal and interface: as many as the queries it runs at once.
const IDLE_PER_KEY: usize = 8;
/// Idle sessions kept in all; the oldest go first.
const IDLE_TOTAL: usize = 256;
/// An idle session older than this is closed rather than reused (it holds open tables).
const IDLE_FOR: Duration = Duration::from_secs(300);

/// What a session was opened for: it may serve another query only if all of it still holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opened {
    pub(crate) principal: Principal,
    pub(crate) interface: &'static str,
    pub(crate) generation: i64,
    pub(crate) day: chrono::NaiveDate,
    pub(crate) valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Opened {
    /// What a session opened now for `principal` on `interface` at `generation` is for.
    pub(crate) fn new(principal: Principal, interface: &'static str, generation: i64, valid_until: Option<chrono::DateTime<chrono::Utc>>) -> Opened {
        Opened { principal, interface, generation, day: chrono::Utc::now().date_naive(), valid_until }
    }

    /// Whether a session opened as `self` decides exactly as one opened for `wanted` now.
    pub(crate) fn serves(&self, wanted: &Opened, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.principal == wanted.principal
            && self.interface == wanted.interface
            && self.generation == wanted.generation
            && self.day == wanted.day
            && self.valid_until.is_none_or(|end| now < end)
    }
}

struct Idle {
    session: QuerySession,
    opened: Opened,
    since: Instant,
}

/// The idle sessions of a server.
#[derive(Default)]
pub(crate) struct SessionPool {
    idle: Mutex<HashMap<(String, &'static str), Vec<Idle>>>,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool").finish_non_exhaustive()
    }
}

impl SessionPool {
    /// An idle session that serves `wanted`, taken out of the pool.
    pub(crate) fn take(self: &Arc<Self>, wanted: &Opened) -> Option<PooledSession> {
        let now = chrono::Utc::now();
        let mut idle = self.idle.lock().expect("pool lock");
        let key = (wanted.principal.name.clone(), wanted.interface);
        let sessions = idle.get_mut(&key)?;
        // Sessions that can no longer serve anyone like this principal go now.
        sessions.retain(|s| s.since.elapsed() < IDLE_FOR && s.opened.generation >= wanted.generation);
        let found = sessions.iter().rposition(|s| s.opened.serves(wanted, now)).map(|i| sessions.swap_remove(i));
        if sessions.is_empty() {
            idle.remove(&key);
        }
        found.map(|s| PooledSession { session: Some(s.session), opened: s.opened, pool: self.clone() })
    }

    /// A session just opened for `opened`, returned to this pool when dropped.
    pub(crate) fn lend(self: &Arc<Self>, session: QuerySession, opened: Opened) -> PooledSession {
        PooledSession { session: Some(session), opened, pool: self.clone() }
    }

    fn give_back(&self, session: QuerySession, opened: Opened) {
        // A statement whose stream was dropped may still be winding down (its tasks are aborted
        // asynchronously) and hold memory of the session's pool: a statement reusing the session
        // now would find less than its limit. Such a session is closed instead.
        if session.context().runtime_env().memory_pool.reserved() > 0 {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        let total: usize = idle.values().map(Vec::len).sum();
        if total >= IDLE_TOTAL {
            // Full: drop the oldest idle session of all.
            let oldest = idle.iter().flat_map(|(key, sessions)| sessions.iter().enumerate().map(move |(i, s)| (s.since, key.clone(), i))).min_by_key(|(since, _, _)| *since);
            if let Some((_, key, i)) = oldest {
                let sessions = idle.get_mut(&key).expect("listed key");
                sessions.remove(i);
                if sessions.is_empty() {
                    idle.remove(&key);
                }
            }
        }
        let sessions = idle.entry((opened.principal.name.clone(), opened.interface)).or_default();
        if sessions.len() >= IDLE_PER_KEY {
            sessions.remove(0);
        }
        sessions.push(Idle { session, opened, since: Instant::now() });
    }
}

/// A session lent to one query; it returns to its pool when dropped.
pub(crate) struct PooledSession {
    session: Option<QuerySession>,
    opened: Opened,
    pool: Arc<SessionPool>,
}

impl PooledSession {
    /// What the session was opened for.
    pub(crate) fn opened(&self) -> &Opened {
        &self.opened
    }
}

impl std::ops::Deref for PooledSession {
    type Target = QuerySession;

    fn deref(&self) -> &QuerySession {
        self.session.as_ref().expect("a lent session is present until dropped")
    }
}

impl std::ops::DerefMut for PooledSession {
    fn deref_mut(&mut self) -> &mut QuerySession {
        self.session.as_mut().expect("a lent session is present until dropped")
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.give_back(session, self.opened.clone());
        }
    }
}
