//! The product page (`/products/{domain.product}`) and its column lineage fragment: everything
//! one viewer may know about a product they may read, loaded through the same access decision
//! as their queries. A product they may not read answers exactly like a missing one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use maud::{Markup, html};
use meshwork_catalog::{AccessRequestFilter, AccessRequestStatus, Grant, ProductRecord, QualityRun, SloCheck, VersionRecord};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::ProductId;
use meshwork_core::lineage::ProductLineage;
use meshwork_core::principal::Principal;
use meshwork_policy::AccessDecision;
use meshwork_query::{Consumers, Governance, is_owner};

use super::access;
use super::connect::Endpoints;
use super::error::PortalError;
use super::graph::LineageGraph;
use super::layout::{Nav, page};
use super::sections;
use super::viewer::Viewer;
use crate::error::ServeError;
use crate::gate::Gate;

/// Quality runs listed on the page.
const QUALITY_RUNS: u32 = 10;
/// How far back the consumers section looks for readers.
const READERS_DAYS: i64 = 30;
/// SLO evaluations drawn per objective at most.
const SLO_POINTS: u32 = 2_000;

/// The product page's routes.
pub(super) fn routes() -> Router<Arc<Gate>> {
    Router::new().route("/products/{product}", get(product_page)).route("/products/{product}/lineage/columns", get(column_lineage))
}

/// The published products `principal` may read, by address, and the governance that decided.
pub(super) async fn readable_products(gate: &Gate, principal: &Principal) -> Result<(Vec<ProductRecord>, Arc<Governance>), ServeError> {
    let governance = gate.engine().governance().await?;
    let records = gate.engine().catalog().products().await?;
    let visible = governance.visible(principal, &records).into_iter().cloned().collect();
    Ok((visible, governance))
}

/// A product the viewer may read, with what decided it.
pub(super) struct Readable {
    /// The product as published.
    pub(super) record: ProductRecord,
    /// Every product the viewer may read (the product included).
    pub(super) visible: Vec<ProductRecord>,
    /// The governance that decided.
    pub(super) governance: Arc<Governance>,
}

impl Readable {
    /// Whether the viewer may read `id`.
    pub(super) fn shows(&self, id: &ProductId) -> bool {
        self.visible.iter().any(|r| &r.id == id)
    }

    /// The descriptor as this viewer may see it: no input, rule or successor naming a product
    /// hidden from them.
    pub(super) fn descriptor(&self) -> ProductDescriptor {
        self.record.descriptor.clone().without_hidden_products(|p| self.shows(p))
    }
}

/// The product `text` names, if `principal` may read it; `None` for a malformed address, a
/// missing product and a hidden one alike.
pub(super) async fn readable(gate: &Gate, principal: &Principal, text: &str) -> Result<Option<Readable>, ServeError> {
    let Ok(id) = text.parse::<ProductId>() else { return Ok(None) };
    let (visible, governance) = readable_products(gate, principal).await?;
    let Some(record) = visible.iter().find(|r| r.id == id).cloned() else { return Ok(None) };
    Ok(Some(Readable { record, visible, governance }))
}

/// What a product page shows, loaded for one viewer.
pub(super) struct ProductPage {
    /// The product.
    pub(super) record: ProductRecord,
    /// Its descriptor without products hidden from the viewer.
    pub(super) descriptor: ProductDescriptor,
    /// The viewer's access decision: their masks and row filters.
    pub(super) decision: AccessDecision,
    /// Whether the viewer owns it (administrator, domain member or named owner).
    pub(super) owner: bool,
    /// Published versions, newest first.
    pub(super) versions: Vec<VersionRecord>,
    /// Quality runs, newest first, rules about hidden products left out, samples through policy.
    pub(super) quality: Vec<QualityRun>,
    /// The newest evaluation of each objective.
    pub(super) slo_latest: Vec<SloCheck>,
    /// Evaluations over the SLO window, for the budget charts.
    pub(super) slo_history: Vec<SloCheck>,
    /// Whether SLO messages may be shown (not when completeness is measured against a product
    /// hidden from the viewer: its message names it).
    pub(super) slo_messages: bool,
    /// Lineage around the product, visible products only.
    pub(super) lineage: LineageGraph,
    /// Who depends on it; owners only.
    pub(super) consumers: Option<Consumers>,
    /// This server's addresses as the viewer reaches them; `None` outside `serve`.
    pub(super) endpoints: Option<Endpoints>,
    /// The viewer's principal name.
    pub(super) principal: String,
    /// Active grants shown with it: all for owners, the viewer's own for anyone else.
    pub(super) grants: Vec<Grant>,
    /// Pending access requests for it; counted for owners only.
    pub(super) pending: usize,
}

