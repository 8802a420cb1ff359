//! Result schemas of prepared statements planned moments ago: ADBC and the Flight SQL JDBC
//! driver prepare every statement (CreatePreparedStatement) and then ask for its FlightInfo, so
//! the second call answers from what the first planned instead of planning the statement again.
//!
//! A schema is reused only while the session it was planned in would decide exactly as a new
//! one ([`Opened::serves`]: same principal, catalog generation, day, before a grant ends), and
//! only for the handle it was planned for (its signature; every handle carries a random nonce),
//! for a minute at most or until the statement is closed. Memory is bounded: at most 64 schemas
//! per principal and 1,024 in all, of at most 256 fields each (wider ones are planned again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;

use crate::pool::Opened;

/// How long a planned schema is kept: the client asks for the FlightInfo right after preparing.
const KEEP_FOR: Duration = Duration::from_secs(60);
/// Planned schemas kept at most, in all and per principal; beyond it the oldest go.
const KEEP_AT_MOST: usize = 1024;
const KEEP_PER_PRINCIPAL: usize = 64;
/// Schemas wider than this (fields, nested ones included) are not kept.
const WIDEST: usize = 256;

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

/// The key of a handle: its signature, which differs for every handle the server issues (a
/// handle carries a random nonce).
fn key(handle: &[u8]) -> Option<[u8; 32]> {
    handle.get(..32)?.try_into().ok()
}

impl PlannedSchemas {
    /// Keeps the result schema of the statement of `handle`, planned in a session opened as
    /// `opened`.
    pub(super) fn remember(&self, handle: &[u8], schema: SchemaRef, opened: Opened) {
        let Some(key) = key(handle) else { return };
        if schema.flattened_fields().len() + schema.metadata().len() > WIDEST {
            return;
        }
        let mut entries = self.entries.lock().expect("planned schemas lock");
        entries.retain(|_, p| p.since.elapsed() < KEEP_FOR);
        let principal = &opened.principal.name;
        for (limit, mine) in [(KEEP_PER_PRINCIPAL, true), (KEEP_AT_MOST, false)] {
            let held = entries.values().filter(|p| !mine || &p.opened.principal.name == principal).count();
            if held >= limit
                && let Some(oldest) = entries.iter().filter(|(_, p)| !mine || &p.opened.principal.name == principal).min_by_key(|(_, p)| p.since).map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, Planned { schema, opened, since: Instant::now() });
    }

    /// The schema planned for `handle` and what the session it was planned in was opened for:
    /// the caller reuses it only if that [`Opened::serves`] what a session opened now would be.
    pub(super) fn recall(&self, handle: &[u8]) -> Option<(SchemaRef, Opened)> {
        let key = key(handle)?;
        let entries = self.entries.lock().expect("planned schemas lock");
        let planned = entries.get(&key).filter(|p| p.since.elapsed() < KEEP_FOR)?;
        Some((planned.schema.clone(), planned.opened.clone()))
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

