//! Benchmark of governance at query time, on the example mesh:
//!
//! 1. policy decision latency per product (descriptor access block + every access policy in
//!    regorus), p50 and p99 in microseconds;
//! 2. the overhead of enforcement: the same questions asked by an EU analyst through the policy
//!    rewrite, and written by hand (filter and masks in the SQL) against an unrestricted copy
//!    of the mesh, as a ratio of median times.
//!
//! Run: `cargo bench -p meshwork-query --bench enforcement` (add `--profile dev` to skip the
//! release build). `MESHWORK_BENCH_ORDERS` sets the example size (default 120000).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshwork_catalog::CatalogStore;
use meshwork_pipeline::{SilentObserver, apply, load_mesh};
use meshwork_query::{Governance, QuerySession};

async fn applied(dir: &Path) -> Arc<dyn CatalogStore> {
    let mesh = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    let home = mesh.home();
    let catalog = home.open_catalog().await.unwrap();
    let report = apply(&mesh, catalog.as_ref(), &home.open_store().unwrap(), &SilentObserver).await.unwrap();
    assert!(!report.failed(), "{report:#?}");
    catalog
}

/// Removes every access restriction of the example: readers `*`, no filters or masks.
fn open_up(dir: &Path) {
    let mesh_yaml = dir.join("mesh.yaml");
    let text = std::fs::read_to_string(&mesh_yaml).unwrap();
    std::fs::write(&mesh_yaml, text.replace("policies:\n", "policies:\n  pii_masked: \"off\"\n")).unwrap();
    std::fs::remove_file(dir.join("policies/contractors_no_pii.rego")).unwrap();
    for domain in ["sales", "marketing", "finance"] {
        for entry in std::fs::read_dir(dir.join("domains").join(domain).join("products")).unwrap() {
            let path = entry.unwrap().path().join("product.yaml");
            let text = std::fs::read_to_string(&path).unwrap();
            let Some(start) = text.find("access:\n") else { continue };
            let end = text[start..].find("refresh:").map(|e| start + e).unwrap_or(text.len());
            std::fs::write(&path, format!("{}access:\n  readers: [\"*\"]\n{}", &text[..start], &text[end..])).unwrap();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Median times of two statements run alternately (so drift and caches affect both alike).
async fn paired_medians(a: &QuerySession, a_sql: &str, b: &QuerySession, b_sql: &str, runs: usize) -> (Duration, Duration, usize, usize) {
    let count = |batches: &[datafusion::arrow::record_batch::RecordBatch]| batches.iter().map(|b| b.num_rows()).sum::<usize>();
    let (mut a_rows, mut b_rows) = (0, 0);
    for _ in 0..3 {
        a_rows = count(&a.collect(a_sql).await.unwrap().1);
        b_rows = count(&b.collect(b_sql).await.unwrap().1);
    }
    let (mut a_times, mut b_times) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let started = Instant::now();
        a.collect(a_sql).await.unwrap();
        a_times.push(started.elapsed());
        let started = Instant::now();
        b.collect(b_sql).await.unwrap();
        b_times.push(started.elapsed());
    }
    a_times.sort();
    b_times.sort();
    (percentile(&a_times, 0.5), percentile(&b_times, 0.5), a_rows, b_rows)
}

fn main() {
    let orders: usize = std::env::var("MESHWORK_BENCH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(120_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let tmp = tempfile::tempdir().unwrap();
        let guarded_dir = tmp.path().join("guarded");
        let open_dir = tmp.path().join("open");
        for dir in [&guarded_dir, &open_dir] {
            meshwork_example::write_example(dir, &meshwork_example::ExampleOptions { orders, seed: 42 }).unwrap();
        }
        open_up(&open_dir);
        let guarded = applied(&guarded_dir).await;
        let open = applied(&open_dir).await;

        // 1. Decision latency.
        let governance = Governance::load(guarded.as_ref()).await.unwrap();
        let products: Vec<_> = guarded
            .products()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.descriptor)
            .collect();
        let mut times = Vec::new();
        for name in ["ana", "gus", "carl", "sam", "mia", "bi-dashboard"] {
            let principal = governance.principal(name).unwrap();
            for product in &products {
                for _ in 0..300 {
                    let started = Instant::now();
                    std::hint::black_box(governance.decide(&principal, product));
                    times.push(started.elapsed());
                }
            }
        }
        times.sort();
        println!("## Policy decision latency ({} decisions: 6 principals x {} products)", times.len(), products.len());
        println!("p50 {:.1} µs, p99 {:.1} µs", percentile(&times, 0.5).as_secs_f64() * 1e6, percentile(&times, 0.99).as_secs_f64() * 1e6);

        let started = Instant::now();
        let ana_session = QuerySession::open(guarded.clone(), &governance, governance.principal("ana").unwrap(), "bench").await.unwrap();
        println!("session open for `ana` (decides and binds all {} products): {:.1} ms", products.len(), started.elapsed().as_secs_f64() * 1e3);
        let open_governance = Governance::load(open.as_ref()).await.unwrap();
        let open_session = QuerySession::open(open.clone(), &open_governance, open_governance.principal("admin").unwrap(), "bench").await.unwrap();

        // 2. Overhead: ana's view through the rewrite vs the same filter and masks by hand.
        // ana: region = 'EU'; full_name partial (first character kept), email hashed.
        let cases = [
            (
                "customers by segment, masked e-mails (filter + hash + partial)",
                "SELECT segment, count(*), count(DISTINCT email), min(full_name) FROM sales.customers GROUP BY segment ORDER BY 1",
                "SELECT segment, count(*), count(DISTINCT md5(email)), min(concat(substr(full_name, 1, 1), repeat('*', character_length(full_name) - 1))) FROM sales.customers WHERE region = 'EU' GROUP BY segment ORDER BY 1",
            ),
            (
                "revenue of EU customers, join orders x customers (filter on one side)",
                "SELECT c.segment, sum(o.amount) FROM sales.orders o JOIN sales.customers c ON c.customer_id = o.customer_id WHERE o.status = 'completed' GROUP BY 1 ORDER BY 1",
                "SELECT c.segment, sum(o.amount) FROM sales.orders o JOIN sales.customers c ON c.customer_id = o.customer_id WHERE o.status = 'completed' AND c.region = 'EU' GROUP BY 1 ORDER BY 1",
            ),
            (
                "top customers by lifetime value (row filter only)",
                "SELECT customer_id, lifetime_revenue FROM finance.customer_value WHERE orders > 2 ORDER BY lifetime_revenue DESC LIMIT 10",
                "SELECT customer_id, lifetime_revenue FROM finance.customer_value WHERE region = 'EU' AND orders > 2 ORDER BY lifetime_revenue DESC LIMIT 10",
            ),
            (
                "orders per channel (unrestricted product: no rewrite)",
                "SELECT channel, count(*), sum(amount) FROM sales.orders GROUP BY 1 ORDER BY 1",
                "SELECT channel, count(*), sum(amount) FROM sales.orders GROUP BY 1 ORDER BY 1",
            ),
        ];
        println!("\n## Enforcement overhead ({orders} orders, median of 41 alternating runs)");
        println!("| query | rows | with policies | by hand | ratio |");
        println!("|---|---|---|---|---|");
        for (title, policy_sql, hand_sql) in cases {
            let (with_policy, by_hand, rows, hand_rows) = paired_medians(&ana_session, policy_sql, &open_session, hand_sql, 41).await;
            assert_eq!(rows, hand_rows, "{title}: both forms must return the same rows");
            println!(
                "| {title} | {rows} | {:.1} ms | {:.1} ms | {:.2} |",
                with_policy.as_secs_f64() * 1e3,
                by_hand.as_secs_f64() * 1e3,
                with_policy.as_secs_f64() / by_hand.as_secs_f64()
            );
        }
    });
}
