//! SLOs measured on an injectable clock: status moves from met to at risk to violated, with an
//! event on violation and recovery, and the error budget shrinks with bad evaluations and
//! failed queries.

use std::sync::Arc;

use chrono::{Duration, Utc};
use meshwork_catalog::{AuditEvent, AuditProduct, CatalogStore, EventFilter, SloCheck};
use meshwork_core::clock::ManualClock;
use meshwork_scheduler::SloEvaluator;

use crate::{apply, open, write};

fn by_objective(checks: &[SloCheck], objective: &str) -> SloCheck {
    checks.iter().find(|c| c.objective == objective).unwrap_or_else(|| panic!("no {objective}: {checks:#?}")).clone()
}

fn query_event(product: &str, outcome: &str) -> AuditEvent {
    let outcome = outcome.parse().unwrap();
    AuditEvent {
        id: 0,
        at: std::time::SystemTime::now().into(),
        principal: "ana".into(),
        interface: "http".into(),
        action: "query".into(),
        statement: "SELECT 1".into(),
        products: vec![AuditProduct { product: product.into(), decision: "allow".into(), policies: vec![], row_filters: 0, masks: vec![], reasons: vec![], decision_us: 0, as_of: vec![], aggregate: None, epsilon: None }],
        rows: Some(1),
        duration_ms: 1.0,
        outcome,
        error: None,
    }
}

#[tokio::test]
async fn freshness_completeness_and_availability_are_measured_with_status_history_and_budget() {
    let mesh = open(tempfile::tempdir().unwrap()).await;
    write(
        &mesh.root,
        "domains/d/products/p/product.yaml",
        "name: p\ndomain: d\nversion: 1.0.0\nowner: group:d-team\ninputs:\n  - { name: raw, source: { kind: csv, path: data/p.csv } }\ncontract:\n  columns:\n    - { name: id, type: bigint, nullable: false }\n    - { name: email, type: string }\nslo:\n  freshness: 24h\n  completeness: { column: email, min_ratio: 0.9 }\n  availability: 99\n  target: 90\n  window: 7d\n",
    );
    let mut csv = String::from("id,email\n");
    for i in 0..10 {
        csv.push_str(&format!("{i},{}\n", if i == 0 { String::new() } else { format!("u{i}@x.com") }));
    }
    write(&mesh.root, "data/p.csv", &csv);
    apply(&mesh).await;
    let clock = Arc::new(ManualClock::new(Utc::now() + Duration::hours(1)));
    let evaluator = SloEvaluator::new(mesh.catalog.clone(), clock.clone());

    let checks = evaluator.evaluate_all().await.unwrap();
    let freshness = by_objective(&checks, "freshness");
    assert_eq!(freshness.status, "met", "{freshness:?}");
    assert!(freshness.message.starts_with("last publish is 1h 0m old (at most 1d 0h allowed)"), "{}", freshness.message);
    let completeness = by_objective(&checks, "completeness");
    assert_eq!((completeness.status.as_str(), completeness.value), ("at_risk", Some(0.9)), "exactly at the threshold is within 20 % of it");
    let availability = by_objective(&checks, "availability");
    assert_eq!((availability.status.as_str(), availability.value), ("met", None));

    // 99 successful queries and one failure: 99 % meets 99 %, but the budget is spent.
    for i in 0..100 {
        mesh.catalog.record_audit(&query_event("d.p", if i == 0 { "error" } else { "ok" })).await.unwrap();
    }
    mesh.catalog.record_audit(&query_event("d.p", "denied")).await.unwrap();
    clock.advance(Duration::hours(19)); // 20 h old: more than 80 % of 24 h
    let checks = evaluator.evaluate_all().await.unwrap();
    assert_eq!(by_objective(&checks, "freshness").status, "at_risk");
    let availability = by_objective(&checks, "availability");
    assert_eq!(availability.status, "at_risk", "{availability:?}");
    assert_eq!(availability.value, Some(99.0));
    assert!(availability.budget_remaining.unwrap().abs() < 1e-9, "{availability:?}");

    clock.advance(Duration::hours(10)); // 30 h old
    let checks = evaluator.evaluate_all().await.unwrap();
    let freshness = by_objective(&checks, "freshness");
    assert_eq!(freshness.status, "violated");
    // Three evaluations, one violated, 10 % may be: budget 1 − 1 / 0.3.
    assert!((freshness.budget_remaining.unwrap() - (1.0 - 1.0 / 0.3)).abs() < 1e-9, "{freshness:?}");
    let violated = mesh.catalog.events(&EventFilter { kinds: vec!["product.slo_violated".parse().unwrap()], ..EventFilter::default() }).await.unwrap();
    assert_eq!(violated.len(), 1);
    assert_eq!(violated[0].payload["objective"], "freshness");

    // Evaluating again while still violated does not repeat the event; a new publish recovers.
    evaluator.evaluate_all().await.unwrap();
    write(&mesh.root, "data/p.csv", &csv.replace("0,\n", "0,z@x.com\n"));
    apply(&mesh).await;
    clock.set(Utc::now() + Duration::minutes(5));
    let checks = evaluator.evaluate_all().await.unwrap();
    assert_eq!(by_objective(&checks, "completeness").status, "met");
    let kinds: Vec<String> = mesh.catalog.events(&EventFilter::default()).await.unwrap().into_iter().map(|e| e.kind.as_str().to_owned()).filter(|k| k.starts_with("product.slo")).collect();
    assert_eq!(kinds, ["product.slo_violated", "product.slo_recovered"]);
    let history = mesh.catalog.slo_checks(&"d.p".parse().unwrap(), meshwork_catalog::time::parse("2000-01-01T00:00:00Z").unwrap(), 100).await.unwrap();
    assert_eq!(history.iter().filter(|c| c.objective == "freshness").count(), 5);
}

