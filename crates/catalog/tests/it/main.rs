//! The catalog conformance suite: every test runs against each backend of the SQL adapter, a
//! SQLite file and a scratch PostgreSQL database (on `MESHWORK_TEST_POSTGRES`, the local
//! server by default; an unreachable server fails the suite).

use meshwork_catalog::scratch::ScratchDatabase;
use meshwork_catalog::{CatalogStore, DomainRecord, LineageEdge, Location, ProductRecord, Publication, SchemaColumn, SqlCatalog, Watermark};
use meshwork_core::column_type::ColumnType;
use meshwork_core::descriptor::{ProductDescriptor, ProductStatus};
use meshwork_core::id::{DomainName, ProductId};
use meshwork_core::lineage::{ColumnLineage, ColumnSource, Derivation, ProductLineage};

mod access;
mod lifecycle;
mod locks;
mod migrations;
mod portal;
mod privacy;
mod records;

/// One backend under test.
pub struct Backend {
    pub name: &'static str,
    pub location: Location,
    _dir: tempfile::TempDir,
    scratch: Option<ScratchDatabase>,
}

impl Backend {
    /// A fresh, empty store of each kind.
    pub async fn all() -> Vec<Backend> {
        let sqlite_dir = tempfile::tempdir().unwrap();
        let sqlite = Backend { name: "sqlite", location: Location::Sqlite(sqlite_dir.path().join("state/catalog.db")), _dir: sqlite_dir, scratch: None };
        let scratch = ScratchDatabase::create("meshwork_catalog_it").await.expect("a PostgreSQL server for the conformance suite");
        let postgres = Backend { name: "postgres", location: scratch.location(), _dir: tempfile::tempdir().unwrap(), scratch: Some(scratch) };
        vec![sqlite, postgres]
    }

