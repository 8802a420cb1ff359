//! Products that leave the repository: the next apply unpublishes them (planned first, an event
//! recorded, data kept), a refresh does not, a moved product is told apart, a restored one comes
//! back, and purge deletes what is left only when nothing serves it any more.

use std::path::Path;

use meshwork_catalog::{AuditFilter, CatalogStore, EventFilter};
use meshwork_core::id::ProductId;
use meshwork_core::principal::Principal;
use meshwork_pipeline::{
    ApplyOptions, PipelineError, PlanAction, ProductOutcome, Removal, SilentObserver, apply, load_mesh, plan, published_descriptors, purge,
    refresh,
};

use super::quality::{Applied, open};
use super::write;

fn product_yaml(domain: &str, name: &str, input: &str) -> String {
    format!(
        "name: {name}\ndomain: {domain}\nversion: 1.0.0\nowner: group:{domain}-data\ninputs:\n  - {{ name: raw, {input} }}\ncontract:\n  columns:\n    - {{ name: id, type: bigint, nullable: false }}\n    - {{ name: label, type: string }}\n"
    )
}

/// Domains `shop` and `growth`; `shop.orders` and `shop.returns` from CSV, `shop.big_orders` read
/// from `shop.orders`.
fn mesh(dir: &Path) {
    write(dir, "mesh.yaml", "name: m\n");
    write(dir, "domains/shop/domain.yaml", "name: shop\n");
    write(dir, "domains/growth/domain.yaml", "name: growth\n");
    write(dir, "data/orders.csv", "id,label\n1,a\n2,b\n3,c\n");
    write(dir, "domains/shop/products/orders/product.yaml", &product_yaml("shop", "orders", "source: { kind: csv, path: data/orders.csv }"));
    write(dir, "domains/shop/products/returns/product.yaml", &product_yaml("shop", "returns", "source: { kind: csv, path: data/orders.csv }"));
    write(dir, "domains/shop/products/big_orders/product.yaml", &product_yaml("shop", "big_orders", "product: shop.orders"));
}

fn id(text: &str) -> ProductId {
    text.parse().unwrap()
}

async fn apply_mesh(dir: &Path, at: &Applied) -> meshwork_pipeline::ApplyReport {
    let mesh = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    apply(&mesh, at.catalog.as_ref(), &at.store, &SilentObserver).await.unwrap()
}

/// `product: action` lines of `meshwork plan`, for products that are not unchanged.
async fn planned(dir: &Path, at: &Applied) -> Vec<String> {
    let mesh = load_mesh(dir).unwrap_or_else(|d| panic!("{d:#?}"));
    let published = published_descriptors(at.catalog.as_ref()).await.unwrap();
    let items = plan(&mesh, Some(at.catalog.as_ref()), &published, &[]).await.unwrap();
    items
        .into_iter()
        .filter(|i| i.action != PlanAction::Unchanged)
        .map(|i| {
            let action = match &i.action {
                PlanAction::Unpublish { removal } => format!("unpublish ({})", removal.describe()),
                other => format!("{other:?}"),
            };
            format!("{}: {action} {}", i.product, i.to_version)
        })
        .collect()
}

fn outcomes(report: &meshwork_pipeline::ApplyReport) -> Vec<String> {
    report.outcomes.iter().map(|(id, o)| format!("{id}: {}", o.keyword())).collect()
}

async fn published(at: &Applied) -> Vec<String> {
    at.catalog.products().await.unwrap().iter().map(|p| p.id.to_string()).collect()
}

async fn event_kinds(at: &Applied, product: &str) -> Vec<String> {
    let filter = EventFilter { product: Some(id(product)), ..EventFilter::default() };
    at.catalog.events(&filter).await.unwrap().into_iter().map(|e| e.kind.to_string()).collect()
}