#[tokio::test]
async fn a_virtual_products_freshness_and_completeness_are_measured_on_its_database() {
    use meshwork_core::descriptor::DatabaseKind;
    let source = meshwork_sources::scratch::ScratchSource::create(DatabaseKind::Postgres, "slo_virtual").await.unwrap();
    source
        .execute(
            "CREATE TABLE events (id BIGINT PRIMARY KEY, email TEXT, at TIMESTAMPTZ NOT NULL);
             INSERT INTO events VALUES (1, 'a@x.com', now() - interval '3 hours'), (2, NULL, now() - interval '2 hours');",
        )
        .await
        .unwrap();
    let mesh = open(tempfile::tempdir().unwrap()).await;
    write(&mesh.root, "mesh.yaml", &format!("name: m\nconnections:\n  app: {{ url: \"{}\" }}\n", source.url()));
    write(
        &mesh.root,
        "domains/d/products/live/product.yaml",
        "name: live\ndomain: d\nversion: 1.0.0\nowner: group:d-team\nvirtual: true\ninputs:\n  - { name: app, source: { kind: postgres, connection: app, table: events } }\ncontract:\n  columns:\n    - { name: id, type: bigint, nullable: false }\n    - { name: email, type: string }\n    - { name: at, type: timestamp, nullable: false }\nslo:\n  freshness: { max_age: 1h, column: at }\n  completeness: { column: email, min_ratio: 0.9 }\n",
    );
    apply(&mesh).await;
    let evaluator = SloEvaluator::new(mesh.catalog.clone(), Arc::new(ManualClock::new(Utc::now())));
    let checks = evaluator.evaluate_all().await.unwrap();
    let freshness = by_objective(&checks, "freshness");
    assert_eq!(freshness.status, "violated", "{freshness:?}");
    assert!(freshness.message.starts_with("newest `at` is 2h 0m old"), "{}", freshness.message);
    let completeness = by_objective(&checks, "completeness");
    assert_eq!((completeness.status.as_str(), completeness.value), ("violated", Some(0.5)), "{completeness:?}");

    // New rows at the source count at once: nothing is published in between.
    source.execute("INSERT INTO events VALUES (3, 'c@x.com', now()), (4, 'd@x.com', now())").await.unwrap();
    let checks = evaluator.evaluate_all().await.unwrap();
    let freshness = by_objective(&checks, "freshness");
    // Fresh again (at risk only because the first check spent the error budget).
    assert!(freshness.message.starts_with("newest `at` is 0s old") && freshness.status != "violated", "{freshness:?}");
    assert_eq!(by_objective(&checks, "completeness").value, Some(0.75));
    source.drop_now().await.unwrap();
}
