//! Service level objectives, measured: freshness, completeness and availability of each
//! product against its `slo:` block, with status, history and error budget in the catalog.
//!
//! Status of one objective:
//! - `violated` when the measurement breaks the objective now;
//! - `at_risk` when it is within 20 % of the threshold (e.g. data older than 80 % of the
//!   allowed age), or less than a quarter of the window's error budget is left;
//! - `met` otherwise; `unknown` when it cannot be measured (no published version).
//!
//! Error budget over `slo.window`: freshness and completeness may be violated in
//! `100 − slo.target` % of the window's evaluations; availability may fail
//! `100 − slo.availability` % of the product's audited queries. The remaining share is
//! `1 − spent / allowed` (negative when overspent).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use datafusion::prelude::SessionContext;
use meshwork_catalog::{CatalogStore, NewEvent, Objective, SloCheck, SloStatus};
use meshwork_core::event::EventKind;
use meshwork_core::clock::Clock;
use meshwork_core::descriptor::{CompletenessMeasure, Slo};
use meshwork_core::id::ProductId;
use meshwork_core::principal::Principal;
use meshwork_pipeline::quality::{human_age, quote};
use meshwork_query::{DomainReads, DomainSession, Governance};
use meshwork_storage::ProductStore;

use crate::{SchedulerError, published_descriptors};

/// Runs SLO evaluations and records them.
#[derive(Clone)]
pub struct SloEvaluator {
    catalog: Arc<dyn CatalogStore>,
    clock: Arc<dyn Clock>,
}

impl SloEvaluator {
    /// An evaluator over the catalog's published products.
    pub fn new(catalog: Arc<dyn CatalogStore>, clock: Arc<dyn Clock>) -> SloEvaluator {
        SloEvaluator { catalog, clock }
    }

    /// Evaluates every published product's SLOs now, stores the checks, and appends
    /// `product.slo_violated` / `product.slo_recovered` events on changes of status.
    pub async fn evaluate_all(&self) -> Result<Vec<SloCheck>, SchedulerError> {
        let mut all = Vec::new();
        let governance = Governance::load(self.catalog.as_ref()).await?;
        for (id, descriptor) in published_descriptors(self.catalog.as_ref()).await? {
            let Some(slo) = &descriptor.slo else { continue };
            let before = self.catalog.latest_slo_checks(&id).await?;
            let checks = evaluate_product(self.catalog.as_ref(), &governance, &id, slo, self.clock.now()).await?;
            let mut events = Vec::new();
            for check in &checks {
                let was = before.iter().find(|b| b.objective == check.objective).map(|b| b.status);
                let details = serde_json::json!({
                    "objective": check.objective, "status": check.status, "value": check.value,
                    "threshold": check.threshold, "budget_remaining": check.budget_remaining, "message": check.message,
                });
                if check.status == SloStatus::Violated && was != Some(SloStatus::Violated) {
                    events.push(NewEvent { kind: EventKind::SloViolated, product: Some(id.clone()), payload: details });
                } else if was == Some(SloStatus::Violated) && matches!(check.status, SloStatus::Met | SloStatus::AtRisk) {
                    events.push(NewEvent { kind: EventKind::SloRecovered, product: Some(id.clone()), payload: details });
                }
            }
            self.catalog.record_slo_checks(&checks).await?;
            if !events.is_empty() {
                self.catalog.append_events(&events).await?;
            }
            all.extend(checks);
        }
        Ok(all)
    }

