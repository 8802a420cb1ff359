//! Result schemas of prepared statements planned moments ago: ADBC and the Flight SQL JDBC
//! driver prepare every statement (CreatePreparedStatement) and then ask for its FlightInfo, so
//! the second call answers from what the first planned instead of planning the statement again.
//!
//! A schema is reused only while the session it was planned in would decide exactly as a new
//! one ([`Opened::serves`]: same principal, catalog generation, day, before a grant ends), and
//! only for the handle it was planned for (its signature), for a minute at most.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;

use crate::pool::Opened;

/// How long a planned schema is kept: the client asks for the FlightInfo right after preparing.
const KEEP_FOR: Duration = Duration::from_secs(60);
/// Planned schemas kept at most; beyond it the oldest go.
const KEEP_AT_MOST: usize = 4096;

struct Planned {
    schema: SchemaRef,
    opened: Opened,
    since: Instant,
}

/// The schemas of recently prepared statements, by handle.
#[derive(Default)]
pub(super) struct PlannedSchemas {
    entries: Mutex<HashMap<[u8; 32], Planned>>,
}

/// The key of a handle: its signature, which differs for every handle the server issues.
fn key(handle: &[u8]) -> Option<[u8; 32]> {
    handle.get(..32)?.try_into().ok()
}

impl PlannedSchemas {
    /// Keeps the result schema of the statement of `handle`, planned in a session opened as
    /// `opened`.
    pub(super) fn remember(&self, handle: &[u8], schema: SchemaRef, opened: Opened) {
        let Some(key) = key(handle) else { return };
        let mut entries = self.entries.lock().expect("planned schemas lock");
        entries.retain(|_, p| p.since.elapsed() < KEEP_FOR);
        if entries.len() >= KEEP_AT_MOST
            && let Some(oldest) = entries.iter().min_by_key(|(_, p)| p.since).map(|(k, _)| *k)
        {
            entries.remove(&oldest);
        }
        entries.insert(key, Planned { schema, opened, since: Instant::now() });
    }

    /// The schema planned for `handle`, if a session opened for `wanted` now would plan the
    /// same.
    pub(super) fn recall(&self, handle: &[u8], wanted: &Opened) -> Option<SchemaRef> {
        let key = key(handle)?;
        let entries = self.entries.lock().expect("planned schemas lock");
        let planned = entries.get(&key)?;
        (planned.since.elapsed() < KEEP_FOR && planned.opened.serves(wanted, chrono::Utc::now())).then(|| planned.schema.clone())
    }

    /// Drops what was kept for `handle` (the client closed the prepared statement).
    pub(super) fn forget(&self, handle: &[u8]) {
        if let Some(key) = key(handle) {
            self.entries.lock().expect("planned schemas lock").remove(&key);
        }
    }
}

impl std::fmt::Debug for PlannedSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedSchemas").finish_non_exhaustive()
    }
}

