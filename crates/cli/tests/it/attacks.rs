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
    expect![[r#"
        $ COPY (SELECT * FROM sales.orders) TO 'LEAK'
        exit 1: error: `COPY` is not allowed: queries are read-only; products are published with `meshwork apply`
        $ CO/**/PY (SELECT 1) TO 'LEAK'
        exit 1: error: Expected: an SQL statement, found: CO at Line: 1, Column: 1
        $ SELECT 1; COPY (SELECT 1) TO 'LEAK'
        exit 1: error: The context currently only supports a single SQL statement
        $ CREATE EXTERNAL TABLE p (line VARCHAR) STORED AS CSV LOCATIO… (75 bytes)
        exit 1: error: `CREATE EXTERNAL TABLE` is not allowed: queries are read-only; products are published with `meshwork apply`
        $ SELECT * FROM '/etc/passwd'
        exit 1: error: reading `/etc/passwd` is not allowed: queries read data products (`domain.product`), never files or URLs
        $ SELECT * FROM read_csv('/etc/passwd')
        exit 1: error: table function `read_csv` is not allowed: queries read data products (`domain.product`), never files
        $ SET datafusion.execution.batch_size = 1
        exit 1: error: `SET` is not allowed: queries are read-only; products are published with `meshwork apply`
        $ set DATAFUSION.runtime.memory_limit = '100G'
        exit 1: error: `SET` is not allowed: queries are read-only; products are published with `meshwork apply`
    "#]].assert_eq(&transcript(&dir, &files_and_settings).replace(&leak, "LEAK"));
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
    // Only the echoed commands name the hidden product; no answer does, except "not found".
    assert!(text.lines().filter(|l| !l.starts_with('$') && !l.contains("not found")).all(|l| !l.contains("ledger")), "{text}");
    expect![[r#"
        $ SELECT table_schema || '.' || table_name AS t FROM informati… (136 bytes)
        t
        marketing.campaigns
        sales.customers
        sales.orders
        $ SHOW TABLES
        table_catalog,table_schema,table_name,table_type
        meshwork,marketing,campaigns,BASE TABLE
        meshwork,sales,customers,BASE TABLE
        meshwork,sales,orders,BASE TABLE
        meshwork,information_schema,tables,VIEW
        meshwork,information_schema,views,VIEW
        meshwork,information_schema,columns,VIEW
        meshwork,information_schema,df_settings,VIEW
        meshwork,information_schema,schemata,VIEW
        meshwork,information_schema,routines,VIEW
        meshwork,information_schema,parameters,VIEW
        $ DESCRIBE finance.ledger
        exit 1: error: table 'meshwork.finance.ledger' not found
        $ DESCRIBE finance.nope
        exit 1: error: table 'meshwork.finance.nope' not found
        $ SHOW COLUMNS FROM finance.ledger
        exit 1: error: table 'meshwork.finance.ledger' not found
        $ EXPLAIN VERBOSE SELECT * FROM sales.orders
        exit 1: error: `EXPLAIN VERBOSE` is not allowed for `ana`: it is reserved for administrators
        $ EXPLAIN FORMAT graphviz SELECT * FROM sales.orders
        exit 1: error: `EXPLAIN FORMAT graphviz` is not allowed for `ana`: it is reserved for administrators
        $ EXPLAIN ANALYZE VERBOSE SELECT * FROM sales.orders
        exit 1: error: `EXPLAIN VERBOSE` is not allowed for `ana`: it is reserved for administrators
    "#]].assert_eq(&text);
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
    expect![[r#"
        $ SELECT order_id FROM sales.orders WHERE 1 / (amount - CAST(1… (101 bytes)
        order_id
        101
        102
        104
        $ SELECT count(*) AS n, min(order_id) AS lo, max(order_id) AS … (80 bytes)
        n,lo,hi
        3,101,104
        $ SELECT count(*) AS n FROM sales.customers WHERE email LIKE '… (107 bytes)
        n
        0
        $ SELECT customer_id FROM sales.customers ORDER BY name DESC
        customer_id
        3
        1
        $ WITH orders AS (SELECT 1 AS order_id) SELECT order_id FROM orders
        order_id
        1
        $ SELECT count(*) AS n FROM MESHWORK.Sales."orders" WHERE region <> 'EU'
        n
        0
        $ WITH l AS (SELECT * FROM finance.ledger) SELECT * FROM l
        exit 1: error: table 'meshwork.finance.ledger' not found (at line 1, column 26)
        $ SELECT * FROM datafusion.finance.ledger
        exit 1: error: table 'datafusion.finance.ledger' not found (at line 1, column 15)
    "#]].assert_eq(&transcript(&dir, &oracles_and_names));

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
    expect![[r#"
        $ SELECT 1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1… (120006 bytes)
        exit 1: error: the statement nests more than 500 levels deep (hint: replace long chains of `AND`, `OR`, `+` or `||` with `IN` lists or aggregates, and deep subqueries with joins)
        $ SELECT 1 WHERE true AND true AND true AND true AND true AND … (108010 bytes)
        exit 1: error: the statement nests more than 500 levels deep (hint: replace long chains of `AND`, `OR`, `+` or `||` with `IN` lists or aggregates, and deep subqueries with joins)
        $ SELECT 'a'||'a'||'a'||'a'||'a'||'a'||'a'||'a'||'a'||'a'||'a'… (100005 bytes)
        exit 1: error: the statement nests more than 500 levels deep (hint: replace long chains of `AND`, `OR`, `+` or `||` with `IN` lists or aggregates, and deep subqueries with joins)
        $ SELECT (((((((((((((((((((((((((((((((((((((((((((((((((((((… (6008 bytes)
        exit 1: error: the statement nests brackets or subqueries deeper than the SQL parser allows (hint: unnest them: use joins or common table expressions (`WITH`) instead of subqueries inside subqueries)
        $ SELECT repeat('x', 2000000000)
        exit 1: error: query failed: resources exhausted: `repeat` would build a value of more than 1 GiB at once, the memory one query may use (hint: add filters, aggregate before sorting, or ask the platform team to raise `server.query_memory`)
        $ SELECT cardinality(array_repeat(1, 1000000000))
        exit 1: error: query failed: resources exhausted: `array_repeat` would build a value of more than 1 GiB at once, the memory one query may use (hint: add filters, aggregate before sorting, or ask the platform team to raise `server.query_memory`)
    "#]].assert_eq(&transcript(&dir, &exhaustion));
}
