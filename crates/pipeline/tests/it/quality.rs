//! Quality rules on staged data: each rule passing and failing, severities, SQL assertions over
//! `this` and other products, referential rules across domains, and write-audit-publish.

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use meshwork_catalog::{CatalogStore, EventFilter, SqlCatalog};
use meshwork_core::clock::ManualClock;
use meshwork_pipeline::{ApplyOptions, ProductOutcome, SilentObserver, apply_with, load_mesh};
use meshwork_storage::ProductStore;

use super::write;

const CUSTOMERS: &str = "customer_id,email,country\n1,a@x.com,DE\n2,b@x.com,FR\n3,c@x.com,US\n";

const GOOD_ORDERS: &str = "order_id,customer_id,status,amount,code,placed_at
1,1,paid,10.00,AB-1,2026-11-21T10:00:00Z
2,2,paid,999.99,AB-2,2026-11-21T11:00:00Z
3,3,paid,0,CD-3,2026-11-20T12:00:00Z
4,1,refunded,20.00,CD-4,2026-11-21T09:00:00Z
";

/// Breaks every rule below: see the expected counts in the test.
const BAD_ORDERS: &str = "order_id,customer_id,status,amount,code,placed_at
1,1,paid,10.00,AB-1,2026-11-01T10:00:00Z
1,9,shipped,1000.00,,2026-11-01T11:00:00Z
2,3,open,-5.00,bad,2026-11-01T12:00:00Z
3,3,refunded,600.00,CD-3,2026-11-01T12:00:00Z
4,1,paid,20,AB-1,2026-11-01T12:00:00Z
";

fn orders_yaml(severity: &str) -> String {
    format!(
        r#"name: orders
domain: shop
version: 1.0.0
owner: group:shop-data
inputs:
  - {{ name: raw, source: {{ kind: csv, path: data/orders.csv }} }}
contract:
  primary_key: [order_id]
  columns:
    - {{ name: order_id, type: bigint, nullable: false }}
    - {{ name: customer_id, type: bigint, nullable: false }}
    - {{ name: status, type: string, nullable: false }}
    - {{ name: amount, type: "decimal(10,2)", nullable: false }}
    - {{ name: code, type: string }}
    - {{ name: placed_at, type: timestamp, nullable: false }}
quality:
  - {{ rule: not_null, column: code, severity: {severity} }}
  - {{ rule: unique, column: order_id, severity: {severity} }}
  - {{ rule: unique, columns: [customer_id, code], severity: {severity} }}
  - {{ rule: accepted_values, column: status, values: [open, paid, refunded], severity: {severity} }}
  - {{ rule: range, column: amount, min: 0, max: 1000, max_inclusive: false, severity: {severity} }}
  - {{ rule: regex, column: code, pattern: '^[A-Z]{{2}}-[0-9]+$', severity: {severity} }}
  - {{ rule: row_count, min: 2, max: 4, severity: {severity} }}
  - {{ rule: row_count, name: row_count_change, max_change_pct: 10, severity: {severity} }}
  - {{ rule: freshness, column: placed_at, max_age: 2d, severity: {severity} }}
  - {{ rule: referential, column: customer_id, references: crm.customers, references_column: customer_id, severity: {severity} }}
  - {{ rule: sql, name: no_big_refunds, assert: "SELECT count(*) = 0 FROM this WHERE status = 'refunded' AND amount > 500", severity: {severity} }}
  - {{ rule: sql, name: no_open_us_orders, assert: "SELECT count(*) = 0 FROM this o JOIN crm.customers c ON c.customer_id = o.customer_id WHERE c.country = 'US' AND o.status = 'open'", severity: {severity} }}
"#
    )
}

fn mesh(dir: &Path, severity: &str, orders: &str) {
    write(dir, "mesh.yaml", "name: m\n");
    write(dir, "domains/crm/domain.yaml", "name: crm\n");
    write(dir, "domains/shop/domain.yaml", "name: shop\nowners: [group:shop-data]\n");
    write(
        dir,
        "domains/crm/products/customers/product.yaml",
        "name: customers\ndomain: crm\nversion: 1.0.0\nowner: group:crm-data\ninputs:\n  - { name: raw, source: { kind: csv, path: data/customers.csv } }\ncontract:\n  columns:\n    - { name: customer_id, type: bigint, nullable: false }\n    - { name: email, type: string }\n    - { name: country, type: string }\naccess:\n  readers: [domain:shop]\n",
    );
    write(dir, "data/customers.csv", CUSTOMERS);
    write(dir, "domains/shop/products/orders/product.yaml", &orders_yaml(severity));
    write(dir, "data/orders.csv", orders);
}

