//! The query-layer attacks of a hostile consumer through `meshwork query`, class by class, on
//! the policy fixture mesh of the query crate. `ana` is the attacker: an EU analyst who reads
//! `sales.orders` filtered, `sales.customers` filtered and masked, and not `finance.ledger`.
//! The network interfaces run the same classes in the server crate's `attacks` tests.

use std::path::{Path, PathBuf};

use expect_test::expect;

use super::{meshwork, ok, stderr, stdout};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The policy fixture mesh, applied.
fn policy_mesh() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../query/tests/fixtures/mesh"), &dir);
    ok(&dir, &["apply"]);
    (tmp, dir)
}

/// What `meshwork --as ana query` answers: the CSV, or the exit code and error. A crash (a
/// signal instead of an exit code) fails the test.
fn attempt(dir: &Path, sql: &str) -> String {
    let output = meshwork(dir, &["--as", "ana", "query", "--format", "csv", sql]);
    let shown: String = if sql.len() > 70 { format!("{}… ({} bytes)", &sql[..60], sql.len()) } else { sql.to_owned() };
    match output.status.code() {
        Some(0) => format!("$ {shown}\n{}", stdout(&output)),
        Some(code) => format!("$ {shown}\nexit {code}: {}", stderr(&output)),
        None => panic!("`meshwork query` was killed by a signal on `{shown}`: {}", stderr(&output)),
    }
}

fn transcript(dir: &Path, statements: &[String]) -> String {
    statements.iter().map(|sql| attempt(dir, sql)).collect::<Vec<_>>().join("")
}

fn chain(term: &str, operator: &str, terms: usize) -> String {
    vec![term; terms].join(operator)
}

#[test]
fn hostile_queries_are_refused_or_governed_on_the_cli() {
    let (tmp, dir) = policy_mesh();
    let leak = tmp.path().join("leak.csv").display().to_string();
    let files_and_settings: Vec<String> = vec![
        format!("COPY (SELECT * FROM sales.orders) TO '{leak}'"),
        format!("CO/**/PY (SELECT 1) TO '{leak}'"),
        format!("SELECT 1; COPY (SELECT 1) TO '{leak}'"),
        "CREATE EXTERNAL TABLE p (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".into(),
        "SELECT * FROM '/etc/passwd'".into(),
        "SELECT * FROM read_csv('/etc/passwd')".into(),
        "SET datafusion.execution.batch_size = 1".into(),
        "set DATAFUSION.runtime.memory_limit = '100G'".into(),
    ];
    expect![[r#""#]].assert_eq(&transcript(&dir, &files_and_settings).replace(&leak, "LEAK"));
    assert!(!tmp.path().join("leak.csv").exists());

    let metadata_and_explain: Vec<String> = vec![
        "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_schema NOT IN ('information_schema') ORDER BY 1".into(),
        "SHOW TABLES".into(),
        "DESCRIBE finance.ledger".into(),
        "DESCRIBE finance.nope".into(),
        "SHOW COLUMNS FROM finance.ledger".into(),
        "EXPLAIN VERBOSE SELECT * FROM sales.orders".into(),
        "EXPLAIN FORMAT graphviz SELECT * FROM sales.orders".into(),
        "EXPLAIN ANALYZE VERBOSE SELECT * FROM sales.orders".into(),
    ];
    let text = transcript(&dir, &metadata_and_explain);
    assert!(!text.contains("ledger,") && !text.contains("finance.ledger\n"), "{text}");
    expect![[r#""#]].assert_eq(&text);
    let explain = ok(&dir, &["--as", "ana", "query", "--format", "csv", "EXPLAIN ANALYZE SELECT * FROM sales.customers"]);
    assert!(explain.contains("PolicyFence") && !explain.contains("EU") && !explain.contains(".parquet"), "{explain}");

    let oracles_and_names: Vec<String> = vec![
        "SELECT order_id FROM sales.orders WHERE 1 / (amount - CAST(123.45 AS DECIMAL(10, 2))) <> 0 ORDER BY 1".into(),
        "SELECT count(*) AS n, min(order_id) AS lo, max(order_id) AS hi FROM sales.orders".into(),
        "SELECT count(*) AS n FROM sales.customers WHERE email LIKE '%@%' OR name LIKE 'Alice%' OR card LIKE '4111%'".into(),
        "SELECT customer_id FROM sales.customers ORDER BY name DESC".into(),
        "WITH orders AS (SELECT 1 AS order_id) SELECT order_id FROM orders".into(),
        "SELECT count(*) AS n FROM MESHWORK.Sales.\"orders\" WHERE region <> 'EU'".into(),
        "WITH l AS (SELECT * FROM finance.ledger) SELECT * FROM l".into(),
        "SELECT * FROM datafusion.finance.ledger".into(),
    ];
    expect![[r#""#]].assert_eq(&transcript(&dir, &oracles_and_names));

    // Resource exhaustion: errors with the limit named, never a crash. The chains stay under the
    // 128 KiB a single command-line argument may have.
    let exhaustion: Vec<String> = vec![
        format!("SELECT {}", chain("1", "+", 60_000)),
        format!("SELECT 1 WHERE {}", chain("true", " AND ", 12_000)),
        format!("SELECT {}", chain("'a'", "||", 20_000)),
        format!("SELECT {}1{}", "(".repeat(3_000), ")".repeat(3_000)),
        "SELECT repeat('x', 2000000000)".into(),
        "SELECT cardinality(array_repeat(1, 1000000000))".into(),
    ];
    expect![[r#""#]].assert_eq(&transcript(&dir, &exhaustion));
}
