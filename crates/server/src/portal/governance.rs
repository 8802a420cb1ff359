//! The governance dashboard (`/governance`): every policy with its state (off, warn, enforce)
//! per domain, the current findings by domain and product, and their trend over applies.
//!
//! Findings come from the audit events applies and refreshes write: each names every product
//! it evaluated, its outcome and the governance policies that found a violation in it. A
//! product's current findings are those of the newest event that evaluated it; the trend counts
//! findings per domain in each full apply. Every signed-in principal sees the policies and
//! their states; findings are listed and counted only for products the viewer may read, so the
//! totals never reveal a hidden product.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use meshwork_catalog::AuditEvent;
use meshwork_core::descriptor::PolicyState;
use meshwork_core::id::{DomainName, ProductId};
use meshwork_policy::{PolicyKind, PolicyScope, PolicySet, PolicyStates};

use super::chart;
use super::error::PortalError;
use super::layout::{Nav, page};
use super::product::readable_products;
use super::sections::when;
use super::viewer::Viewer;
use crate::gate::Gate;

/// Applies and refreshes read from the audit log.
const EVENTS: u32 = 200;
/// Full applies drawn in a domain's trend.
const TREND: usize = 20;

/// The dashboard's route.
pub(super) fn routes() -> Router<Arc<Gate>> {
    Router::new().route("/governance", get(dashboard))
}

/// One policy's state in each domain (`None` where it does not apply).
pub(super) struct PolicyRow {
    id: String,
    kind: PolicyKind,
    global: bool,
    states: Vec<Option<PolicyState>>,
}

/// A finding still current: the newest evaluation of `product` found `policy` violated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    pub(super) product: ProductId,
    pub(super) policy: String,
    /// The policy's state for the product's domain now (`None` for checks that are not
    /// policies, such as a refused upstream read).
    pub(super) state: Option<PolicyState>,
    /// What the evaluation did with the product (`published`, `refused`, `unchanged`, …).
    pub(super) outcome: String,
    pub(super) at: DateTime<Utc>,
}

/// The dashboard's content for one viewer.
pub(super) struct Dashboard {
    domains: Vec<DomainName>,
    policies: Vec<PolicyRow>,
    findings: Vec<Finding>,
    /// Per domain, the findings in each full apply, oldest first: `(apply time, count)`.
    trend: BTreeMap<DomainName, Vec<(DateTime<Utc>, u64)>>,
}

async fn dashboard(State(gate): State<Arc<Gate>>, viewer: Viewer) -> Result<Markup, PortalError> {
    let catalog = gate.engine().catalog();
    let (visible, governance) = readable_products(&gate, &viewer.identity.principal).await?;
    let domains: Vec<DomainName> = catalog.domains().await?.into_iter().map(|d| d.name).collect();
    let events = catalog.applies(EVENTS).await?;
    let shown: HashSet<ProductId> = visible.into_iter().map(|r| r.id).collect();
    let authorizer = governance.authorizer();
    let dashboard = Dashboard::new(domains, authorizer.policies(), authorizer.states(), &events, |p| shown.contains(p));
    Ok(page("Governance", Some(&viewer), Nav::Governance, dashboard.render()))
}

/// An audit entry of an apply that is a product's evaluation, not an upstream read made by a
/// build (those carry an access decision, `allow` or `deny`).
fn evaluated(decision: &str) -> bool {
    !matches!(decision, "allow" | "deny")
}

impl Dashboard {
    /// The dashboard over `policies` in `states`, from apply and refresh audit `events` (newest
    /// first), naming only products `visible` accepts.
    pub(super) fn new(domains: Vec<DomainName>, policies: &PolicySet, states: &PolicyStates, events: &[AuditEvent], visible: impl Fn(&ProductId) -> bool) -> Dashboard {
        let mut rows: Vec<PolicyRow> = policies
            .policies()
            .iter()
            .map(|p| PolicyRow {
                id: p.source.id(),
                kind: p.kind,
                global: p.source.scope == PolicyScope::Global,
                states: domains.iter().map(|d| p.applies_to(d).then(|| states.state(p, d))).collect(),
            })
            .collect();
        rows.sort_by_key(|r| (r.kind == PolicyKind::Access, !r.global, r.id.clone()));
        let state_of = |policy: &str, domain: &DomainName| policies.get(policy).filter(|p| p.applies_to(domain)).map(|p| states.state(p, domain));

        let mut seen: HashSet<ProductId> = HashSet::new();
        let mut findings = Vec::new();
        for event in events {
            for entry in event.products.iter().filter(|e| evaluated(&e.decision)) {
                let Ok(product) = entry.product.parse::<ProductId>() else { continue };
                if !visible(&product) || !seen.insert(product.clone()) {
                    continue;
                }
                // A policy reports each violation; a finding is one policy on one product.
                let mut policies: Vec<&String> = entry.policies.iter().collect();
                policies.sort();
                policies.dedup();
                for policy in policies {
                    findings.push(Finding { product: product.clone(), policy: policy.clone(), state: state_of(policy, &product.domain), outcome: entry.decision.clone(), at: event.at });
                }
            }
        }
        findings.sort_by(|a, b| (&a.product, &a.policy).cmp(&(&b.product, &b.policy)));

        let applies: Vec<&AuditEvent> = events.iter().filter(|e| e.action == "apply").take(TREND).collect();
        let mut trend: BTreeMap<DomainName, Vec<(DateTime<Utc>, u64)>> = BTreeMap::new();
        for (i, event) in applies.iter().rev().enumerate() {
            for entry in event.products.iter().filter(|e| evaluated(&e.decision) && !e.policies.is_empty()) {
                let Ok(product) = entry.product.parse::<ProductId>() else { continue };
                if !visible(&product) {
                    continue;
                }
                let series = trend.entry(product.domain.clone()).or_insert_with(|| applies.iter().rev().map(|e| (e.at, 0)).collect());
                series[i].1 += entry.policies.iter().collect::<HashSet<_>>().len() as u64;
            }
        }
        Dashboard { domains, policies: rows, findings, trend }
    }