pub(crate) struct Applied {
    pub catalog: Arc<SqlCatalog>,
    pub store: ProductStore,
}

pub(crate) async fn open(dir: &Path) -> Applied {
    let catalog = Arc::new(SqlCatalog::open_sqlite(&dir.join(".meshwork/catalog.db")).await.unwrap());
    let store = ProductStore::open(&dir.join(".meshwork/data")).unwrap();
    Applied { catalog, store }
}

fn options() -> ApplyOptions {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
    ApplyOptions { clock: Arc::new(clock), ..ApplyOptions::default() }
}

async fn apply(dir: &Path, at: &Applied) -> meshwork_pipeline::ApplyReport {
    let mesh = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    apply_with(&mesh, at.catalog.as_ref(), &at.store, &SilentObserver, &options()).await.unwrap()
}

fn outcome<'r>(report: &'r meshwork_pipeline::ApplyReport, product: &str) -> &'r ProductOutcome {
    &report.outcomes.iter().find(|(id, _)| id.to_string() == product).unwrap_or_else(|| panic!("no outcome for {product}")).1
}

#[tokio::test]
async fn every_rule_kind_passes_on_good_data_and_reports_failures_with_samples_on_bad_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir, "warn", GOOD_ORDERS);
    let at = open(dir).await;
    let report = apply(dir, &at).await;
    let ProductOutcome::Published { quality, .. } = outcome(&report, "shop.orders") else { panic!("{report:#?}") };
    assert_eq!(quality.outcome, "passed", "{:#?}", quality.results);
    assert_eq!(quality.results.len(), 12);
    assert!(quality.results.iter().all(|r| r.status == "passed" && r.samples.is_empty()), "{:#?}", quality.results);

    // Every rule is `warn`: the bad data is published, with every rule reported.
    write(dir, "data/orders.csv", BAD_ORDERS);
    let report = apply(dir, &at).await;
    let ProductOutcome::Published { quality, version, .. } = outcome(&report, "shop.orders") else { panic!("{report:#?}") };
    assert_eq!(version.seq, 2);
    assert_eq!(quality.outcome, "warned");
    let rule = |name: &str| quality.results.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no rule {name}: {:#?}", quality.results));
    let expect = [
        ("not_null_code", 1),
        ("unique_order_id", 2),
        ("unique_customer_id_code", 2),
        ("accepted_values_status", 1),
        ("range_amount", 2),
        ("regex_code", 1),
        ("row_count_7", 1),
        ("row_count_change", 1),
        ("freshness_placed_at", 1),
        ("referential_customer_id", 1),
        ("no_big_refunds", 1),
        ("no_open_us_orders", 1),
    ];
    for (name, failing) in expect {
        let r = rule(name);
        assert_eq!((r.status.as_str(), r.failing), ("failed", failing), "{name}: {r:#?}");
        assert_eq!(r.severity, "warn");
    }
    assert_eq!(rule("row_count_7").message, "5 rows, more than the maximum 4");
    assert!(rule("row_count_change").message.contains("5 rows against 4 in the published version (+25.0 %"), "{}", rule("row_count_change").message);
    assert!(rule("freshness_placed_at").message.starts_with("newest `placed_at` is 21d 0h old"), "{}", rule("freshness_placed_at").message);
    // Samples are the failing rows, whole.
    let ids = |name: &str| rule(name).samples.iter().map(|s| s["order_id"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids("unique_order_id"), [1, 1]);
    assert_eq!(ids("accepted_values_status"), [1]);
    assert_eq!(rule("accepted_values_status").samples[0]["status"], "shipped");
    assert_eq!(ids("range_amount").len(), 2);
    assert_eq!(ids("regex_code"), [2]);
    assert_eq!(rule("referential_customer_id").samples[0]["customer_id"], 9);
    assert!(rule("no_big_refunds").samples.is_empty(), "assertions have no rows to show");

    // The run history is in the catalog, newest first.
    let runs = at.catalog.quality_runs(&"shop.orders".parse().unwrap(), 10).await.unwrap();
    assert_eq!(runs.iter().map(|r| (r.outcome.as_str(), r.published_seq)).collect::<Vec<_>>(), [("warned", Some(2)), ("passed", Some(1))]);
    let events = at.catalog.events(&EventFilter { product: Some("shop.orders".parse().unwrap()), ..EventFilter::default() }).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["product.published", "product.published", "product.quality_warned"]);
}