#[tokio::test]
async fn a_deleted_product_is_planned_then_unpublished_with_its_data_kept_and_comes_back_when_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir);
    let at = open(dir).await;
    apply_mesh(dir, &at).await;
    let generation = at.catalog.generation().await.unwrap();

    std::fs::remove_dir_all(dir.join("domains/shop/products/returns")).unwrap();
    assert_eq!(planned(dir, &at).await, ["shop.returns: unpublish (removed from the repository) 1.0.0"]);

    let report = apply_mesh(dir, &at).await;
    assert!(!report.failed(), "{report:#?}");
    assert_eq!(outcomes(&report), ["shop.orders: unchanged", "shop.big_orders: unchanged", "shop.returns: unpublished"]);
    let ProductOutcome::Unpublished { removal: Removal::Deleted, version: Some(version) } = &report.outcomes[2].1 else { panic!("{report:#?}") };
    assert_eq!((version.seq, version.row_count), (1, 3));

    // Out of service: not listed, no current version, servers told to reload.
    assert_eq!(published(&at).await, ["shop.big_orders", "shop.orders"]);
    assert_eq!(at.catalog.product(&id("shop.returns")).await.unwrap(), None);
    assert_eq!(at.catalog.current_version(&id("shop.returns")).await.unwrap(), None);
    assert!(at.catalog.generation().await.unwrap() > generation);
    let unpublished = at.catalog.unpublished().await.unwrap();
    assert_eq!(unpublished.iter().map(|u| u.product.id.to_string()).collect::<Vec<_>>(), ["shop.returns"]);
    assert_eq!(unpublished[0].last_version.as_ref().map(|v| v.seq), Some(1));
    assert_eq!(event_kinds(&at, "shop.returns").await, ["product.published", "product.unpublished"]);
    let event = at.catalog.events(&EventFilter { product: Some(id("shop.returns")), ..EventFilter::default() }).await.unwrap().pop().unwrap();
    assert_eq!(event.payload, serde_json::json!({ "version": "1.0.0", "publication": 1, "trigger": "apply", "reason": "removed" }));
    // History and data stay until purged.
    assert_eq!(at.catalog.versions(&id("shop.returns")).await.unwrap().len(), 1);
    assert!(dir.join(".meshwork/data/shop/returns/_delta_log").is_dir());
    let audit = at.catalog.audit(&AuditFilter { limit: Some(1), ..AuditFilter::default() }).await.unwrap();
    assert!(audit[0].products.iter().any(|p| p.product == "shop.returns" && p.decision == "unpublished"), "{audit:#?}");

    // Nothing more to do; a second apply does not unpublish again.
    assert_eq!(planned(dir, &at).await, Vec::<String>::new());
    assert_eq!(outcomes(&apply_mesh(dir, &at).await), ["shop.orders: unchanged", "shop.big_orders: unchanged"]);
    assert_eq!(event_kinds(&at, "shop.returns").await.len(), 2);

    // Restored: planned as a first publish, published again as a new publication.
    mesh(dir);
    assert_eq!(planned(dir, &at).await, ["shop.returns: Create 1.0.0"]);
    let report = apply_mesh(dir, &at).await;
    assert_eq!(outcomes(&report), ["shop.orders: unchanged", "shop.returns: published", "shop.big_orders: unchanged"]);
    assert_eq!(at.catalog.current_version(&id("shop.returns")).await.unwrap().map(|v| v.seq), Some(2));
    assert!(at.catalog.unpublished().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_product_moved_to_another_domain_is_published_there_and_unpublished_here() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir);
    let at = open(dir).await;
    apply_mesh(dir, &at).await;

    std::fs::remove_dir_all(dir.join("domains/shop/products/returns")).unwrap();
    write(dir, "domains/growth/products/returns/product.yaml", &product_yaml("growth", "returns", "source: { kind: csv, path: data/orders.csv }"));
    assert_eq!(
        planned(dir, &at).await,
        ["growth.returns: Create 1.0.0", "shop.returns: unpublish (moved to growth.returns) 1.0.0"]
    );
    let report = apply_mesh(dir, &at).await;
    assert_eq!(outcomes(&report), ["growth.returns: published", "shop.orders: unchanged", "shop.big_orders: unchanged", "shop.returns: unpublished"]);
    assert_eq!(published(&at).await, ["growth.returns", "shop.big_orders", "shop.orders"]);
    let event = at.catalog.events(&EventFilter { product: Some(id("shop.returns")), ..EventFilter::default() }).await.unwrap().pop().unwrap();
    assert_eq!(event.kind, "product.unpublished");
    assert_eq!(event.payload["reason"], "moved");
    assert_eq!(event.payload["moved_to"], "growth.returns");
}

