//! Delta tables written by the product store.

mod s3;

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use meshwork_core::id::ProductId;
use meshwork_storage::ProductStore;

pub(crate) fn batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]));
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(names))]).unwrap()
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
    let first = store.publish(&id, batch(&[1]).schema(), vec![batch(&[1, 2, 3])], vec![("meshwork.product".into(), id.to_string())]).await.unwrap();
    let second = store.publish(&id, batch(&[1]).schema(), vec![batch(&[4, 5])], vec![]).await.unwrap();
    assert_eq!((first.delta_version, second.delta_version), (0, 1));
    let url = store.table_url(&id);
    assert!(url.path().ends_with("/data/sales/orders/"));
    assert_eq!(count(&ProductStore::open_table(&url).await.unwrap()).await, 2);
    assert_eq!(count(&ProductStore::open_table_at(&url, 0).await.unwrap()).await, 3);
    // An empty result still creates a readable table with the schema.
    let empty: ProductId = "sales.empty".parse().unwrap();
    store.publish(&empty, batch(&[1]).schema(), vec![], vec![]).await.unwrap();
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
    store.publish(&id, batch(&[1]).schema(), vec![batch(&[1, 2, 3])], vec![]).await.unwrap();
    store.publish(&id, batch(&[1]).schema(), vec![batch(&[4, 5])], vec![]).await.unwrap();
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
    let staged = store.stage(&id, "run-1", batch(&[1]).schema(), vec![batch(&[1, 2, 3])]).await.unwrap();
    assert_eq!(codecs(&dir.path().join("data/_staging/sales.orders/run-1")), ["LZ4_RAW".to_owned()].into());
    assert_eq!(count(&staged.table).await, 3);
    for codec in Codec::ALL.iter().copied() {
        let root = dir.path().join(codec.as_str());
        let store = ProductStore::open(&root).unwrap().with_codec(codec);
        store.publish(&id, batch(&[1]).schema(), vec![batch(&[1, 2, 3, 4])], vec![]).await.unwrap();
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
