//! Delivery of a product's events to the webhooks of its subscriptions: one
//! [`WebhookDispatcher`] per subscription with a webhook, started when the subscription appears
//! and stopped when it is withdrawn, each following the event log with its own cursor (so a
//! slow subscriber delays only itself).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meshwork_catalog::{CatalogStore, Subscription};
use meshwork_core::clock::Clock;
use meshwork_core::descriptor::Webhook;

use crate::webhook::WebhookDispatcher;

/// How often the subscriptions are read again.
const POLL: Duration = Duration::from_secs(2);

/// Runs the webhook deliveries of every subscription.
#[derive(Clone)]
pub struct SubscriptionDeliveries {
    catalog: Arc<dyn CatalogStore>,
    clock: Arc<dyn Clock>,
    first_backoff: Duration,
}

impl std::fmt::Debug for SubscriptionDeliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionDeliveries").finish_non_exhaustive()
    }
}

/// The name a subscription's deliveries are recorded and their cursor kept under. It changes
/// when the subscription is replaced, so a new subscription starts from its own first event.
pub fn delivery_name(subscription: &Subscription) -> String {
    format!("subscription:{}:{}:{}", subscription.product, subscription.principal, subscription.created_at.timestamp_micros())
}

impl SubscriptionDeliveries {
    /// Deliveries retried with `first_backoff`, doubled per attempt, as for mesh webhooks.
    pub fn new(catalog: Arc<dyn CatalogStore>, clock: Arc<dyn Clock>, first_backoff: Duration) -> Self {
        SubscriptionDeliveries { catalog, clock, first_backoff }
    }

    /// Follows the subscriptions until `shutdown`, running one dispatcher per webhook.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut running: BTreeMap<String, (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>)> = BTreeMap::new();
        loop {
            match self.catalog.subscriptions(None).await {
                Ok(subscriptions) => {
                    let wanted: BTreeMap<String, Subscription> =
                        subscriptions.into_iter().filter(|s| s.webhook.is_some() && s.secret.is_some()).map(|s| (delivery_name(&s), s)).collect();
                    running.retain(|name, (stop, _)| {
                        let keep = wanted.contains_key(name);
                        if !keep {
                            let _ = stop.send(true);
                        }
                        keep
                    });
                    for (name, subscription) in wanted {
                        if running.contains_key(&name) {
                            continue;
                        }
                        let webhook = Webhook {
                            name: name.clone(),
                            url: subscription.webhook.clone().unwrap_or_default(),
                            secret_env: String::new(),
                            events: subscription.events.clone(),
                        };
                        let secret = subscription.secret.clone().unwrap_or_default().into_bytes();
                        match WebhookDispatcher::with_secret(webhook, secret, self.catalog.clone(), self.clock.clone(), self.first_backoff) {
                            Ok(dispatcher) => {
                                let dispatcher = dispatcher.for_product(subscription.product.clone(), subscription.after_event);
                                let (stop, stopped) = tokio::sync::watch::channel(false);
                                running.insert(name, (stop, tokio::spawn(dispatcher.run(stopped))));
                            }
                            Err(error) => tracing::error!(subscription = %name, %error, "cannot deliver a subscription's events"),
                        }
                    }
                }
                Err(error) => tracing::error!(%error, "cannot read the subscriptions; their deliveries wait"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => break,
            }
        }
        for (_, (stop, task)) in running {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}
