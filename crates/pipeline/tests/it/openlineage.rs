//! OpenLineage emission: every build's START and COMPLETE or FAIL in the catalog's outbox, every
//! event validated against the official JSON schemas (spec 2-0-2 and its facets, vendored in
//! `tests/openlineage/spec`), and a failing build's FAIL with its error and quality results.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use meshwork_catalog::CatalogStore;
use meshwork_core::openlineage::{EventType, RunEvent};
use meshwork_pipeline::{ProductOutcome, SilentObserver, apply, load_mesh};

use super::write;
use crate::quality::{Applied, open};

const MESH: &str = "name: lineage-test\nopenlineage:\n  namespace: acme\n  sinks:\n    - { name: log, kind: file, path: lineage.ndjson }\n";

const ORDERS: &str = "order_id,customer,amount\n1,ann,10.50\n2,bob,3.25\n3,ann,-1.00\n";

fn mesh(dir: &Path, orders: &str) {
    write(dir, "mesh.yaml", MESH);
    write(dir, "domains/shop/domain.yaml", "name: shop\n");
    write(dir, "data/orders.csv", orders);
    write(
        dir,
        "domains/shop/products/orders/product.yaml",
        r#"name: orders
domain: shop
version: 1.0.0
owner: group:shop-data
inputs:
  - { name: raw, source: { kind: csv, path: data/orders.csv } }
contract:
  columns:
    - { name: order_id, type: bigint, nullable: false, description: "The order's number" }
    - { name: customer, type: string }
    - { name: amount, type: "decimal(10,2)", nullable: false }
quality:
  - { rule: not_null, column: customer, severity: error }
  - { rule: unique, column: order_id }
  - { rule: row_count, min: 1, severity: warn }
"#,
    );
    write(
        dir,
        "domains/shop/products/totals/product.yaml",
        r#"name: totals
domain: shop
version: 1.0.0
owner: group:shop-data
inputs:
  - { name: orders, product: shop.orders }
transform: |
  SELECT customer, sum(amount) AS total, count(order_id) AS orders, length(customer) AS name_length
  FROM orders WHERE amount > 0 GROUP BY customer
contract:
  columns:
    - { name: customer, type: string }
    - { name: total, type: "decimal(20,2)" }
    - { name: orders, type: bigint }
    - { name: name_length, type: int }
"#,
    );
}

async fn outbox(at: &Applied) -> Vec<RunEvent> {
    at.catalog.openlineage_outbox(0, 1000).await.unwrap().into_iter().map(|e| e.event).collect()
}

/// Runs `tests/openlineage/validate.py` on `events` with Python `jsonschema` from PyPI, installed
/// into the test environment when missing (a failure to install fails the test).
fn validate(events: &[RunEvent]) {
    let (valid, report) = validation(events.iter().map(|e| serde_json::to_value(e).unwrap()));
    assert!(valid, "events do not validate against the OpenLineage schemas:\n{report}");
    assert!(report.contains(&format!("checked {} events", events.len())), "{report}");
}

