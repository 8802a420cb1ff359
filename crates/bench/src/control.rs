//! Control-plane measurements: access decisions on a real mesh's governance, catalog search
//! over synthetic catalogs of 10k–100k products stored in a real SQLite catalog, and column
//! lineage of a large mesh as `validate` derives it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshwork_catalog::{CatalogStore, ProductRecord, Publication, SqlCatalog};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::principal::{Principal, PrincipalKind};
use meshwork_query::{Governance, QueryEngine, QueryLimits, SearchQuery};
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Runs every control-plane measurement.
pub async fn run(mesh: &Path, principal: &str, decisions: usize, catalog_sizes: &[usize], searches: usize) -> anyhow::Result<Value> {
    let policy = policy_decisions(mesh, principal, decisions).await?;
    let mut search = Vec::new();
    for &size in catalog_sizes {
        search.push(catalog_search(size, searches).await?);
    }
    Ok(json!({ "policy": policy, "search": search }))
}

/// Times column lineage of every product of the mesh at `root` as `validate` and `plan`
/// derive it: each transform planned against its inputs' declared schemas, then its plan
/// walked. `runs` passes after one warm-up; the median pass is reported.
pub fn column_lineage(root: &Path, runs: usize) -> anyhow::Result<Value> {
    let mesh = meshwork_pipeline::load_mesh(root).map_err(|d| anyhow::anyhow!("cannot load the mesh at `{}`: {d:?}", root.display()))?;
    let entries: Vec<_> = mesh.repo.products.values().collect();
    let transforms = entries.iter().filter(|e| e.descriptor.transform.is_some()).count();
    let mut passes = Vec::with_capacity(runs);
    for pass in 0..=runs {
        let started = Instant::now();
        let planner = meshwork_pipeline::DeclaredPlanner::default();
        for entry in &entries {
            let lineage = planner.lineage(&mesh, entry).map_err(|e| anyhow::anyhow!("{}: {e}", entry.file))?;
            std::hint::black_box(lineage);
        }
        if pass > 0 {
            passes.push(started.elapsed());
        }
    }
    passes.sort();
    let median = passes[passes.len() / 2];
    Ok(json!({
        "products": entries.len(),
        "transforms": transforms,
        "runs": runs,
        "median_ms": median.as_secs_f64() * 1e3,
        "min_ms": passes[0].as_secs_f64() * 1e3,
        "max_ms": passes[passes.len() - 1].as_secs_f64() * 1e3,
        "per_transform_us": median.as_secs_f64() * 1e6 / transforms.max(1) as f64,
    }))
}

/// Percentiles and throughput of a set of latencies.
fn summary(mut samples: Vec<Duration>, wall: Duration) -> Value {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    json!({
        "count": samples.len(),
        "p50_us": at(0.5),
        "p99_us": at(0.99),
        "max_us": at(1.0),
        "per_second": samples.len() as f64 / wall.as_secs_f64(),
    })
}

/// Times `Governance::decide` for `principal` over every product the mesh published, round
/// robin, on one thread.
async fn policy_decisions(root: &Path, principal: &str, decisions: usize) -> anyhow::Result<Value> {
    let mesh = meshwork_pipeline::load_mesh(root).map_err(|d| anyhow::anyhow!("cannot load the mesh at `{}`: {d:?}", root.display()))?;
    let catalog = mesh.home().open_catalog().await?;
    let governance = Governance::load(catalog.as_ref()).await?;
    let principal = governance.principal(principal)?;
    let products: Vec<ProductDescriptor> = catalog.products().await?.into_iter().map(|r| r.descriptor).collect();
    anyhow::ensure!(!products.is_empty(), "the mesh at `{}` has no published products; run `meshwork apply` first", root.display());
    for product in products.iter().cycle().take(products.len() * 100) {
        std::hint::black_box(governance.decide(&principal, product));
    }
    let mut all = Vec::with_capacity(decisions);
    let mut by_product: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let started = Instant::now();
    for product in products.iter().cycle().take(decisions) {
        let t = Instant::now();
        let decision = std::hint::black_box(governance.decide(&principal, product));
        let elapsed = t.elapsed();
        all.push(elapsed);
        by_product.entry(format!("{} ({})", decision.product, describe(&decision))).or_default().push(elapsed);
    }
    let wall = started.elapsed();
    let per_product: BTreeMap<String, Value> = by_product.into_iter().map(|(k, v)| (k, summary(v, wall))).collect();
    Ok(json!({ "principal": principal.name, "products": products.len(), "all": summary(all, wall), "by_product": per_product }))
}

fn describe(decision: &meshwork_policy::AccessDecision) -> String {
    if !decision.allowed {
        return "denied".into();
    }
    let mut parts = Vec::new();
    if !decision.row_filters.is_empty() {
        parts.push(format!("{} row filter(s)", decision.row_filters.len()));
    }
    if !decision.masks.is_empty() {
        parts.push(format!("{} mask(s)", decision.masks.len()));
    }
    if parts.is_empty() { "open".into() } else { parts.join(", ") }
}

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

