//! End-to-end tests through the `meshwork` binary: init, validate, apply, query, product.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use expect_test::expect;

/// Runs `meshwork -C dir args…`.
fn meshwork(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        // What a mesh on a scratch S3 bucket needs; a mesh on local disk ignores it.
        .envs(meshwork_storage::scratch::CREDENTIALS_ENV)
        .output()
        .expect("meshwork runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must succeed and returns its standard output.
fn ok(dir: &Path, args: &[&str]) -> String {
    let output = meshwork(dir, args);
    assert!(output.status.success(), "meshwork {args:?} failed:\n{}\n{}", stdout(&output), stderr(&output));
    stdout(&output)
}

fn query_csv(dir: &Path, sql: &str) -> String {
    ok(dir, &["query", sql, "--format", "csv"])
}

fn write(dir: &Path, path: &str, content: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

const ORDERS_CSV: &str = "\
order_id,customer,campaign,amount,placed_at
1,alice,SPRING,10.50,2025-03-01T10:00:00Z
2,bob,,20.00,2025-03-02T11:00:00Z
3,alice,SPRING,5.25,2025-03-03T12:00:00Z
4,carol,SUMMER,100.00,2025-06-01T09:30:00Z
";

/// A small mesh with two domains and a cross-domain product, with hand-checkable answers.
fn tiny_mesh() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    write(&dir, "mesh.yaml", "name: tiny\n");
    write(&dir, "domains/sales/domain.yaml", "name: sales\nowners: [group:sales]\n");
    write(&dir, "domains/marketing/domain.yaml", "name: marketing\n");
    write(&dir, "data/orders.csv", ORDERS_CSV);
    write(
        &dir,
        "data/campaigns.ndjson",
        "{\"code\": \"SPRING\", \"budget\": 10}\n{\"code\": \"SUMMER\", \"budget\": 50}\n{\"code\": \"AUTUMN\", \"budget\": 5.5}\n",
    );
    write(
        &dir,
        "domains/sales/products/orders/product.yaml",
        "name: orders\ndomain: sales\nversion: 1.0.0\nowner: group:sales\ninputs:\n  - name: raw\n    source: { kind: csv, path: data/orders.csv }\ncontract:\n  primary_key: [order_id]\n  columns:\n    - { name: order_id, type: bigint, nullable: false }\n    - { name: customer, type: string, nullable: false }\n    - { name: campaign, type: string }\n    - { name: amount, type: \"decimal(10,2)\", nullable: false }\n    - { name: placed_at, type: timestamp }\naccess:\n  readers: [domain:marketing]\n",
    );
    write(
        &dir,
        "domains/marketing/products/campaigns/product.yaml",
        "name: campaigns\ndomain: marketing\nversion: 1.0.0\nowner: group:marketing\ninputs:\n  - { name: raw, source: { kind: ndjson, path: data/campaigns.ndjson } }\ncontract:\n  columns:\n    - { name: code, type: string, nullable: false }\n    - { name: budget, type: \"decimal(10,2)\" }\n",
    );
    write(
        &dir,
        "domains/marketing/products/roi/product.yaml",
        "name: roi\ndomain: marketing\nversion: 1.0.0\nowner: group:marketing\ninputs:\n  - { name: campaigns, product: marketing.campaigns }\n  - { name: orders, product: sales.orders }\ncontract:\n  primary_key: [code]\n  columns:\n    - { name: code, type: string, nullable: false }\n    - { name: budget, type: \"decimal(10,2)\" }\n    - { name: orders, type: bigint, nullable: false }\n    - { name: revenue, type: \"decimal(12,2)\", nullable: false }\n",
    );
    write(
        &dir,
        "domains/marketing/products/roi/transform.sql",
        "SELECT c.code, c.budget, COUNT(o.order_id) AS orders, COALESCE(SUM(o.amount), 0) AS revenue\nFROM campaigns c LEFT JOIN orders o ON o.campaign = c.code\nGROUP BY c.code, c.budget\n",
    );
    (tmp, dir)
}

#[test]
fn tiny_mesh_applies_and_answers_cross_domain_queries() {
    let (_tmp, dir) = tiny_mesh();
    expect![[r#"
        reads of other products, as the reading product's domain:
        PRODUCT        READS         FOR             GETS
        marketing.roi  sales.orders  input `orders`  full (no filter, no mask)
        ok: 2 domains, 3 products, 0 policy violations, 25 warnings
    "#]]
    .assert_eq(&ok(&dir, &["validate"]));
    let applied = ok(&dir, &["apply"]);
    assert!(applied.contains("3 published, 0 unchanged, 0 failed"), "{applied}");

    expect![[r#"
        code,budget,orders,revenue
        AUTUMN,5.50,0,0.00
        SPRING,10.00,2,15.75
        SUMMER,50.00,1,100.00
    "#]]
    .assert_eq(&query_csv(&dir, "SELECT * FROM marketing.roi ORDER BY code"));

    // A consumer combines products of two domains at query time.
    expect![[r#"
        order_id,customer,code,revenue,budget
        1,alice,SPRING,15.75,10.00
        3,alice,SPRING,15.75,10.00
        4,carol,SUMMER,100.00,50.00
    "#]]
    .assert_eq(&query_csv(
        &dir,
        "SELECT o.order_id, o.customer, r.code, r.revenue, c.budget FROM sales.orders o \
         JOIN marketing.roi r ON r.code = o.campaign JOIN marketing.campaigns c ON c.code = r.code ORDER BY o.order_id",
    ));
    expect![[r#"
        customer,orders,total,first
        alice,2,15.75,2025-03-01T10:00:00Z
        bob,1,20.00,2025-03-02T11:00:00Z
        carol,1,100.00,2025-06-01T09:30:00Z
    "#]]
    .assert_eq(&query_csv(
        &dir,
        "SELECT customer, COUNT(*) AS orders, SUM(amount) AS total, MIN(placed_at) AS first FROM sales.orders GROUP BY customer ORDER BY customer",
    ));

    // Re-applying without changes writes nothing.
    let again = ok(&dir, &["apply", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&again).unwrap();
    let results: Vec<&str> = report["products"].as_array().unwrap().iter().map(|p| p["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["unchanged"; 3]);
}

/// Counts the rows of a Delta table version with the delta-rs reader alone, no Meshwork code.
fn delta_rows(table_dir: &Path, version: Option<u64>) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let url = url::Url::from_directory_path(table_dir).unwrap();
        let table = match version {
            Some(v) => deltalake::open_table_with_version(url, v).await.unwrap(),
            None => deltalake::open_table(url).await.unwrap(),
        };
        let ctx = datafusion::prelude::SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", table.table_provider().await.unwrap()).unwrap();
        let batches = ctx.sql("SELECT * FROM t").await.unwrap().collect().await.unwrap();
        batches.iter().map(|b| b.num_rows()).sum()
    })
}

#[test]
fn changed_input_publishes_a_new_version_and_keeps_the_old_one() {
    let (_tmp, dir) = tiny_mesh();
    ok(&dir, &["apply"]);
    write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}5,dave,AUTUMN,7.00,2025-09-01T08:00:00Z\n"));
    let report: serde_json::Value = serde_json::from_str(&ok(&dir, &["apply", "--format", "json"])).unwrap();
    let results: Vec<(String, String)> = report["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["product"].as_str().unwrap().to_owned(), p["result"].as_str().unwrap().to_owned()))
        .collect();
    // Orders changed; roi reads orders, so it is rebuilt; campaigns did not change.
    assert_eq!(
        results,
        [
            ("marketing.campaigns".to_owned(), "unchanged".to_owned()),
            ("sales.orders".to_owned(), "published".to_owned()),
            ("marketing.roi".to_owned(), "published".to_owned()),
        ]
    );
    expect![[r#"
        code,orders,revenue
        AUTUMN,1,7.00
    "#]]
    .assert_eq(&query_csv(&dir, "SELECT code, orders, revenue FROM marketing.roi WHERE code = 'AUTUMN'"));

    // The earlier version is still in the Delta log, readable by delta-rs directly.
    let table = dir.join(".meshwork/data/sales/orders");
    assert_eq!(delta_rows(&table, Some(0)), 4);
    assert_eq!(delta_rows(&table, Some(1)), 5);
    assert_eq!(delta_rows(&table, None), 5);

    let show = ok(&dir, &["product", "show", "sales.orders"]);
    assert!(show.contains("downstream:  marketing.roi"), "{show}");
    assert!(show.contains("#2"), "{show}");
    assert!(show.contains("#1"), "{show}");
}

#[test]
fn bad_source_data_fails_with_file_row_and_column_and_keeps_the_previous_version() {
    let (_tmp, dir) = tiny_mesh();
    ok(&dir, &["apply"]);
    let before = query_csv(&dir, "SELECT COUNT(*) AS n, SUM(amount) AS total FROM sales.orders");

    let cases = [
        (
            ORDERS_CSV.replace("3,alice,SPRING,5.25", "3,alice,SPRING,abc"),
            "error: sales.orders: data/orders.csv: row 3 (line 4): column `amount`: value `abc` is not a valid decimal(10,2)",
        ),
        (
            ORDERS_CSV.replace("2,bob,", "x2,bob,").replace("4,carol", "y4,carol"),
            "error: sales.orders: data/orders.csv: row 2 (line 3): column `order_id`: value `x2` is not a valid bigint (and 1 more in rows 1–4)",
        ),
        (
            ORDERS_CSV.replace("3,alice,", ",alice,"),
            "error: sales.orders: data/orders.csv: row 3 (line 4): column `order_id` is NULL but the contract declares it `nullable: false` (1 NULL in rows 1–4)",
        ),
        (
            ORDERS_CSV.replace("2,bob,,20.00", "2,bob,,20.00,surplus"),
            "error: sales.orders: data/orders.csv: cannot read input: Csv error: incorrect number of fields for line 3, expected 5 got 6",
        ),
        (
            "order_id,customer,amount,placed_at\n1,alice,10.50,2025-03-01T10:00:00Z\n".to_owned(),
            "error: sales.orders: data/orders.csv: missing column `campaign` required by the contract (found `order_id`, `customer`, `amount`, `placed_at`)",
        ),
    ];
    for (csv, message) in cases {
        write(&dir, "data/orders.csv", &csv);
        let output = meshwork(&dir, &["apply"]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        let out = stdout(&output);
        assert!(out.contains(message), "expected `{message}` in:\n{out}");
        assert!(out.contains("BLOCKED by sales.orders"), "roi must wait for its failed upstream:\n{out}");
        // Consumers still read the previous version, unchanged.
        assert_eq!(query_csv(&dir, "SELECT COUNT(*) AS n, SUM(amount) AS total FROM sales.orders"), before);
    }
}

#[test]
fn transform_results_are_checked_against_the_contract() {
    let (_tmp, dir) = tiny_mesh();
    let sql = dir.join("domains/marketing/products/roi/transform.sql");
    ok(&dir, &["apply"]);
    let cases = [
        (
            "SELECT c.code, c.budget, COUNT(*) AS orders, 0 AS revenue, 1 AS extra FROM campaigns c GROUP BY 1, 2",
            "column `extra` is not in the contract",
        ),
        ("SELECT c.code, c.budget, COUNT(*) AS orders FROM campaigns c GROUP BY 1, 2", "missing column `revenue` required by the contract"),
        (
            "SELECT c.code, c.budget, 'many' AS orders, 0 AS revenue FROM campaigns c",
            "domains/marketing/products/roi/transform.sql: result row 1: column `orders`: value `many` is not a valid bigint",
        ),
        (
            "SELECT c.code, c.budget, COUNT(*) AS orders, DATE '2025-01-01' AS revenue FROM campaigns c GROUP BY 1, 2",
            "column `revenue` is date but the contract declares decimal(12,2)",
        ),
        ("SELECT code, budget, nope FROM campaigns", "No field named nope"),
    ];
    for (transform, message) in cases {
        std::fs::write(&sql, transform).unwrap();
        let output = meshwork(&dir, &["apply"]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        assert!(stdout(&output).contains(message), "expected `{message}` in:\n{}", stdout(&output));
    }
}

#[test]
fn validate_reports_every_error_at_once_as_text_and_json() {
    let (_tmp, dir) = tiny_mesh();
    write(&dir, "domains/sales/products/orders/product.yaml", &std::fs::read_to_string(dir.join("domains/sales/products/orders/product.yaml")).unwrap().replace("owner:", "ownr:").replace("type: bigint", "type: bigit"));
    write(&dir, "domains/marketing/products/roi/product.yaml", &std::fs::read_to_string(dir.join("domains/marketing/products/roi/product.yaml")).unwrap().replace("product: sales.orders", "product: sales.ordrs"));
    write(&dir, "domains/marketing/products/roi/transform.sql", "SELECT code FROM campaigns WHERE");
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3));
    expect![[r#"
        error: domains/marketing/products/roi/product.yaml:7:30: inputs[1].product: product `sales.ordrs` does not exist (hint: did you mean `sales.orders`?)
        error: domains/marketing/products/roi/transform.sql:1:33: invalid SQL: Expected: an expression, found: EOF
        error: domains/sales/products/orders/product.yaml:4:1: ownr: unknown field `ownr` (hint: did you mean `owner`?)
        error: domains/sales/products/orders/product.yaml:11:31: contract.columns[0].type: unknown type `bigit`, expected one of `boolean`, `tinyint`, `smallint`, `int`, `bigint`, `float`, `double`, `decimal(p,s)`, `string`, `binary`, `date` or `timestamp` (hint: did you mean `bigint`?)
        4 errors found
    "#]]
    .assert_eq(&stderr(&output));

    let output = meshwork(&dir, &["validate", "--format", "json"]);
    assert_eq!(output.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["valid"], false);
    let codes: Vec<&str> = report["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["missing_reference", "invalid_value", "unknown_field", "invalid_value"]);
    assert_eq!(report["errors"][2]["line"], 4);
    assert_eq!(report["errors"][3]["field"], "contract.columns[0].type");

    // SQL is checked in the same run as the descriptors, and on its own.
    let (_tmp2, dir) = tiny_mesh();
    write(&dir, "domains/marketing/products/roi/transform.sql", "SELECT code FROM campaigns WHERE");
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("domains/marketing/products/roi/transform.sql"), "{}", stderr(&output));
    assert!(stderr(&output).contains("invalid SQL: Expected: an expression"), "{}", stderr(&output));
    write(&dir, "domains/marketing/products/roi/transform.sql", "SELECT * FROM sales.orders");
    let output = meshwork(&dir, &["validate"]);
    assert!(stderr(&output).contains("table `sales.orders` is not an input of this product"), "{}", stderr(&output));
}

#[test]
fn dependency_cycles_fail_validation_and_apply() {
    let (_tmp, dir) = tiny_mesh();
    let campaigns = dir.join("domains/marketing/products/campaigns/product.yaml");
    let text = std::fs::read_to_string(&campaigns).unwrap().replace(
        "  - { name: raw, source: { kind: ndjson, path: data/campaigns.ndjson } }\n",
        "  - { name: raw, product: marketing.roi }\n",
    );
    std::fs::write(&campaigns, text).unwrap();
    let output = meshwork(&dir, &["apply"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("products depend on each other in a cycle: marketing.campaigns -> marketing.roi -> marketing.campaigns"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn query_results_in_every_format() {
    let (tmp, dir) = tiny_mesh();
    ok(&dir, &["apply"]);
    let sql = "SELECT order_id, customer, amount FROM sales.orders WHERE amount > 15 ORDER BY order_id";
    expect![[r#"
        +----------+----------+--------+
        | order_id | customer | amount |
        +----------+----------+--------+
        | 2        | bob      | 20.00  |
        | 4        | carol    | 100.00 |
        +----------+----------+--------+
        2 rows
    "#]]
    .assert_eq(&ok(&dir, &["query", sql]));
    expect![[r#"
        [{"order_id":2,"customer":"bob","amount":20.00},{"order_id":4,"customer":"carol","amount":100.00}]
    "#]]
    .assert_eq(&ok(&dir, &["query", sql, "--format", "json"]));
    let parquet = tmp.path().join("out.parquet");
    ok(&dir, &["query", sql, "--format", "parquet", "--output", parquet.to_str().unwrap()]);
    let file = std::fs::File::open(&parquet).unwrap();
    let reader = datafusion::parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use datafusion::parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 2);

    // An empty result keeps its columns in every format.
    let none = "SELECT order_id, customer FROM sales.orders WHERE amount < 0";
    assert_eq!(ok(&dir, &["query", none, "--format", "csv"]), "order_id,customer\n");
    assert_eq!(ok(&dir, &["query", none, "--format", "json"]), "[]\n");
    let empty_parquet = tmp.path().join("empty.parquet");
    ok(&dir, &["query", none, "--format", "parquet", "--output", empty_parquet.to_str().unwrap()]);
    let reader = datafusion::parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&empty_parquet).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().schema_descr().num_columns(), 2);
    // A failed query leaves no output file behind.
    let failed = tmp.path().join("failed.csv");
    let output = meshwork(&dir, &["query", "SELECT 1/0", "--format", "csv", "--output", failed.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!failed.exists());

    // Projections and filters reach the Parquet scan of the Delta table.
    let plan = ok(&dir, &["query", "EXPLAIN SELECT customer, amount FROM sales.orders WHERE amount > 15", "--format", "csv"]);
    assert!(plan.contains("projection=[customer, amount"), "{plan}");
    assert!(plan.contains("file_type=parquet") && plan.contains(", predicate=amount@") && plan.contains(" > 15"), "{plan}");

    let output = meshwork(&dir, &["query", "SELECT * FROM sales.nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: table 'meshwork.sales.nope' not found (at line 1, column 15)\n");
    let output = meshwork(&dir, &["query", "DROP TABLE sales.orders"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("error: `DROP TABLE` is not allowed: queries are read-only"), "{}", stderr(&output));
    let output = meshwork(&dir, &["query", "SELECT nope FROM sales.orders"]);
    assert!(stderr(&output).contains("No field named nope"), "{}", stderr(&output));
    assert!(stderr(&output).contains("(at line 1, column 8)"), "{}", stderr(&output));
}

#[test]
fn product_list_and_show_describe_published_products() {
    let (_tmp, dir) = tiny_mesh();
    // The data directory is configurable in mesh.yaml.
    write(&dir, "mesh.yaml", "name: tiny\nstorage:\n  data_dir: warehouse\nmetadata:\n  url: sqlite:state/meta.db\n");
    ok(&dir, &["apply"]);
    assert!(dir.join("state/meta.db").is_file(), "a relative SQLite path is relative to the mesh repository");
    assert!(dir.join("warehouse/sales/orders/_delta_log/00000000000000000000.json").is_file());
    assert!(!dir.join(".meshwork/data").exists());
    let list: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "list", "--format", "json"])).unwrap();
    let names: Vec<(&str, i64)> =
        list.as_array().unwrap().iter().map(|p| (p["product"].as_str().unwrap(), p["rows"].as_i64().unwrap())).collect();
    assert_eq!(names, [("marketing.campaigns", 3), ("marketing.roi", 3), ("sales.orders", 4)]);
    let show = ok(&dir, &["product", "show", "marketing.roi"]);
    assert!(show.contains("upstream:    marketing.campaigns, sales.orders"), "{show}");
    assert!(show.contains("revenue"), "{show}");
    let output = meshwork(&dir, &["product", "show", "marketing.rio"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("product `marketing.rio` not found; did you mean `marketing.roi`?"), "{}", stderr(&output));
}

#[test]
fn example_mesh_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("example");
    ok(tmp.path(), &["init", dir.to_str().unwrap(), "--example", "--orders", "2000", "--seed", "5"]);
    example_mesh_checks(tmp.path(), &dir);
    assert!(dir.join(".meshwork/catalog.db").is_file(), "the embedded catalog is the default");
}

/// The same end-to-end run with the catalog in PostgreSQL (a scratch database on the local
/// server): nothing of the catalog lands in the repository, and every command works on it.
#[test]
fn example_mesh_end_to_end_on_postgres() {
    let on_postgres = ExampleOnPostgres::create("meshwork_cli_it", "2000", "5");
    let (tmp, dir) = (on_postgres.tmp.path(), on_postgres.dir.clone());
    let status = ok(&dir, &["catalog", "status"]);
    assert!(status.contains("PostgreSQL catalog, schema version"), "{status}");
    example_mesh_checks(tmp, &dir);
    assert!(!dir.join(".meshwork/catalog.db").exists(), "no SQLite catalog beside PostgreSQL");
    let token = ok(&dir, &["token", "create", "--principal", "ana"]);
    assert!(token.starts_with("mw_"), "{token}");
    assert!(ok(&dir, &["token", "list"]).contains("ana"));
    assert!(ok(&dir, &["audit", "--limit", "5"]).contains("apply"));
    on_postgres.finish();
}

/// The example mesh in a temporary directory with its catalog in a scratch PostgreSQL database.
struct ExampleOnPostgres {
    runtime: tokio::runtime::Runtime,
    scratch: meshwork_catalog::scratch::ScratchDatabase,
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl ExampleOnPostgres {
    fn create(database: &str, orders: &str, seed: &str) -> ExampleOnPostgres {
        Self::create_on(database, orders, seed, None)
    }

    /// The same with its tables in `bucket` (under the prefix `example`) instead of on disk.
    fn create_on(database: &str, orders: &str, seed: &str, bucket: Option<&meshwork_storage::scratch::ScratchBucket>) -> ExampleOnPostgres {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let scratch = runtime.block_on(meshwork_catalog::scratch::ScratchDatabase::create(database)).expect("a PostgreSQL server for the CLI tests");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("example");
        ok(tmp.path(), &["init", dir.to_str().unwrap(), "--example", "--orders", orders, "--seed", seed]);
        let mut config = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
        if let Some(bucket) = bucket {
            config = config.replace("storage:\n  data_dir: .meshwork/data\n", &bucket.mesh_yaml("example"));
        }
        write(&dir, "mesh.yaml", &format!("{config}\nmetadata: {}\n", scratch.url()));
        ExampleOnPostgres { runtime, scratch, tmp, dir }
    }


    fn finish(self) {
        self.runtime.block_on(self.scratch.drop_now()).unwrap();
    }
}

#[test]
fn a_metadata_password_comes_from_the_environment_and_is_never_written_or_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    write(&dir, "mesh.yaml", "name: m\nmetadata: postgres://meshwork:hunter2@127.0.0.1:5432/mesh\n");
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3), "{}{}", stdout(&output), stderr(&output));
    let text = stdout(&output) + &stderr(&output);
    assert!(text.contains("holds a password") && text.contains("metadata.password_env"), "{text}");
    assert!(!text.contains("hunter2"), "the password is never echoed: {text}");

    let variable = "MESHWORK_CLI_IT_UNSET_PASSWORD";
    write(&dir, "mesh.yaml", &format!("name: m\nmetadata:\n  url: postgres://meshwork@127.0.0.1:5432/mesh\n  password_env: {variable}\n"));
    let output = meshwork(&dir, &["catalog", "status"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("environment variable `{variable}`")), "{}", stderr(&output));
}

/// Validate, apply, query and apply again on the example mesh at `dir`.
fn example_mesh_checks(tmp: &Path, dir: &Path) {
    let dir = dir.to_path_buf();
    ok(&dir, &["validate"]);
    let report: serde_json::Value = serde_json::from_str(&ok(&dir, &["apply", "--format", "json"])).unwrap();
    let published = report["products"].as_array().unwrap().iter().filter(|p| p["result"] == "published").count();
    assert_eq!(published, 7);
    // Catalog search: a typo finds the customers, ranked and with facet counts; mia, who may
    // not read the finance products, sees the discoverable one as its card (matched by its card
    // fields, counted only in domain, tag and status) and the other not at all; `--readable`
    // leaves the card out.
    expect![[r#"
        PRODUCT                    ACCESS    STATUS  QUALITY  SLO      SCORE  MATCHED                                                TITLE
        sales.customers            readable  active  passed   unknown  0.91   name,title,tags,column,description,column_description  Customers
        finance.customer_value     readable  active  passed   unknown  0.88   name,title,tags,column,description,column_description  Customer lifetime value
        finance.revenue_by_region  readable  active  passed   unknown  0.72   column,description,column_description                  Monthly revenue by region
        sales.orders               readable  active  passed   unknown  0.42   column,column_description                              Web shop orders
        1–4 of 4 found
        domain: finance 2, sales 2
        tag: revenue 3, customers 2, crm 1, ltv 1, monthly 1, orders 1, regions 1
        classification: internal 4, confidential 3, pii 1
        status: active 4
        quality: passed 4
        slo: unknown 4
    "#]].assert_eq(&ok(&dir, &["search", "custmer"]));
    expect![[r#"
        PRODUCT                    ACCESS    STATUS  QUALITY  SLO      SCORE  MATCHED                                                TITLE
        sales.customers            readable  active  passed   unknown  0.91   name,title,tags,column,description,column_description  Customers
        finance.customer_value     card      active  -        -        0.86   name,title,tags,description                            Customer lifetime value
        finance.revenue_by_region  readable  active  passed   unknown  0.72   column,description,column_description                  Monthly revenue by region
        sales.orders               readable  active  passed   unknown  0.42   column,column_description                              Web shop orders
        1–4 of 4 found
        card: you may not read it, only see its card; `meshwork access request PRODUCT --purpose TEXT` asks its owners
        domain: finance 2, sales 2
        tag: revenue 3, customers 2, crm 1, ltv 1, monthly 1, orders 1, regions 1
        classification: internal 3, confidential 2, pii 1
        status: active 4
        quality: passed 3
        slo: unknown 3
    "#]].assert_eq(&ok(&dir, &["--as", "mia", "search", "custmer"]));
    expect![[r#"
        PRODUCT          ACCESS    STATUS  QUALITY  SLO      SCORE  MATCHED                                                TITLE
        sales.customers  readable  active  passed   unknown  0.91   name,title,tags,column,description,column_description  Customers
        1–1 of 3 found
        domain: sales 2, finance 1
        tag: revenue 2, crm 1, customers 1, monthly 1, orders 1, regions 1
        classification: internal 3, confidential 2, pii 1
        status: active 3
        quality: passed 3
        slo: unknown 3
    "#]].assert_eq(&ok(&dir, &["--as", "mia", "search", "custmer", "--readable", "--limit", "1"]));
    // Derived products agree with their sources.
    expect![[r#"
        same_revenue,same_orders,same_customers
        true,true,true
    "#]]
    .assert_eq(&query_csv(
        &dir,
        "SELECT \
           (SELECT SUM(revenue) FROM finance.revenue_by_region) = (SELECT SUM(amount) FROM sales.orders WHERE status = 'completed') AS same_revenue, \
           (SELECT SUM(orders) FROM sales.daily_sales) = (SELECT COUNT(*) FROM sales.orders WHERE status = 'completed') AS same_orders, \
           (SELECT COUNT(*) FROM finance.customer_value) = (SELECT COUNT(*) FROM sales.customers) AS same_customers",
    ));
    // Test orders are filtered out by the transform; the generator is deterministic.
    expect![[r#"
        orders,customers,campaigns,regions
        1991,400,24,3
    "#]]
    .assert_eq(&query_csv(
        &dir,
        "SELECT (SELECT COUNT(*) FROM sales.orders) AS orders, (SELECT COUNT(*) FROM sales.customers) AS customers, \
         (SELECT COUNT(*) FROM marketing.campaigns) AS campaigns, (SELECT COUNT(DISTINCT region) FROM finance.revenue_by_region) AS regions",
    ));
    let again: serde_json::Value = serde_json::from_str(&ok(&dir, &["apply", "--format", "json"])).unwrap();
    assert!(again["products"].as_array().unwrap().iter().all(|p| p["result"] == "unchanged"));
    // `init` refuses to overwrite a mesh.
    let output = meshwork(tmp, &["init", dir.to_str().unwrap(), "--example"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("already holds a `mesh.yaml`"), "{}", stderr(&output));
}

#[test]
fn skeleton_validates_and_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fresh");
    ok(tmp.path(), &["init", dir.to_str().unwrap()]);
    ok(&dir, &["validate"]);
    ok(&dir, &["apply"]);
    expect![[r#"
        id,language,text
        1,en,Hello
        2,fr,Bonjour
        3,ja,Konnichiwa
    "#]]
    .assert_eq(&query_csv(&dir, "SELECT * FROM example.greetings ORDER BY id"));
}

/// A raw HTTP/1.0 request (no chunked encoding to undo): the CLI tests need no HTTP client library for one call.
fn http_post(addr: &str, path: &str, token: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/csv\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn up_creates_applies_tours_and_serves_the_example_mesh() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .args(["-C", tmp.path().to_str().unwrap(), "up", dir.to_str().unwrap(), "--orders", "1500"])
        .args(["--http-port", "0", "--flight-sql-port", "0", "--postgres-port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("Serving at") {
            break;
        }
    }
    assert!(out.contains("created the example mesh"), "{out}");
    assert!(out.contains("7 published, 0 unchanged, 0 failed"), "{out}");
    assert!(out.contains("-- Revenue by region in 2025"), "{out}");
    assert!(out.contains("| finance   | revenue_by_region |"), "{out}");
    for one_liner in ["curl -s -H 'Authorization: Bearer mw_", "PGPASSWORD='mw_", "adbc_driver_flightsql"] {
        assert!(out.contains(one_liner), "{one_liner} missing from:\n{out}");
    }
    // The demo token of ana works against the served mesh, with her policies.
    let token = out.lines().find_map(|l| l.trim().strip_prefix("ana")).map(str::trim).expect("a demo token for ana").to_owned();
    let http = out.lines().find_map(|l| l.strip_prefix("Serving at http://")).and_then(|l| l.split_whitespace().next()).unwrap();
    let response = http_post(http, "/api/v1/query", &token, r#"{"sql": "SELECT DISTINCT region FROM sales.customers"}"#);
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("region\nEU\n"), "{response}");
    // The portal link signs in once: a session cookie the first time, a refusal the second.
    let link = out.lines().find_map(|l| l.trim().strip_prefix("Portal")).map(str::trim).expect("a portal sign-in link").to_owned();
    let path = link.strip_prefix(&format!("http://{http}")).expect("the link points at the served HTTP port").to_owned();
    // (The code is random base64url, so it may spell `mw_` by chance; the token's secret must
    // not be in it.)
    assert!(path.starts_with("/signin/link?code=") && !path.contains(token.rsplit('_').next().unwrap()), "no token in the link: {link}");
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(http).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {http}\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let first = get(&path);
    assert!(first.starts_with("HTTP/1.0 303") && first.to_lowercase().contains("set-cookie: meshwork_session="), "{first}");
    assert!(get(&path).starts_with("HTTP/1.0 403"), "a link is good once");
    // SIGTERM stops it cleanly.
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());

    // A second `up` reuses the mesh and rebuilds nothing.
    let again = meshwork(tmp.path(), &["up", dir.to_str().unwrap(), "--no-serve"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("0 published, 7 unchanged, 0 failed"), "{}", stdout(&again));
    // Progress bars are hidden when standard error is not a terminal.
    assert_eq!(stderr(&again), "");
    // The first run's demo tokens were replaced: only the new ones are active.
    let tokens = ok(&dir, &["token", "list", "--format", "json"]);
    let tokens: serde_json::Value = serde_json::from_str(&tokens).unwrap();
    let active = tokens.as_array().unwrap().iter().filter(|t| t["status"] == "active").count();
    let revoked = tokens.as_array().unwrap().iter().filter(|t| t["status"] == "revoked").count();
    assert_eq!((active, revoked), (4, 4), "{tokens:#}");
}

#[test]
fn tokens_are_created_listed_and_revoked() {
    let (_tmp, dir) = governed_mesh();
    ok(&dir, &["apply"]);
    let created: serde_json::Value = serde_json::from_str(&ok(&dir, &["token", "create", "--principal", "ana", "--expires", "12h", "--format", "json"])).unwrap();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("mw_") && token.len() == 3 + 16 + 1 + 48, "{token}");
    let id = created["id"].as_str().unwrap();
    let list = ok(&dir, &["token", "list"]);
    assert!(list.contains(id) && list.contains("ana") && list.contains("active"), "{list}");
    assert!(!list.contains(&token[20..]), "the secret must never be listed");
    // The catalog keeps only an Argon2id hash (in the database or its write-ahead log).
    let mut db = std::fs::read(dir.join(".meshwork/catalog.db")).unwrap();
    db.extend(std::fs::read(dir.join(".meshwork/catalog.db-wal")).unwrap_or_default());
    let db = String::from_utf8_lossy(&db);
    assert!(db.contains("$argon2id$") && !db.contains(&token[20..]));
    let revoke = meshwork(&dir, &["token", "revoke", id]);
    assert!(revoke.status.success(), "{}", stderr(&revoke));
    assert!(ok(&dir, &["token", "list"]).contains("revoked"));
    let again = meshwork(&dir, &["token", "revoke", id]);
    assert!(stderr(&again).contains("already revoked"), "{}", stderr(&again));
    let unknown = meshwork(&dir, &["token", "create", "--principal", "anna"]);
    assert!(stderr(&unknown).contains("unknown principal `anna` (hint: did you mean `ana`?)"), "{}", stderr(&unknown));
    let bad = meshwork(&dir, &["token", "create", "--principal", "ana", "--expires", "soon"]);
    assert!(stderr(&bad).contains("invalid expiry `soon`"), "{}", stderr(&bad));
    let pg = meshwork(&dir, &["serve", "--postgres-port", "5432"]);
    assert!(stderr(&pg).contains("must not be 5432"), "{}", stderr(&pg));
}

/// The tiny mesh with principals, an access block on orders and a guild policy.
fn governed_mesh() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = tiny_mesh();
    write(&dir, "principals.yaml", "principals:\n  - { name: ana, groups: [analysts] }\n  - { name: olga }\n");
    let orders = dir.join("domains/sales/products/orders/product.yaml");
    let text = std::fs::read_to_string(&orders)
        .unwrap()
        .replace("access:\n  readers: [domain:marketing]\n", "");
    std::fs::write(&orders, format!("{text}access:\n  readers: [group:analysts, domain:marketing]\n  masks: {{ customer: redact }}\n")).unwrap();
    (tmp, dir)
}

#[test]
fn queries_run_as_a_principal_and_denied_products_are_invisible_on_every_command() {
    let (_tmp, dir) = governed_mesh();
    ok(&dir, &["apply"]);
    expect![[r#"
        order_id,customer
        1,***
        2,***
    "#]]
    .assert_eq(&ok(&dir, &["--as", "ana", "query", "SELECT order_id, customer FROM sales.orders ORDER BY 1 LIMIT 2", "--format", "csv"]));

    // olga reads nothing of sales: the query, the listing and `product show` all say "not found".
    let output = meshwork(&dir, &["--as", "olga", "query", "SELECT * FROM sales.orders"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: table 'meshwork.sales.orders' not found (at line 1, column 15)\n");
    assert_eq!(ok(&dir, &["--as", "olga", "product", "list"]), "no published products; run `meshwork apply` first\n");
    let shown = meshwork(&dir, &["--as", "olga", "product", "show", "sales.orders"]);
    assert_eq!(stderr(&shown), "error: product `sales.orders` not found; `meshwork product list` shows the published products\n");
    let listed = ok(&dir, &["--as", "ana", "product", "list", "--format", "json"]);
    assert!(listed.contains("sales.orders") && !listed.contains("marketing.roi"), "{listed}");

    let apply_as = meshwork(&dir, &["--as", "ana", "apply"]);
    assert_eq!(stderr(&apply_as), "error: `--as ana` applies to `query`, `search`, `product`, `audit`, `events`, `subscribe`, `unsubscribe`, `subscriptions`, `access` and `export`; the other commands act as the local administrator\n");
    let unknown = meshwork(&dir, &["--as", "anna", "query", "SELECT 1"]);
    assert_eq!(stderr(&unknown), "error: unknown principal `anna` (hint: did you mean `ana`?)\n");

    // The audit log has every query, the denial included, and is for administrators only.
    let events: serde_json::Value = serde_json::from_str(&ok(&dir, &["audit", "--principal", "olga", "--format", "json"])).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "denied");
    assert_eq!(events[0]["products"][0]["product"], "sales.orders");
    assert_eq!(events[0]["products"][0]["decision"], "deny");
    let text = ok(&dir, &["audit", "--product", "sales.orders", "--since", "1h"]);
    assert!(text.contains("sales.orders (deny)") && text.contains("apply"), "{text}");
    let refused = meshwork(&dir, &["--as", "ana", "audit"]);
    assert_eq!(stderr(&refused), "error: `meshwork audit` is not allowed for `ana`: the audit log is for administrators\n");
    let bad_since = meshwork(&dir, &["audit", "--since", "yesterday"]);
    assert!(stderr(&bad_since).contains("`--since yesterday` is not a time"), "{}", stderr(&bad_since));
}

#[test]
fn custom_policies_are_enforced_without_recompiling_and_states_are_staged() {
    let (_tmp, dir) = governed_mesh();
    write(
        &dir,
        "policies/budget_described.rego",
        "package meshwork.governance.budget_described\n\nviolations contains {\"field\": sprintf(\"contract.columns[%d].description\", [i]), \"message\": \"money columns need a description\"} if {\n\tsome i, c in input.product.contract.columns\n\tc.type_info.family == \"decimal\"\n\tnot c.description\n}\n",
    );
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3));
    let text = stderr(&output);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    expect![[r#"
        error: domains/marketing/products/campaigns/product.yaml:10:7: contract.columns[1].description: [enforce] policy `budget_described` on `marketing.campaigns`: money columns need a description
        error: domains/marketing/products/roi/product.yaml:12:7: contract.columns[1].description: [enforce] policy `budget_described` on `marketing.roi`: money columns need a description
        error: domains/marketing/products/roi/product.yaml:14:7: contract.columns[3].description: [enforce] policy `budget_described` on `marketing.roi`: money columns need a description
        error: domains/sales/products/orders/product.yaml:14:7: contract.columns[3].description: [enforce] policy `budget_described` on `sales.orders`: money columns need a description"#]]
    .assert_eq(&errors.join("\n"));

    // Apply refuses the violating products (and blocks their dependants), publishes the rest.
    let output = meshwork(&dir, &["apply"]);
    assert_eq!(output.status.code(), Some(1));
    let summary = stdout(&output);
    assert!(summary.contains("REFUSED by budget_described"), "{summary}");

    // Staged to `warn`: reported, not blocking.
    let mesh = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
    std::fs::write(dir.join("mesh.yaml"), format!("{mesh}policies:\n  budget_described: warn\n")).unwrap();
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("warning: domains/marketing/products/campaigns/product.yaml:9:7"), "{}", stderr(&output));

    // A domain cannot switch a global policy off; a misspelt policy gets a suggestion.
    write(&dir, "domains/sales/domain.yaml", "name: sales\nowners: [group:sales]\npolicies:\n  budget_described: \"off\"\n  owner_requird: enforce\n");
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3));
    expect![[r#"
        error: domains/sales/domain.yaml:4:21: policies.budget_described: domain `sales` cannot lower global policy `budget_described` from `warn` to `off` (hint: domain policies may only add restrictions; change the state in `mesh.yaml` if the guild agrees)
        error: domains/sales/domain.yaml:5:18: policies.owner_requird: there is no policy `owner_requird` (hint: did you mean `owner_required`?)
        2 errors found
    "#]]
    .assert_eq(&stderr(&output));

    // An access policy that compiles but fails to evaluate is found by validate, not by users
    // finding every product gone.
    write(&dir, "domains/sales/domain.yaml", "name: sales\nowners: [group:sales]\n");
    write(&dir, "policies/typo.rego", "package meshwork.access.typo\n\nmasks := [\"customer\"]\n");
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).starts_with("error: policies/typo.rego: access policy `typo` fails to evaluate (for `admin` on `marketing.campaigns`): `masks` must be an object of column to mask, found [\"customer\"]"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_file(dir.join("policies/typo.rego")).unwrap();

    // A policy that does not compile is reported with its position.
    write(&dir, "domains/sales/domain.yaml", "name: sales\nowners: [group:sales]\n");
    write(&dir, "policies/broken.rego", "package meshwork.governance.broken\n\nviolations contains x if {\n");
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3));
    expect![[r#"
        error: policies/broken.rego:4:1: invalid Rego: expecting expression (hint: see https://www.openpolicyagent.org/docs/policy-language for the syntax)
        1 error found
    "#]]
    .assert_eq(&stderr(&output));
}

/// Time travel from the CLI: `product versions` lists what can be read, and SQL reads an
/// earlier publication by number or time.
#[test]
fn earlier_publications_are_listed_and_read_from_the_cli() {
    let (_tmp, dir) = tiny_mesh();
    ok(&dir, &["apply"]);
    write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}5,dave,AUTUMN,7.00,2025-07-01T00:00:00Z\n"));
    ok(&dir, &["apply"]);
    let listed = ok(&dir, &["product", "versions", "sales.orders"]);
    assert!(listed.contains("#2") && listed.contains("sales.\"orders@1\""), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "versions", "sales.orders", "--format", "json"])).unwrap();
    assert_eq!(json["versions"].as_array().unwrap().iter().map(|v| v["rows"].as_i64().unwrap()).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(query_csv(&dir, "SELECT (SELECT count(*) FROM sales.\"orders@1\") AS then, (SELECT count(*) FROM sales.orders) AS now"), "then,now\n4,5\n");
    let at = json["versions"][0]["published_at"].as_str().unwrap().to_owned();
    assert_eq!(query_csv(&dir, &format!("SELECT count(*) AS n FROM sales.\"orders@{at}\"")), "n\n4\n");
    let missing = meshwork(&dir, &["query", "SELECT * FROM sales.\"orders@9\""]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("`sales.orders` has no publication #9; it has #1, #2"), "{}", stderr(&missing));
}

/// Who depends on a product: the products built from it, and the audited readers per
/// principal and interface; only for its owner, its domain's members and administrators.
#[test]
fn product_consumers_lists_built_products_and_audited_readers() {
    let (_tmp, dir) = tiny_mesh();
    write(&dir, "principals.yaml", "principals:\n  - { name: mia }\n");
    write(&dir, "domains/marketing/domain.yaml", "name: marketing\nmembers: [user:mia]\n");
    ok(&dir, &["apply"]);
    assert_eq!(ok(&dir, &["--as", "mia", "query", "--format", "csv", "SELECT count(*) AS n FROM sales.orders"]), "n\n4\n", "mia reads it");
    for _ in 0..2 {
        query_csv(&dir, "SELECT count(*) AS n FROM sales.orders");
    }
    let text = ok(&dir, &["product", "consumers", "sales.orders"]);
    assert!(text.contains("sales.orders: built into marketing.roi"), "{text}");
    assert!(text.contains("read in the last 30 days by:"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "consumers", "sales.orders", "--format", "json", "--window", "1d"])).unwrap();
    assert_eq!(json["products"], serde_json::json!(["marketing.roi"]));
    let readers = json["readers"].as_array().unwrap();
    let seen: Vec<(&str, &str, u64)> = readers.iter().map(|r| (r["principal"].as_str().unwrap(), r["interface"].as_str().unwrap(), r["queries"].as_u64().unwrap())).collect();
    assert_eq!(seen, [("admin", "cli", 2), ("mia", "cli", 1)], "{json}");
    // A breaking change names them in the plan.
    let path = dir.join("domains/sales/products/orders/product.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, yaml.replace("    - { name: placed_at, type: timestamp }\n", "")).unwrap();
    let plan = stdout(&meshwork(&dir, &["plan"]));
    assert!(plan.contains("breaking    column `placed_at` was removed (or renamed)"), "{plan}");
    assert!(plan.contains("read in the last 30 days by: admin (cli, 2 queries), mia (cli, 1 queries)"), "{plan}");
    std::fs::write(&path, yaml).unwrap();
    // Nobody read marketing.campaigns by a query; it is built into marketing.roi.
    assert!(ok(&dir, &["product", "consumers", "marketing.campaigns"]).contains("no audited query read it"));
    // A reader of the product who is neither its owner nor in its domain is refused.
    let refused = meshwork(&dir, &["--as", "mia", "product", "consumers", "sales.orders"]);
    assert_eq!(refused.status.code(), Some(1), "{}{}", stdout(&refused), stderr(&refused));
    assert!(stderr(&refused).contains("is for the product's owner, members of domain `sales` and administrators"), "{}", stderr(&refused));
}

#[test]
fn plan_shows_changes_and_refuses_breaking_ones_without_a_major_version() {
    let (_tmp, dir) = governed_mesh();
    let first = ok(&dir, &["plan"]);
    assert!(first.contains("3 to create, 0 to update, 0 unchanged, 0 refused"), "{first}");
    ok(&dir, &["apply"]);
    assert!(ok(&dir, &["plan"]).contains("0 to create, 0 to update, 3 unchanged, 0 refused"));

    // Remove a column with only a minor version bump.
    let path = dir.join("domains/marketing/products/campaigns/product.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replace("version: 1.0.0", "version: 1.1.0").replace("    - { name: budget, type: \"decimal(10,2)\" }\n", "    - { name: budget, type: \"decimal(12,2)\" }\n    - { name: channel, type: string }\n");
    std::fs::write(&path, changed.replace("    - { name: channel, type: string }\n", "")).unwrap();
    let compatible = ok(&dir, &["plan"]);
    assert!(compatible.contains("compatible  column `budget` widened from decimal(10,2) to decimal(12,2)"), "{compatible}");

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("    - { name: budget, type: \"decimal(12,2)\" }\n", "")).unwrap();
    let output = meshwork(&dir, &["plan"]);
    assert_eq!(output.status.code(), Some(3));
    let plan = stdout(&output);
    assert!(plan.contains("marketing.campaigns  REFUSED by policy"), "{plan}");
    assert!(plan.contains("breaking    column `budget` was removed (or renamed)"), "{plan}");
    assert!(plan.contains("affects: marketing.roi"), "{plan}");
    assert!(plan.contains("policy `breaking_change_major_bump` on `marketing.campaigns`: column `budget` was removed (or renamed) without a major version bump (1.0.0 -> 1.1.0); release it as 2.0.0"), "{plan}");

    // Apply keeps the published version and blocks the product reading it.
    let output = meshwork(&dir, &["apply", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let results: Vec<String> = report["products"].as_array().unwrap().iter().map(|p| format!("{} {}", p["product"], p["result"])).collect();
    assert_eq!(results, ["\"marketing.campaigns\" \"refused\"", "\"sales.orders\" \"unchanged\"", "\"marketing.roi\" \"blocked\""]);
    assert_eq!(query_csv(&dir, "SELECT count(budget) AS n FROM marketing.campaigns"), "n\n3\n");

    // A major version makes it acceptable.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("version: 1.1.0", "version: 2.0.0")).unwrap();
    // The major is allowed, but `marketing.roi` still reads `budget`: its transform no longer
    // plans against the new contract, so lineage cannot be derived and it is refused.
    let major = meshwork(&dir, &["plan"]);
    assert_eq!(major.status.code(), Some(3), "{}{}", stdout(&major), stderr(&major));
    assert!(stdout(&major).contains("1.0.0 -> 2.0.0"), "{}", stdout(&major));
    assert!(stdout(&major).contains("marketing.roi        REFUSED by policy"), "{}", stdout(&major));
    assert!(stdout(&major).contains("policy `classification_propagated` on `marketing.roi`: cannot derive column lineage"), "{}", stdout(&major));
}

#[test]
fn validate_parses_row_filters_and_sql_masks() {
    let (_tmp, dir) = governed_mesh();
    let orders = dir.join("domains/sales/products/orders/product.yaml");
    let text = std::fs::read_to_string(&orders).unwrap();
    std::fs::write(&orders, text.replace("  masks: { customer: redact }\n", "  row_filter: \"customer = = principal.name\"\n  masks: { customer: redact }\n")).unwrap();
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3));
    expect![[r#"
        error: domains/sales/products/orders/product.yaml:18:15: access.row_filter: invalid SQL expression `customer = = principal.name`: Expected: an expression, found: = at Line: 1, Column: 12 (hint: write one SQL condition over the product's columns, e.g. `region = principal.attr('region')`)
        1 error found
    "#]]
    .assert_eq(&stderr(&output));
}

mod access;
mod attacks;
mod cluster;
mod crash;
mod derived;
mod evolution;
mod lineage;
mod openlineage;
mod object_storage;
mod replicas;
mod sources;
mod virtual_products;
mod standards;
mod trust;
mod unpublish;
mod visibility;
