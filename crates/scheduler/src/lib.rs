//! Background work of `meshwork serve`: refreshes on cron schedules and on upstream change, SLO
//! evaluation, webhook delivery of lifecycle events, and delivery of OpenLineage run events to
//! their sinks.
//!
//! Everything here reads what was *applied* (the catalog) to decide what to do, and the mesh
//! repository on disk to build: schedules and `on_upstream_change` flags come from published
//! descriptors, so editing a `product.yaml` changes the schedule only once it is applied.
//! Time comes from a [`Clock`], so tests drive schedules and SLOs without waiting.
//!
//! Invariants:
//! - one refresh per product at a time in this process (a job whose products are busy waits
//!   for the next tick), and across processes through the product lock of the pipeline;
//! - a failed refresh is retried with exponential backoff in its own task, so it never delays
//!   unrelated products;
//! - an upstream change refreshes the dependants that declare `on_upstream_change`, all of them
//!   in one job in dependency order, so a product reading two changed products builds once.

#![deny(missing_docs)]

mod cron;
mod openlineage;
mod slo;
mod subscriptions;
mod webhook;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use meshwork_catalog::{CatalogStore, EventFilter, NewEvent, Trigger};
use meshwork_core::clock::Clock;
use meshwork_core::descriptor::{ProductDescriptor, SchedulerConfig};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use meshwork_pipeline::{ApplyOptions, ProductOutcome, SilentObserver, load_mesh_with, refresh};
use meshwork_storage::ProductStore;

pub use cron::CronTable;
pub use openlineage::{Flushed, LineageDelivery, Patience, Round, SinkDelivery};
pub use slo::{SloEvaluator, evaluate_product};
pub use subscriptions::{SubscriptionDeliveries, delivery_name};
pub use webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookDispatcher, sign};

/// Errors of background work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// The metadata store failed.
    #[error(transparent)]
    Catalog(#[from] meshwork_catalog::CatalogError),
    /// A webhook's secret is missing from the environment.
    #[error("webhook `{webhook}`: environment variable `{variable}` is not set; export the signing secret before `meshwork serve`")]
    MissingSecret {
        /// The webhook.
        webhook: String,
        /// The variable named by `secret_env`.
        variable: String,
    },
    /// An OpenLineage sink's API key is missing from the environment.
    #[error("openlineage sink `{sink}`: environment variable `{variable}` is not set; export the API key: until then the sink's events wait in the outbox")]
    MissingApiKey {
        /// The sink.
        sink: String,
        /// The variable named by `api_key_env`.
        variable: String,
    },
    /// The applied governance could not be loaded.
    #[error(transparent)]
    Query(#[from] meshwork_query::QueryError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A refresh to run: products built together, in dependency order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The products.
    pub products: BTreeSet<ProductId>,
    /// `schedule` or `upstream`.
    pub trigger: Trigger,
}

/// How a job ended, per product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// The job.
    pub job: Job,
    /// Product → outcome keyword of its last attempt (`published`, `unchanged`, `failed`, …).
    pub outcomes: BTreeMap<ProductId, String>,
    /// Attempts made, 1 when the first one succeeded.
    pub attempts: u32,
}

#[derive(Debug)]
struct State {
    last_tick: DateTime<Utc>,
    event_cursor: i64,
    /// The last day sunsets were looked for: once a day is enough.
    sunsets_checked: Option<chrono::NaiveDate>,
    running: HashSet<ProductId>,
    deferred: Vec<Job>,
}

/// Decides which refreshes are due and runs them.
pub struct Scheduler {
    root: PathBuf,
    catalog: Arc<dyn CatalogStore>,
    store: ProductStore,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    state: Mutex<State>,
}

/// The settings key of the scheduler's position in the event log.
const CURSOR_KEY: &str = "scheduler.event_cursor";

