//! The product store on S3-compatible storage (a local moto server, see `scratch.rs`): the same
//! behaviour as on local disk, commits that never overwrite another writer's, and an endpoint
//! failing mid-publish that leaves the previous version served.

use meshwork_core::id::ProductId;
use meshwork_storage::scratch::ScratchBucket;
use meshwork_storage::ProductStore;

use crate::{batch, count, publish, stream};

/// Everything a run does with the store, on one store.
async fn exercise(store: &ProductStore) {
    let id: ProductId = "sales.orders".parse().unwrap();
    store.probe().await.unwrap();
    assert_eq!(store.latest_commit(&id).await.unwrap(), None, "no table yet");

    // Staged runs: written, listed, journaled, found again, discarded.
    let staged = store.stage(&id, "run-1", batch(&[1]).schema(), stream(vec![batch(&[1, 2])])).await.unwrap();
    assert_eq!(count(&staged.table).await, 2);
    store.write_journal(&id, "run-1", "publication.json", b"{\"x\":1}".to_vec()).await.unwrap();
    store.stage(&id, "run-2", batch(&[1]).schema(), stream(vec![])).await.unwrap();
    assert_eq!(store.leftover_runs(&id).await.unwrap(), ["run-1", "run-2"]);
    assert_eq!(store.products_with_staged_runs().await.unwrap(), [id.clone()]);
    assert_eq!(store.read_journal(&id, "run-1", "publication.json").await.unwrap().as_deref(), Some(&b"{\"x\":1}"[..]));
    assert_eq!(store.read_journal(&id, "run-2", "publication.json").await.unwrap(), None);
    store.discard_run(&id, "run-1").await.unwrap();
    store.discard_run(&id, "run-2").await.unwrap();
    store.discard_run(&id, "run-2").await.unwrap();
    assert!(store.leftover_runs(&id).await.unwrap().is_empty());
    assert!(store.products_with_staged_runs().await.unwrap().is_empty());

    // Publications: versions, commit metadata, time travel.
    let metadata = vec![("meshwork.run".to_owned(), "run-3".to_owned())];
    let first = publish(&store, &id, vec![batch(&[1, 2, 3])], metadata).await.unwrap();
    let second = publish(&store, &id, vec![batch(&[4, 5])], vec![("meshwork.run".into(), "run-4".into())]).await.unwrap();
    assert_eq!((first.delta_version, second.delta_version), (0, 1));
    let (version, info) = store.latest_commit(&id).await.unwrap().unwrap();
    assert_eq!((version, info["meshwork.run"].as_str()), (1, Some("run-4")));
    let url = store.table_url(&id);
    assert_eq!(count(&ProductStore::open_table(&url).await.unwrap()).await, 2);
    assert_eq!(count(&ProductStore::open_table_at(&url, 0).await.unwrap()).await, 3, "time travel");

    // Purge.
    assert!(store.remove_table(&id).await.unwrap());
    assert_eq!(store.latest_commit(&id).await.unwrap(), None);
    assert!(!store.remove_table(&id).await.unwrap());
}

#[tokio::test]
async fn the_store_behaves_the_same_on_local_disk_and_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&ProductStore::open(&dir.path().join("data")).unwrap()).await;

    let bucket = ScratchBucket::create("store").unwrap();
    let store = bucket.store("mesh/tables").unwrap();
    assert_eq!(store.location().as_str(), format!("s3://{}/mesh/tables/", bucket.bucket()));
    assert_eq!(store.table_url(&"sales.orders".parse().unwrap()).as_str(), format!("s3://{}/mesh/tables/sales/orders/", bucket.bucket()));
    exercise(&store).await;
    // At the bucket's root too.
    exercise(&bucket.store("").unwrap()).await;
}

