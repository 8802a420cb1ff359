//! Crash safety of write-audit-publish: finishing or cleaning up what a killed run left, and
//! failpoints that let tests kill a run at each step.
//!
//! A run writes, in order: the staged table, then (after its quality rules passed) the
//! publication journal [`PENDING_FILE`] next to the staged data, then moves the staged files
//! into the product's table (uncommitted: no reader sees them), then the Delta commit tagged
//! with the run id, then the catalog record, then removes the staging directory. A crash can
//! stop it between any two steps; the next run of the product (under the product lock, so no
//! live run is touched) looks at each leftover staging directory:
//! - the product table's newest Delta commit carries the run id (read from the log alone, never
//!   from the journal) and the catalog does not name that Delta version yet: the commit passed
//!   its checks, so the journaled publication is recorded, finishing the run exactly once;
//! - otherwise the run never committed: its staging directory is removed, with any data file
//!   it had already moved into the product's table (`ProductStore::abandon_run`).

use meshwork_catalog::{CatalogStore, Publication};
use meshwork_core::id::ProductId;
use meshwork_storage::ProductStore;

use crate::PipelineError;

/// The publication journal a run writes into its staging directory before committing.
pub const PENDING_FILE: &str = "publication.json";

/// The environment variable naming a failpoint: `STEP` or `STEP=pause` stops the process at
/// that step (printing `failpoint STEP reached` to stderr and sleeping until killed);
/// `STEP=abort` aborts it at once. Steps: `built`, `staged`, `checked`, `moved`, `committed`, `published`.
pub const FAILPOINT_ENV: &str = "MESHWORK_FAILPOINT";

/// Stops the process here if [`FAILPOINT_ENV`] names this step. For crash tests only.
pub(crate) fn failpoint(step: &str) {
    let Ok(setting) = std::env::var(FAILPOINT_ENV) else { return };
    let (name, action) = setting.split_once('=').unwrap_or((setting.as_str(), "pause"));
    if name != step {
        return;
    }
    eprintln!("failpoint {step} reached");
    if action == "abort" {
        std::process::abort();
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// What recovery did for one leftover run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// The run had committed its Delta version; its publication was recorded.
    Finished {
        /// The staging directory's name.
        run: String,
        /// The Delta version now recorded.
        delta_version: i64,
    },
    /// The run never committed; its staged data was removed.
    Discarded {
        /// The staging directory's name.
        run: String,
    },
}

/// Finishes or discards every run of `id` left by a crashed process. The caller must hold the
/// product's lock.
pub async fn recover(id: &ProductId, catalog: &dyn CatalogStore, store: &ProductStore) -> Result<Vec<Recovered>, PipelineError> {
    let mut done = Vec::new();
    for run in store.leftover_runs(id).await? {
        // Whether the run committed is read from the product table's log alone: a journal that
        // is missing (a cleanup cut short) or unreadable must never make a committed run look
        // abandoned, whose files would then be deleted.
        let committed = match store.latest_commit(id).await? {
            Some((delta_version, info)) if info.get("meshwork.run").and_then(|v| v.as_str()) == Some(run.as_str()) => Some(delta_version),
            _ => None,
        };
        let mut finished = None;
        match committed {
            Some(delta_version) => {
                let pending = store.read_journal(id, &run, PENDING_FILE).await?.and_then(|bytes| serde_json::from_slice::<Publication>(&bytes).ok());
                let recorded = catalog.versions(id).await?.iter().any(|v| v.delta_version == delta_version);
                match pending {
                    Some(mut publication) if !recorded => {
                        publication.delta_version = delta_version;
                        catalog.publish(&publication).await?;
                        finished = Some(delta_version);
                    }
                    Some(_) => finished = Some(delta_version),
                    None if recorded => finished = Some(delta_version),
                    None => tracing::error!(product = %id, run, delta_version, "a run committed Delta version {delta_version} but left no readable publication journal; the catalog keeps serving the previous version until the product is applied again"),
                }
                store.discard_run(id, &run).await?;
            }
            // Never committed: files it may have moved into the product's table go too.
            None => store.abandon_run(id, &run).await?,
        }
        let outcome = match finished {
            Some(delta_version) => Recovered::Finished { run, delta_version },
            None => Recovered::Discarded { run },
        };
        tracing::warn!(product = %id, ?outcome, "recovered a run left by a crashed process");
        done.push(outcome);
    }
    Ok(done)
}

/// Recovers every product with leftover runs that no live process is building (products whose
/// lock is held are left to their holder). Run by `meshwork serve` at start.
pub async fn recover_all(catalog: &dyn CatalogStore, store: &ProductStore) -> Result<Vec<(ProductId, Recovered)>, PipelineError> {
    let mut done = Vec::new();
    for id in store.products_with_staged_runs().await? {
        let lock = match catalog.lock(&meshwork_catalog::product_lock(&id), std::time::Duration::ZERO).await {
            Ok(lock) => lock,
            Err(meshwork_catalog::CatalogError::Busy { .. }) => continue,
            Err(error) => return Err(error.into()),
        };
        for outcome in recover(&id, catalog, store).await? {
            done.push((id.clone(), outcome));
        }
        drop(lock);
    }
    Ok(done)
}
