//! Delta tables written by the product store.

mod s3;

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use meshwork_core::id::ProductId;
use std::sync::atomic::{AtomicUsize, Ordering};

use meshwork_storage::{CommittedVersion, ProductStore, StorageError};

pub(crate) fn batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]));
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(names))]).unwrap()
}

/// Stages `batches` as a new run and publishes it, as `apply` does (then removes the run).
pub(crate) async fn publish(store: &ProductStore, id: &ProductId, batches: Vec<RecordBatch>, metadata: Vec<(String, String)>) -> Result<CommittedVersion, StorageError> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = format!("run-{}", RUNS.fetch_add(1, Ordering::Relaxed));
    let staged = store.stage(id, &run, batch(&[1]).schema(), stream(batches)).await?;
    let committed = store.publish(id, &staged, metadata).await;
    store.discard_run(id, &run).await?;
    committed
}

/// Batches as the stream `stage` consumes.
pub(crate) fn stream(batches: Vec<RecordBatch>) -> impl futures::Stream<Item = Result<RecordBatch, StorageError>> {
    futures::stream::iter(batches.into_iter().map(Ok))
}

pub(crate) async fn count(store_table: &deltalake::DeltaTable) -> i64 {
    let ctx = SessionContext::new();
    ctx.register_table("t", ProductStore::table_provider(store_table, &ctx.state()).await.unwrap()).unwrap();
    let batches = ctx.sql("SELECT COUNT(*) AS n FROM t").await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)
}

#[tokio::test]
async fn every_publish_is_a_new_version_and_old_versions_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    let first = publish(&store, &id, vec![batch(&[1, 2, 3])], vec![("meshwork.product".into(), id.to_string())]).await.unwrap();
    let second = publish(&store, &id, vec![batch(&[4, 5])], vec![]).await.unwrap();
    assert_eq!((first.delta_version, second.delta_version), (0, 1));
    let url = store.table_url(&id);
    assert!(url.path().ends_with("/data/sales/orders/"));
    assert_eq!(count(&ProductStore::open_table(&url).await.unwrap()).await, 2);
    assert_eq!(count(&ProductStore::open_table_at(&url, 0).await.unwrap()).await, 3);
    // An empty result still creates a readable table with the schema.
    let empty: ProductId = "sales.empty".parse().unwrap();
    publish(&store, &empty, vec![], vec![]).await.unwrap();
    assert_eq!(count(&ProductStore::open_table(&store.table_url(&empty)).await.unwrap()).await, 0);
}

/// Meshwork's own tables are scanned as the plain Parquet files their snapshot lists (files of
/// replaced versions, still on disk, are not read); a table using a Delta feature that changes
/// how files are read (here partition columns, written by another writer) goes through
/// delta-rs's provider and reads the same rows.
#[tokio::test]
async fn plain_tables_use_the_parquet_scan_and_others_the_delta_scan() {
    use datafusion::datasource::listing::ListingTable;

    let dir = tempfile::tempdir().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    publish(&store, &id, vec![batch(&[1, 2, 3])], vec![]).await.unwrap();
    publish(&store, &id, vec![batch(&[4, 5])], vec![]).await.unwrap();
    let table = ProductStore::open_table(&store.table_url(&id)).await.unwrap();
    let ctx = SessionContext::new();
    let provider = ProductStore::table_provider(&table, &ctx.state()).await.unwrap();
    assert!(provider.downcast_ref::<ListingTable>().is_some(), "a plain table is read by the Parquet scan");
    assert_eq!(count(&table).await, 2, "only the current version's files");

    let other = dir.path().join("partitioned");
    std::fs::create_dir_all(&other).unwrap();
    let url = url::Url::from_directory_path(&other).unwrap();
    deltalake::DeltaTableBuilder::from_url(url.clone())
        .unwrap()
        .build()
        .unwrap()
        .write(vec![batch(&[7, 8, 9])])
        .with_partition_columns(["name"])
        .await
        .unwrap();
    let partitioned = ProductStore::open_table(&url).await.unwrap();
    let provider = ProductStore::table_provider(&partitioned, &ctx.state()).await.unwrap();
    assert!(provider.downcast_ref::<ListingTable>().is_none(), "partitioned tables keep delta-rs's scan");
    assert_eq!(count(&partitioned).await, 3);
}