#[tokio::test]
async fn a_failing_error_rule_publishes_nothing_and_the_previous_version_stays_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir, "error", GOOD_ORDERS);
    let at = open(dir).await;
    let report = apply(dir, &at).await;
    assert!(!report.failed(), "{report:#?}");
    let id: meshwork_core::id::ProductId = "shop.orders".parse().unwrap();
    let before = at.catalog.current_version(&id).await.unwrap().unwrap();
    let table_dir = dir.join(".meshwork/data/shop/orders");
    let files_before = snapshot(&table_dir);

    write(dir, "data/orders.csv", BAD_ORDERS);
    let report = apply(dir, &at).await;
    assert!(report.failed());
    let ProductOutcome::QualityFailed { quality, .. } = outcome(&report, "shop.orders") else { panic!("{report:#?}") };
    assert_eq!(quality.outcome, "failed");
    assert_eq!(quality.published_seq, None);
    let unique = quality.results.iter().find(|r| r.name == "unique_order_id").unwrap();
    assert_eq!(unique.samples.len(), 2);

    // Nothing changed: the catalog's version, every file of the Delta table, no staging left.
    assert_eq!(at.catalog.current_version(&id).await.unwrap().unwrap(), before);
    assert_eq!(snapshot(&table_dir), files_before, "the product table was not touched");
    assert!(at.store.leftover_runs(&id).await.unwrap().is_empty(), "the staged data was discarded");
    // The failure and its samples are recorded.
    let runs = at.catalog.quality_runs(&id, 10).await.unwrap();
    assert_eq!(runs[0].outcome, "failed");
    assert_eq!(runs[0].results.iter().find(|r| r.name == "unique_order_id").unwrap().samples.len(), 2);
    let failed = at.catalog.events(&EventFilter { kinds: vec!["product.quality_failed".parse().unwrap()], ..EventFilter::default() }).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].payload["rules"].as_array().unwrap().len(), 12);

    // A rule that cannot be evaluated blocks like a failed one, and says why. (A rule that checks
    // something else is a breaking change: a new major version.)
    write(dir, "data/orders.csv", GOOD_ORDERS);
    let yaml = orders_yaml("error").replace("'^[A-Z]{2}-[0-9]+$'", "'^[A-Z'").replace("version: 1.0.0", "version: 2.0.0");
    write(dir, "domains/shop/products/orders/product.yaml", &yaml);
    let report = apply(dir, &at).await;
    let ProductOutcome::QualityFailed { quality, .. } = outcome(&report, "shop.orders") else { panic!("{report:#?}") };
    let regex = quality.results.iter().find(|r| r.name == "regex_code").unwrap();
    assert_eq!(regex.status, "error");
    assert!(regex.message.contains("could not be evaluated"), "{}", regex.message);
    assert!(quality.results.iter().filter(|r| r.name != "regex_code").all(|r| r.status == "passed"), "{:#?}", quality.results);
}

/// Every file under `dir` with its bytes.
pub(crate) fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn schema_changes_and_deprecation_are_events_published_with_the_version() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir, "warn", GOOD_ORDERS);
    let at = open(dir).await;
    apply(dir, &at).await;
    let yaml = orders_yaml("warn")
        .replace("version: 1.0.0", "version: 2.0.0\nstatus: deprecated\nsunset: 2027-06-30")
        .replace("    - { name: code, type: string }\n", "");
    write(dir, "domains/shop/products/orders/product.yaml", &yaml.replace("  - { rule: not_null, column: code, severity: warn }\n", "").replace("  - { rule: unique, columns: [customer_id, code], severity: warn }\n", "").replace("  - { rule: regex, column: code, pattern: '^[A-Z]{2}-[0-9]+$', severity: warn }\n", ""));
    let without_code: String = GOOD_ORDERS
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{},{},{},{},{}\n", f[0], f[1], f[2], f[3], f[5])
        })
        .collect();
    write(dir, "data/orders.csv", &without_code);
    let report = apply(dir, &at).await;
    assert!(!report.failed(), "{report:#?}");
    let events = at.catalog.events(&EventFilter { product: Some("shop.orders".parse().unwrap()), after: 0, ..EventFilter::default() }).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["product.published", "product.published", "product.schema_changed", "product.deprecated"]);
    let changed = &events[2].payload;
    assert_eq!((changed["previous_version"].as_str(), changed["version"].as_str()), (Some("1.0.0"), Some("2.0.0")));
    assert_eq!(changed["previous_schema"].as_array().unwrap().len(), 6);
    assert_eq!(changed["schema"].as_array().unwrap().len(), 5);
    assert_eq!(events[3].payload["sunset"], "2027-06-30");
}
