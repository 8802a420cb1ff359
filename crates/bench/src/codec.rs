//! Product table codecs side by side: one Parquet file (the harness passes TPC-H `lineitem`)
//! published as a product table with each codec through `ProductStore::publish`, exactly as
//! `meshwork apply` writes it; then its size, and the time of statements scanning it through
//! Meshwork's table provider (the one queries use).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use meshwork_core::id::ProductId;
use meshwork_storage::{Codec, ProductStore};
use serde_json::{Value, json};

/// Publishes `parquet` with every codec and times `statements` (over table `t`), each `runs`
/// times after one warm-up; medians.
pub async fn compare(parquet: &Path, statements: &[String], runs: usize) -> anyhow::Result<Value> {
    let (schema, batches) = read(parquet).await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let id: ProductId = "bench.table".parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut report = Vec::new();
    for codec in Codec::ALL.iter().copied() {
        let dir = tempfile::tempdir()?;
        let store = ProductStore::open(dir.path())?.with_codec(codec);
        let started = Instant::now();
        let staged = store.stage(&id, "run", schema.clone(), futures::stream::iter(batches.iter().cloned().map(Ok::<_, meshwork_storage::StorageError>))).await?;
        store.publish(&id, &staged, Vec::new()).await?;
        let write = started.elapsed();
        let bytes = parquet_bytes(&dir.path().join("bench/table"))?;
        let table = ProductStore::open_table(&store.table_url(&id)).await?;
        let ctx = SessionContext::new();
        ctx.register_table("t", ProductStore::table_provider(&table, &ctx.state()).await?)?;
        let mut timed = serde_json::Map::new();
        for sql in statements {
            let mut samples = Vec::with_capacity(runs);
            for run in 0..=runs {
                let started = Instant::now();
                let mut stream = ctx.sql(sql).await?.execute_stream().await?;
                while let Some(batch) = stream.next().await {
                    std::hint::black_box(batch?);
                }
                if run > 0 {
                    samples.push(started.elapsed());
                }
            }
            timed.insert(sql.clone(), json!(median(samples).as_secs_f64()));
        }
        eprintln!("{codec}: {:.1} MB, written in {:.2} s", bytes as f64 / 1e6, write.as_secs_f64());
        report.push(json!({ "codec": codec.as_str(), "write_s": write.as_secs_f64(), "mb": bytes as f64 / 1e6, "statements_s": timed }));
    }
    Ok(json!({ "file": parquet.display().to_string(), "rows": rows, "runs": runs, "codecs": report }))
}

/// The file's rows with strings as a product table stores them (`Utf8`, not views).
async fn read(parquet: &Path) -> anyhow::Result<(Arc<Schema>, Vec<RecordBatch>)> {
    anyhow::ensure!(
        parquet.is_file(),
        "`{}` is not a file; pass a Parquet file such as target/bench-data/sf1/parquet/lineitem.parquet (`bench/run.sh` generates it)",
        parquet.display()
    );
    let ctx = SessionContext::new();
    let path = parquet.to_str().context("the Parquet path is not UTF-8")?;
    let unreadable = || format!("`{}` is not a readable Parquet file", parquet.display());
    let batches = ctx.read_parquet(path, ParquetReadOptions::default()).await.with_context(unreadable)?.collect().await.with_context(unreadable)?;
    let first = batches.first().with_context(|| format!("`{}` has no rows", parquet.display()))?;
    let plain = |t: &DataType| if matches!(t, DataType::Utf8View) { DataType::Utf8 } else { t.clone() };
    let schema = Arc::new(Schema::new(first.schema().fields().iter().map(|f| Field::new(f.name(), plain(f.data_type()), f.is_nullable())).collect::<Vec<_>>()));
    let batches = batches
        .iter()
        .map(|b| {
            let columns = b.columns().iter().zip(schema.fields()).map(|(c, f)| cast(c, f.data_type())).collect::<Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((schema, batches))
}

/// Bytes of the Parquet files under `dir`.
fn parquet_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