#[tokio::test]
async fn a_refresh_never_unpublishes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir);
    let at = open(dir).await;
    apply_mesh(dir, &at).await;
    std::fs::remove_dir_all(dir.join("domains/shop/products/returns")).unwrap();
    let mesh = load_mesh(dir).unwrap();
    let options = ApplyOptions { trigger: "refresh".parse().unwrap(), ..ApplyOptions::default() };
    let report = refresh(&mesh, at.catalog.as_ref(), &at.store, &SilentObserver, &[id("shop.orders")], true, options).await.unwrap();
    assert_eq!(outcomes(&report), ["shop.orders: unchanged", "shop.big_orders: unchanged"]);
    assert!(published(&at).await.contains(&"shop.returns".to_owned()));
}

#[tokio::test]
async fn a_product_still_read_by_another_cannot_be_removed_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir);
    let at = open(dir).await;
    apply_mesh(dir, &at).await;
    // `shop.big_orders` reads `shop.orders`: the repository is invalid, so no apply can run
    // and nothing is unpublished, as with any missing upstream.
    std::fs::remove_dir_all(dir.join("domains/shop/products/orders")).unwrap();
    let diagnostics = load_mesh(dir).err().expect("a missing upstream is a validation error");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].message, "product `shop.orders` does not exist");
    assert_eq!(diagnostics[0].field, "inputs[0].product");
    assert!(published(&at).await.contains(&"shop.orders".to_owned()));
}

#[tokio::test]
async fn purge_deletes_an_unpublished_product_and_refuses_anything_still_served() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mesh(dir);
    let at = open(dir).await;
    apply_mesh(dir, &at).await;
    let admin = Principal::local_admin();
    let wait = std::time::Duration::from_secs(5);
    let purge_now = |principal: Principal, product: &'static str| {
        let at = &at;
        async move {
            let mesh = load_mesh(dir).unwrap();
            purge(&mesh, at.catalog.as_ref(), &at.store, &principal, &id(product), wait).await
        }
    };
    let message = |result: Result<meshwork_pipeline::Purged, PipelineError>| result.err().expect("refused").to_string();

    // In the repository: refused.
    expect_test::expect!["product `shop.returns` is still in the mesh repository; delete its directory and run `meshwork apply` to unpublish it, then purge it (a product past its `sunset` date is purged while declared)"]
        .assert_eq(&message(purge_now(admin.clone(), "shop.returns").await));
    // Removed but not yet unpublished: refused.
    std::fs::remove_dir_all(dir.join("domains/shop/products/returns")).unwrap();
    expect_test::expect!["product `shop.returns` is still published; run `meshwork apply` to unpublish it, then purge it"]
        .assert_eq(&message(purge_now(admin.clone(), "shop.returns").await));
    apply_mesh(dir, &at).await;
    // Not an administrator: refused.
    let ana = Principal { name: "ana".into(), admin: false, ..Principal::local_admin() };
    expect_test::expect!["`ana` may not purge `shop.returns`: only administrators may; run it as an administrator (`--as NAME`)"]
        .assert_eq(&message(purge_now(ana, "shop.returns").await));
    // Unknown: refused.
    expect_test::expect!["product `shop.gone` is not an unpublished product; only products unpublished by `meshwork apply` can be purged (`meshwork events --product shop.gone` shows its history)"]
        .assert_eq(&message(purge_now(admin.clone(), "shop.gone").await));

    let purged = purge_now(admin.clone(), "shop.returns").await.unwrap();
    assert_eq!((purged.version.as_str(), purged.table_deleted), ("1.0.0", true));
    assert!(!dir.join(".meshwork/data/shop/returns").exists());
    assert!(dir.join(".meshwork/data/shop/orders/_delta_log").is_dir(), "other products keep their data");
    assert!(at.catalog.unpublished().await.unwrap().is_empty());
    assert!(at.catalog.versions(&id("shop.returns")).await.unwrap().is_empty());
    assert!(at.catalog.quality_runs(&id("shop.returns"), 10).await.unwrap().is_empty());
    // The history stays: events with the purge appended, and the audit log.
    assert_eq!(event_kinds(&at, "shop.returns").await, ["product.published", "product.unpublished", "product.purged"]);
    let audit = at.catalog.audit(&AuditFilter { product: Some(id("shop.returns")), ..AuditFilter::default() }).await.unwrap();
    assert_eq!(audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["purge", "apply", "apply"]);
    // Purged once: a second purge finds nothing.
    assert!(message(purge_now(admin, "shop.returns").await).starts_with("product `shop.returns` is not an unpublished product"));
}
