//! `meshwork search`: the catalog search of the HTTP API, from the terminal, as the acting
//! principal: ranked hits and facet counts over the products it may read and the cards of those
//! it may only discover.

use std::path::Path;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use meshwork_core::descriptor::Classification;
use meshwork_core::principal::LOCAL_ADMIN;
use meshwork_query::{FacetCount, FacetFilters, Facets, ProductState, QualityState, QueryEngine, QueryLimits, SearchRequest, SearchResults, SloState, Visibility};
use serde_json::{Value, json};

use crate::commands::open_home;
use crate::output::text_table;

/// Output format of `meshwork search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchFormat {
    /// An aligned table of hits, then the facet counts.
    #[value(alias = "text")]
    Table,
    /// The same JSON as `GET /api/v1/search`.
    Json,
}

/// What to search for and how to show it.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to find (in ids, titles, descriptions, tags, domains, owners, column names and
    /// descriptions); each matches exactly, as a prefix or with a typo. None lists every product.
    text: Vec<String>,
    /// Only these domains (repeat or separate with commas; any of them).
    #[arg(long, value_delimiter = ',')]
    domain: Vec<String>,
    /// Only products with one of these tags.
    #[arg(long, value_delimiter = ',')]
    tag: Vec<String>,
    /// Only products with a column of one of these classifications (`public`, `internal`,
    /// `confidential`, `pii`).
    #[arg(long, value_delimiter = ',')]
    classification: Vec<Classification>,
    /// Only products in one of these states (`draft`, `active`, `deprecated`, `sunset`).
    #[arg(long, value_delimiter = ',')]
    status: Vec<ProductState>,
    /// Only products whose latest quality run had one of these outcomes (`passed`, `warned`,
    /// `failed`, `none`).
    #[arg(long, value_delimiter = ',')]
    quality: Vec<QualityState>,
    /// Only products in one of these SLO states (`met`, `breached`, `unknown`).
    #[arg(long, value_delimiter = ',')]
    slo: Vec<SloState>,
    /// Only products you may read: leave out the public cards of discoverable products you may
    /// not read.
    #[arg(long)]
    readable: bool,
    /// At most this many hits.
    #[arg(long, default_value_t = meshwork_query::DEFAULT_LIMIT)]
    limit: usize,
    /// Hits to skip (the next page starts at the previous offset plus limit).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SearchFormat::Table)]
    format: SearchFormat,
}

/// `meshwork search`.
pub async fn search(dir: &Path, principal: Option<&str>, args: SearchArgs) -> anyhow::Result<()> {
    let catalog = open_home(dir)?.open_catalog().await?;
    let engine = QueryEngine::new(Arc::clone(&catalog), QueryLimits::default()).await?;
    let principal = engine.governance().await?.principal(principal.unwrap_or(LOCAL_ADMIN))?;
    let request = SearchRequest {
        text: args.text.join(" "),
        filters: FacetFilters {
            domain: args.domain,
            tag: args.tag,
            classification: args.classification,
            status: args.status,
            quality: args.quality,
            slo: args.slo,
        },
        limit: args.limit,
        offset: args.offset,
        cards: !args.readable,
    };
    let results = engine.search(&principal, &request).await?;
    match args.format {
        SearchFormat::Json => println!("{}", serde_json::to_string_pretty(&results_json(&results)).expect("json")),
        SearchFormat::Table => print!("{}", results_text(&results, &request)),
    }
    Ok(())
}

fn results_text(results: &SearchResults, request: &SearchRequest) -> String {
    if results.total == 0 {
        return "no products found; fewer words or filters find more (`meshwork product list` shows every product you may read)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = results
        .hits
        .iter()
        .map(|hit| {
            vec![
                hit.record.id.to_string(),
                hit.visibility.to_string(),
                hit.status.to_string(),
                hit.quality.map_or_else(|| "-".to_owned(), |q| q.to_string()),
                hit.slo.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                format!("{:.2}", hit.score),
                hit.matched.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                hit.record.title.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = text_table(&["PRODUCT", "ACCESS", "STATUS", "QUALITY", "SLO", "SCORE", "MATCHED", "TITLE"], &rows);
    let first = request.offset + 1;
    let last = request.offset + results.hits.len();
    if results.hits.is_empty() {
        out.push_str(&format!("{} found, none at offset {}\n", results.total, request.offset));
    } else {
        out.push_str(&format!("{first}–{last} of {} found\n", results.total));
    }
    if results.hits.iter().any(|hit| hit.visibility == Visibility::Card) {
        out.push_str("card: you may not read it, only see its card; `meshwork access request PRODUCT --purpose TEXT` asks its owners\n");
    }
    for (name, counts) in facet_lists(&results.facets) {
        if !counts.is_empty() {
            let listed: Vec<String> = counts.iter().map(|(value, count)| format!("{value} {count}")).collect();
            out.push_str(&format!("{name}: {}\n", listed.join(", ")));
        }
    }
    out
}

/// The facets as `(name, [(value, count)])`, in the order the API lists them.
fn facet_lists(facets: &Facets) -> [(&'static str, Vec<(String, usize)>); 6] {
    fn list<T: ToString>(facet: &[FacetCount<T>]) -> Vec<(String, usize)> {
        facet.iter().map(|c| (c.value.to_string(), c.count)).collect()
    }
    let classification: Vec<(String, usize)> = facets.classification.iter().map(|c| (c.value.as_str().to_owned(), c.count)).collect();
    [
        ("domain", list(&facets.domain)),
        ("tag", list(&facets.tag)),
        ("classification", classification),
        ("status", list(&facets.status)),
        ("quality", list(&facets.quality)),
        ("slo", list(&facets.slo)),
    ]
}

fn results_json(results: &SearchResults) -> Value {
    let hits: Vec<Value> = results
        .hits
        .iter()
        .map(|hit| {
            json!({
                "product": hit.record.id.to_string(), "title": hit.record.title, "description": hit.record.description,
                "domain": hit.record.id.domain.to_string(), "owner": hit.record.owner, "tags": hit.record.tags,
                "visibility": hit.visibility, "status": hit.status, "quality": hit.quality, "slo": hit.slo, "score": hit.score, "matched": hit.matched,
            })
        })
        .collect();
    let facets: serde_json::Map<String, Value> = facet_lists(&results.facets)
        .into_iter()
        .map(|(name, counts)| (name.to_owned(), counts.into_iter().map(|(value, count)| json!({"value": value, "count": count})).collect()))
        .collect();
    json!({ "total": results.total, "hits": hits, "facets": facets })
}
