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
    // An owner may subscribe someone, but not take over a subscription they made themselves.
    if subscriber.name != caller.name
        && let Some(existing) = catalog.subscriptions(Some(&record.id)).await?.into_iter().find(|s| s.principal == subscriber.name)
        && existing.created_by == existing.principal
    {
        return Err(QueryError::Refused(format!(
            "`{}` subscribed to `{}` themselves; only they can change that subscription",
            subscriber.name, record.id
        )));
    }
    let webhook = match request.webhook {
        Some(url) => Some(checked_webhook(&url, caller.admin).await?),
        None => None,
    };
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

/// Removes `principal`'s subscription to `product` (the caller's when `None`). Anyone may
/// withdraw their own, even from a product they can no longer see; withdrawing someone else's
/// is for the owners of a product they can see (and administrators). `false` when there was
/// none (also for someone else's subscription to a product the caller cannot see).
pub async fn unsubscribe(catalog: &dyn CatalogStore, governance: &Governance, caller: &Principal, product: &ProductId, principal: Option<&str>) -> Result<bool, QueryError> {
    let name = principal.unwrap_or(&caller.name);
    if name != caller.name {
        let records = catalog.products().await?;
        let Some(record) = governance.visible(caller, &records).into_iter().find(|r| &r.id == product) else { return Ok(false) };
        if !is_owner(caller, &record.descriptor) {
            return Err(QueryError::Refused(format!(
                "`{}` may not unsubscribe `{name}` from `{product}`: that is for the product's owners and administrators",
                caller.name
            )));
        }
    }
    Ok(catalog.unsubscribe(product, name).await?)
}

/// A webhook URL as stored: `http` or `https`, with a host, without credentials (a secret in a
/// URL ends up in logs; the payload is signed instead). Only administrators may point one at
/// this machine or the private network (loopback, private, link-local, unique-local or
/// unspecified addresses, by name or by number): a consumer must not make the server call
/// what only it can reach. Deliveries follow no redirects.
async fn checked_webhook(text: &str, admin: bool) -> Result<String, QueryError> {
    let url = url::Url::parse(text).map_err(|e| QueryError::Invalid(format!("webhook `{text}` is not a URL ({e}); write e.g. `https://hooks.example.com/meshwork`")))?;
    let Some(host) = url.host_str().map(str::to_owned).filter(|_| matches!(url.scheme(), "http" | "https")) else {
        return Err(QueryError::Invalid(format!("webhook `{text}` must be an `http://` or `https://` URL with a host")));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(QueryError::Invalid(format!(
            "webhook `{host}` carries credentials; remove them: deliveries are signed with the subscription's secret (header `x-meshwork-signature`)"
        )));
    }
    if !admin {
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| QueryError::Invalid(format!("webhook host `{host}` does not resolve ({e}); check the name")))?
            .collect();
        if addresses.is_empty() || addresses.iter().any(|a| internal(a.ip())) {
            return Err(QueryError::Refused(format!(
                "webhook host `{host}` is on this machine or a private network; only administrators may subscribe a webhook there"
            )));
        }
    }
    Ok(url.to_string())
}

/// Whether `ip` is on this machine or a private network.
fn internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64,
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.to_ipv4_mapped().is_some_and(|v4| internal(v4.into()))
        }
    }
}
