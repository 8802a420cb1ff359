//! Catalog search over synthetic catalogs of 10k–100k products stored in a real SQLite catalog:
//! index build time, a principal's first search, and a mix of searches with typos, prefixes and
//! facet filters, each timed through `QueryEngine::search` as a server runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshwork_catalog::{CatalogStore, ProductRecord, Publication, QualityRun, RunOutcome, SqlCatalog, Trigger};
use meshwork_core::descriptor::Classification;
use meshwork_core::principal::{Principal, PrincipalKind};
use meshwork_query::{FacetFilters, ProductState, QualityState, QueryEngine, QueryLimits, SearchRequest, Visibility};
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::control::summary;

/// Pseudo-words: two or three syllables, so substrings of one word rarely match another.
fn vocabulary(rng: &mut ChaCha8Rng, size: usize) -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "ga", "vu", "ze", "bo", "che", "fi", "ju", "qua", "xo", "yi", "wa", "hol", "mur",
        "sten", "dax", "pel", "rok", "tiv", "gam", "lun", "bex",
    ];
    let mut words = BTreeSet::new();
    while words.len() < size {
        let n = rng.random_range(2..=3);
        words.insert((0..n).map(|_| *SYLLABLES.choose(rng).expect("syllables")).collect::<String>());
    }
    words.into_iter().collect()
}

/// `word` with one letter replaced (a typo a user makes), or dropped when `drop`.
fn typo(word: &str, at: usize, drop: bool) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let at = at % chars.len();
    if drop {
        chars.remove(at);
    } else {
        chars[at] = if chars[at] == 'x' { 'y' } else { 'x' };
    }
    chars.into_iter().collect()
}

/// Searches a synthetic catalog of `size` products: index build time (what a server pays once
/// per publication), the analyst's first search (every product decided once), then `searches`
/// searches as that non-admin analyst.
pub async fn catalog_search(size: usize, searches: usize) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let catalog: Arc<dyn CatalogStore> = Arc::new(SqlCatalog::open_sqlite(&dir.path().join("catalog.db")).await?);
    let mut rng = ChaCha8Rng::seed_from_u64(size as u64);
    let words = vocabulary(&mut rng, 3_000);
    let tags = &words[..60];
    let domains: Vec<String> = (0..100).map(|i| format!("domain{i:03}")).collect();
    let started = Instant::now();
    for i in 0..size {
        let record = synthetic_product(&mut rng, i, &words, tags, &domains)?;
        // Two thirds of the products have a quality run (passed or warned), a third none.
        let quality = [Some(RunOutcome::Passed), Some(RunOutcome::Warned), None][i % 3].map(|outcome| QualityRun {
            id: 0,
            product: Some(record.id.clone()),
            at: chrono::Utc::now(),
            trigger: Trigger::Schedule,
            outcome,
            published_seq: None,
            row_count: 0,
            build_ms: 0.0,
            stage_ms: 0.0,
            quality_ms: 0.0,
            results: Vec::new(),
        });
        let publication = Publication {
            product: record,
            delta_version: 0,
            schema: Vec::new(),
            row_count: 0,
            input_fingerprint: String::new(),
            upstream: Vec::new(),
            lineage: Default::default(),
            quality,
            events: Vec::new(),
            watermark: None,
            remote: None,
        };
        catalog.publish(&publication).await?;
    }
    let generate = started.elapsed();

    let engine = QueryEngine::new(catalog.clone(), QueryLimits::default()).await?;
    let started = Instant::now();
    let index = engine.product_index().await?;
    let build = started.elapsed();
    anyhow::ensure!(index.len() == size, "indexed {} of {size} products", index.len());
    let analyst = Principal {
        name: "analyst".into(),
        kind: PrincipalKind::User,
        groups: BTreeSet::from(["analysts".to_owned()]),
        domains: BTreeSet::from([meshwork_core::id::DomainName::try_from(domains[0].clone()).map_err(|e| anyhow::anyhow!("{e}"))?]),
        attributes: BTreeMap::new(),
        admin: false,
    };
    let started = Instant::now();
    let first = engine.search(&analyst, &SearchRequest::default()).await?;
    let first_search = started.elapsed();
    let first_cards = engine.search(&analyst, &SearchRequest { limit: usize::MAX, ..SearchRequest::default() }).await?.hits.iter().filter(|h| h.visibility == Visibility::Card).count();

    // A mix of what people type: one word, two words, a tag, a word in one domain, a first page
    // of everything, a typo (a letter replaced or dropped), a prefix, and facet filters with and
    // without words.
    let mut queries = Vec::with_capacity(searches);
    for i in 0..searches {
        let word = || words[60..].choose(&mut ChaCha8Rng::seed_from_u64(i as u64 * 7 + 1)).expect("words").clone();
        let with = |filters: FacetFilters, text: &str| SearchRequest { filters, ..SearchRequest::text(text) };
        queries.push(match i % 10 {
            0 => ("one word", SearchRequest::text(&word())),
            1 => ("two words", SearchRequest::text(&format!("{} {}", word(), words[60 + i % 500]))),
            2 => ("tag", SearchRequest::text(&tags[i % tags.len()])),
            3 => ("domain + word", with(FacetFilters { domain: vec![domains[i % domains.len()].clone()], ..FacetFilters::default() }, &word())),
            4 => ("first page", SearchRequest::default()),
            5 => ("typo", SearchRequest::text(&typo(&word(), i, false))),
            6 => ("typo, letter dropped", SearchRequest::text(&typo(&word(), i, true))),
            7 => ("prefix", SearchRequest::text(&word().chars().take(3).collect::<String>())),
            8 => (
                "word + classification + status",
                with(FacetFilters { classification: vec![Classification::Pii], status: vec![ProductState::Active], ..FacetFilters::default() }, &word()),
            ),
            _ => (
                "tag + quality filters, no words",
                with(FacetFilters { tag: vec![tags[i % tags.len()].clone()], quality: vec![QualityState::Passed], ..FacetFilters::default() }, ""),
            ),
        });
    }
    for (_, query) in queries.iter().take(20) {
        std::hint::black_box(engine.search(&analyst, query).await?);
    }
    let mut all = Vec::with_capacity(searches);
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut results = 0usize;
    let started = Instant::now();
    for (kind, query) in &queries {
        let t = Instant::now();
        let found = std::hint::black_box(engine.search(&analyst, query).await?);
        let elapsed = t.elapsed();
        results += found.total;
        all.push(elapsed);
        by_kind.entry(kind).or_default().push(elapsed);
    }
    let wall = started.elapsed();
    Ok(json!({
        "products": size,
        "visible": first.total,
        "cards": first_cards,
        "generate_s": generate.as_secs_f64(),
        "index_build_ms": build.as_secs_f64() * 1e3,
        "first_search_ms": first_search.as_secs_f64() * 1e3,
        "mean_results": results as f64 / searches as f64,
        "all": summary(all, wall),
        "by_kind": by_kind.into_iter().map(|(k, v)| (k.to_owned(), summary(v, wall))).collect::<BTreeMap<_, _>>(),
    }))
}

