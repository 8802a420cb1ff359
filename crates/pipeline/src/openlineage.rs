//! OpenLineage run events of builds: START when a product's build starts, COMPLETE when it
//! published, FAIL when it failed or its data failed an `error` quality rule. The events are
//! built by `meshwork_core::openlineage` and appended to the catalog's outbox, from which each
//! sink of `mesh.yaml` `openlineage:` is delivered by `meshwork-scheduler`.
//!
//! Emitting never fails or delays a build beyond one catalog insert: a sink that is down only
//! holds events in the outbox, and an outbox insert that fails is logged and dropped, because
//! lineage is an observation of the build, not part of it.

use chrono::Utc;
use meshwork_catalog::{CatalogStore, QualityRun, RuleStatus};
use meshwork_core::descriptor::{ProductDescriptor, Severity};
use meshwork_core::lineage::ProductLineage;
use meshwork_core::openlineage::{Naming, RuleOutcome, RunEvent, RunId, complete_event, fail_event, start_event};

use crate::LoadedMesh;

/// Emits the run events of one apply's builds; does nothing when the mesh declares no
/// `openlineage:` sinks.
pub(crate) struct Emitter<'a> {
    catalog: &'a dyn CatalogStore,
    naming: Option<Naming>,
}

impl<'a> Emitter<'a> {
    /// The emitter of `mesh`'s builds.
    pub(crate) fn new(mesh: &LoadedMesh, catalog: &'a dyn CatalogStore) -> Emitter<'a> {
        let naming = mesh.repo.config.openlineage.as_ref().map(|config| Naming { namespace: config.namespace.clone(), root: mesh.root.display().to_string(), connections: mesh.repo.config.connections.clone(), endpoints: mesh.repo.config.flight_endpoints.clone() });
        Emitter { catalog, naming }
    }

    /// Emits the START of a build of `descriptor`; returns its run id (`None` when nothing is
    /// emitted).
    pub(crate) async fn start(&self, descriptor: &ProductDescriptor) -> Option<RunId> {
        let naming = self.naming.as_ref()?;
        let now = Utc::now();
        let run = RunId::v7(u64::try_from(now.timestamp_millis()).unwrap_or(0), rand::random());
        self.append(&[start_event(naming, descriptor, &run, now)]).await;
        Some(run)
    }

    /// Emits the COMPLETE of run `run` (started by [`Emitter::start`]) that published a version
    /// with `lineage` after `quality`.
    pub(crate) async fn complete(&self, run: Option<&RunId>, descriptor: &ProductDescriptor, lineage: &ProductLineage, quality: &QualityRun) {
        let (Some(naming), Some(run)) = (self.naming.as_ref(), run) else { return };
        self.append(&[complete_event(naming, descriptor, run, Utc::now(), lineage, &outcomes(quality))]).await;
    }

    /// Emits the FAIL of run `run`; a build that failed before it started (waiting for the
    /// product lock, reading its inputs' fingerprint) gets its START now, so every run has both.
    pub(crate) async fn fail(&self, run: Option<RunId>, descriptor: &ProductDescriptor, message: &str, quality: Option<&QualityRun>) {
        let Some(naming) = self.naming.as_ref() else { return };
        let now = Utc::now();
        let mut events: Vec<RunEvent> = Vec::new();
        let run = match run {
            Some(run) => run,
            None => {
                let run = RunId::v7(u64::try_from(now.timestamp_millis()).unwrap_or(0), rand::random());
                events.push(start_event(naming, descriptor, &run, now));
                run
            }
        };
        let quality = quality.map(outcomes).unwrap_or_default();
        events.push(fail_event(naming, descriptor, &run, now, message, &quality));
        self.append(&events).await;
    }

    async fn append(&self, events: &[RunEvent]) {
        if let Err(error) = self.catalog.append_openlineage(events).await {
            let product = events.first().map(|e| e.job.name.as_str()).unwrap_or_default();
            tracing::warn!(%product, %error, "cannot store OpenLineage events; the build goes on without them");
        }
    }
}

/// The message of a FAIL whose staged data failed `error` rules: each rule and what it measured.
pub(crate) fn quality_failure(quality: &QualityRun) -> String {
    let rules: Vec<String> = quality
        .results
        .iter()
        .filter(|r| r.status != RuleStatus::Passed && r.severity == Severity::Error)
        .map(|r| format!("quality rule `{}` failed: {}", r.name, r.message))
        .collect();
    if rules.is_empty() { "quality rules failed".to_owned() } else { rules.join("; ") }
}

fn outcomes(quality: &QualityRun) -> Vec<RuleOutcome> {
    quality
        .results
        .iter()
        .map(|r| RuleOutcome { name: r.name.clone(), success: r.status == RuleStatus::Passed, message: r.message.clone() })
        .collect()
}
