//! A mesh whose tables live in an S3 bucket (a local moto server, `meshwork_storage::scratch`):
//! publish, query and time travel; two publishers at once; SIGKILL at every step of
//! write-audit-publish; and an endpoint that fails mid-publish.

use std::path::Path;

use meshwork_core::id::ProductId;
use meshwork_storage::scratch::ScratchBucket;
use meshwork_storage::ProductStore;

use super::crash::{apply_killed_at, two_applies_together, versions};
use super::{meshwork, ok, query_csv, stderr, stdout, tiny_mesh, write, ORDERS_CSV};

const FIFTH_ORDER: &str = "5,dave,AUTUMN,7.00,2025-07-01T00:00:00Z\n";

/// The tiny mesh with its tables under `tiny/` in a bucket of its own.
fn tiny_mesh_on_s3(bucket_name: &str) -> (tempfile::TempDir, std::path::PathBuf, S3) {
    let bucket = ScratchBucket::create(bucket_name).unwrap();
    let (tmp, dir) = tiny_mesh();
    write(&dir, "mesh.yaml", &format!("name: tiny\n{}", bucket.mesh_yaml("tiny")));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = bucket.store("tiny").unwrap();
    (tmp, dir, S3 { bucket, store, runtime })
}

/// The bucket, and the product store on it as this test process sees it.
struct S3 {
    bucket: ScratchBucket,
    store: ProductStore,
    runtime: tokio::runtime::Runtime,
}

impl S3 {
    fn orders() -> ProductId {
        "sales.orders".parse().unwrap()
    }

    fn latest_delta_version(&self) -> i64 {
        self.runtime.block_on(self.store.latest_commit(&Self::orders())).unwrap().expect("a table").0
    }

    fn staging_left(&self) -> usize {
        self.runtime.block_on(self.store.leftover_runs(&Self::orders())).unwrap().len()
    }

    fn rows_at(&self, delta_version: i64) -> usize {
        self.runtime.block_on(async {
            let table = ProductStore::open_table_at(&self.store.table_url(&Self::orders()), delta_version).await.unwrap();
            let ctx = datafusion::prelude::SessionContext::new();
            ctx.register_table("t", ProductStore::table_provider(&table, &ctx.state()).await.unwrap()).unwrap();
            ctx.sql("SELECT * FROM t").await.unwrap().count().await.unwrap()
        })
    }
}

fn count_orders(dir: &Path) -> String {
    query_csv(dir, "SELECT count(*) AS n FROM sales.orders")
}

#[test]
fn a_mesh_on_s3_publishes_serves_and_keeps_its_history() {
    let (_tmp, dir, s3) = tiny_mesh_on_s3("publish");
    let applied = ok(&dir, &["apply"]);
    assert!(applied.contains("3 published, 0 unchanged, 0 failed"), "{applied}");
    assert_eq!(count_orders(&dir), "n\n4\n");
    assert_eq!(query_csv(&dir, "SELECT sum(orders) AS n FROM marketing.roi"), "n\n3\n", "a derived product reads its input from the bucket");
    assert!(!dir.join(".meshwork/data").exists(), "no table on local disk");
    let shown: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "show", "sales.orders", "--format", "json"])).unwrap();
    let location = format!("s3://{}/tiny/sales/orders/", s3.bucket.bucket());
    assert!(shown.to_string().contains(&location), "{shown}");

    write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}{FIFTH_ORDER}"));
    ok(&dir, &["apply"]);
    assert_eq!(count_orders(&dir), "n\n5\n");
    assert_eq!(versions(&dir, "sales.orders"), [0, 1]);
    // Every published version stays readable in the bucket (time travel).
    assert_eq!((s3.rows_at(0), s3.rows_at(1)), (4, 5));
    assert_eq!(s3.staging_left(), 0);
}

#[test]
fn two_publishers_at_once_on_s3_publish_each_product_once() {
    let (_tmp, dir, s3) = tiny_mesh_on_s3("concurrent");
    two_applies_together(&dir);
    assert_eq!(count_orders(&dir), "n\n4\n");
    assert_eq!(s3.latest_delta_version(), 0, "one commit");
}

