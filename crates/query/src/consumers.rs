//! Who depends on a product — the products built from it (lineage), the principals who read it
//! (the audit log, per interface and per major) and those who subscribed to it — and the rules
//! of subscribing. One answer for `meshwork product consumers`, the HTTP API and `plan`.

use chrono::{DateTime, Utc};
use meshwork_catalog::{CatalogStore, ProductReader, ProductRecord, Subscription};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use meshwork_core::lifecycle::kept_major;
use meshwork_core::principal::Principal;

use crate::governance::{Governance, is_owner, visible_lineage};
use crate::QueryError;

/// Everything that depends on one product (and its kept majors, `orders_v1` beside `orders`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Consumers {
    /// The product asked about.
    pub product: ProductId,
    /// The audit window, in days.
    pub window_days: f64,
    /// Products built from it that the caller may read.
    pub products: Vec<ProductId>,
    /// Principals who read it (or a kept major of it) in the window.
    pub readers: Vec<MajorReader>,
    /// Declared subscriptions to it and to its kept majors.
    pub subscribers: Vec<Subscription>,
}

/// One principal's reads over one interface of one major of a product.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MajorReader {
    /// The product read: the newest major's address, or a kept major's (`sales.orders_v1`).
    pub product: ProductId,
    /// The major it serves (from its version), when its version is semantic.
    pub major: Option<u64>,
    /// Who, where, how often, how recently.
    #[serde(flatten)]
    pub reader: ProductReader,
}

/// The published products serving majors of `record`: itself, then its kept majors, newest
/// major first.
fn majors<'r>(record: &'r ProductRecord, records: &'r [ProductRecord]) -> Vec<&'r ProductRecord> {
    let mut out = vec![record];
    let mut kept: Vec<(u64, &ProductRecord)> = records
        .iter()
        .filter(|r| r.id.domain == record.id.domain)
        .filter_map(|r| kept_major(&r.id.name).filter(|(base, _)| base == &record.id.name).map(|(_, n)| (n, r)))
        .collect();
    kept.sort_by(|a, b| b.0.cmp(&a.0));
    out.extend(kept.into_iter().map(|(_, r)| r));
    out
}

/// The consumers of `record` as `principal` may see them: lineage names only products it may
/// read. Callers check first that `principal` owns the product ([`is_owner`]).
pub async fn consumers(catalog: &dyn CatalogStore, governance: &Governance, principal: &Principal, record: &ProductRecord, since: DateTime<Utc>) -> Result<Consumers, QueryError> {
    let records = catalog.products().await?;
    let visible = governance.visible(principal, &records);
    let (_, products) = visible_lineage(catalog, &visible, &record.id).await?;
    let mut readers = Vec::new();
    let mut subscribers = Vec::new();
    for major in majors(record, &records) {
        for reader in catalog.readers(&major.id, since).await? {
            readers.push(MajorReader { product: major.id.clone(), major: major.descriptor.major(), reader });
        }
        subscribers.extend(catalog.subscriptions(Some(&major.id)).await?);
    }
    let window_days = (Utc::now() - since).num_seconds() as f64 / 86_400.0;
    Ok(Consumers { product: record.id.clone(), window_days: window_days.round(), products, readers, subscribers })
}

/// What a subscription asks for.
#[derive(Debug, Clone, Default)]
pub struct SubscribeRequest {
    /// Who subscribes; the caller when `None`.
    pub principal: Option<String>,
    /// Where to POST its events.
    pub webhook: Option<String>,
    /// Only these event kinds; empty means all.
    pub events: Vec<EventKind>,
}

/// Subscribes a principal to `record` for `caller`. Anyone who may read a product may subscribe
/// themselves; subscribing someone else is for the product's owners (and administrators), and
/// only for a principal that may read it. A webhook gets a new signing secret, returned once in
/// the result. Subscribing again replaces the earlier subscription.
pub async fn subscribe(
    catalog: &dyn CatalogStore,
    governance: &Governance,
    caller: &Principal,
    record: &ProductRecord,
    request: SubscribeRequest,
) -> Result<Subscription, QueryError> {
    let subscriber = match request.principal.as_deref() {
        None => caller.clone(),
        Some(name) if name == caller.name => caller.clone(),
        Some(name) => {
            if !is_owner(caller, &record.descriptor) {
                return Err(QueryError::Refused(format!(
                    "`{}` may not subscribe `{name}` to `{}`: subscribing someone else is for the product's owners and administrators; subscribe yourself (leave out the principal)",
                    caller.name, record.id
                )));
            }
            governance.principal(name)?
        }
    };
    if !governance.decide_stored(&subscriber, record).allowed {
        return Err(QueryError::Refused(format!(
            "`{}` may not read `{}`, so it cannot subscribe to it; grant it in the product's access block first",
            subscriber.name, record.id
        )));
    }
    let webhook = request.webhook.map(|url| checked_webhook(&url)).transpose()?;
    let secret = webhook.as_ref().map(|_| {
        let bytes: [u8; 32] = rand::random();
        hex::encode(bytes)
    });
    let subscription = Subscription {
        product: record.id.clone(),
        principal: subscriber.name.clone(),
        webhook,
        events: request.events,
        secret,
        created_at: Utc::now(),
        created_by: caller.name.clone(),
        after_event: catalog.last_event_id().await?,
    };
    catalog.subscribe(&subscription).await?;
    Ok(subscription)
}

/// Removes `principal`'s subscription to `record` (the caller's when `None`), with the same
/// rule as [`subscribe`]. `false` when there was none.
pub async fn unsubscribe(catalog: &dyn CatalogStore, caller: &Principal, record: &ProductRecord, principal: Option<&str>) -> Result<bool, QueryError> {
    let name = principal.unwrap_or(&caller.name);
    if name != caller.name && !is_owner(caller, &record.descriptor) {
        return Err(QueryError::Refused(format!(
            "`{}` may not unsubscribe `{name}` from `{}`: that is for the product's owners and administrators",
            caller.name, record.id
        )));
    }
    Ok(catalog.unsubscribe(&record.id, name).await?)
}

/// A webhook URL as stored: `http` or `https`, with a host, without credentials (a secret in a
/// URL ends up in logs; the payload is signed instead).
fn checked_webhook(text: &str) -> Result<String, QueryError> {
    let url = url::Url::parse(text).map_err(|e| QueryError::Invalid(format!("webhook `{text}` is not a URL ({e}); write e.g. `https://hooks.example.com/meshwork`")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(QueryError::Invalid(format!("webhook `{text}` must be an `http://` or `https://` URL with a host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(QueryError::Invalid(format!(
            "webhook `{}` carries credentials; remove them: deliveries are signed with the subscription's secret (header `x-meshwork-signature`)",
            url.host_str().unwrap_or_default()
        )));
    }
    Ok(url.to_string())
}