/// One product of the synthetic catalog: a title and description of vocabulary words, two
/// tags, columns with descriptions and classifications, a lifecycle status, and one of four
/// access shapes (open to all, to analysts with a row filter, to its own domain only, or to its
/// own domain and discoverable by everyone, whose card a search lists).
fn synthetic_product(rng: &mut ChaCha8Rng, i: usize, words: &[String], tags: &[String], domains: &[String]) -> anyhow::Result<ProductRecord> {
    let mut pick = |n: usize| (0..n).map(|_| words[60..].choose(rng).expect("words").clone()).collect::<Vec<_>>();
    let title = pick(3).join(" ");
    let description = pick(12).join(" ");
    let region = pick(4).join(" ");
    let name = format!("{}_{i}", pick(1)[0]);
    let domain = &domains[i % domains.len()];
    let tag_list = [tags[i % tags.len()].clone(), tags[(i * 7 + 3) % tags.len()].clone()];
    let access = match i % 6 {
        0 | 3 => "access:\n  readers: [\"*\"]\n".to_owned(),
        1 | 4 => "access:\n  readers: [group:analysts]\n  row_filter: \"region = 'EU'\"\n  masks:\n    email: hash\n".to_owned(),
        2 => String::new(),
        _ => format!("access:\n  readers: [\"domain:{domain}\"]\n  discoverable: true\n"),
    };
    let status = match i % 10 {
        0 => "status: deprecated\nsunset: 2020-01-01\n",
        1 => "status: deprecated\n",
        2 => "status: draft\n",
        _ => "",
    };
    let email_class = if i % 2 == 0 { "pii" } else { "internal" };
    let yaml = format!(
        "name: {name}\ndomain: {domain}\nversion: 1.0.0\ntitle: {title}\ndescription: {description}\nowner: group:{domain}-team\n{status}\
         tags: [{}]\ninputs:\n  - {{ name: raw, source: {{ kind: csv, path: data/{name}.csv }} }}\ncontract:\n  columns:\n\
         \x20   - {{ name: id, type: bigint, nullable: false }}\n    - {{ name: region, type: string, description: {region} }}\n\
         \x20   - {{ name: email, type: string, classification: {email_class} }}\n{access}",
        tag_list.join(", ")
    );
    let descriptor = meshwork_core::parse::parse_product("product.yaml", &yaml)
        .map_err(|d| anyhow::anyhow!("synthetic product {i} does not parse: {d:?}\n{yaml}"))?
        .value;
    Ok(ProductRecord::of(descriptor, format!("synthetic-{i}"), format!("file:///nonexistent/{domain}/{name}/")))
}
