//! The HTTP API of catalog search: ranked, typo-tolerant search over the products the caller may
//! read and the public cards of those it may only discover, with facet counts that never count a
//! product hidden from the caller.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use meshwork_query::{FacetCount, FacetFilters, SearchRequest, SearchResults};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::ErrorBody;
use crate::error::ServeError;
use crate::gate::Gate;

/// Hits per page at most.
const MAX_LIMIT: usize = 100;

/// Search text, facet filters and page. Each filter takes one value or several separated by
/// commas (a product matches any of them); filters on different facets must all match.
#[derive(Deserialize, IntoParams)]
pub(super) struct SearchParams {
    /// Words to find in ids, titles, descriptions, tags, domains, owners and column names and
    /// descriptions; each word matches exactly, as a prefix or with a typo (`custmer`).
    q: Option<String>,
    /// Domains, e.g. `sales,finance`.
    domain: Option<String>,
    /// Tags.
    tag: Option<String>,
    /// Column classifications: `public`, `internal`, `confidential`, `pii`.
    classification: Option<String>,
    /// Lifecycle states: `draft`, `active`, `deprecated`, `sunset`.
    status: Option<String>,
    /// Latest quality outcomes: `passed`, `warned`, `failed`, `none`.
    quality: Option<String>,
    /// SLO states: `met`, `breached`, `unknown`.
    slo: Option<String>,
    /// Hits per page (default 20, at most 100).
    limit: Option<usize>,
    /// Hits to skip (pagination).
    offset: Option<usize>,
    /// List the public cards of products the caller cannot read but may discover (default
    /// true); `false` lists readable products only.
    cards: Option<bool>,
}

/// A page of search results.
#[derive(Serialize, ToSchema)]
pub(super) struct SearchPage {
    /// Matching products (readable, and cards unless `cards=false`), across all pages.
    total: usize,
    /// This page, best match first.
    hits: Vec<SearchHitInfo>,
    /// Counts per facet value among the matching products; each facet ignores its own filter.
    /// A card is counted only in `domain`, `tag` and `status`.
    facets: FacetsInfo,
}

/// One product found.
#[derive(Serialize, ToSchema)]
pub(super) struct SearchHitInfo {
    /// `domain.product`.
    product: String,
    title: Option<String>,
    description: Option<String>,
    domain: String,
    owner: Option<String>,
    tags: Vec<String>,
    /// `readable`: the caller may query it; `card`: it may only see this card and request
    /// access (`POST /api/v1/products/{product}/access-requests`).
    visibility: String,
    /// `draft`, `active`, `deprecated` or `sunset`.
    status: String,
    /// The latest quality run: `passed`, `warned`, `failed` or `none`; absent on a card.
    quality: Option<String>,
    /// `met`, `breached` or `unknown`; absent on a card.
    slo: Option<String>,
    /// Relevance, comparable within one result.
    score: f32,
    /// Fields a word matched: `name`, `title`, `tags`, `domain`, `owner`, `column`, `description`, `column_description`.
    matched: Vec<String>,
}

/// Counts per facet.
#[derive(Serialize, ToSchema)]
pub(super) struct FacetsInfo {
    domain: Vec<FacetValue>,
    tag: Vec<FacetValue>,
    classification: Vec<FacetValue>,
    status: Vec<FacetValue>,
    quality: Vec<FacetValue>,
    slo: Vec<FacetValue>,
}

/// One facet value and how many matching products have it.
#[derive(Serialize, ToSchema)]
pub(super) struct FacetValue {
    value: String,
    count: usize,
}

/// Searches the catalog as the caller: the products it may read that match every word, ranked
/// by relevance (name and title first, then tags, domain and owner, columns, descriptions;
/// exact words above prefixes above typos), with facet counts. A product the caller may not read
/// is neither listed nor counted, unless its owners made it discoverable: then its public card
/// is listed, matched by the card's own fields (never its columns).
#[utoipa::path(
    get,
    path = "/api/v1/search",
    params(SearchParams),
    responses((status = 200, description = "Matching products, best first, with facet counts", body = SearchPage), (status = 400, description = "An unknown facet value (the message lists the accepted ones)", body = ErrorBody), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody))
)]
pub(super) async fn search_catalog(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchPage>, ServeError> {
    let request = request(params).map_err(|e| ServeError::BadRequest(e))?;
    let results = gate.engine().search(&who.principal, &request).await?;
    Ok(Json(page(results)))
}

/// The library's request from the query parameters; the error names the bad value.
fn request(params: SearchParams) -> Result<SearchRequest, String> {
    Ok(SearchRequest {
        text: params.q.unwrap_or_default(),
        filters: FacetFilters {
            domain: values(params.domain.as_deref()),
            tag: values(params.tag.as_deref()),
            classification: keywords(params.classification.as_deref())?,
            status: keywords(params.status.as_deref())?,
            quality: keywords(params.quality.as_deref())?,
            slo: keywords(params.slo.as_deref())?,
        },
        limit: params.limit.unwrap_or(meshwork_query::DEFAULT_LIMIT).min(MAX_LIMIT),
        offset: params.offset.unwrap_or(0),
        cards: params.cards.unwrap_or(true),
    })
}

/// The comma-separated values of a filter, trimmed, empty ones dropped.
fn values(text: Option<&str>) -> Vec<String> {
    text.into_iter().flat_map(|t| t.split(',')).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

fn keywords<T: FromStr>(text: Option<&str>) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    values(text).iter().map(|v| v.parse().map_err(|e: T::Err| e.to_string())).collect()
}

fn page(results: SearchResults) -> SearchPage {
    let hits = results
        .hits
        .into_iter()
        .map(|hit| SearchHitInfo {
            product: hit.record.id.to_string(),
            domain: hit.record.id.domain.to_string(),
            title: hit.record.title,
            description: hit.record.description,
            owner: hit.record.owner,
            tags: hit.record.tags,
            visibility: hit.visibility.to_string(),
            status: hit.status.to_string(),
            quality: hit.quality.map(|q| q.to_string()),
            slo: hit.slo.map(|s| s.to_string()),
            score: hit.score,
            matched: hit.matched.iter().map(ToString::to_string).collect(),
        })
        .collect();
    let f = results.facets;
    SearchPage {
        total: results.total,
        hits,
        facets: FacetsInfo {
            domain: counts(&f.domain),
            tag: counts(&f.tag),
            classification: counts(&f.classification.iter().map(|c| FacetCount { value: c.value.as_str(), count: c.count }).collect::<Vec<_>>()),
            status: counts(&f.status),
            quality: counts(&f.quality),
            slo: counts(&f.slo),
        },
    }
}

fn counts<T: ToString>(facet: &[FacetCount<T>]) -> Vec<FacetValue> {
    facet.iter().map(|c| FacetValue { value: c.value.to_string(), count: c.count }).collect()
}