#[test]
fn sigkill_at_every_step_on_s3_keeps_the_last_committed_version_and_restart_recovers() {
    for step in ["built", "staged", "checked", "moved", "committed", "published"] {
        let (_tmp, dir, s3) = tiny_mesh_on_s3(step);
        ok(&dir, &["apply"]);
        write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}{FIFTH_ORDER}"));
        apply_killed_at(&dir, step);
        let expected = if step == "published" { "n\n5\n" } else { "n\n4\n" };
        assert_eq!(count_orders(&dir), expected, "after SIGKILL at `{step}`");

        let output = meshwork(&dir, &["apply"]);
        assert!(output.status.success(), "restart after `{step}`: {}{}", stdout(&output), stderr(&output));
        assert_eq!(count_orders(&dir), "n\n5\n", "after restarting from `{step}`");
        let published = versions(&dir, "sales.orders");
        assert_eq!(published.len(), 2, "one new version, no duplicate, after `{step}`: {published:?}");
        assert_eq!(*published.last().unwrap(), s3.latest_delta_version(), "the catalog names the newest Delta commit after `{step}`");
        assert_eq!(s3.staging_left(), 0, "no staging left after `{step}`");
    }
}

#[test]
fn an_endpoint_failing_mid_publish_is_a_clear_error_and_the_next_run_finishes() {
    let (_tmp, dir, s3) = tiny_mesh_on_s3("failing");
    ok(&dir, &["apply"]);
    write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}{FIFTH_ORDER}"));

    // The staged data and the new data files upload; the commit of the product's table is refused.
    s3.bucket.fail("PUT", "/tiny/sales/orders/_delta_log/", 403).unwrap();
    // With every log line on, so a credential that leaked into a log or error would show.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .arg("-C")
        .arg(&dir)
        .arg("apply")
        .env("MESHWORK_LOG", "debug")
        .envs(meshwork_storage::scratch::CREDENTIALS_ENV)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}{}", stdout(&output), stderr(&output));
    let text = stdout(&output) + &stderr(&output);
    let table = format!("s3://{}/tiny/sales/orders/", s3.bucket.bucket());
    assert!(text.contains(&table), "the error names the table: {text}");
    assert!(text.contains("DEBUG"), "debug logging was on: {text}");
    for secret in [meshwork_storage::scratch::SECRET_ACCESS_KEY, meshwork_storage::scratch::ACCESS_KEY_ID] {
        assert!(!text.contains(secret), "no credentials in logs or errors: {text}");
    }
    // Nothing half-visible: the previous version is served, downstream too.
    assert_eq!(count_orders(&dir), "n\n4\n");
    assert_eq!(query_csv(&dir, "SELECT sum(orders) AS n FROM marketing.roi"), "n\n3\n");
    assert_eq!((versions(&dir, "sales.orders"), s3.latest_delta_version()), (vec![0], 0));

    // The endpoint recovers: the next run cleans up what the failed one staged and publishes.
    s3.bucket.heal().unwrap();
    ok(&dir, &["apply"]);
    assert_eq!(count_orders(&dir), "n\n5\n");
    assert_eq!(query_csv(&dir, "SELECT sum(orders) AS n FROM marketing.roi"), "n\n4\n");
    assert_eq!(versions(&dir, "sales.orders"), [0, 1]);
    assert_eq!(s3.staging_left(), 0);
}

#[test]
fn storage_settings_are_checked_and_credentials_never_sit_in_mesh_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    let refused = [
        ("storage:\n  url: s3://b/x\n", "is not a bucket name"),
        ("storage: gs://bucket/x\n", "unsupported storage `gs://`"),
        ("storage:\n  url: s3://bucket/x\n  secret_access_key: hunter2\n", "storage credentials must not be written"),
        ("storage:\n  url: s3://bucket/x\n  endpoint: http://key:hunter2@127.0.0.1:9000\n", "holds credentials"),
        ("storage:\n  data_dir: here\n  url: s3://bucket/x\n", "both name where tables live"),
        ("storage:\n  data_dir: here\n  endpoint: http://127.0.0.1:9000\n", "applies to object storage only"),
    ];
    for (yaml, message) in refused {
        write(&dir, "mesh.yaml", &format!("name: m\n{yaml}"));
        let output = meshwork(&dir, &["validate"]);
        let text = stdout(&output) + &stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{yaml}: {text}");
        assert!(text.contains(message) && text.contains("mesh.yaml"), "{yaml}: {text}");
        assert!(!text.contains("hunter2"), "never echoed: {text}");
    }
}