/// The compression of every column chunk of the Parquet files under `dir`.
fn codecs(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
            // parquet-java's VersionParser must read the writer, or Spark and Trino ignore the
            // string statistics: `<application> version <version> (build <build>)`.
            let created_by = reader.metadata().file_metadata().created_by().unwrap().to_owned();
            assert_eq!(created_by, meshwork_storage::CREATED_BY);
            assert!(created_by.starts_with("meshwork version ") && created_by.ends_with(" (build delta-rs)"), "{created_by}");
            for group in reader.metadata().row_groups() {
                found.extend(group.columns().iter().map(|c| c.compression().to_string()));
            }
        }
    }
    found
}

/// Staged and published files are written with the store's codec (LZ4_RAW unless told), and
/// every codec the benchmark compares writes a table that reads back the same rows.
#[tokio::test]
async fn tables_are_written_with_the_stores_codec() {
    use meshwork_storage::{Codec, DEFAULT_CODEC};

    let dir = tempfile::tempdir().unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    assert_eq!(DEFAULT_CODEC, Codec::Lz4Raw);
    let staged = store.stage(&id, "run-1", batch(&[1]).schema(), stream(vec![batch(&[1, 2, 3])])).await.unwrap();
    assert_eq!(codecs(&dir.path().join("data/_staging/sales.orders/run-1")), ["LZ4_RAW".to_owned()].into());
    assert_eq!(count(&staged.table).await, 3);
    for codec in Codec::ALL.iter().copied() {
        let root = dir.path().join(codec.as_str());
        let store = ProductStore::open(&root).unwrap().with_codec(codec);
        publish(&store, &id, vec![batch(&[1, 2, 3, 4])], vec![]).await.unwrap();
        let expected = match codec {
            Codec::None => "UNCOMPRESSED",
            Codec::Snappy => "SNAPPY",
            Codec::Lz4Raw => "LZ4_RAW",
            Codec::Zstd1 => "ZSTD(ZstdLevel(1))",
        };
        assert_eq!(codecs(&root.join("sales/orders")), [expected.to_owned()].into(), "{codec}");
        assert_eq!(count(&ProductStore::open_table(&store.table_url(&id)).await.unwrap()).await, 4, "{codec}");
    }
}

/// Columns the first rows show to be mostly distinct are written without a dictionary, others
/// with one; every row is written, the rows read ahead to decide included, and they read back.
#[tokio::test]
async fn mostly_distinct_columns_are_written_without_a_dictionary() {
    use datafusion::parquet::basic::Encoding;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = tempfile::tempdir().unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    // 100,000 rows in blocks of 10,000 (the decision reads 65,536 ahead): unique ids, and 7
    // names repeated.
    let schema = batch(&[1]).schema();
    let blocks: Vec<RecordBatch> = (0..10)
        .map(|b| {
            let ids: Vec<i64> = (b * 10_000..(b + 1) * 10_000).collect();
            let names: Vec<String> = ids.iter().map(|i| format!("n{}", i % 7)).collect();
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))]).unwrap()
        })
        .collect();
    publish(&store, &id, blocks, vec![]).await.unwrap();
    let table_dir = dir.path().join("data/sales/orders");
    let mut dictionary = std::collections::BTreeMap::new();
    for name in parquet_names(&table_dir) {
        let reader = SerializedFileReader::new(std::fs::File::open(table_dir.join(name)).unwrap()).unwrap();
        for group in reader.metadata().row_groups() {
            for column in group.columns() {
                let encoded = column.encodings().any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY));
                *dictionary.entry(column.column_path().string()).or_insert(false) |= encoded;
            }
        }
    }
    assert_eq!(dictionary, [("id".to_owned(), false), ("name".to_owned(), true)].into());
    let table = ProductStore::open_table(&store.table_url(&id)).await.unwrap();
    assert_eq!(count(&table).await, 100_000);
    let ctx = SessionContext::new();
    ctx.register_table("t", ProductStore::table_provider(&table, &ctx.state()).await.unwrap()).unwrap();
    let sums = ctx.sql("SELECT SUM(id) AS ids, COUNT(DISTINCT name) AS names FROM t").await.unwrap().collect().await.unwrap();
    let ids = sums[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    let names = sums[0].column(1).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    assert_eq!((ids, names), ((0..100_000i64).sum(), 7));
}