    /// Opens (or reopens) the store.
    pub async fn open(&self) -> SqlCatalog {
        eprintln!("backend: {}", self.name);
        SqlCatalog::open(&self.location).await.unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// Drops what the backend created.
    pub async fn finish(self) {
        if let Some(scratch) = self.scratch {
            scratch.drop_now().await.unwrap();
        }
    }
}

pub fn id(text: &str) -> ProductId {
    text.parse().unwrap()
}

/// A minimal valid descriptor of `product`.
pub fn descriptor(product: &str) -> ProductDescriptor {
    let id = id(product);
    let yaml = format!(
        "name: {}\ndomain: {}\nversion: 1.0.0\nowner: group:x\ninputs:\n  - {{ name: raw, source: {{ kind: csv, path: data/x.csv }} }}\ncontract:\n  columns:\n    - {{ name: id, type: bigint }}\n",
        id.name, id.domain
    );
    meshwork_core::parse::parse_product("product.yaml", &yaml).unwrap().value
}

pub fn publication(product: &str, hash: &str, upstream: &[&str]) -> Publication {
    Publication {
        product: ProductRecord {
            id: id(product),
            version: "1.0.0".into(),
            title: Some("Title".into()),
            description: None,
            owner: Some("group:x".into()),
            status: ProductStatus::Active,
            tags: vec!["a".into(), "b".into()],
            descriptor: descriptor(product),
            descriptor_hash: hash.into(),
            table_uri: format!("file:///tmp/{product}/"),
            updated_at: chrono::Utc::now(),
        },
        delta_version: 0,
        schema: vec![SchemaColumn { name: "id".into(), data_type: ColumnType::BigInt, nullable: true }],
        row_count: 10,
        input_fingerprint: "f".into(),
        upstream: upstream.iter().map(|u| id(u)).collect(),
        lineage: Default::default(),
        quality: None,
        events: Vec::new(),
        watermark: None,
        remote: None,
    }
}

#[tokio::test]
async fn publications_versions_and_lineage_survive_reopening() {
    for backend in Backend::all().await {
        {
            let catalog = backend.open().await;
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
            second.watermark = Some(Watermark { input: "crm".into(), column: "updated_at".into(), value: "2024-01-02 10:00:00.5+00".into() });
            let second = catalog.publish(&second).await.unwrap();
            assert_eq!((second.seq, second.delta_version), (2, 1));
            // Republishing replaces a product's upstream edges.
            catalog.publish(&publication("marketing.roi", "h2", &["sales.orders"])).await.unwrap();
        }
        let catalog = backend.open().await;
        let versions = catalog.versions(&id("sales.orders")).await.unwrap();
        assert_eq!(versions.iter().map(|v| (v.seq, v.row_count, v.descriptor_hash.as_str())).collect::<Vec<_>>(), [(1, 10, "h1"), (2, 12, "h2")]);
        assert_eq!(versions[1].schema, [SchemaColumn { name: "id".into(), data_type: ColumnType::BigInt, nullable: true }]);
        assert!(versions[0].published_at <= versions[1].published_at);
        let current = catalog.current_version(&id("sales.orders")).await.unwrap().unwrap();
        assert_eq!(current.seq, 2);
        // The high-water mark of an incremental load comes back with its version, and only there.
        assert_eq!(current.watermark, Some(Watermark { input: "crm".into(), column: "updated_at".into(), value: "2024-01-02 10:00:00.5+00".into() }));
        assert_eq!(versions[0].watermark, None);
        assert_eq!(catalog.current_version(&id("sales.nothing")).await.unwrap(), None);
        let current = catalog.current_versions().await.unwrap();
        assert_eq!(current.iter().map(|(id, v)| (id.to_string(), v.seq)).collect::<Vec<_>>(), [("marketing.roi".to_owned(), 2), ("sales.orders".to_owned(), 2)]);
        let product = catalog.product(&id("sales.orders")).await.unwrap().unwrap();
        assert_eq!(product.descriptor_hash, "h2");
        assert_eq!(product.tags, ["a", "b"]);
        assert_eq!(product.status, ProductStatus::Active);
        assert_eq!(product.descriptor, descriptor("sales.orders"));
        assert_eq!(catalog.products().await.unwrap().iter().map(|p| p.id.to_string()).collect::<Vec<_>>(), ["marketing.roi", "sales.orders"]);
        assert_eq!(catalog.lineage().await.unwrap(), [LineageEdge { upstream: id("sales.orders"), downstream: id("marketing.roi") }]);
        assert_eq!(catalog.domains().await.unwrap()[0].owners, ["group:s"]);
        backend.finish().await;
    }
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
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let mut first = publication("growth.emails", "h1", &["shop.orders"]);
        first.lineage = copied("email", "orders", "shop.orders");
        catalog.publish(&first).await.unwrap();
        let mut second = publication("growth.emails", "h2", &["shop.customers"]);
        second.lineage = copied("email", "customers", "shop.customers");
        catalog.publish(&second).await.unwrap();
        catalog.publish(&publication("shop.orders", "h1", &[])).await.unwrap();
        let emails = id("growth.emails");
        assert_eq!(catalog.column_lineage(&emails, 1).await.unwrap(), Some(copied("email", "orders", "shop.orders")));
        assert_eq!(catalog.column_lineage(&emails, 2).await.unwrap(), Some(copied("email", "customers", "shop.customers")));
        assert_eq!(catalog.column_lineage(&emails, 3).await.unwrap(), None);
        let current = catalog.current_column_lineage().await.unwrap();
        assert_eq!(
            current.into_iter().collect::<Vec<_>>(),
            [(emails, copied("email", "customers", "shop.customers")), (id("shop.orders"), ProductLineage::default())]
        );
        backend.finish().await;
    }
}

#[tokio::test]
async fn concurrent_publications_of_different_products_all_land() {
    for backend in Backend::all().await {
        let catalog = std::sync::Arc::new(backend.open().await);
        let generation = catalog.generation().await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let catalog = catalog.clone();
                tokio::spawn(async move { catalog.publish(&publication(&format!("d.p{i}"), "h", &[])).await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().seq, 1);
        }
        assert_eq!(catalog.products().await.unwrap().len(), 8);
        assert_eq!(catalog.generation().await.unwrap(), generation + 8, "every publication moves the generation once");
        backend.finish().await;
    }
}
