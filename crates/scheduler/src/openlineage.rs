//! Delivery of OpenLineage run events from the catalog's outbox to the sinks of `mesh.yaml`
//! `openlineage:`: a file (one JSON event per line, appended) or an HTTP endpoint (POST of the
//! event, the OpenLineage HTTP transport Marquez speaks).
//!
//! Builds only append to the outbox (`CatalogStore::append_openlineage`), so a sink that is slow
//! or down never blocks or fails a build. Each sink follows the outbox with its own cursor (a
//! catalog setting), like webhooks follow the event log: delivery is at least once and in
//! order; receivers deduplicate by run id and event type. `meshwork serve` delivers in the
//! background, retrying a failing event with exponential backoff; `meshwork apply` and
//! `refresh` flush what they can within a few seconds and leave the rest for the next one or
//! for a server. A catalog lock per sink keeps two processes from delivering the same events.
//! Entries every sink has delivered are pruned.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meshwork_catalog::{CatalogError, CatalogStore, OutboxEvent};
use meshwork_core::descriptor::{LineageSink, LineageTarget, OpenLineageConfig};

use crate::SchedulerError;

/// Attempts per event before the background delivery gives up on it.
const MAX_ATTEMPTS: u32 = 8;
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Outbox entries read per round.
const BATCH: u32 = 100;

/// How hard a delivery round tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Background delivery: a failing event is retried with backoff, and given up (logged,
    /// skipped) after a few attempts so one bad event cannot stop a sink for good.
    Retry,
    /// A command's flush: one attempt per event; the first failure ends the round and leaves
    /// the event for later.
    Once,
}

/// Delivers the outbox to every sink of a mesh.
#[derive(Clone)]
pub struct LineageDelivery {
    sinks: Vec<SinkDelivery>,
    /// Every sink `mesh.yaml` names, delivered here or not: pruning waits for all of them.
    configured: Vec<String>,
    catalog: Arc<dyn CatalogStore>,
}

/// Delivers the outbox to one sink.
#[derive(Clone)]
pub struct SinkDelivery {
    sink: LineageSink,
    /// The file of a `file` sink, made absolute.
    file: Option<PathBuf>,
    /// The API key of an `http` sink, from the environment.
    api_key: Option<String>,
    catalog: Arc<dyn CatalogStore>,
    client: reqwest::Client,
    first_backoff: Duration,
}

/// Never shows the API key.
impl std::fmt::Debug for SinkDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkDelivery").field("sink", &self.sink.name).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LineageDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineageDelivery").field("sinks", &self.sinks).finish_non_exhaustive()
    }
}

/// What a flush did for one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// The sink.
    pub sink: String,
    /// Events delivered.
    pub delivered: usize,
    /// Why events are still waiting, if some are.
    pub pending: Option<String>,
}

impl LineageDelivery {
    /// The delivery of `config`'s sinks; files are relative to the mesh repository at `root`.
    /// An `http` sink's API key is read from the environment variable it names now; a missing
    /// one is an error (`serve` does not start without it).
    /// `first_backoff` is the wait before the first retry, doubled for each further one.
    pub fn new(config: &OpenLineageConfig, root: &Path, catalog: Arc<dyn CatalogStore>, first_backoff: Duration) -> Result<Self, SchedulerError> {
        Self::with_keys(config, root, catalog, first_backoff, |variable| std::env::var(variable).ok())
    }