impl Scheduler {
    /// A scheduler for the mesh repository at `root`. It follows the event log from where it
    /// stopped last time (or from its end, the first time).
    pub async fn new(
        root: PathBuf,
        catalog: Arc<dyn CatalogStore>,
        store: ProductStore,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Result<Scheduler, SchedulerError> {
        let event_cursor = match catalog.setting(CURSOR_KEY).await? {
            Some(value) => value.parse().unwrap_or(0),
            None => last_event_id(catalog.as_ref()).await?,
        };
        let state = State { last_tick: clock.now(), event_cursor, running: HashSet::new(), deferred: Vec::new(), sunsets_checked: None };
        Ok(Scheduler { root, catalog, store, clock, config, state: Mutex::new(state) })
    }

    /// Takes over the background work, on this replica's first turn or after another replica
    /// that held it stopped or died: follows the event log from the persisted cursor. With
    /// `catch_up` (the previous holder did not stop cleanly) it also queues one refresh of every
    /// product that declares `refresh`, so work the previous holder left unfinished (a cascade it
    /// had started, a cron run it was killed in) is done now; products already up to date come
    /// out `unchanged`, so nothing is built twice.
    pub async fn resume(&self, catch_up: bool) -> Result<(), SchedulerError> {
        let event_cursor = match self.catalog.setting(CURSOR_KEY).await? {
            Some(value) => value.parse().unwrap_or(0),
            None => last_event_id(self.catalog.as_ref()).await?,
        };
        let descriptors = published_descriptors(self.catalog.as_ref()).await?;
        let declared: BTreeSet<ProductId> = descriptors
            .iter()
            .filter(|(_, d)| d.refresh.schedule.is_some() || d.refresh.on_upstream_change)
            .map(|(id, _)| id.clone())
            .collect();
        let mut state = self.state.lock().expect("scheduler state");
        state.last_tick = self.clock.now();
        state.event_cursor = event_cursor;
        if catch_up && !declared.is_empty() {
            state.deferred.push(Job { products: declared, trigger: Trigger::Schedule });
        }
        Ok(())
    }

    /// The jobs due now: cron schedules that fired since the last tick, dependants of products
    /// published since the last tick, and jobs deferred because their products were busy.
    pub async fn tick(&self) -> Result<Vec<Job>, SchedulerError> {
        let now = self.clock.now();
        let (since, cursor) = {
            let state = self.state.lock().expect("scheduler state");
            (state.last_tick, state.event_cursor)
        };
        let mut descriptors = published_descriptors(self.catalog.as_ref()).await?;
        // A product past its sunset is built no more; the day it passes is an event.
        let today = now.date_naive();
        descriptors.retain(|_, d| !d.is_sunset(today));
        let checked = self.state.lock().expect("scheduler state").sunsets_checked;
        if checked != Some(today) {
            match meshwork_pipeline::lifecycle::record_sunsets(self.catalog.as_ref(), today).await {
                Ok(_) => self.state.lock().expect("scheduler state").sunsets_checked = Some(today),
                Err(e) => tracing::warn!(error = %e, "cannot record sunset events; trying again at the next tick"),
            }
        }
        // A grant stopped counting at its end already (decisions compare it with the clock);
        // the event saying so is written once, here (the update claims each grant once).
        if let Err(e) = self.catalog.record_grant_expiries(now).await {
            tracing::warn!(error = %e, "cannot record expired grants; trying again at the next tick");
        }
        let mut jobs = Vec::new();
        let due = CronTable::new(&descriptors).due(since, now);
        if !due.is_empty() {
            jobs.push(Job { products: due.into_iter().collect(), trigger: Trigger::Schedule });
        }
        let events = self.catalog.events(&EventFilter { after: cursor, limit: Some(1000), product: None, kinds: Vec::new() }).await?;
        let mut cascade = BTreeSet::new();
        for event in events.iter().filter(|e| e.kind == EventKind::Published) {
            // Products published by a cascade were part of the cascade of its root already.
            if event.payload.get("trigger").and_then(|t| t.as_str()) == Some(Trigger::Upstream.as_str()) {
                continue;
            }
            if let Some(product) = &event.product {
                cascade.extend(upstream_change_cascade(&descriptors, product));
            }
        }
        if !cascade.is_empty() {
            jobs.push(Job { products: cascade, trigger: Trigger::Upstream });
        }
        let new_cursor = events.last().map(|e| e.id).unwrap_or(cursor);
        if new_cursor != cursor {
            self.catalog.set_setting(CURSOR_KEY, &new_cursor.to_string()).await?;
        }
        let mut state = self.state.lock().expect("scheduler state");
        state.last_tick = now;
        state.event_cursor = new_cursor;
        let mut all: Vec<Job> = std::mem::take(&mut state.deferred);
        all.extend(jobs);
        Ok(all)
    }

    /// Runs a job: refreshes its products in dependency order, retrying failed ones with
    /// exponential backoff. If one of its products is being refreshed already, the job is
    /// deferred to the next tick and `None` is returned.
    pub async fn run_job(&self, job: Job) -> Option<JobReport> {
        {
            let mut state = self.state.lock().expect("scheduler state");
            if job.products.iter().any(|p| state.running.contains(p)) {
                state.deferred.push(job);
                return None;
            }
            state.running.extend(job.products.iter().cloned());
        }
        let report = self.attempt(&job).await;
        let mut state = self.state.lock().expect("scheduler state");
        for product in &job.products {
            state.running.remove(product);
        }
        Some(report)
    }

    async fn attempt(&self, job: &Job) -> JobReport {
        let mut outcomes = BTreeMap::new();
        let mut pending: BTreeSet<ProductId> = job.products.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let retry = self.refresh_once(&pending, job.trigger, &mut outcomes).await;
            if retry.is_empty() || attempts > self.config.retries {
                break;
            }
            let backoff = Duration::from_secs(self.config.retry_backoff.seconds.saturating_mul(1 << (attempts - 1).min(16)));
            tracing::warn!(products = ?retry, attempt = attempts, backoff_s = backoff.as_secs(), "refresh failed; retrying");
            tokio::time::sleep(backoff).await;
            pending = retry;
        }
        JobReport { job: job.clone(), outcomes, attempts }
    }

