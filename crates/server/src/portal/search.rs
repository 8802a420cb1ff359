//! The home page: catalog search with facets and pages, over the same index and access decision
//! as `GET /api/v1/products`, so it lists only products the viewer may read and its facet
//! counts count only those.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use maud::{Markup, html};
use meshwork_catalog::ProductRecord;
use meshwork_query::SearchQuery;

use super::error::PortalError;
use super::layout::{self, Nav};
use super::viewer::Viewer;
use crate::gate::Gate;

/// Results per page.
const PAGE_SIZE: usize = 20;

/// The facets, by query parameter, with their legend.
const FACETS: [(Facet, &str, &str); 3] = [(Facet::Domain, "domain", "Domain"), (Facet::Tag, "tag", "Tag"), (Facet::Status, "status", "Status")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Facet {
    Domain,
    Tag,
    Status,
}

impl Facet {
    /// The values of this facet a product has.
    fn values(self, record: &ProductRecord) -> Vec<String> {
        match self {
            Facet::Domain => vec![record.id.domain.to_string()],
            Facet::Tag => record.tags.clone(),
            Facet::Status => vec![record.status.to_string()],
        }
    }
}

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
                    if let Some((_, name, _)) = FACETS.iter().find(|(_, name, _)| *name == other) {
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

    /// Whether `record` has one of the checked values of every facet with a checked value.
    fn admits(&self, record: &ProductRecord) -> bool {
        FACETS.iter().all(|(facet, name, _)| match self.selected.get(name) {
            None => true,
            Some(wanted) => facet.values(record).iter().any(|v| wanted.contains(v)),
        })
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

/// `GET /`: the search page.
pub(super) async fn home(State(gate): State<Arc<Gate>>, viewer: Viewer, RawQuery(query): RawQuery) -> Result<Markup, PortalError> {
    let request = Request::parse(query.as_deref());
    let governance = gate.engine().governance().await?;
    let index = gate.engine().product_index().await?;
    let matches = index.search(&governance, &viewer.identity.principal, &SearchQuery::text(&request.q));
    // Facet counts count the viewer's matches only: a hidden product is never a number here.
    let mut counts: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); FACETS.len()];
    for record in &matches {
        for (i, (facet, _, _)) in FACETS.iter().enumerate() {
            for value in facet.values(record) {
                *counts[i].entry(value).or_default() += 1;
            }
        }
    }
    let found: Vec<&ProductRecord> = matches.into_iter().filter(|r| request.admits(r)).collect();
    let pages = found.len().div_ceil(PAGE_SIZE).max(1);
    let page = request.page.min(pages);
    let shown = found.iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE);
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
                @for (i, (_, name, legend)) in FACETS.iter().enumerate() {
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
                    @match found.len() {
                        0 => "No products match.",
                        1 => "1 product",
                        n => { (n) " products" },
                    }
                }
                ol .results {
                    @for record in shown {
                        li { (result(record)) }
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

fn result(record: &ProductRecord) -> Markup {
    html! {
        h2 { a href={ "/products/" (record.id) } { (record.title.as_deref().unwrap_or(&record.id.to_string())) } }
        p .meta { code { (record.id) } " · version " (record.version) " · " (record.status) @if let Some(owner) = &record.owner { " · owner " (owner) } }
        @if let Some(description) = &record.description { p { (description) } }
        @if !record.tags.is_empty() {
            p { @for tag in &record.tags { span .tag { (tag) } } }
        }
    }
}
