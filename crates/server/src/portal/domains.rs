//! Domain pages: `/domains` lists every domain with its owners and how many of its products the
//! viewer may read; `/domains/{d}` shows one domain and those products with their status,
//! quality and SLO state. Products hidden from the viewer are neither listed nor counted.
//!
//! Domains themselves (name, title, description, owners) are the mesh's organisation and shown
//! to every signed-in principal. A domain's members are shown only to its members, its owners
//! and administrators: who belongs to a team is the team's business.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use maud::{Markup, html};
use meshwork_catalog::{DomainRecord, ProductRecord, RunOutcome, SloStatus};
use meshwork_core::principal::Principal;

use super::error::PortalError;
use super::layout::{Nav, page};
use super::product::readable_products;
use super::viewer::Viewer;
use crate::error::ServeError;
use crate::gate::Gate;

/// The domain pages' routes.
pub(super) fn routes() -> Router<Arc<Gate>> {
    Router::new().route("/domains", get(list)).route("/domains/{domain}", get(show))
}

async fn list(State(gate): State<Arc<Gate>>, viewer: Viewer) -> Result<Markup, PortalError> {
    let domains = gate.engine().catalog().domains().await?;
    let (visible, _) = readable_products(&gate, &viewer.identity.principal).await?;
    Ok(page("Domains", Some(&viewer), Nav::Domains, render_list(&domains, &visible)))
}

/// The domain list: every domain, with the number of its products among `visible`.
pub(super) fn render_list(domains: &[DomainRecord], visible: &[ProductRecord]) -> Markup {
    html! {
        h1 { "Domains" }
        @if domains.is_empty() {
            p { "No domains yet: " code { "meshwork apply" } " publishes a mesh repository's domains." }
        } @else {
            div.table-scroll tabindex="0" role="region" aria-label="Domains" {
                table.domains {
                    thead { tr { th scope="col" { "Domain" } th scope="col" { "Title" } th scope="col" { "Owners" } th scope="col" { "Products you can read" } } }
                    tbody {
                        @for d in domains {
                            tr {
                                th scope="row" { a href=(format!("/domains/{}", d.name)) { (d.name) } }
                                td { (d.title.as_deref().unwrap_or("")) }
                                td { (names(&d.owners)) }
                                td.count { (visible.iter().filter(|r| r.id.domain == d.name).count()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One of the domain's products as the domain page lists it.
pub(super) struct DomainProduct {
    record: ProductRecord,
    quality: Option<RunOutcome>,
    slo: Option<SloStatus>,
}

async fn show(State(gate): State<Arc<Gate>>, viewer: Viewer, Path(name): Path<String>) -> Result<Markup, PortalError> {
    let principal = &viewer.identity.principal;
    let catalog = gate.engine().catalog();
    let Some(domain) = catalog.domains().await?.into_iter().find(|d| d.name.as_str() == name) else { return Err(PortalError::not_found()) };
    let (visible, governance) = readable_products(&gate, principal).await?;
    let mut products = Vec::new();
    for record in visible.into_iter().filter(|r| r.id.domain == domain.name) {
        products.push(product_state(&gate, record).await?);
    }
    let members = may_see_members(principal, &domain).then(|| {
        governance.principals().iter().filter(|p| p.in_domain(&domain.name)).map(|p| p.name.clone()).collect::<Vec<_>>()
    });
    let title = domain.title.clone().unwrap_or_else(|| domain.name.to_string());
    Ok(page(&title, Some(&viewer), Nav::Domains, render_domain(&domain, members.as_deref(), &products)))
}

/// A product with its newest quality outcome and its worst current SLO status.
async fn product_state(gate: &Gate, record: ProductRecord) -> Result<DomainProduct, ServeError> {
    let catalog = gate.engine().catalog();
    let quality = catalog.quality_runs(&record.id, 1).await?.first().map(|r| r.outcome);
    let slo = catalog.latest_slo_checks(&record.id).await?.iter().map(|c| c.status).max_by_key(|s| severity(*s));
    Ok(DomainProduct { record, quality, slo })
}

/// Whether `principal` may see who belongs to `domain`: its members, owners and administrators.
pub(super) fn may_see_members(principal: &Principal, domain: &DomainRecord) -> bool {
    principal.admin || principal.in_domain(&domain.name) || domain.owners.iter().any(|o| principal.matches(o))
}

/// How bad an SLO status is, for the worst of several.
fn severity(status: SloStatus) -> u8 {
    match status {
        SloStatus::Met => 0,
        SloStatus::Unknown => 1,
        SloStatus::AtRisk => 2,
        SloStatus::Violated => 3,
    }
}

/// One domain's page; `members` is `None` when the viewer may not see them.
pub(super) fn render_domain(domain: &DomainRecord, members: Option<&[String]>, products: &[DomainProduct]) -> Markup {
    html! {
        p.breadcrumb { a href="/domains" { "Domains" } " / " (domain.name) }
        h1 { (domain.title.as_deref().unwrap_or(domain.name.as_str())) }
        @if let Some(description) = &domain.description { p.description { (description) } }
        dl.facts {
            dt { "Owners" } dd { (names(&domain.owners)) }
            @if let Some(members) = members {
                dt { "Members" } dd { @if members.is_empty() { span.muted { "none declared" } } @else { (members.join(", ")) } }
            }
        }
        h2 { "Products you can read" }
        @if products.is_empty() {
            p { "None of this domain's products are readable by you." }
        } @else {
            div.table-scroll tabindex="0" role="region" aria-label="Products" {
                table.domain-products {
                    thead { tr { th scope="col" { "Product" } th scope="col" { "Status" } th scope="col" { "Quality" } th scope="col" { "Service levels" } th scope="col" { "Description" } } }
                    tbody {
                        @for p in products {
                            @let r = &p.record;
                            tr {
                                th scope="row" { a href=(format!("/products/{}", r.id)) { (r.title.as_deref().unwrap_or(r.id.name.as_str())) } br; code { (r.id) } }
                                td { span class=(format!("badge status-{}", r.status)) { (r.status) } }
                                td { @match p.quality { Some(o) => span class=(format!("badge run-{o}")) { (o) }, None => span.muted { "no runs" } } }
                                td { @match p.slo { Some(s) => span class=(format!("badge slo-{s}")) { (s.as_str().replace('_', " ")) }, None => span.muted { "none" } } }
                                td { (r.description.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Principal references as a list, or a dash.
fn names(list: &[String]) -> Markup {
    html! { @if list.is_empty() { span.muted { "—" } } @else { (list.join(", ")) } }
}