    /// The dashboard page's content.
    pub(super) fn render(&self) -> Markup {
        let products: HashSet<&ProductId> = self.findings.iter().map(|f| &f.product).collect();
        let mut by_domain: BTreeMap<&DomainName, Vec<&Finding>> = BTreeMap::new();
        for f in &self.findings {
            by_domain.entry(&f.product.domain).or_default().push(f);
        }
        let mut with_trend: Vec<&DomainName> = by_domain.keys().copied().chain(self.trend.keys()).collect();
        with_trend.sort();
        with_trend.dedup();
        html! {
            h1 { "Governance" }
            section #policies aria-labelledby="policies-h" {
                h2 #policies-h { "Policies" }
                p { "The state of every policy for each domain's products: " span.badge.state-off { "off" } " not evaluated, " span.badge.state-warn { "warn" } " reported, " span.badge.state-enforce { "enforce" } " blocks publishing (governance) or restricts reads (access)." }
                div.table-scroll tabindex="0" role="region" aria-label="Policy states by domain" {
                    table.policy-states {
                        thead {
                            tr {
                                th scope="col" { "Policy" } th scope="col" { "Kind" }
                                @for d in &self.domains { th scope="col" { a href=(format!("/domains/{d}")) { (d) } } }
                            }
                        }
                        tbody {
                            @for row in &self.policies {
                                tr {
                                    th scope="row" { code { (row.id) } }
                                    td { (row.kind.as_str()) }
                                    @for state in &row.states {
                                        td { @match state { Some(s) => span class=(format!("badge state-{s}")) { (s) }, None => span.muted title="another domain's policy" { "—" } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section #findings aria-labelledby="findings-h" {
                h2 #findings-h { "Findings" }
                @if !self.findings.is_empty() {
                    p.summary { (self.findings.len()) " current findings on " (products.len()) " products you can read, from the newest apply or refresh of each." }
                }
                @for domain in with_trend {
                    section.domain-findings aria-labelledby=(format!("findings-{domain}")) {
                        h3 id=(format!("findings-{domain}")) { a href=(format!("/domains/{domain}")) { (domain) } }
                        @if let Some(series) = self.trend.get(domain) {
                            figure.trend {
                                (chart::bars(&format!("findings in {domain}"), &series.iter().map(|(at, n)| (at.format("%Y-%m-%d %H:%M UTC").to_string(), *n)).collect::<Vec<_>>()))
                                figcaption { "Findings in each of the last " (series.len()) " applies, oldest first." }
                            }
                        }
                        @match by_domain.get(domain) {
                            None => p { "No current findings." },
                            Some(list) => {
                                div.table-scroll tabindex="0" role="region" aria-label=(format!("Findings in {domain}")) {
                                    table.findings {
                                        thead { tr { th scope="col" { "Product" } th scope="col" { "Policy" } th scope="col" { "State now" } th scope="col" { "Outcome" } th scope="col" { "Evaluated" } } }
                                        tbody {
                                            @for f in list {
                                                tr {
                                                    th scope="row" { a href=(format!("/products/{}", f.product)) { (f.product) } }
                                                    td { code { (f.policy) } }
                                                    td { @match f.state { Some(s) => span class=(format!("badge state-{s}")) { (s) }, None => span.badge.state-enforce { "enforce" } } }
                                                    td { (f.outcome) }
                                                    td { (when(&f.at)) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if self.findings.is_empty() && self.trend.is_empty() {
                    p { "No findings on products you can read." }
                }
            }
        }
    }
}