/// The Parquet files directly under `dir`.
fn parquet_names(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Default::default() };
    entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".parquet")).collect()
}

/// Data is written once: publishing moves the staged files into the product table and commits
/// them with the statistics the writer gathered, replacing every file of the previous version.
#[tokio::test]
async fn publishing_moves_the_staged_files_and_keeps_their_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    publish(&store, &id, vec![batch(&[1, 2, 3])], vec![]).await.unwrap();
    let table_dir = dir.path().join("data/sales/orders");
    let first = parquet_names(&table_dir);

    let staged = store.stage(&id, "run-b", batch(&[1]).schema(), stream(vec![batch(&[4, 5]), batch(&[6])])).await.unwrap();
    assert_eq!(staged.rows, 3);
    let staged_files = parquet_names(&dir.path().join("data/_staging/sales.orders/run-b"));
    assert!(!staged_files.is_empty());
    let committed = store.publish(&id, &staged, vec![("meshwork.run".into(), "run-b".into())]).await.unwrap();
    assert_eq!(committed.delta_version, 1);
    assert!(parquet_names(&dir.path().join("data/_staging/sales.orders/run-b")).is_empty(), "the files moved");
    assert_eq!(parquet_names(&table_dir), first.union(&staged_files).cloned().collect(), "the old version's files stay for time travel");

    let table = ProductStore::open_table(&store.table_url(&id)).await.unwrap();
    let current: std::collections::BTreeSet<String> = table.snapshot().unwrap().log_data().iter().map(|f| f.path().to_string()).collect();
    assert_eq!(current, staged_files, "the new version is exactly the staged files");
    assert_eq!(count(&table).await, 3);
    // The writer's statistics travel with the files: Delta readers skip by them.
    let log = std::fs::read_to_string(table_dir.join("_delta_log/00000000000000000001.json")).unwrap();
    let adds: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter_map(|a| a.get("add").cloned()).collect();
    assert_eq!(adds.len(), staged_files.len());
    let stats: serde_json::Value = serde_json::from_str(adds[0]["stats"].as_str().unwrap()).unwrap();
    assert_eq!((stats["numRecords"].as_i64(), stats["minValues"]["id"].as_i64(), stats["maxValues"]["id"].as_i64()), (Some(3), Some(4), Some(6)));
    assert_eq!(store.latest_commit(&id).await.unwrap().unwrap().1["meshwork.run"], "run-b");
    assert_eq!(count(&ProductStore::open_table_at(&store.table_url(&id), 0).await.unwrap()).await, 3, "version 0 still reads");
}

