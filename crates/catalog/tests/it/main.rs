//! The SQLite catalog against a real database file.

use meshwork_catalog::{CatalogStore, DomainRecord, LineageEdge, ProductRecord, Publication, SqliteCatalog};
use meshwork_core::id::{DomainName, ProductId};
use meshwork_core::lineage::{ColumnLineage, ColumnSource, Derivation, ProductLineage};

fn id(text: &str) -> ProductId {
    text.parse().unwrap()
}

fn publication(product: &str, hash: &str, upstream: &[&str]) -> Publication {
    Publication {
        product: ProductRecord {
            id: id(product),
            version: "1.0.0".into(),
            title: Some("Title".into()),
            description: None,
            owner: Some("group:x".into()),
            status: "active".into(),
            tags: vec!["a".into(), "b".into()],
            descriptor_json: "{}".into(),
            descriptor_hash: hash.into(),
            table_uri: format!("file:///tmp/{product}/"),
            updated_at: String::new(),
        },
        delta_version: 0,
        schema_json: "[]".into(),
        row_count: 10,
        input_fingerprint: "f".into(),
        upstream: upstream.iter().map(|u| id(u)).collect(),
        lineage: Default::default(),
        quality: None,
        events: Vec::new(),
    }
}

#[tokio::test]
async fn publications_versions_and_lineage_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/catalog.db");
    {
        let catalog = SqliteCatalog::open(&path).await.unwrap();
        catalog
            .upsert_domain(&DomainRecord { name: DomainName::new("sales").unwrap(), title: None, description: None, owners: vec!["group:s".into()], principal: Default::default() })
            .await
            .unwrap();
        let first = catalog.publish(&publication("sales.orders", "h1", &[])).await.unwrap();
        assert_eq!(first.seq, 1);
        catalog.publish(&publication("marketing.roi", "h1", &["sales.orders", "marketing.campaigns"])).await.unwrap();
        let mut second = publication("sales.orders", "h2", &[]);
        second.delta_version = 1;
        second.row_count = 12;
        let second = catalog.publish(&second).await.unwrap();
        assert_eq!((second.seq, second.delta_version), (2, 1));
        // Republishing replaces a product's upstream edges.
        catalog.publish(&publication("marketing.roi", "h2", &["sales.orders"])).await.unwrap();
    }
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    let versions = catalog.versions(&id("sales.orders")).await.unwrap();
    assert_eq!(versions.iter().map(|v| (v.seq, v.row_count, v.descriptor_hash.as_str())).collect::<Vec<_>>(), [(1, 10, "h1"), (2, 12, "h2")]);
    assert_eq!(catalog.current_version(&id("sales.orders")).await.unwrap().unwrap().seq, 2);
    assert_eq!(catalog.current_version(&id("sales.nothing")).await.unwrap(), None);
    let product = catalog.product(&id("sales.orders")).await.unwrap().unwrap();
    assert_eq!(product.descriptor_hash, "h2");
    assert_eq!(product.tags, ["a", "b"]);
    assert_eq!(catalog.products().await.unwrap().len(), 2);
    assert_eq!(catalog.lineage().await.unwrap(), [LineageEdge { upstream: id("sales.orders"), downstream: id("marketing.roi") }]);
    assert_eq!(catalog.domains().await.unwrap()[0].owners, ["group:s"]);
}

/// A one-column lineage: `column` copied from `input.column` of `product`.
fn copied(column: &str, input: &str, product: &str) -> ProductLineage {
    ProductLineage {
        columns: vec![ColumnLineage {
            name: column.into(),
            sources: vec![ColumnSource {
                input: input.into(),
                product: Some(id(product)),
                column: column.into(),
                derivation: Derivation::Copied,
                carries_value: true,
            }],
        }],
    }
}

#[tokio::test]
async fn column_lineage_is_stored_per_publication_and_read_back_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let catalog = SqliteCatalog::open(&path).await.unwrap();
        let mut first = publication("growth.emails", "h1", &["shop.orders"]);
        first.lineage = copied("email", "orders", "shop.orders");
        catalog.publish(&first).await.unwrap();
        let mut second = publication("growth.emails", "h2", &["shop.customers"]);
        second.lineage = copied("email", "customers", "shop.customers");
        catalog.publish(&second).await.unwrap();
        catalog.publish(&publication("shop.orders", "h1", &[])).await.unwrap();
    }
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    let emails = id("growth.emails");
    assert_eq!(catalog.column_lineage(&emails, 1).await.unwrap(), Some(copied("email", "orders", "shop.orders")));
    assert_eq!(catalog.column_lineage(&emails, 2).await.unwrap(), Some(copied("email", "customers", "shop.customers")));
    assert_eq!(catalog.column_lineage(&emails, 3).await.unwrap(), None);
    let current = catalog.current_column_lineage().await.unwrap();
    assert_eq!(
        current.into_iter().collect::<Vec<_>>(),
        [(emails, copied("email", "customers", "shop.customers")), (id("shop.orders"), ProductLineage::default())]
    );
}

#[tokio::test]
async fn unsupported_and_unreadable_stores_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-db"), "plain text, not sqlite").unwrap();
    let err = SqliteCatalog::open(&dir.path().join("not-a-db")).await.unwrap_err();
    assert!(err.to_string().contains("not-a-db"), "{err}");
}

mod lifecycle;