    /// One attempt; returns the products worth retrying (failed for a reason other than their
    /// data or a policy, and those they blocked).
    async fn refresh_once(&self, products: &BTreeSet<ProductId>, trigger: Trigger, outcomes: &mut BTreeMap<ProductId, String>) -> BTreeSet<ProductId> {
        let mesh = match load_mesh_with(&self.root, false) {
            Ok(mesh) => mesh,
            Err(diagnostics) => {
                let message = format!(
                    "the mesh repository does not load ({} problems; run `meshwork validate`): {}",
                    diagnostics.len(),
                    diagnostics.first().map(ToString::to_string).unwrap_or_default()
                );
                self.record_failures(products, trigger, &message).await;
                for product in products {
                    outcomes.insert(product.clone(), "failed".into());
                }
                return products.clone();
            }
        };
        // Products removed from the repository since they were applied are not rebuilt.
        let (present, missing): (Vec<ProductId>, Vec<ProductId>) = products.iter().cloned().partition(|p| mesh.repo.products.contains_key(p));
        if !missing.is_empty() {
            let message = "the product is no longer in the mesh repository; apply the repository to retire it";
            self.record_failures(&missing.iter().cloned().collect(), trigger, message).await;
            for product in missing {
                outcomes.insert(product, "failed".into());
            }
        }
        let options = ApplyOptions { trigger, clock: self.clock.clone(), ..ApplyOptions::default() };
        match refresh(&mesh, self.catalog.as_ref(), &self.store, &SilentObserver, &present, false, options).await {
            Ok(report) => {
                let mut retry = BTreeSet::new();
                for (id, outcome) in &report.outcomes {
                    outcomes.insert(id.clone(), outcome.keyword().to_owned());
                    if matches!(outcome, ProductOutcome::Failed { .. } | ProductOutcome::Blocked { .. }) {
                        retry.insert(id.clone());
                    }
                }
                retry
            }
            Err(error) => {
                self.record_failures(&present.iter().cloned().collect(), trigger, &error.to_string()).await;
                for product in &present {
                    outcomes.insert(product.clone(), "failed".into());
                }
                present.into_iter().collect()
            }
        }
    }

    async fn record_failures(&self, products: &BTreeSet<ProductId>, trigger: Trigger, message: &str) {
        let events: Vec<NewEvent> = products
            .iter()
            .map(|p| NewEvent {
                kind: EventKind::RefreshFailed,
                product: Some(p.clone()),
                payload: serde_json::json!({ "trigger": trigger, "error": message }),
            })
            .collect();
        if let Err(error) = self.catalog.append_events(&events).await {
            tracing::error!(%error, "cannot record refresh failures");
        }
    }

    /// Runs until `shutdown` resolves: ticks every second and spawns each due job as its own
    /// task.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            match self.tick().await {
                Ok(jobs) => {
                    for job in jobs {
                        let scheduler = self.clone();
                        tokio::spawn(async move {
                            if let Some(report) = scheduler.run_job(job).await {
                                tracing::info!(trigger = %report.job.trigger, outcomes = ?report.outcomes, attempts = report.attempts, "refresh finished");
                            }
                        });
                    }
                }
                Err(error) => tracing::error!(%error, "scheduler tick failed"),
            }
        }
    }
}

async fn last_event_id(catalog: &dyn CatalogStore) -> Result<i64, SchedulerError> {
    Ok(catalog.last_event_id().await?)
}

/// The descriptors of every published product, as applied.
pub async fn published_descriptors(catalog: &dyn CatalogStore) -> Result<BTreeMap<ProductId, ProductDescriptor>, SchedulerError> {
    let mut out = BTreeMap::new();
    for record in catalog.products().await? {
        out.insert(record.id, record.descriptor);
    }
    Ok(out)
}

/// Products a new version of `id` refreshes: readers of it that declare `on_upstream_change`,
/// and in turn their readers that do.
pub fn upstream_change_cascade(descriptors: &BTreeMap<ProductId, ProductDescriptor>, id: &ProductId) -> BTreeSet<ProductId> {
    let mut found = BTreeSet::new();
    let mut frontier = vec![id.clone()];
    while let Some(current) = frontier.pop() {
        for (candidate, descriptor) in descriptors {
            if descriptor.refresh.on_upstream_change && descriptor.upstream().any(|u| *u == current) && candidate != id && found.insert(candidate.clone()) {
                frontier.push(candidate.clone());
            }
        }
    }
    found
}
