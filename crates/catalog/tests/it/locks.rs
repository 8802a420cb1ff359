//! Catalog locks on each backend: one holder at a time across every process sharing the
//! catalog, a waiter that gives up names the holder, and dropping (or dying) releases.

use std::time::Duration;

use meshwork_catalog::{CatalogError, CatalogStore, product_lock};

use super::{Backend, id};

#[tokio::test]
async fn a_lock_has_one_holder_across_catalog_handles_and_is_released_when_dropped() {
    for backend in Backend::all().await {
        // Two handles on one store stand for two processes (or machines).
        let (first, second) = (backend.open().await, backend.open().await);
        let name = product_lock(&id("sales.orders"));
        let mut held = first.lock(&name, Duration::ZERO).await.unwrap();
        assert!(held.still_held().await);
        let started = std::time::Instant::now();
        let error = second.lock(&name, Duration::from_millis(300)).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300), "{}: it waited", backend.name);
        let CatalogError::Busy { holder, .. } = &error else { panic!("{}: {error}", backend.name) };
        assert!(holder.starts_with(&format!("meshwork pid {}", std::process::id())), "{}: {holder}", backend.name);
        assert!(error.to_string().starts_with("product `sales.orders` is being built by another process (meshwork pid "), "{error}");
        // Another lock is independent.
        drop(second.lock(&product_lock(&id("sales.customers")), Duration::ZERO).await.unwrap());
        // A waiter gets it as soon as the holder lets go.
        let waiter = tokio::spawn({
            let second = second.clone();
            let name = name.clone();
            async move { second.lock(&name, Duration::from_secs(10)).await.map(|l| l.name().to_owned()) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(held);
        assert_eq!(waiter.await.unwrap().unwrap(), name);
        backend.finish().await;
    }
}

/// A write that finds SQLite's write lock held by another process past the busy timeout is
/// refused with what happened and what to do, instead of the driver's "(code: 5) database is
/// locked" three times over; once the other writer is done, the write goes through.
#[tokio::test]
async fn a_sqlite_catalog_locked_by_another_process_says_so_and_what_to_do() {
    use sqlx::{Connection, Executor};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = meshwork_catalog::SqlCatalog::open(&meshwork_catalog::Location::Sqlite(path.clone())).await.unwrap();
    let sales = || meshwork_catalog::DomainRecord {
        name: meshwork_core::id::DomainName::new("sales").unwrap(),
        title: None,
        description: None,
        owners: vec!["group:s".into()],
        principal: Default::default(),
    };
    let mut other = sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let error = catalog.upsert_domain(&sales()).await.unwrap_err();
    assert!(matches!(error, CatalogError::Locked { waited_s: 10 }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the metadata store is busy: another process has been writing to it for over 10 s (another `meshwork` command or server on the same SQLite file?); wait for it to finish and run again"
    );
    other.execute("ROLLBACK").await.unwrap();
    catalog.upsert_domain(&sales()).await.unwrap();
    assert_eq!(catalog.domains().await.unwrap().len(), 1);
}
