//! Control-plane measurements: access decisions on a real mesh's governance, catalog search
//! (`search.rs`), and column lineage of a large mesh as `validate` derives it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use meshwork_core::descriptor::ProductDescriptor;
use meshwork_query::Governance;
use serde_json::{Value, json};

/// Runs every control-plane measurement.
pub async fn run(mesh: &Path, principal: &str, decisions: usize, catalog_sizes: &[usize], searches: usize) -> anyhow::Result<Value> {
    let policy = policy_decisions(mesh, principal, decisions).await?;
    let mut search = Vec::new();
    for &size in catalog_sizes {
        search.push(crate::search::catalog_search(size, searches).await?);
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
pub(crate) fn summary(mut samples: Vec<Duration>, wall: Duration) -> Value {
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