/// Delta commits on S3 are conditional puts: a writer whose view of the table is stale can
/// never replace a version another writer committed, so no lock service is needed.
#[tokio::test]
async fn a_commit_never_overwrites_a_version_another_writer_committed() {
    use deltalake::protocol::SaveMode;

    let bucket = ScratchBucket::create("commits").unwrap();
    let store = bucket.store("mesh").unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    publish(&store, &id, vec![batch(&[1])], vec![("meshwork.run".into(), "a0".into())]).await.unwrap();
    let stale = ProductStore::open_table(&store.table_url(&id)).await.unwrap();
    publish(&store, &id, vec![batch(&[1, 2])], vec![("meshwork.run".into(), "a1".into())]).await.unwrap();

    // The stale writer's commit of version 1 is refused by the server (412); delta-rs then
    // either commits after it or reports the conflict, but version 1 stays the first writer's.
    let late = stale.write(vec![batch(&[9, 9, 9])]).with_save_mode(SaveMode::Overwrite).await;
    let (version, info) = store.latest_commit(&id).await.unwrap().unwrap();
    match late {
        Ok(table) => assert_eq!((table.version(), version), (Some(2), 2), "committed after the other writer"),
        Err(e) => assert_eq!(version, 1, "refused: {e}"),
    }
    let one = ProductStore::open_table_at(&store.table_url(&id), 1).await.unwrap();
    assert_eq!(count(&one).await, 2, "version 1 is the first writer's");
    drop(info);
}

/// The endpoint refuses the commit mid-publish: a clear error naming the table, the previous
/// version still the table's, and the next publish finishes.
#[tokio::test]
async fn an_endpoint_failing_mid_publish_leaves_the_previous_version() {
    let bucket = ScratchBucket::create("failing").unwrap();
    let store = bucket.store("mesh").unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    publish(&store, &id, vec![batch(&[1, 2, 3])], vec![]).await.unwrap();

    // The run stages; then the product table's commit file is refused, after its files moved.
    let staged = store.stage(&id, "run-9", batch(&[1]).schema(), stream(vec![batch(&[4])])).await.unwrap();
    bucket.fail("PUT", "/sales/orders/_delta_log/", 403).unwrap();
    let error = store.publish(&id, &staged, vec![]).await.unwrap_err().to_string();
    assert!(error.contains(&format!("s3://{}/mesh/sales/orders/", bucket.bucket())), "{error}");
    assert!(error.contains("403") || error.to_lowercase().contains("access"), "{error}");
    bucket.heal().unwrap();
    let table = ProductStore::open_table(&store.table_url(&id)).await.unwrap();
    assert_eq!((table.version(), count(&table).await), (Some(0), 3), "the previous version is served");
    // Recovery abandons the run: the files it moved into the table go, the committed ones stay.
    let parquet_files = || async {
        use futures::TryStreamExt;
        let listed: Vec<_> = table.log_store().object_store(None).list(None).try_collect().await.unwrap();
        listed.iter().filter(|o| o.location.as_ref().ends_with(".parquet")).count()
    };
    let committed = table.snapshot().unwrap().log_data().iter().count();
    assert_eq!(parquet_files().await, committed + 1, "the moved file is in the table, not committed");
    store.abandon_run(&id, "run-9").await.unwrap();
    assert_eq!(parquet_files().await, committed, "only committed files remain");

    let next = publish(&store, &id, vec![batch(&[4])], vec![]).await.unwrap();
    assert_eq!(next.delta_version, 1);
    assert_eq!(count(&ProductStore::open_table(&store.table_url(&id)).await.unwrap()).await, 1);

    // Listing refused: the readiness probe says so.
    bucket.fail("GET", "", 403).unwrap();
    let error = store.probe().await.unwrap_err().to_string();
    assert!(error.contains(&format!("s3://{}/mesh", bucket.bucket())), "{error}");
    bucket.heal().unwrap();
    store.probe().await.unwrap();
}

/// A bucket nobody can reach: the probe answers with an error, quickly, naming the location
/// and no credentials.
#[tokio::test]
async fn an_unreachable_endpoint_is_a_clear_error() {
    let mut location = ScratchBucket::create("unreachable").unwrap().location("mesh");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    location.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let store = ProductStore::open_s3_with_credentials(&location, "AKIDEXAMPLE", "very-secret-key").unwrap();
    let error = store.probe().await.unwrap_err().to_string();
    assert!(error.contains(&format!("s3://{}/mesh", location.bucket)), "{error}");
    assert!(!error.contains("very-secret-key") && !error.contains("AKIDEXAMPLE"), "{error}");
}
