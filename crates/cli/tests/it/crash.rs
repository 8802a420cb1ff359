//! Crash safety: `meshwork apply` killed with SIGKILL at every step of write-audit-publish
//! (stopped there by a failpoint), then restarted; and concurrent applies.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::{meshwork, ok, query_csv, stderr, stdout, tiny_mesh, write, ORDERS_CSV};

/// Starts `meshwork apply` with the failpoint `step`, waits until it stops there, and kills it
/// with SIGKILL.
pub(crate) fn apply_killed_at(dir: &std::path::Path, step: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .arg("-C")
        .arg(dir)
        .arg("apply")
        .env("MESHWORK_FAILPOINT", step)
        .envs(meshwork_storage::scratch::CREDENTIALS_ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let marker = format!("failpoint {step} reached");
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(&marker) => break,
            Some(Ok(_)) => continue,
            _ => panic!("apply ended before reaching failpoint `{step}`: {:?}", child.wait()),
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no cleanup runs.
    child.wait().unwrap();
}

pub(crate) fn versions(dir: &std::path::Path, product: &str) -> Vec<i64> {
    let json: serde_json::Value = serde_json::from_str(&ok(dir, &["product", "show", product, "--format", "json"])).unwrap();
    json["versions"].as_array().unwrap().iter().map(|v| v["delta_version"].as_i64().unwrap()).collect()
}

fn staging_left(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join(".meshwork/data/_staging/sales.orders")).map(|d| d.count()).unwrap_or(0)
}

fn latest_delta_version(dir: &std::path::Path) -> i64 {
    let log = dir.join(".meshwork/data/sales/orders/_delta_log");
    std::fs::read_dir(log)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json")?.parse::<i64>().ok())
        .max()
        .unwrap()
}

#[test]
fn sigkill_at_every_step_of_apply_keeps_the_last_committed_version_and_restart_recovers() {
    const FIVE_ORDERS: &str = "5,dave,AUTUMN,7.00,2025-07-01T00:00:00Z\n";
    for step in ["built", "staged", "checked", "moved", "committed", "published"] {
        let (_tmp, dir) = tiny_mesh();
        ok(&dir, &["apply"]);
        assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM sales.orders"), "n\n4\n");
        write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}{FIVE_ORDERS}"));

        apply_killed_at(&dir, step);
        // Readers see the last version the catalog committed: the old one, unless the crash came
        // after the catalog recorded the new one.
        let expected = if step == "published" { "n\n5\n" } else { "n\n4\n" };
        assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM sales.orders"), expected, "after SIGKILL at `{step}`");
        assert_eq!(query_csv(&dir, "SELECT sum(orders) AS n FROM marketing.roi"), "n\n3\n", "downstream products stay readable after `{step}`");

        // Restarting finishes or cleans up, exactly once.
        let output = meshwork(&dir, &["apply"]);
        assert!(output.status.success(), "restart after `{step}`: {}{}", stdout(&output), stderr(&output));
        assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM sales.orders"), "n\n5\n", "after restarting from `{step}`");
        let published = versions(&dir, "sales.orders");
        assert_eq!(published.len(), 2, "one new version, no duplicate, after `{step}`: {published:?}");
        assert_eq!(*published.last().unwrap(), latest_delta_version(&dir), "the catalog names the newest Delta commit after `{step}`");
        assert_eq!(staging_left(&dir), 0, "no staging left after `{step}`");
        assert_eq!(query_csv(&dir, "SELECT sum(orders) AS n FROM marketing.roi"), "n\n4\n", "downstream rebuilt after `{step}`");
    }
}

#[test]
fn two_applies_started_together_publish_each_product_once() {
    let (_tmp, dir) = tiny_mesh();
    two_applies_together(&dir);
    assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM sales.orders"), "n\n4\n");
}

/// Runs two `meshwork apply` at once on the mesh at `dir`: both succeed, each product is
/// published once.
pub(crate) fn two_applies_together(dir: &std::path::Path) {
    let spawn = || Command::new(env!("CARGO_BIN_EXE_meshwork")).arg("-C").arg(dir).args(["apply", "--format", "json"]).envs(meshwork_storage::scratch::CREDENTIALS_ENV).output();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    for output in [&a, &b] {
        assert!(output.status.success(), "{}{}", stdout(output), stderr(output));
    }
    for product in ["sales.orders", "marketing.campaigns", "marketing.roi"] {
        assert_eq!(versions(dir, product).len(), 1, "{product} published once");
    }
}