impl ProductPage {
    /// Loads the page of `found` for `principal`, who reached the server as `host`.
    pub(super) async fn load(gate: &Gate, principal: &Principal, found: Readable, host: Option<&str>) -> Result<ProductPage, ServeError> {
        let catalog = gate.engine().catalog();
        let id = found.record.id.clone();
        let descriptor = found.descriptor();
        let decision = found.governance.decide_stored(principal, &found.record);
        let owner = is_owner(principal, &found.record.descriptor);
        let mut versions = catalog.versions(&id).await?;
        versions.reverse();
        let shown_rules: Vec<&str> = descriptor.quality.iter().map(|r| r.name.as_str()).collect();
        let mut quality = meshwork_query::quality_runs_for(catalog.as_ref(), &found.governance, principal, &found.record.descriptor, QUALITY_RUNS).await?;
        for run in &mut quality {
            run.results.retain(|r| shown_rules.contains(&r.name.as_str()));
        }
        let window = descriptor.slo.as_ref().map_or(meshwork_core::descriptor::DEFAULT_SLO_WINDOW.seconds, |s| s.window.seconds);
        let since = Utc::now() - chrono::Duration::seconds(i64::try_from(window).unwrap_or(i64::MAX / 1_000));
        let slo_latest = catalog.latest_slo_checks(&id).await?;
        let slo_history = catalog.slo_checks(&id, since, SLO_POINTS).await?;
        let slo_messages = !found.record.descriptor.slo.as_ref().and_then(|s| s.completeness.as_ref()).is_some_and(|c| match &c.measure {
            meshwork_core::descriptor::CompletenessMeasure::UpstreamRows { upstream } => !found.shows(upstream),
            meshwork_core::descriptor::CompletenessMeasure::NonNull { .. } => false,
        });
        let edges = catalog.lineage().await?;
        let lineage = LineageGraph::around(&id, &edges, |p| found.shows(p));
        let consumers = match owner {
            true => Some(meshwork_query::consumers(catalog.as_ref(), &found.governance, principal, &found.record, Utc::now() - chrono::Duration::days(READERS_DAYS)).await?),
            false => None,
        };
        let grants = meshwork_query::shown_grants(catalog.as_ref(), principal, &found.record).await?;
        let pending = match owner {
            true => {
                let filter = AccessRequestFilter { product: Some(id.clone()), status: Some(AccessRequestStatus::Pending), principal: None };
                meshwork_query::access_requests(catalog.as_ref(), principal, &filter).await?.len()
            }
            false => 0,
        };
        Ok(ProductPage {
            grants,
            pending,
            record: found.record,
            descriptor,
            decision,
            owner,
            versions,
            quality,
            slo_latest,
            slo_history,
            slo_messages,
            lineage,
            consumers,
            endpoints: gate.addresses().map(|bound| Endpoints::new(bound, host)),
            principal: principal.name.clone(),
        })
    }

