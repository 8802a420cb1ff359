//! Unpublishing and purging on each backend: what each hides, deletes and keeps; and the
//! OpenLineage outbox, which keeps events until every sink has them.

use meshwork_catalog::{AuditEvent, AuditFilter, AuditOutcome, AuditProduct, CatalogStore, EventFilter, LineageEdge, NewEvent};
use meshwork_core::event::EventKind;
use serde_json::json;

use super::{Backend, id, publication};

fn event(kind: EventKind, product: &str) -> NewEvent {
    NewEvent { kind, product: Some(id(product)), payload: json!({}) }
}

#[tokio::test]
async fn unpublish_hides_a_product_keeps_its_history_and_a_new_publication_brings_it_back() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        catalog.publish(&publication("sales.orders", "h1", &[])).await.unwrap();
        catalog.publish(&publication("marketing.roi", "h1", &["sales.orders"])).await.unwrap();
        let generation = catalog.generation().await.unwrap();

        assert!(catalog.unpublish(&id("marketing.roi"), &[event(EventKind::Unpublished, "marketing.roi")]).await.unwrap());
        assert!(!catalog.unpublish(&id("marketing.roi"), &[event(EventKind::Unpublished, "marketing.roi")]).await.unwrap(), "only once");
        assert!(!catalog.unpublish(&id("sales.nothing"), &[]).await.unwrap());
        assert_eq!(catalog.generation().await.unwrap(), generation + 1);
        assert_eq!(catalog.products().await.unwrap().iter().map(|p| p.id.to_string()).collect::<Vec<_>>(), ["sales.orders"]);
        assert_eq!(catalog.product(&id("marketing.roi")).await.unwrap(), None);
        assert_eq!(catalog.current_version(&id("marketing.roi")).await.unwrap(), None);
        assert!(!catalog.current_versions().await.unwrap().contains_key(&id("marketing.roi")));
        assert_eq!(catalog.lineage().await.unwrap(), Vec::<LineageEdge>::new());
        assert_eq!(catalog.versions(&id("marketing.roi")).await.unwrap().len(), 1);
        let unpublished = catalog.unpublished().await.unwrap();
        assert_eq!(unpublished.len(), 1);
        assert_eq!((unpublished[0].product.id.to_string(), unpublished[0].last_version.as_ref().map(|v| v.seq)), ("marketing.roi".into(), Some(1)));
        let kinds = |events: Vec<meshwork_catalog::EventRecord>| events.into_iter().map(|e| e.kind).collect::<Vec<_>>();
        assert_eq!(kinds(catalog.events(&EventFilter::default()).await.unwrap()), [EventKind::Unpublished]);

        // Publishing the same address again serves it as a new publication.
        catalog.publish(&publication("marketing.roi", "h1", &["sales.orders"])).await.unwrap();
        assert_eq!(catalog.current_version(&id("marketing.roi")).await.unwrap().map(|v| v.seq), Some(2));
        assert!(catalog.unpublished().await.unwrap().is_empty());
        backend.finish().await;
    }
}

#[tokio::test]
async fn purge_deletes_only_an_unpublished_product_and_keeps_audit_and_events() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        catalog.publish(&publication("sales.orders", "h1", &[])).await.unwrap();
        catalog.publish(&publication("marketing.roi", "h1", &["sales.orders"])).await.unwrap();
        catalog
            .record_audit(&AuditEvent {
                id: 0,
                at: chrono::Utc::now(),
                principal: "ana".into(),
                interface: "cli".into(),
                action: "query".into(),
                statement: "SELECT 1 FROM sales.orders".into(),
                products: vec![AuditProduct {
                    product: "sales.orders".into(),
                    decision: "allow".into(),
                    policies: Vec::new(),
                    row_filters: 0,
                    masks: Vec::new(),
                    reasons: Vec::new(),
                    decision_us: 0,
                    as_of: Vec::new(),
                    aggregate: None,
                    epsilon: None,
                }],
                rows: Some(1),
                duration_ms: 1.0,
                outcome: AuditOutcome::Ok,
                error: None,
            })
            .await
            .unwrap();

        assert!(!catalog.purge(&id("sales.orders"), &[]).await.unwrap(), "a published product is never purged");
        assert!(catalog.unpublish(&id("sales.orders"), &[event(EventKind::Unpublished, "sales.orders")]).await.unwrap());
        assert!(catalog.purge(&id("sales.orders"), &[event(EventKind::Purged, "sales.orders")]).await.unwrap());
        assert!(!catalog.purge(&id("sales.orders"), &[]).await.unwrap(), "only once");

        assert!(catalog.unpublished().await.unwrap().is_empty());
        assert!(catalog.versions(&id("sales.orders")).await.unwrap().is_empty());
        // Its edge as an upstream goes with it; the reader stays published.
        assert_eq!(catalog.lineage().await.unwrap(), Vec::<LineageEdge>::new());
        assert!(catalog.product(&id("marketing.roi")).await.unwrap().is_some());
        let filter = EventFilter { product: Some(id("sales.orders")), ..EventFilter::default() };
        assert_eq!(catalog.events(&filter).await.unwrap().into_iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Unpublished, EventKind::Purged]);
        let audit = catalog.audit(&AuditFilter { product: Some(id("sales.orders")), ..AuditFilter::default() }).await.unwrap();
        assert_eq!(audit.len(), 1);
        // The address is free again.
        catalog.publish(&publication("sales.orders", "h2", &[])).await.unwrap();
        assert_eq!(catalog.current_version(&id("sales.orders")).await.unwrap().map(|v| v.seq), Some(1));
        backend.finish().await;
    }
}

#[tokio::test]
async fn the_openlineage_outbox_keeps_events_in_order_as_sent_until_pruned() {
    use meshwork_core::openlineage::{Naming, RunId, fail_event, start_event};
    let descriptor = meshwork_core::parse::parse_product(
        "product.yaml",
        "name: orders\ndomain: sales\nversion: 1.0.0\ninputs:\n  - { name: raw, source: { kind: csv, path: data/orders.csv } }\ncontract:\n  columns:\n    - { name: order_id, type: bigint }\n",
    )
    .unwrap()
    .value;
    let naming = Naming { namespace: "acme".into(), root: "/srv/mesh".into(), connections: Default::default(), endpoints: Default::default() };
    let run = RunId::v7(1_764_000_000_000, 42);
    let at = chrono::Utc::now();
    let events = [start_event(&naming, &descriptor, &run, at), fail_event(&naming, &descriptor, &run, at, "boom", &[])];
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let last = catalog.append_openlineage(&events).await.unwrap();
        let stored = catalog.openlineage_outbox(0, 10).await.unwrap();
        assert_eq!(stored.iter().map(|e| e.event.clone()).collect::<Vec<_>>(), events, "{}: read back as written", backend.name);
        assert_eq!(stored[1].id, last);
        assert_eq!(catalog.openlineage_outbox(stored[0].id, 10).await.unwrap().len(), 1, "{}: after a cursor", backend.name);
        assert_eq!(catalog.prune_openlineage(stored[0].id).await.unwrap(), 1);
        assert_eq!(catalog.openlineage_outbox(0, 10).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [last]);
        backend.finish().await;
    }
}