    /// [`LineageDelivery::new`] reading API keys with `key` (for callers that keep them
    /// elsewhere than the environment).
    pub fn with_keys(
        config: &OpenLineageConfig,
        root: &Path,
        catalog: Arc<dyn CatalogStore>,
        first_backoff: Duration,
        key: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SchedulerError> {
        let (delivery, mut missing) = Self::build(config, root, catalog, first_backoff, key)?;
        if missing.is_empty() { Ok(delivery) } else { Err(missing.remove(0)) }
    }

    /// [`LineageDelivery::new`] without the sinks whose API key is missing, with an error for
    /// each: a command still feeds the other sinks, and the left-out ones keep their events.
    pub fn available(
        config: &OpenLineageConfig,
        root: &Path,
        catalog: Arc<dyn CatalogStore>,
        first_backoff: Duration,
    ) -> Result<(Self, Vec<SchedulerError>), SchedulerError> {
        Self::build(config, root, catalog, first_backoff, |variable| std::env::var(variable).ok())
    }

    fn build(
        config: &OpenLineageConfig,
        root: &Path,
        catalog: Arc<dyn CatalogStore>,
        first_backoff: Duration,
        key: impl Fn(&str) -> Option<String>,
    ) -> Result<(Self, Vec<SchedulerError>), SchedulerError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("meshwork/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SchedulerError::Client(e.to_string()))?;
        let mut sinks = Vec::new();
        let mut missing = Vec::new();
        for sink in &config.sinks {
            let (file, api_key) = match &sink.target {
                LineageTarget::File { path } => (Some(root.join(path)), None),
                LineageTarget::Http { api_key_env: Some(variable), .. } => match key(variable.as_str()).filter(|k| !k.is_empty()) {
                    Some(api_key) => (None, Some(api_key)),
                    None => {
                        missing.push(SchedulerError::MissingApiKey { sink: sink.name.clone(), variable: variable.clone() });
                        continue;
                    }
                },
                LineageTarget::Http { api_key_env: None, .. } => (None, None),
            };
            sinks.push(SinkDelivery { sink: sink.clone(), file, api_key, catalog: catalog.clone(), client: client.clone(), first_backoff });
        }
        let configured = config.sinks.iter().map(|s| s.name.clone()).collect();
        Ok((LineageDelivery { sinks, configured, catalog }, missing))
    }

    /// The sinks.
    pub fn sinks(&self) -> &[SinkDelivery] {
        &self.sinks
    }

    /// Delivers what each sink can within `within` (one attempt per event), then prunes what
    /// every sink has. For commands: never fails; what is left waits in the outbox.
    pub async fn flush(&self, within: Duration) -> Vec<Flushed> {
        let rounds = self.sinks.iter().map(|sink| async move {
            let mut delivered = 0;
            let deadline = tokio::time::Instant::now() + within;
            let pending = loop {
                match tokio::time::timeout_at(deadline, sink.deliver_pending(Patience::Once)).await {
                    Ok(Ok(Round { delivered: 0, stopped: None })) => break None,
                    Ok(Ok(Round { delivered: n, stopped: None })) => delivered += n,
                    Ok(Ok(Round { delivered: n, stopped: Some(reason) })) => {
                        delivered += n;
                        break Some(reason);
                    }
                    Ok(Err(error)) => break Some(error.to_string()),
                    Err(_) => break Some(format!("not done within {within:?}")),
                }
            };
            Flushed { sink: sink.sink.name.clone(), delivered, pending }
        });
        let flushed = futures::future::join_all(rounds).await;
        if let Err(error) = self.prune().await {
            tracing::warn!(%error, "cannot prune the OpenLineage outbox");
        }
        flushed
    }

    /// Deletes the outbox entries every configured sink has delivered (those left out for a
    /// missing API key included). A sink that never delivered keeps everything.
    pub async fn prune(&self) -> Result<u64, SchedulerError> {
        let mut through = i64::MAX;
        for name in &self.configured {
            match self.catalog.setting(&cursor_key(name)).await? {
                Some(value) => through = through.min(value.parse().unwrap_or(0)),
                None => return Ok(0),
            }
        }
        if through == i64::MAX || through <= 0 {
            return Ok(0);
        }
        Ok(self.catalog.prune_openlineage(through).await?)
    }

    /// Delivers events as they are appended until `shutdown` resolves: each sink in its own
    /// task (a slow endpoint delays only itself), pruning every few seconds.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let tasks: Vec<_> = self.sinks.iter().cloned().map(|sink| tokio::spawn(sink.run(shutdown.clone()))).collect();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = shutdown.changed() => break,
            }
            if let Err(error) = self.prune().await {
                tracing::warn!(%error, "cannot prune the OpenLineage outbox");
            }
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// What one delivery round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// Events handled (delivered, or given up after every attempt).
    pub delivered: usize,
    /// Why the round stopped before the end of the outbox ([`Patience::Once`]), or `None`.
    pub stopped: Option<String>,
}