/// Searches a synthetic catalog of `size` products: index build time (what a server pays once
/// per publication), then `searches` searches as a non-admin analyst.
async fn catalog_search(size: usize, searches: usize) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let catalog: Arc<dyn CatalogStore> = Arc::new(SqlCatalog::open_sqlite(&dir.path().join("catalog.db")).await?);
    let mut rng = ChaCha8Rng::seed_from_u64(size as u64);
    let words = vocabulary(&mut rng, 3_000);
    let tags = &words[..60];
    let domains: Vec<String> = (0..100).map(|i| format!("domain{i:03}")).collect();
    let started = Instant::now();
    for i in 0..size {
        let record = synthetic_product(&mut rng, i, &words, tags, &domains)?;
        let publication = Publication {
            product: record,
            delta_version: 0,
            schema: Vec::new(),
            row_count: 0,
            input_fingerprint: String::new(),
            upstream: Vec::new(),
            lineage: Default::default(),
            quality: None,
            events: Vec::new(),
        };
        catalog.publish(&publication).await?;
    }
    let generate = started.elapsed();

    let engine = QueryEngine::new(catalog.clone(), QueryLimits::default()).await?;
    let governance = engine.governance().await?;
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

    // A mix of what people type: one word, two words, a tag, a word in one domain, and a
    // first page of everything.
    let mut queries = Vec::with_capacity(searches);
    for i in 0..searches {
        let word = || words[60..].choose(&mut ChaCha8Rng::seed_from_u64(i as u64 * 7 + 1)).expect("words").clone();
        queries.push(match i % 5 {
            0 => ("one word", SearchQuery::text(&word())),
            1 => ("two words", SearchQuery::text(&format!("{} {}", word(), words[60 + i % 500]))),
            2 => ("tag", SearchQuery::text(&tags[i % tags.len()])),
            3 => ("domain + word", SearchQuery { domain: Some(domains[i % domains.len()].clone()), ..SearchQuery::text(&word()) }),
            _ => ("first page", SearchQuery { limit: Some(50), ..SearchQuery::default() }),
        });
    }
    for (_, query) in queries.iter().take(20) {
        std::hint::black_box(index.search(&governance, &analyst, query));
    }
    let mut all = Vec::with_capacity(searches);
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut results = 0usize;
    let started = Instant::now();
    for (kind, query) in &queries {
        let t = Instant::now();
        let found = std::hint::black_box(index.search(&governance, &analyst, query));
        let elapsed = t.elapsed();
        results += found.len();
        all.push(elapsed);
        by_kind.entry(kind).or_default().push(elapsed);
    }
    let wall = started.elapsed();
    Ok(json!({
        "products": size,
        "generate_s": generate.as_secs_f64(),
        "index_build_ms": build.as_secs_f64() * 1e3,
        "mean_results": results as f64 / searches as f64,
        "all": summary(all, wall),
        "by_kind": by_kind.into_iter().map(|(k, v)| (k.to_owned(), summary(v, wall))).collect::<BTreeMap<_, _>>(),
    }))
}

/// One product of the synthetic catalog: a title and description of vocabulary words, two
/// tags, and one of three access shapes (open to all, to analysts with a row filter, or to its
/// own domain only).
fn synthetic_product(rng: &mut ChaCha8Rng, i: usize, words: &[String], tags: &[String], domains: &[String]) -> anyhow::Result<ProductRecord> {
    let mut pick = |n: usize| (0..n).map(|_| words[60..].choose(rng).expect("words").clone()).collect::<Vec<_>>();
    let title = pick(3).join(" ");
    let description = pick(12).join(" ");
    let name = format!("{}_{i}", pick(1)[0]);
    let domain = &domains[i % domains.len()];
    let tag_list = [tags[i % tags.len()].clone(), tags[(i * 7 + 3) % tags.len()].clone()];
    let access = match i % 3 {
        0 => "access:\n  readers: [\"*\"]\n".to_owned(),
        1 => "access:\n  readers: [group:analysts]\n  row_filter: \"region = 'EU'\"\n  masks:\n    email: hash\n".to_owned(),
        _ => String::new(),
    };
    let yaml = format!(
        "name: {name}\ndomain: {domain}\nversion: 1.0.0\ntitle: {title}\ndescription: {description}\nowner: group:{domain}-team\n\
         tags: [{}]\ninputs:\n  - {{ name: raw, source: {{ kind: csv, path: data/{name}.csv }} }}\ncontract:\n  columns:\n\
         \x20   - {{ name: id, type: bigint, nullable: false }}\n    - {{ name: region, type: string }}\n\
         \x20   - {{ name: email, type: string, classification: pii }}\n{access}",
        tag_list.join(", ")
    );
    let descriptor = meshwork_core::parse::parse_product("product.yaml", &yaml)
        .map_err(|d| anyhow::anyhow!("synthetic product {i} does not parse: {d:?}\n{yaml}"))?
        .value;
    Ok(ProductRecord {
        id: descriptor.id(),
        version: descriptor.version.clone(),
        title: descriptor.title.clone(),
        description: descriptor.description.clone(),
        owner: descriptor.owner.clone(),
        status: descriptor.status,
        tags: descriptor.tags.clone(),
        descriptor: descriptor.clone(),
        descriptor_hash: format!("synthetic-{i}"),
        table_uri: format!("file:///nonexistent/{domain}/{name}/"),
        updated_at: chrono::Utc::now(),
    })
}