    /// The page's main content.
    pub(super) fn render(&self, viewer: &Viewer) -> Markup {
        let id = &self.record.id;
        html! {
            (sections::header(self))
            (sections::lifecycle(&self.descriptor))
            nav.page-toc aria-label="On this page" {
                ul {
                    li { a href="#contract" { "Contract" } }
                    li { a href="#quality" { "Quality" } }
                    li { a href="#slo" { "Service levels" } }
                    li { a href="#lineage" { "Lineage" } }
                    li { a href="#versions" { "Versions" } }
                    li { a href="#access" { "Access" } }
                    @if self.consumers.is_some() { li { a href="#consumers" { "Consumers" } } }
                    li { a href="#connect" { "Query it" } }
                }
            }
            (sections::contract(self))
            (sections::quality(&self.quality))
            (sections::slo(self))
            section #lineage aria-labelledby="lineage-h" {
                h2 #lineage-h { "Lineage" }
                @if self.lineage.nodes.len() == 1 {
                    p { "No upstream or downstream products you can read." }
                } @else {
                    div.graph-scroll { (self.lineage.render()) }
                    (sections::lineage_lists(&self.lineage))
                }
                details.column-lineage {
                    summary { "Column lineage" }
                    div hx-get=(format!("/products/{id}/lineage/columns")) hx-trigger="toggle from:closest details once" hx-swap="innerHTML" {
                        a href=(format!("/products/{id}/lineage/columns")) { "Show which input columns each column comes from" }
                    }
                }
            }
            (sections::versions(id, &self.versions))
            (sections::access(self, viewer))
            @if let Some(consumers) = &self.consumers { (sections::consumers(consumers)) }
            (sections::query_it(self))
        }
    }
}

async fn product_page(State(gate): State<Arc<Gate>>, viewer: Viewer, headers: HeaderMap, Path(product): Path<String>) -> Result<Response, PortalError> {
    let principal = &viewer.identity.principal;
    let Some(found) = readable(&gate, principal, &product).await? else {
        // A discoverable product shows its public card and the request form; a hidden one is
        // not found, exactly like a missing one.
        return match access::card_page(&gate, &viewer, &product, None, &Default::default()).await? {
            Some(card) => Ok(card.into_response()),
            None => Err(PortalError::not_found()),
        };
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let loaded = ProductPage::load(&gate, principal, found, host).await?;
    let title = loaded.record.title.clone().unwrap_or_else(|| loaded.record.id.to_string());
    Ok(page(&title, Some(&viewer), Nav::Search, loaded.render(&viewer)).into_response())
}

/// The column lineage of the product's current version, as an htmx fragment (a whole page
/// when asked for without htmx): sources in products hidden from the viewer are left out.
async fn column_lineage(State(gate): State<Arc<Gate>>, viewer: Viewer, headers: HeaderMap, Path(product): Path<String>) -> Result<Response, PortalError> {
    let principal = &viewer.identity.principal;
    let Some(found) = readable(&gate, principal, &product).await? else { return Err(PortalError::not_found()) };
    let catalog = gate.engine().catalog();
    let lineage = match catalog.current_version(&found.record.id).await? {
        Some(version) => catalog.column_lineage(&found.record.id, version.seq).await?,
        None => None,
    };
    let lineage = lineage.map(|l| visible_sources(l, |p| found.shows(p)));
    let fragment = sections::column_lineage(&found.record.id, lineage.as_ref());
    if headers.contains_key("hx-request") {
        return Ok(fragment.into_response());
    }
    let id = &found.record.id;
    let body = html! {
        h1 { "Column lineage of " a href=(format!("/products/{id}")) { (id) } }
        (fragment)
    };
    Ok(page(&format!("Column lineage of {id}"), Some(&viewer), Nav::Search, body).into_response())
}

/// `lineage` without the sources read from products `visible` rejects.
pub(super) fn visible_sources(mut lineage: ProductLineage, visible: impl Fn(&ProductId) -> bool) -> ProductLineage {
    for column in &mut lineage.columns {
        column.sources.retain(|s| s.product.as_ref().is_none_or(&visible));
    }
    lineage
}


