//! Concurrent runs of one product: the product lock serialises them, so one publishes and the
//! other finds the product up to date; a run that cannot get the lock in time says who has it.

use std::sync::Arc;
use std::time::Duration;

use meshwork_catalog::CatalogStore;
use meshwork_pipeline::{ApplyOptions, ProductOutcome, SilentObserver, apply_with, load_mesh};

use super::quality::open;
use super::write;

fn mesh(dir: &std::path::Path, rows: usize) {
    write(dir, "mesh.yaml", "name: m\n");
    write(dir, "domains/shop/domain.yaml", "name: shop\n");
    write(
        dir,
        "domains/shop/products/items/product.yaml",
        "name: items\ndomain: shop\nversion: 1.0.0\nowner: group:shop-data\ninputs:\n  - { name: raw, source: { kind: csv, path: data/items.csv } }\ncontract:\n  columns:\n    - { name: id, type: bigint, nullable: false }\n    - { name: label, type: string }\nquality:\n  - { rule: unique, column: id }\n",
    );
    let mut csv = String::from("id,label\n");
    for i in 0..rows {
        csv.push_str(&format!("{i},item {i}\n"));
    }
    write(dir, "data/items.csv", &csv);
}

#[tokio::test]
async fn two_concurrent_applies_of_one_product_publish_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    mesh(&dir, 50_000);
    let at = Arc::new(open(&dir).await);
    let run = |at: Arc<super::quality::Applied>, dir: std::path::PathBuf| async move {
        let mesh = load_mesh(&dir).unwrap();
        apply_with(&mesh, at.catalog.as_ref(), &at.store, &SilentObserver, &ApplyOptions::default()).await.unwrap()
    };
    let (a, b) = tokio::join!(tokio::spawn(run(at.clone(), dir.clone())), tokio::spawn(run(at.clone(), dir.clone())));
    let keywords: Vec<&str> = [&a, &b].iter().map(|r| r.as_ref().unwrap().outcomes[0].1.keyword()).collect();
    let mut sorted = keywords.clone();
    sorted.sort();
    assert_eq!(sorted, ["published", "unchanged"], "one wins, the other finds it up to date");
    let id = "shop.items".parse().unwrap();
    let versions = at.catalog.versions(&id).await.unwrap();
    assert_eq!(versions.len(), 1, "no duplicate version");
    assert_eq!(versions[0].row_count, 50_000);
}

#[tokio::test]
async fn a_run_that_cannot_take_the_lock_in_time_fails_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir, 10);
    let at = open(dir).await;
    let id = "shop.items".parse().unwrap();
    let held = at.catalog.lock(&meshwork_catalog::product_lock(&id), Duration::ZERO).await.unwrap();
    let mesh = load_mesh(dir).unwrap();
    let options = ApplyOptions { lock_wait: Duration::from_millis(300), ..ApplyOptions::default() };
    let report = apply_with(&mesh, at.catalog.as_ref(), &at.store, &SilentObserver, &options).await.unwrap();
    let ProductOutcome::Failed { error, .. } = &report.outcomes[0].1 else { panic!("{report:#?}") };
    let message = error.to_string();
    assert!(message.starts_with("product `shop.items` is being built by another process (meshwork pid "), "{message}");
    assert!(message.ends_with("wait for it to finish and run again"), "{message}");
    drop(held);
    let report = apply_with(&mesh, at.catalog.as_ref(), &at.store, &SilentObserver, &options).await.unwrap();
    assert_eq!(report.outcomes[0].1.keyword(), "published");
}