/// A contract that gained a column publishes the new schema with the new files; the previous
/// version keeps its own.
#[tokio::test]
async fn a_changed_schema_is_committed_with_the_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    publish(&store, &id, vec![batch(&[1, 2])], vec![]).await.unwrap();
    let wider = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true), Field::new("region", DataType::Utf8, true)]));
    let rows = RecordBatch::try_new(wider.clone(), vec![Arc::new(Int64Array::from(vec![7])), Arc::new(StringArray::from(vec!["n7"])), Arc::new(StringArray::from(vec!["EU"]))]).unwrap();
    let staged = store.stage(&id, "run-w", wider, stream(vec![rows])).await.unwrap();
    store.publish(&id, &staged, vec![]).await.unwrap();
    let columns = |table: &deltalake::DeltaTable| table.snapshot().unwrap().schema().fields().map(|f| f.name().clone()).collect::<Vec<_>>();
    let url = store.table_url(&id);
    assert_eq!(columns(&ProductStore::open_table(&url).await.unwrap()), ["id", "name", "region"]);
    assert_eq!(columns(&ProductStore::open_table_at(&url, 0).await.unwrap()), ["id", "name"]);
    let ctx = SessionContext::new();
    ctx.register_table("t", ProductStore::table_provider(&ProductStore::open_table(&url).await.unwrap(), &ctx.state()).await.unwrap()).unwrap();
    let region = ctx.sql("SELECT count(*) FROM t WHERE region = 'EU'").await.unwrap().collect().await.unwrap();
    assert_eq!(region[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 1);
}

/// A batch that fails mid-stream (a value that does not fit the contract) stops the stage and
/// removes what it wrote; the error is the stream's own.
#[tokio::test]
async fn a_failing_stream_stages_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    let failing = futures::stream::iter(vec![Ok(batch(&[1, 2])), Err(StorageError::Empty("row 3 does not fit".into())), Ok(batch(&[3]))]);
    let error = store.stage(&id, "run-x", batch(&[1]).schema(), failing).await.unwrap_err();
    assert!(error.to_string().contains("row 3 does not fit"), "{error}");
    assert!(!dir.path().join("data/_staging/sales.orders/run-x").exists());
    assert!(store.leftover_runs(&id).await.unwrap().is_empty());
}

/// A run that moved its files but never committed (a crash between the two) is undone:
/// the moved files go, the table keeps its version and files.
#[tokio::test]
async fn an_abandoned_run_removes_the_files_it_moved() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    publish(&store, &id, vec![batch(&[1, 2, 3])], vec![]).await.unwrap();
    let table_dir = dir.path().join("data/sales/orders");
    let before = parquet_names(&table_dir);
    store.stage(&id, "run-c", batch(&[1]).schema(), stream(vec![batch(&[9])])).await.unwrap();
    let staging = dir.path().join("data/_staging/sales.orders/run-c");
    for name in parquet_names(&staging) {
        std::fs::rename(staging.join(&name), table_dir.join(&name)).unwrap();
    }
    assert_eq!(parquet_names(&table_dir).len(), before.len() + 1);
    store.abandon_run(&id, "run-c").await.unwrap();
    assert_eq!(parquet_names(&table_dir), before);
    assert!(!staging.exists());
    assert_eq!(count(&ProductStore::open_table(&store.table_url(&id)).await.unwrap()).await, 3);
}

/// Abandoning a run never deletes a file a commit refers to, even when asked about a run that
/// did commit (a recovery misled by a journal lost in a cleanup cut short).
#[tokio::test]
async fn abandoning_a_committed_run_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProductStore::open(&dir.path().join("data")).unwrap();
    let id: ProductId = "sales.orders".parse().unwrap();
    let staged = store.stage(&id, "run-d", batch(&[1]).schema(), stream(vec![batch(&[1, 2, 3])])).await.unwrap();
    store.publish(&id, &staged, vec![]).await.unwrap();
    let files = parquet_names(&dir.path().join("data/sales/orders"));
    store.abandon_run(&id, "run-d").await.unwrap();
    assert_eq!(parquet_names(&dir.path().join("data/sales/orders")), files);
    assert_eq!(count(&ProductStore::open_table(&store.table_url(&id)).await.unwrap()).await, 3);
    assert!(store.leftover_runs(&id).await.unwrap().is_empty());
}
