//! The home page: catalog search with facets and pages, over the same index and access decision
//! as `GET /api/v1/search`, so it lists only products the viewer may read and its facet
//! counts count only those.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use maud::{Markup, html};
use meshwork_query::{FacetCount, FacetFilters, SearchHit, SearchRequest, Visibility};

use super::error::PortalError;
use super::layout::{self, Nav};
use super::viewer::Viewer;
use crate::gate::Gate;

/// Results per page.
const PAGE_SIZE: usize = 20;

/// The facets, by query parameter, with their legend.
const FACETS: [(&str, &str); 6] = [("domain", "Domain"), ("tag", "Tag"), ("classification", "Classification"), ("status", "Status"), ("quality", "Quality"), ("slo", "SLO")];

/// What the search form asked for: `q`, `page`, and each facet's checked values (repeated keys).
#[derive(Debug, Default)]
struct Request {
    q: String,
    page: usize,
    selected: BTreeMap<&'static str, Vec<String>>,
}

impl Request {
    fn parse(query: Option<&str>) -> Request {
        let mut request = Request { page: 1, ..Request::default() };
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "q" => request.q = value.into_owned(),
                "page" => request.page = value.parse().unwrap_or(1).max(1),
                other => {
                    if let Some((name, _)) = FACETS.iter().find(|(name, _)| *name == other) {
                        request.selected.entry(*name).or_default().push(value.into_owned());
                    }
                }
            }
        }
        request
    }

    fn is_selected(&self, facet: &str, value: &str) -> bool {
        self.selected.get(facet).is_some_and(|values| values.iter().any(|v| v == value))
    }

    /// The checked values of `facet` that name a value of its kind (others match nothing the
    /// form offers, so they are dropped).
    fn values<T: FromStr>(&self, facet: &str) -> Vec<T> {
        self.selected.get(facet).into_iter().flatten().filter_map(|v| v.parse().ok()).collect()
    }

    /// The search library's request for this page.
    fn search(&self) -> SearchRequest {
        SearchRequest {
            text: self.q.clone(),
            filters: FacetFilters {
                domain: self.values("domain"),
                tag: self.values("tag"),
                classification: self.values("classification"),
                status: self.values("status"),
                quality: self.values("quality"),
                slo: self.values("slo"),
            },
            limit: PAGE_SIZE,
            offset: (self.page - 1) * PAGE_SIZE,
            cards: true,
        }
    }

    /// This search's address at `page`.
    fn href(&self, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            query.append_pair("q", &self.q);
        }
        for (name, values) in &self.selected {
            for value in values {
                query.append_pair(name, value);
            }
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        format!("/?{}", query.finish())
    }
}

/// A facet's values and counts as text.
fn counted<T: std::fmt::Display>(counts: &[FacetCount<T>]) -> Vec<(String, usize)> {
    counts.iter().map(|c| (c.value.to_string(), c.count)).collect()
}

/// `GET /`: the search page.
pub(super) async fn home(State(gate): State<Arc<Gate>>, viewer: Viewer, RawQuery(query): RawQuery) -> Result<Markup, PortalError> {
    let request = Request::parse(query.as_deref());
    // Ranked, typo-tolerant, and counted over the viewer's readable products and the cards of
    // those it may discover: a hidden product is never a hit nor a number here (the same search
    // as `GET /api/v1/search`).
    let results = gate.engine().search(&viewer.identity.principal, &request.search()).await?;
    let f = &results.facets;
    let counts = [counted(&f.domain), counted(&f.tag), counted(&f.classification), counted(&f.status), counted(&f.quality), counted(&f.slo)];
    let total = results.total;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = request.page.min(pages);
    let body = html! {
        h1 { "Find data products" }
        form .search-form method="get" action="/" role="search" {
            div .field {
                label for="q" { "Search products" }
                input #q type="search" name="q" value=(request.q) placeholder="e.g. orders, customer email, finance" autofocus;
            }
            button type="submit" { "Search" }
        }
        div .search-layout {
            form .facets method="get" action="/" aria-label="Filter results" {
                input type="hidden" name="q" value=(request.q);
                @for (i, (name, legend)) in FACETS.iter().enumerate() {
                    @if !counts[i].is_empty() {
                        fieldset {
                            legend { (legend) }
                            @for (value, count) in &counts[i] {
                                @let id = format!("facet-{name}-{value}");
                                label for=(id) {
                                    @if request.is_selected(name, value) {
                                        input #(id) type="checkbox" name=(name) value=(value) checked;
                                    } @else {
                                        input #(id) type="checkbox" name=(name) value=(value);
                                    }
                                    span { (value) }
                                    span .count aria-label={ (count) " products" } { (count) }
                                }
                            }
                        }
                    }
                }
                button .secondary type="submit" { "Apply filters" }
            }
            section aria-labelledby="results-heading" {
                h2 #results-heading .visually-hidden { "Results" }
                p role="status" {
                    @match total {
                        0 => "No products match.",
                        1 => "1 product",
                        n => { (n) " products" },
                    }
                }
                ol .results {
                    @for hit in &results.hits {
                        li { (result(hit)) }
                    }
                }
                @if pages > 1 {
                    nav .pagination aria-label="Result pages" {
                        @if page > 1 { a href=(request.href(page - 1)) rel="prev" { "Previous" } }
                        span { "Page " (page) " of " (pages) }
                        @if page < pages { a href=(request.href(page + 1)) rel="next" { "Next" } }
                    }
                }
            }
        }
    };
    Ok(layout::page("Search", Some(&viewer), Nav::Search, body))
}

fn result(hit: &SearchHit) -> Markup {
    let record = &hit.record;
    // A card shows what `ProductCard` holds and nothing else: no version, quality or SLO.
    let card = hit.visibility == Visibility::Card;
    html! {
        h2 { a href={ "/products/" (record.id) } { (record.title.as_deref().unwrap_or(&record.id.to_string())) } }
        @if card {
            p .meta { code { (record.id) } " · " (hit.status) @if let Some(owner) = &record.owner { " · owner " (owner) } " · " span .tag { "card: you may request access" } }
        } @else {
            p .meta { code { (record.id) } " · version " (record.version) " · " (hit.status)
                @if let Some(quality) = hit.quality { " · quality " (quality) }
                @if let Some(slo) = hit.slo { " · SLO " (slo) }
                @if let Some(owner) = &record.owner { " · owner " (owner) } }
        }
        @if let Some(description) = &record.description { p { (description) } }
        @if !record.tags.is_empty() {
            p { @for tag in &record.tags { span .tag { (tag) } } }
        }
    }
}
