//! `meshwork product consumers`, `subscribe`, `unsubscribe` and `subscriptions`: who depends on
//! a product — the products built from it, the principals who queried it (per interface and
//! major, from the audit log) and its subscribers — and declaring interest in a product.

use std::path::Path;

use anyhow::ensure;
use meshwork_catalog::Subscription;
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;

use crate::commands::{open_as, visible_record};
use crate::ReportFormat;
use crate::output::text_table;

/// `meshwork product consumers NAME [--window 30d]`.
pub async fn product_consumers(dir: &Path, principal: Option<&str>, name: &str, window: std::time::Duration, format: ReportFormat) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let record = visible_record(catalog.as_ref(), &governance, &principal, name).await?;
    let id = &record.id;
    ensure!(
        meshwork_query::is_owner(&principal, &record.descriptor),
        "`meshwork product consumers {id}` is for the product's owner, members of domain `{}` and administrators; `{}` is none of them",
        id.domain,
        principal.name
    );
    let since = chrono::Utc::now() - chrono::Duration::from_std(window)?;
    let consumers = meshwork_query::consumers(catalog.as_ref(), &governance, &principal, &record, since).await?;
    if format == ReportFormat::Json {
        println!("{}", serde_json::to_string_pretty(&consumers)?);
        return Ok(());
    }
    let days = consumers.window_days;
    if consumers.products.is_empty() {
        println!("{id}: no product is built from it");
    } else {
        let names: Vec<String> = consumers.products.iter().map(ToString::to_string).collect();
        println!("{id}: built into {}", names.join(", "));
    }
    if consumers.readers.is_empty() {
        println!("no audited query read it in the last {days} days");
    } else {
        println!("read in the last {days} days by:");
        let rows: Vec<Vec<String>> = consumers
            .readers
            .iter()
            .map(|r| {
                vec![
                    r.reader.principal.clone(),
                    r.reader.interface.clone(),
                    r.product.to_string(),
                    r.major.map_or_else(|| "-".into(), |m| m.to_string()),
                    r.reader.queries.to_string(),
                    meshwork_catalog::time::format(&r.reader.last_read),
                ]
            })
            .collect();
        print!("{}", text_table(&["PRINCIPAL", "INTERFACE", "PRODUCT", "MAJOR", "QUERIES", "LAST READ"], &rows));
    }
    if consumers.subscribers.is_empty() {
        println!("no subscribers");
    } else {
        println!("subscribers:");
        print!("{}", subscription_table(&consumers.subscribers));
    }
    Ok(())
}

fn subscription_table(subscriptions: &[Subscription]) -> String {
    let rows: Vec<Vec<String>> = subscriptions
        .iter()
        .map(|s| {
            let events = if s.events.is_empty() { "all".to_owned() } else { s.events.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",") };
            vec![s.principal.clone(), s.product.to_string(), events, s.webhook.clone().unwrap_or_else(|| "-".into()), meshwork_catalog::time::format(&s.created_at)]
        })
        .collect();
    text_table(&["PRINCIPAL", "PRODUCT", "EVENTS", "WEBHOOK", "SINCE"], &rows)
}

/// `meshwork subscribe PRODUCT [--principal P] [--webhook URL] [--events k,k]`.
pub async fn subscribe(
    dir: &Path,
    principal: Option<&str>,
    name: &str,
    subscriber: Option<String>,
    webhook: Option<String>,
    events: &[String],
    format: ReportFormat,
) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let record = visible_record(catalog.as_ref(), &governance, &principal, name).await?;
    let events = events.iter().map(|e| EventKind::named(e).map_err(|m| anyhow::anyhow!("`--events`: {m}"))).collect::<anyhow::Result<Vec<_>>>()?;
    let request = meshwork_query::SubscribeRequest { principal: subscriber, webhook, events };
    let subscription = meshwork_query::subscribe(catalog.as_ref(), &governance, &principal, &record, request).await?;
    if format == ReportFormat::Json {
        let mut json = serde_json::to_value(&subscription)?;
        json["secret"] = serde_json::json!(subscription.secret);
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("`{}` is subscribed to {}", subscription.principal, subscription.product);
    if let (Some(url), Some(secret)) = (&subscription.webhook, &subscription.secret) {
        println!("events are POSTed to {url}, signed (header `x-meshwork-signature`) with this secret, shown once:\n{secret}");
        println!("deliveries are made by `meshwork serve`");
    }
    Ok(())
}

/// `meshwork unsubscribe PRODUCT [--principal P]`.
pub async fn unsubscribe(dir: &Path, principal: Option<&str>, name: &str, subscriber: Option<&str>) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let id: ProductId = name.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let who = subscriber.unwrap_or(&principal.name).to_owned();
    ensure!(
        meshwork_query::unsubscribe(catalog.as_ref(), &governance, &principal, &id, subscriber).await?,
        "`{who}` has no subscription to `{id}`; `meshwork subscriptions` lists yours"
    );
    println!("`{who}` is no longer subscribed to {id}");
    Ok(())
}

/// `meshwork subscriptions [--product P]`.
pub async fn subscriptions(dir: &Path, principal: Option<&str>, product: Option<&str>, format: ReportFormat) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let (listed, owner) = match product {
        Some(name) => {
            let record = visible_record(catalog.as_ref(), &governance, &principal, name).await?;
            (catalog.subscriptions(Some(&record.id)).await?, meshwork_query::is_owner(&principal, &record.descriptor))
        }
        None => (catalog.subscriptions(None).await?, false),
    };
    let records = catalog.products().await?;
    let visible = governance.visible(&principal, &records);
    let shown: Vec<Subscription> =
        listed.into_iter().filter(|s| (owner || s.principal == principal.name) && visible.iter().any(|r| r.id == s.product)).collect();
    if format == ReportFormat::Json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else if shown.is_empty() {
        println!("no subscriptions");
    } else {
        print!("{}", subscription_table(&shown));
    }
    Ok(())
}