impl SinkDelivery {
    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.sink.name
    }

    /// The settings key of the sink's position in the outbox.
    pub fn cursor_key(&self) -> String {
        cursor_key(&self.sink.name)
    }

    async fn cursor(&self) -> Result<i64, SchedulerError> {
        Ok(self.catalog.setting(&self.cursor_key()).await?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Delivers up to one batch of the events after the sink's cursor, moving the cursor past
    /// each one handled. A new sink starts at the oldest event the outbox still holds. When
    /// another process is delivering to this sink, does nothing.
    pub async fn deliver_pending(&self, patience: Patience) -> Result<Round, SchedulerError> {
        // Looked at without the lock first: on PostgreSQL a lock is a connection of its own,
        // too dear to open every second for nothing.
        if self.catalog.openlineage_outbox(self.cursor().await?, 1).await?.is_empty() {
            return Ok(Round { delivered: 0, stopped: None });
        }
        let _lock = match self.catalog.lock(&format!("openlineage:{}", self.sink.name), Duration::ZERO).await {
            Ok(lock) => lock,
            Err(CatalogError::Busy { .. }) => return Ok(Round { delivered: 0, stopped: Some("another process is delivering to it".into()) }),
            Err(error) => return Err(error.into()),
        };
        let cursor = self.cursor().await?;
        let events = self.catalog.openlineage_outbox(cursor, BATCH).await?;
        if events.is_empty() {
            return Ok(Round { delivered: 0, stopped: None });
        }
        if let Some(file) = &self.file {
            // One append of whole lines, then the cursor: a crash between them repeats lines
            // (at least once), never loses or splits one.
            return match append_lines(file, &events) {
                Ok(()) => {
                    let last = events.last().map(|e| e.id).unwrap_or(cursor);
                    self.catalog.set_setting(&self.cursor_key(), &last.to_string()).await?;
                    Ok(Round { delivered: events.len(), stopped: None })
                }
                Err(reason) if patience == Patience::Once => Ok(Round { delivered: 0, stopped: Some(reason) }),
                Err(reason) => {
                    tracing::warn!(sink = %self.sink.name, %reason, "cannot write OpenLineage events; retrying");
                    tokio::time::sleep(self.first_backoff).await;
                    Ok(Round { delivered: 0, stopped: Some(reason) })
                }
            };
        }
        let mut delivered = 0;
        for event in &events {
            if let Err(reason) = self.post(event, patience).await {
                return Ok(Round { delivered, stopped: Some(reason) });
            }
            self.catalog.set_setting(&self.cursor_key(), &event.id.to_string()).await?;
            delivered += 1;
        }
        Ok(Round { delivered, stopped: None })
    }

    /// POSTs one event; with [`Patience::Retry`] retries with backoff and gives up (returning
    /// `Ok`, so the cursor moves on) after [`MAX_ATTEMPTS`].
    async fn post(&self, event: &OutboxEvent, patience: Patience) -> Result<(), String> {
        let LineageTarget::Http { url, .. } = &self.sink.target else { return Ok(()) };
        let body = serde_json::to_vec(&event.event).expect("run events serialize");
        let mut backoff = self.first_backoff;
        for attempt in 1..=MAX_ATTEMPTS {
            let mut request = self.client.post(url).header("content-type", "application/json").body(body.clone());
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            let error = match request.send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("`{url}` answered {}", r.status()),
                Err(e) => format!("cannot reach `{url}`: {e}"),
            };
            if patience == Patience::Once {
                return Err(error);
            }
            if attempt == MAX_ATTEMPTS {
                tracing::error!(sink = %self.sink.name, outbox_id = event.id, %error, "OpenLineage event given up");
                return Ok(());
            }
            tracing::warn!(sink = %self.sink.name, outbox_id = event.id, attempt, %error, "OpenLineage delivery failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Ok(())
    }

    /// Delivers until `shutdown` resolves, polling the outbox every second.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            // Cancelling mid-delivery is safe: the cursor moves only after an event is handled.
            let round = tokio::select! {
                round = self.deliver_pending(Patience::Retry) => round,
                _ = shutdown.changed() => return,
            };
            match round {
                Ok(Round { delivered, stopped: None }) if delivered > 0 => continue,
                Ok(_) => {}
                Err(error) => tracing::error!(sink = %self.sink.name, %error, "OpenLineage delivery stopped for a while"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The settings key of sink `name`'s position in the outbox.
fn cursor_key(name: &str) -> String {
    format!("openlineage.{name}.cursor")
}

/// Appends one line per event to `file`, creating it and its directory.
fn append_lines(file: &Path, events: &[OutboxEvent]) -> Result<(), String> {
    let mut text = Vec::new();
    for event in events {
        serde_json::to_writer(&mut text, &event.event).expect("run events serialize");
        text.push(b'\n');
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(file).map_err(|e| format!("cannot open `{}`: {e}", file.display()))?;
    out.write_all(&text).and_then(|()| out.flush()).map_err(|e| format!("cannot write `{}`: {e}", file.display()))
}
