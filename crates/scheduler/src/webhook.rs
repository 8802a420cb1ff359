//! Delivery of lifecycle events to webhooks: HTTP POST of the event as JSON, signed with
//! HMAC-SHA256, retried with exponential backoff.
//!
//! Each webhook follows the event log with its own cursor in the catalog (an outbox): events
//! appended while no server runs are delivered when one starts, and a slow or failing endpoint
//! delays only its own deliveries, never a build. Delivery is at least once, in log order;
//! receivers deduplicate by the `X-Meshwork-Event-Id` header.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use meshwork_catalog::{CatalogStore, DeliveryOutcome, DeliveryRecord, EventFilter, EventRecord};
use meshwork_core::clock::Clock;
use meshwork_core::descriptor::Webhook;
use meshwork_core::id::ProductId;
use sha2::Sha256;

use crate::SchedulerError;

/// Header carrying `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-meshwork-signature";
/// Header carrying the Unix time the signature was made at; receivers reject old ones.
pub const TIMESTAMP_HEADER: &str = "x-meshwork-timestamp";

/// The signature of `body` sent at `timestamp` with `secret`, as in [`SIGNATURE_HEADER`].
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Attempts per event before giving up on it.
const MAX_ATTEMPTS: u32 = 8;
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Delivers events to one webhook.
#[derive(Clone)]
pub struct WebhookDispatcher {
    webhook: Webhook,
    secret: Vec<u8>,
    catalog: Arc<dyn CatalogStore>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    first_backoff: Duration,
    /// Only events about this product (a subscription's webhook).
    product: Option<ProductId>,
    /// Where a new cursor starts; the end of the log when `None`.
    start_after: Option<i64>,
}

/// Never shows the secret.
impl std::fmt::Debug for WebhookDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDispatcher").field("webhook", &self.webhook.name).field("url", &self.webhook.url).finish_non_exhaustive()
    }
}

impl WebhookDispatcher {
    /// A dispatcher for `webhook`, its secret read from the environment variable it names.
    /// `first_backoff` is the wait before the first retry, doubled for each further one.
    pub fn new(webhook: Webhook, catalog: Arc<dyn CatalogStore>, clock: Arc<dyn Clock>, first_backoff: Duration) -> Result<Self, SchedulerError> {
        let secret = std::env::var(&webhook.secret_env)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SchedulerError::MissingSecret { webhook: webhook.name.clone(), variable: webhook.secret_env.clone() })?;
        Self::with_secret(webhook, secret.into_bytes(), catalog, clock, first_backoff)
    }

    /// A dispatcher for `webhook` signing with `secret` (for callers that keep secrets elsewhere
    /// than the environment).
    pub fn with_secret(webhook: Webhook, secret: Vec<u8>, catalog: Arc<dyn CatalogStore>, clock: Arc<dyn Clock>, first_backoff: Duration) -> Result<Self, SchedulerError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("meshwork/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SchedulerError::Client(e.to_string()))?;
        Ok(WebhookDispatcher { webhook, secret, catalog, clock, client, first_backoff, product: None, start_after: None })
    }

    /// The dispatcher delivering only events about `product`, starting after event
    /// `start_after` (a subscription's webhook, which is sent what happened since it was made).
    pub fn for_product(mut self, product: ProductId, start_after: i64) -> Self {
        self.product = Some(product);
        self.start_after = Some(start_after);
        self
    }

    fn cursor_key(&self) -> String {
        format!("webhook.{}.cursor", self.webhook.name)
    }

    /// Delivers every event after the webhook's cursor (attempting each until it is delivered
    /// or given up), moving the cursor past each. Returns how many events were handled. A new
    /// webhook starts at the end of the log: it receives what happens from now on.
    pub async fn deliver_pending(&self) -> Result<usize, SchedulerError> {
        let cursor = match self.catalog.setting(&self.cursor_key()).await? {
            Some(value) => value.parse().unwrap_or(0),
            None => {
                let end = match self.start_after {
                    Some(start) => start,
                    None => crate::last_event_id(self.catalog.as_ref()).await?,
                };
                self.catalog.set_setting(&self.cursor_key(), &end.to_string()).await?;
                end
            }
        };
        let events = self.catalog.events(&EventFilter { after: cursor, limit: Some(100), product: self.product.clone(), kinds: Vec::new() }).await?;
        for event in &events {
            if self.webhook.events.is_empty() || self.webhook.events.contains(&event.kind) {
                self.deliver(event).await?;
            }
            self.catalog.set_setting(&self.cursor_key(), &event.id.to_string()).await?;
        }
        Ok(events.len())
    }

    async fn deliver(&self, event: &EventRecord) -> Result<(), SchedulerError> {
        let body = serde_json::to_vec(event).expect("events serialize");
        let mut backoff = self.first_backoff;
        for attempt in 1..=MAX_ATTEMPTS {
            let timestamp = self.clock.now().timestamp();
            let response = self
                .client
                .post(&self.webhook.url)
                .header("content-type", "application/json")
                .header("x-meshwork-event", event.kind.as_str())
                .header("x-meshwork-event-id", event.id.to_string())
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, sign(&self.secret, timestamp, &body))
                .body(body.clone())
                .send()
                .await;
            let (status, error) = match response {
                Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
                Ok(r) => (Some(r.status().as_u16()), Some(format!("the endpoint answered {}", r.status()))),
                Err(e) => (None, Some(format!("cannot reach the endpoint: {e}"))),
            };
            let outcome = match (&error, attempt) {
                (None, _) => DeliveryOutcome::Delivered,
                (Some(_), a) if a == MAX_ATTEMPTS => DeliveryOutcome::Failed,
                _ => DeliveryOutcome::Retrying,
            };
            self.catalog
                .record_delivery(&DeliveryRecord {
                    webhook: self.webhook.name.clone(),
                    event_id: event.id,
                    attempt,
                    at: chrono::Utc::now(),
                    status,
                    outcome,
                    error: error.clone(),
                })
                .await?;
            if error.is_none() {
                return Ok(());
            }
            if attempt < MAX_ATTEMPTS {
                tracing::warn!(webhook = %self.webhook.name, event = event.id, attempt, error = ?error, "webhook delivery failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else {
                tracing::error!(webhook = %self.webhook.name, event = event.id, error = ?error, "webhook delivery given up");
            }
        }
        Ok(())
    }

    /// Delivers events as they are appended until `shutdown` resolves, polling every second.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            // Cancelling mid-delivery is safe: the cursor moves only after an event is handled,
            // so it is delivered again by the next server (at least once).
            let delivered = tokio::select! {
                result = self.deliver_pending() => result,
                _ = shutdown.changed() => return,
            };
            match delivered {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(error) => tracing::error!(webhook = %self.webhook.name, %error, "webhook delivery stopped for a while"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
