//! Delta tables written by the product store.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use meshwork_core::id::ProductId;
use meshwork_storage::ProductStore;

fn batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]));
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(names))]).unwrap()
}

async fn count(store_table: &deltalake::DeltaTable) -> i64 {
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