    /// Evaluates every `interval` until `shutdown` resolves.
    pub async fn run(self, interval: std::time::Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.evaluate_all().await {
                tracing::error!(%error, "SLO evaluation failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Share of the error budget left: `1 − spent / allowed`.
fn budget(spent: f64, total: f64, allowed_share: f64) -> Option<f64> {
    if total <= 0.0 {
        return Some(1.0);
    }
    let allowed = total * allowed_share;
    if allowed <= 0.0 {
        return Some(if spent > 0.0 { -1.0 } else { 1.0 });
    }
    Some(1.0 - spent / allowed)
}

/// Budget left for an objective measured by evaluations: past checks in the window plus this one.
async fn evaluation_budget(catalog: &dyn CatalogStore, id: &ProductId, objective: Objective, slo: &Slo, now: DateTime<Utc>, violated_now: bool) -> Result<Option<f64>, SchedulerError> {
    let since = now - Duration::seconds(slo.window.seconds as i64);
    let past = catalog.slo_checks(id, since, 1_000_000).await?;
    let past: Vec<&SloCheck> = past.iter().filter(|c| c.objective == objective && c.status != SloStatus::Unknown).collect();
    let total = past.len() as f64 + 1.0;
    let spent = past.iter().filter(|c| c.status == SloStatus::Violated).count() as f64 + f64::from(u8::from(violated_now));
    Ok(budget(spent, total, 1.0 - slo.target / 100.0))
}

fn status(violated: bool, near: bool, budget: Option<f64>) -> SloStatus {
    if violated {
        SloStatus::Violated
    } else if near || budget.is_some_and(|b| b < 0.25) {
        SloStatus::AtRisk
    } else {
        SloStatus::Met
    }
}

/// Measures each objective of one product at `now`. Completeness against an upstream counts
/// the upstream rows the product's domain may read (`governance` decides, as for its build).
pub async fn evaluate_product(catalog: &dyn CatalogStore, governance: &Governance, id: &ProductId, slo: &Slo, now: DateTime<Utc>) -> Result<Vec<SloCheck>, SchedulerError> {
    let version = catalog.current_version(id).await?;
    let check = |objective: Objective, status: SloStatus, value: Option<f64>, threshold: f64, budget_remaining: Option<f64>, message: String| SloCheck {
        product: id.clone(),
        objective,
        at: now,
        status,
        value,
        threshold,
        budget_remaining,
        message,
    };
    let mut checks = Vec::new();
    let Some(version) = version else {
        for objective in objectives(slo) {
            checks.push(check(objective, SloStatus::Unknown, None, 0.0, None, "the product has no published version".into()));
        }
        return Ok(checks);
    };

    if let Some(max_age) = slo.freshness {
        let max = max_age.seconds as f64;
        let newest = match &slo.freshness_column {
            // A virtual product is not published as its rows change: only a column tells.
            None if version.remote.is_some() => None,
            None => Some((version.published_at, "last publish".to_owned())),
            Some(column) => newest_value(catalog, id, column).await.map(|t| (t, format!("newest `{column}`"))),
        };
        match newest {
            Some((newest, what)) => {
                let age = (now - newest).num_seconds().max(0) as f64;
                let violated = age > max;
                let budget = evaluation_budget(catalog, id, Objective::Freshness, slo, now, violated).await?;
                let message = format!("{what} is {} old (at most {} allowed)", human_age(age as u64), human_age(max_age.seconds));
                checks.push(check(Objective::Freshness, status(violated, age > 0.8 * max, budget), Some(age), max, budget, message));
            }
            None => {
                let why = match &slo.freshness_column {
                    None => "a virtual product's freshness is measured by a column of its rows: set `slo.freshness.column`",
                    Some(_) => "the freshness column has no value, or the product's database did not answer",
                };
                checks.push(check(Objective::Freshness, SloStatus::Unknown, None, max, None, why.into()));
            }
        }
    }

    if let Some(completeness) = &slo.completeness {
        let min = completeness.min_ratio;
        let measured = match &completeness.measure {
            CompletenessMeasure::NonNull { column } => {
                non_null_ratio(catalog, id, column).await.map(|r| (r, format!("`{column}` is filled in"))).ok_or_else(|| "cannot be measured now".to_owned())
            }
            CompletenessMeasure::UpstreamRows { upstream } => match upstream_rows(catalog, governance, id, upstream).await {
                Ok(rows) if rows > 0 => Ok((version.row_count as f64 / rows as f64, format!("rows against `{upstream}`"))),
                Ok(_) => Ok((1.0, format!("rows against `{upstream}` (which is empty)"))),
                Err(reason) => Err(reason),
            },
        };
        match measured {
            Ok((ratio, what)) => {
                let violated = ratio < min;
                let budget = evaluation_budget(catalog, id, Objective::Completeness, slo, now, violated).await?;
                let near = ratio < min + (1.0 - min) * 0.2;
                let message = format!("{:.2} % {what} (at least {:.2} % required)", ratio * 100.0, min * 100.0);
                checks.push(check(Objective::Completeness, status(violated, near, budget), Some(ratio), min, budget, message));
            }
            Err(reason) => checks.push(check(Objective::Completeness, SloStatus::Unknown, None, min, None, reason)),
        }
    }

    if let Some(target) = slo.availability {
        let since = now - Duration::seconds(slo.window.seconds as i64);
        let (ok, failed) = catalog.query_outcomes(id, since).await?;
        let total = (ok + failed) as f64;
        let budget = budget(failed as f64, total, 1.0 - target / 100.0);
        if total == 0.0 {
            checks.push(check(Objective::Availability, SloStatus::Met, None, target, budget, "no queries in the window".into()));
        } else {
            let share = ok as f64 * 100.0 / total;
            let message = format!("{ok} of {} queries succeeded ({share:.3} %, at least {target} % required)", ok + failed);
            checks.push(check(Objective::Availability, status(share < target, false, budget), Some(share), target, budget, message));
        }
    }
    Ok(checks)
}

fn objectives(slo: &Slo) -> Vec<Objective> {
    let mut out = Vec::new();
    if slo.freshness.is_some() {
        out.push(Objective::Freshness);
    }
    if slo.completeness.is_some() {
        out.push(Objective::Completeness);
    }
    if slo.availability.is_some() {
        out.push(Objective::Availability);
    }
    out
}

/// Rows of `upstream` that the domain of `id` may read: the same decision, filter and masks as
/// its builds. Refused or unpublished upstreams cannot be measured, and say why.
async fn upstream_rows(catalog: &dyn CatalogStore, governance: &Governance, id: &ProductId, upstream: &ProductId) -> Result<u64, String> {
    let domains = catalog.domains().await.map_err(|e| e.to_string())?;
    let declared = domains.into_iter().find(|d| d.name == id.domain).map(|d| d.principal).unwrap_or_default();
    let principal = Principal::domain(&id.domain, &declared);
    let reads = DomainReads { products: vec![upstream.clone()], ..Default::default() };
    let session = DomainSession::open(catalog, governance, principal, &reads).await.map_err(|e| format!("cannot be measured: {e}"))?;
    let sql = format!("SELECT count(*) FROM {}.{}", quote(upstream.domain.as_str()), quote(upstream.name.as_str()));
    let batches = session.sql(&sql).await.map_err(|e| e.to_string())?.collect().await.map_err(|e| e.to_string())?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).ok_or("the count returned no row")?;
    match datafusion::common::ScalarValue::try_from_array(batch.column(0), 0) {
        Ok(datafusion::common::ScalarValue::Int64(Some(n))) => Ok(n.max(0) as u64),
        other => Err(format!("unexpected count {other:?}")),
    }
}

async fn scalar_query(catalog: &dyn CatalogStore, id: &ProductId, sql: &str) -> Option<Vec<datafusion::arrow::record_batch::RecordBatch>> {
    let record = catalog.product(id).await.ok()??;
    let version = catalog.current_version(id).await.ok()??;
    let ctx = SessionContext::new();
    ctx.add_optimizer_rule(std::sync::Arc::new(meshwork_query::RemoteAggregateRule));
    // A virtual product is measured on its database (`max` and `count` are sent there).
    let provider: std::sync::Arc<dyn datafusion::catalog::TableProvider> = match meshwork_query::virtual_table(&version) {
        Some(remote) => remote,
        None => {
            let url = url::Url::parse(&record.table_uri).ok()?;
            let table = ProductStore::open_table_at(&url, version.delta_version).await.ok()?;
            ProductStore::table_provider(&table, &ctx.state()).await.ok()?
        }
    };
    ctx.register_table("this", provider).ok()?;
    ctx.sql(sql).await.ok()?.collect().await.ok()
}

async fn newest_value(catalog: &dyn CatalogStore, id: &ProductId, column: &str) -> Option<DateTime<Utc>> {
    let batches = scalar_query(catalog, id, &format!("SELECT CAST(max({}) AS TIMESTAMP) FROM this", quote(column))).await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    match datafusion::common::ScalarValue::try_from_array(batch.column(0), 0).ok()? {
        datafusion::common::ScalarValue::TimestampNanosecond(Some(ns), _) => Some(DateTime::<Utc>::from_timestamp_nanos(ns)),
        datafusion::common::ScalarValue::TimestampMicrosecond(Some(us), _) => DateTime::<Utc>::from_timestamp_micros(us),
        _ => None,
    }
}

async fn non_null_ratio(catalog: &dyn CatalogStore, id: &ProductId, column: &str) -> Option<f64> {
    let batches = scalar_query(catalog, id, &format!("SELECT count(*), count({}) FROM this", quote(column))).await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    let get = |i: usize| match datafusion::common::ScalarValue::try_from_array(batch.column(i), 0).ok()? {
        datafusion::common::ScalarValue::Int64(Some(n)) => Some(n as f64),
        _ => None,
    };
    let (rows, filled) = (get(0)?, get(1)?);
    Some(if rows == 0.0 { 1.0 } else { filled / rows })
}