/// Whether `events` validate, and the validator's report.
fn validation(events: impl IntoIterator<Item = serde_json::Value>) -> (bool, String) {
    let python = meshwork_storage::scratch::python_with("jsonschema[format-nongpl]==4.*", "jsonschema, referencing, rfc3339_validator, rfc3986_validator")
        .unwrap_or_else(|e| panic!("cannot install the JSON schema validator: {e}"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openlineage/validate.py");
    let mut child = Command::new(python).arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for event in events {
        writeln!(stdin, "{event}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

fn json(event: &RunEvent) -> serde_json::Value {
    serde_json::to_value(event).unwrap()
}

#[tokio::test]
async fn every_build_emits_start_and_complete_events_that_validate_against_the_openlineage_schemas() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir, ORDERS);
    let at = open(dir).await;
    let loaded = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    let report = apply(&loaded, at.catalog.as_ref(), &at.store, &SilentObserver).await.unwrap();
    assert!(!report.failed(), "{report:#?}");

    let events = outbox(&at).await;
    let steps: Vec<(EventType, String)> = events.iter().map(|e| (e.event_type, e.job.name.clone())).collect();
    assert_eq!(
        steps,
        [
            (EventType::Start, "shop.orders".to_owned()),
            (EventType::Complete, "shop.orders".to_owned()),
            (EventType::Start, "shop.totals".to_owned()),
            (EventType::Complete, "shop.totals".to_owned())
        ]
    );
    assert_eq!(events[0].run.run_id, events[1].run.run_id);
    assert_eq!(events[2].run.run_id, events[3].run.run_id);
    assert_ne!(events[0].run.run_id, events[2].run.run_id);
    validate(&events);

    // The validator is not a rubber stamp: a run id that is no UUID, an assertion without its
    // result and a facet of an unknown version are each refused.
    let mut broken = json(&events[1]);
    broken["run"]["runId"] = "run-20261204".into();
    broken["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"][0].as_object_mut().unwrap().remove("success");
    broken["outputs"][0]["facets"]["schema"]["_schemaURL"] = "https://openlineage.io/spec/facets/9-9-9/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet".into();
    let (valid, report) = validation([broken]);
    assert!(!valid, "{report}");
    assert!(report.contains("run/runId: 'run-20261204' is not a 'uuid'"), "{report}");
    assert!(report.contains("assertions/0: 'success' is a required property"), "{report}");
    assert!(report.contains("names no vendored schema"), "{report}");

    // The file input is a dataset of its own; the derived product reads the product's dataset.
    let orders = json(&events[1]);
    let root = &loaded.root;
    assert_eq!(orders["job"], serde_json::json!({ "namespace": "acme", "name": "shop.orders" }));
    assert_eq!(orders["inputs"], serde_json::json!([{ "namespace": "file", "name": format!("{}/data/orders.csv", root.display()) }]));
    let output = &orders["outputs"][0];
    assert_eq!((output["namespace"].as_str(), output["name"].as_str()), (Some("acme"), Some("shop.orders")));
    assert_eq!(
        output["facets"]["schema"]["fields"][0],
        serde_json::json!({ "name": "order_id", "type": "bigint", "description": "The order's number", "ordinal_position": 1 })
    );
    let assertions = &output["facets"]["dataQualityAssertions"]["assertions"];
    assert_eq!(
        assertions[0],
        serde_json::json!({ "assertion": "not_null", "success": true, "column": "customer", "severity": "error", "name": "not_null_customer", "description": assertions[0]["description"] })
    );
    assert_eq!(assertions.as_array().unwrap().len(), 3);
    assert_eq!(orders["outputs"][0]["facets"]["columnLineage"]["fields"]["amount"]["inputFields"][0]["name"], format!("{}/data/orders.csv", root.display()));

    // Column lineage of the transform: copies, aggregates, a masking length, the WHERE as an
    // indirect dependency of every column.
    let totals = json(&events[3]);
    assert_eq!(totals["inputs"], serde_json::json!([{ "namespace": "acme", "name": "shop.orders" }]));
    let fields = &totals["outputs"][0]["facets"]["columnLineage"]["fields"];
    let transformations = |column: &str| -> Vec<(String, String)> {
        fields[column]["inputFields"]
            .as_array()
            .unwrap_or_else(|| panic!("no lineage for {column}: {fields:#}"))
            .iter()
            .map(|f| {
                assert_eq!((f["namespace"].as_str(), f["name"].as_str()), (Some("acme"), Some("shop.orders")));
                let t = &f["transformations"][0];
                let subtype = t["subtype"].as_str().unwrap_or("-");
                (f["field"].as_str().unwrap().to_owned(), format!("{}/{subtype}/masking={}", t["type"].as_str().unwrap(), t["masking"]))
            })
            .collect()
    };
    assert_eq!(transformations("customer"), pairs(&[("amount", "INDIRECT/-/masking=false"), ("customer", "DIRECT/IDENTITY/masking=false")]));
    assert_eq!(transformations("total"), pairs(&[("amount", "DIRECT/AGGREGATION/masking=false"), ("customer", "INDIRECT/-/masking=false")]));
    assert_eq!(
        transformations("orders"),
        pairs(&[("amount", "INDIRECT/-/masking=false"), ("customer", "INDIRECT/-/masking=false"), ("order_id", "DIRECT/AGGREGATION/masking=true")])
    );
    assert_eq!(transformations("name_length")[1], ("customer".to_owned(), "DIRECT/TRANSFORMATION/masking=true".to_owned()));

    // An unchanged product is not built, so it emits nothing.
    let report = apply(&loaded, at.catalog.as_ref(), &at.store, &SilentObserver).await.unwrap();
    assert!(report.outcomes.iter().all(|(_, o)| matches!(o, ProductOutcome::Unchanged { .. })), "{report:#?}");
    assert_eq!(outbox(&at).await.len(), 4);
}

#[tokio::test]
async fn a_failing_build_emits_fail_with_its_error_and_quality_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A NULL customer breaks the `error` rule: nothing is published.
    mesh(dir, "order_id,customer,amount\n1,,10.50\n2,bob,3.25\n");
    let at = open(dir).await;
    let loaded = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    let report = apply(&loaded, at.catalog.as_ref(), &at.store, &SilentObserver).await.unwrap();
    assert!(matches!(report.outcomes[0].1, ProductOutcome::QualityFailed { .. }), "{report:#?}");
    let events = outbox(&at).await;
    let steps: Vec<(EventType, &str)> = events.iter().map(|e| (e.event_type, e.job.name.as_str())).collect();
    // The derived product is blocked, not built: no run of it.
    assert_eq!(steps, [(EventType::Start, "shop.orders"), (EventType::Fail, "shop.orders")]);
    let fail = json(&events[1]);
    assert_eq!(fail["run"]["runId"], json(&events[0])["run"]["runId"]);
    let message = fail["run"]["facets"]["errorMessage"]["message"].as_str().unwrap();
    assert!(message.starts_with("quality rule `not_null_customer` failed: "), "{message}");
    assert_eq!(fail["run"]["facets"]["errorMessage"]["programmingLanguage"], "rust");
    let assertions = &fail["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"];
    assert_eq!((assertions[0]["name"].as_str(), assertions[0]["success"].as_bool()), (Some("not_null_customer"), Some(false)));
    assert_eq!((assertions[1]["name"].as_str(), assertions[1]["success"].as_bool()), (Some("unique_order_id"), Some(true)));
    assert!(fail["outputs"][0]["facets"].get("columnLineage").is_none(), "nothing was published: {fail:#}");

    // A value that does not fit the contract fails the build itself.
    write(dir, "data/orders.csv", "order_id,customer,amount\none,ann,10.50\n");
    let report = apply(&loaded, at.catalog.as_ref(), &at.store, &SilentObserver).await.unwrap();
    let ProductOutcome::Failed { error, .. } = &report.outcomes[0].1 else { panic!("{report:#?}") };
    let events = outbox(&at).await;
    assert_eq!(events.len(), 4);
    assert_eq!((events[2].event_type, events[3].event_type), (EventType::Start, EventType::Fail));
    let fail = json(&events[3]);
    assert_eq!(fail["run"]["facets"]["errorMessage"]["message"], error.to_string());
    assert!(fail["outputs"][0]["facets"].get("dataQualityAssertions").is_none(), "{fail:#}");
    validate(&events);
}

#[tokio::test]
async fn a_mesh_without_openlineage_sinks_emits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir, ORDERS);
    write(dir, "mesh.yaml", "name: quiet\n");
    let at = open(dir).await;
    let loaded = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    let report = apply(&loaded, at.catalog.as_ref(), &at.store, &SilentObserver).await.unwrap();
    assert!(!report.failed(), "{report:#?}");
    assert!(outbox(&at).await.is_empty());
}
