//! Virtual products through the binary, against the machine's real PostgreSQL and MariaDB: a
//! product served live from a database table answers as a stored copy of the same table does,
//! sends projections, exact filters, limits and aggregates to the database (EXPLAIN shows the
//! statement), keeps the policy's row filter and masks, answers no error oracle about hidden
//! rows, and is checked at apply (drift, quality rules on the live rows).

use std::path::{Path, PathBuf};

use meshwork_core::descriptor::DatabaseKind;

use super::sources::{Source, run, run_err, run_ok};
use super::{stderr, stdout, write};

/// A shop database with `orders`, and a mesh with `sales.orders_live` (virtual) and
/// `sales.orders_copy` (a stored copy of the same table). `ana` reads both filtered to the EU
/// with customers redacted; `sam`, a member of sales, reads them whole, unfenced.
fn shop(source: &Source) -> (tempfile::TempDir, PathBuf) {
    let ts = source.timestamp();
    source.sql(&format!(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(100) NOT NULL, region VARCHAR(10) NOT NULL, amount NUMERIC(10,2) NOT NULL, placed_at {ts});
         INSERT INTO orders VALUES
            (1, 'Ada', 'EU', 10.50, '2024-01-01 10:00:00Z'),
            (2, 'Bob', 'US', 123.45, '2024-01-02 11:30:00Z'),
            (3, 'Cy', 'EU', 7.25, NULL),
            (4, 'O''Brien', 'EU', 99.99, '2024-02-03 08:15:00Z'),
            (5, 'Dee', 'APAC', 42.00, '2024-03-04 23:59:59Z');"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    let password_env = if source.password().is_some() { ", password_env: CRM_PASSWORD" } else { "" };
    write(&dir, "mesh.yaml", &format!("name: shop\nconnections:\n  shop: {{ url: \"{}\"{password_env} }}\n", source.db().url()));
    write(&dir, "principals.yaml", "principals:\n  - { name: ana, groups: [analysts] }\n  - { name: sam, domains: [sales] }\n  - { name: olga }\n");
    write(&dir, "domains/sales/domain.yaml", "name: sales\nowners: [group:sales]\nmembers: [user:sam]\n");
    // A derived product of another domain, an analyst of it: built through the same decision
    // and row filter as a query of that domain.
    write(&dir, "domains/marketing/domain.yaml", "name: marketing\nowners: [group:marketing]\nprincipal: { groups: [analysts] }\n");
    write(
        &dir,
        "domains/marketing/products/eu_orders/product.yaml",
        "name: eu_orders\ndomain: marketing\nversion: 1.0.0\nowner: group:marketing\ninputs:\n  - { name: o, product: sales.orders_live }\ntransform: \"SELECT count(*) AS n, max(customer) AS last FROM o\"\ncontract:\n  columns:\n    - { name: n, type: bigint, nullable: false }\n    - { name: last, type: string }\n",
    );
    let kind = source.kind.as_str();
    let product = |name: &str, storage: &str| {
        format!(
            "name: {name}\ndomain: sales\nversion: 1.0.0\nowner: group:sales\n{storage}inputs:\n  - name: src\n    source: {{ kind: {kind}, connection: shop, table: orders }}\ncontract:\n  primary_key: [id]\n  columns:\n    - {{ name: id, type: bigint, nullable: false }}\n    - {{ name: customer, type: string, nullable: false }}\n    - {{ name: region, type: string, nullable: false }}\n    - {{ name: amount, type: \"decimal(10,2)\", nullable: false }}\n    - {{ name: placed_at, type: timestamp }}\nquality:\n  - {{ rule: unique, column: id }}\n  - {{ rule: row_count, min: 1, max: 10 }}\naccess:\n  readers: [group:analysts]\n  row_filter: \"region = 'EU' OR principal.in_domain('sales')\"\n  masks: {{ customer: redact }}\n  unmasked_for: [domain:sales]\n"
        )
    };
    write(&dir, "domains/sales/products/orders_live/product.yaml", &product("orders_live", "virtual: true\n"));
    write(&dir, "domains/sales/products/orders_copy/product.yaml", &product("orders_copy", ""));
    (tmp, dir)
}

/// `meshwork [--as who] query --format csv sql`, its CSV or its error.
fn query(source: &Source, dir: &Path, who: Option<&str>, sql: &str) -> Result<String, String> {
    let mut args: Vec<&str> = Vec::new();
    if let Some(who) = who {
        args.extend(["--as", who]);
    }
    args.extend(["query", "--format", "csv", sql]);
    let output = run(source, dir, &args);
    match output.status.success() {
        true => Ok(stdout(&output)),
        false => Err(stderr(&output)),
    }
}

/// The same query on the virtual product and on the stored copy: the same answer.
fn same_answer(source: &Source, dir: &Path, who: Option<&str>, sql: &str) -> String {
    let live = query(source, dir, who, &sql.replace("PRODUCT", "sales.orders_live"));
    let copy = query(source, dir, who, &sql.replace("PRODUCT", "sales.orders_copy"));
    assert_eq!(live, copy, "{who:?}: {sql}");
    live.unwrap_or_else(|e| panic!("{who:?}: {sql}: {e}"))
}

/// The plan the owner sees.
fn explain(source: &Source, dir: &Path, sql: &str) -> String {
    // Unquoted from CSV.
    query(source, dir, Some("sam"), &format!("EXPLAIN {sql}")).unwrap().replace("\"\"", "\"")
}

fn served_live(kind: DatabaseKind) {
    let source = Source::new(kind);
    let (_tmp, dir) = shop(&source);
    run_ok(&source, &dir, &["validate"]);
    let applied: serde_json::Value = serde_json::from_str(&run_ok(&source, &dir, &["apply", "--format", "json"])).unwrap();
    let results: Vec<(String, String)> =
        applied["products"].as_array().unwrap().iter().map(|p| (p["product"].as_str().unwrap().to_owned(), p["result"].as_str().unwrap().to_owned())).collect();
    let published = |name: &str| (name.to_owned(), "published".to_owned());
    let mut results = results;
    results.sort();
    assert_eq!(results, [published("marketing.eu_orders"), published("sales.orders_copy"), published("sales.orders_live")], "{applied:#}");
    // The build read the virtual product as marketing does: EU rows only, customers redacted.
    assert_eq!(query(&source, &dir, None, "SELECT n, last FROM marketing.eu_orders").unwrap(), "n,last\n3,***\n");
    let shown = run_ok(&source, &dir, &["product", "show", "sales.orders_live"]);
    assert!(shown.contains("virtual: read live from connection `shop`, table `orders`"), "{shown}");

    // The owner's answers equal the stored copy's, for scans, exact and inexact filters,
    // limits, aggregates and groups.
    for sql in [
        "SELECT * FROM PRODUCT ORDER BY id",
        "SELECT id, amount FROM PRODUCT WHERE amount > 10 AND id <> 4 ORDER BY id",
        "SELECT id FROM PRODUCT WHERE customer = 'O''Brien'",
        "SELECT id FROM PRODUCT WHERE lower(customer) LIKE 'a%' OR region IN ('APAC') ORDER BY id",
        "SELECT id FROM PRODUCT WHERE placed_at >= TIMESTAMP '2024-01-02 11:30:00Z' ORDER BY id",
        "SELECT id FROM PRODUCT WHERE placed_at IS NULL",
        "SELECT count(*) AS n, sum(amount) AS total, min(amount) AS low, max(placed_at) AS newest, count(placed_at) AS dated FROM PRODUCT",
        "SELECT region, count(*) AS n, sum(amount) AS total, max(id) AS last FROM PRODUCT GROUP BY region ORDER BY region",
        "SELECT count(*) AS n FROM PRODUCT WHERE amount BETWEEN 7.25 AND 42",
        "SELECT avg(id) AS mean FROM PRODUCT",
        "SELECT count(*) AS n FROM (SELECT id FROM PRODUCT LIMIT 3) t",
        "SELECT 1 AS one FROM PRODUCT WHERE id = 1",
    ] {
        same_answer(&source, &dir, Some("sam"), sql);
    }
    assert_eq!(same_answer(&source, &dir, Some("sam"), "SELECT region, count(*) AS n FROM PRODUCT GROUP BY region ORDER BY region"), "region,n\nAPAC,1\nEU,3\nUS,1\n");

    // What the database is sent: the projection and exact filters; the limit with them; the
    // aggregate whole.
    let plan = explain(&source, &dir, "SELECT id FROM sales.orders_live WHERE amount > 20 LIMIT 2");
    let quote = |name: &str| match kind {
        DatabaseKind::Postgres => format!("\"{name}\""),
        DatabaseKind::Mysql => format!("`{name}`"),
    };
    let wanted = format!("WHERE ({} > 20.00) LIMIT 2", quote("amount"));
    assert!(plan.contains("RemoteScanExec: connection=shop") && plan.contains(&wanted), "{plan}");
    let plan = explain(&source, &dir, "SELECT region, count(*) FROM sales.orders_live WHERE id > 1 GROUP BY region");
    // Grouping by text is sent to PostgreSQL only (MySQL groups `'a'` with `'A'`).
    let grouped = plan.contains("COUNT(*)") && plan.contains(&format!("GROUP BY {}", quote("region")));
    assert_eq!(grouped, kind == DatabaseKind::Postgres, "{plan}");
    let plan = explain(&source, &dir, "SELECT count(*), sum(amount) FROM sales.orders_live WHERE id > 1");
    assert!(plan.contains(&format!("SUM({})", quote("amount"))) && !plan.contains("AggregateExec"), "{plan}");
    let plan = explain(&source, &dir, "SELECT max(placed_at) FROM sales.orders_live WHERE id > 1");
    assert!(plan.contains(&format!("MAX({})", quote("placed_at"))) && !plan.contains("AggregateExec"), "{plan}");
    // Text equality only where it is bytewise (PostgreSQL `varchar`); MySQL compares text
    // case-insensitively, so it is filtered here.
    let plan = explain(&source, &dir, "SELECT id FROM sales.orders_live WHERE customer = 'ada'");
    assert_eq!(plan.contains("'ada'"), kind == DatabaseKind::Postgres, "{plan}");
    assert_eq!(query(&source, &dir, Some("sam"), "SELECT id FROM sales.orders_live WHERE customer = 'ada'").unwrap(), "id\n");

    // Live: a row written at the source is there at once; the copy waits for its next apply.
    source.sql("INSERT INTO orders VALUES (6, 'Eve', 'EU', 1.00, '2024-04-01 00:00:00Z')");
    assert_eq!(query(&source, &dir, Some("sam"), "SELECT count(*) AS n FROM sales.orders_live").unwrap(), "n\n6\n");
    assert_eq!(query(&source, &dir, Some("sam"), "SELECT count(*) AS n FROM sales.orders_copy").unwrap(), "n\n5\n");
    // The derived product reads a virtual one, whose rows changed without a publication: the
    // next apply rebuilds it (compared by content).
    run_ok(&source, &dir, &["apply"]);
    assert_eq!(query(&source, &dir, None, "SELECT n FROM marketing.eu_orders").unwrap(), "n\n4\n");

    // ana: the EU rows only, customers redacted, on both.
    assert_eq!(same_answer(&source, &dir, Some("ana"), "SELECT id, customer, amount FROM PRODUCT ORDER BY id"), "id,customer,amount\n1,***,10.50\n3,***,7.25\n4,***,99.99\n6,***,1.00\n");
    assert_eq!(same_answer(&source, &dir, Some("ana"), "SELECT region, count(*) AS n FROM PRODUCT GROUP BY region"), "region,n\nEU,4\n");
    same_answer(&source, &dir, Some("ana"), "SELECT count(*) AS n FROM PRODUCT WHERE customer = 'Bob' OR customer = '***'");
    // No error oracle: a predicate that fails on Bob's hidden id (2) is never evaluated on his
    // row, here or in the database; on a visible id it fails alike on both.
    assert_eq!(same_answer(&source, &dir, Some("ana"), "SELECT id FROM PRODUCT WHERE 1 / (id - 2) < 0 ORDER BY id"), "id\n1\n");
    for product in ["sales.orders_live", "sales.orders_copy"] {
        let failed = query(&source, &dir, Some("ana"), &format!("SELECT id FROM {product} WHERE 1 / (id - 1) < 0")).unwrap_err();
        assert!(failed.to_lowercase().contains("divide by zero"), "{product}: {failed}");
    }
    // olga reads neither: not found.
    let hidden = query(&source, &dir, Some("olga"), "SELECT * FROM sales.orders_live").unwrap_err();
    assert_eq!(hidden, "error: table 'meshwork.sales.orders_live' not found (at line 1, column 15)\n");
    // A virtual product keeps no earlier publications.
    let history = query(&source, &dir, Some("sam"), "SELECT * FROM sales.\"orders_live@1\"").unwrap_err();
    assert!(history.contains("is a virtual product, read live from its database"), "{history}");

    // Quality rules run on the live rows at every apply: too many rows refuse the apply.
    source.sql("INSERT INTO orders VALUES (7, 'F', 'EU', 1, NULL), (8, 'G', 'EU', 1, NULL), (9, 'H', 'EU', 1, NULL), (10, 'I', 'EU', 1, NULL), (11, 'J', 'EU', 1, NULL)");
    let refused = run_err(&source, &dir, &["refresh", "sales.orders_live"]);
    assert!(refused.contains("sales.orders_live") && refused.contains("row_count"), "{refused}");
    source.sql("DELETE FROM orders WHERE id > 6");

    // A value that no longer fits (a hidden US row with more decimal places than the contract's
    // `decimal(10,2)`, after the source's column was widened) fails the query naming the column,
    // never the value, and is never rounded into an answer.
    source.sql(match kind {
        DatabaseKind::Postgres => "ALTER TABLE orders ALTER COLUMN amount TYPE NUMERIC(12,3)",
        DatabaseKind::Mysql => "ALTER TABLE orders MODIFY amount DECIMAL(12,3) NOT NULL",
    });
    source.sql("INSERT INTO orders VALUES (12, 'Zed', 'US', 1.005, NULL)");
    // PostgreSQL evaluates ana's row filter (`region = 'EU'` on a `varchar`) itself, so the
    // hidden row never arrives; MySQL is sent no text comparison, so it arrives and is converted
    // before the filter. The owner reads it either way.
    for who in ["ana", "sam"] {
        let answer = query(&source, &dir, Some(who), "SELECT id, amount FROM sales.orders_live");
        match (who, kind) {
            ("ana", DatabaseKind::Postgres) => assert_eq!(answer.as_deref(), Ok("id,amount\n1,10.50\n3,7.25\n4,99.99\n6,1.00\n")),
            _ => {
                let failed = answer.unwrap_err();
                assert!(failed.contains("remote column `amount` does not fit the contract's `decimal(10,2)`") && !failed.contains("1.005"), "{who}: {failed}");
            }
        }
    }
    source.sql("DELETE FROM orders WHERE id = 12");
    assert_eq!(query(&source, &dir, Some("ana"), "SELECT count(*) AS n FROM sales.orders_live").unwrap(), "n\n4\n");

    // Drift: a contract column renamed at the source is refused by validate and by apply.
    source.sql("ALTER TABLE orders RENAME COLUMN region TO zone");
    let invalid = run_err(&source, &dir, &["validate"]);
    assert!(invalid.contains("`region`"), "{invalid}");
    let refused = run_err(&source, &dir, &["apply"]);
    assert!(refused.contains("sales.orders_live") && refused.contains("`region`"), "{refused}");
}

#[test]
fn a_virtual_product_on_postgres_answers_like_a_stored_copy_with_pushdown_and_policies() {
    served_live(DatabaseKind::Postgres);
}

#[test]
fn a_virtual_product_on_mariadb_answers_like_a_stored_copy_with_pushdown_and_policies() {
    served_live(DatabaseKind::Mysql);
}

#[test]
fn a_virtual_product_is_refused_with_a_transform_or_several_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    write(&dir, "mesh.yaml", "name: shop\nconnections:\n  shop: { url: \"postgres://meshwork@127.0.0.1:5432/none\" }\n");
    write(&dir, "domains/sales/domain.yaml", "name: sales\n");
    write(&dir, "data/a.csv", "id\n1\n");
    write(
        &dir,
        "domains/sales/products/live/product.yaml",
        "name: live\ndomain: sales\nversion: 1.0.0\nvirtual: true\ninputs:\n  - { name: a, source: { kind: csv, path: data/a.csv } }\n  - { name: b, source: { kind: postgres, connection: shop, table: t, incremental: { column: id } } }\ntransform: \"SELECT id FROM a\"\ncontract:\n  columns:\n    - { name: id, type: bigint }\n",
    );
    let output = super::meshwork(&dir, &["validate", "--offline"]);
    let text = stderr(&output);
    assert!(text.contains("product.yaml:8:12: transform: a virtual product is served from its database input as it is and takes no `transform`"), "{text}");
    assert!(text.contains("product.yaml:4:10: virtual: a virtual product is served from exactly one database input, and this one has 2"), "{text}");
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Stops the serving process when the test ends, however it ends.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_virtual_product_on_another_meshworks_flight_sql_endpoint_reads_as_its_token_and_keeps_local_policies() {
    // The other Meshwork: the governed tiny mesh, serving Flight SQL; `ana` reads its
    // `sales.orders` with customers redacted.
    let (_remote_tmp, remote) = super::governed_mesh();
    super::ok(&remote, &["apply"]);
    let token = super::ok(&remote, &["token", "create", "--principal", "ana"]).trim().to_owned();
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .args(["-C", remote.to_str().unwrap(), "serve", "--http-port", "0", "--postgres-port", "0", "--flight-sql-port", &port.to_string()])
        .env("MESHWORK_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _served = Served(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the remote Meshwork did not start serving");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // This Meshwork: `peer.orders` served live from it; locally, `lou` reads it filtered.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    write(&dir, "mesh.yaml", &format!("name: local\nconnections:\n  emea: {{ url: \"grpc://127.0.0.1:{port}\", token_env: EMEA_TOKEN }}\n"));
    write(&dir, "principals.yaml", "principals:\n  - { name: lou, groups: [analysts] }\n");
    write(&dir, "domains/peer/domain.yaml", "name: peer\n");
    write(
        &dir,
        "domains/peer/products/orders/product.yaml",
        "name: orders\ndomain: peer\nversion: 1.0.0\nowner: group:peer\nvirtual: true\ninputs:\n  - name: remote\n    source: { kind: flight_sql, connection: emea, table: sales.orders }\ncontract:\n  columns:\n    - { name: order_id, type: bigint, nullable: false }\n    - { name: customer, type: string, nullable: false }\n    - { name: amount, type: \"decimal(10,2)\", nullable: false }\nquality:\n  - { rule: row_count, min: 4 }\naccess:\n  readers: [group:analysts]\n  row_filter: \"amount < 50 OR principal.is_admin()\"\n",
    );
    let run = |args: &[&str], token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_meshwork"));
        command.arg("-C").arg(&dir).args(args).env("NO_COLOR", "1").env("MESHWORK_LOG", "info");
        if let Some(token) = token {
            command.env("EMEA_TOKEN", token);
        }
        let output = command.output().unwrap();
        let all = format!("{}{}", stdout(&output), stderr(&output));
        if let Some(token) = token {
            assert!(!all.contains(token), "the token showed in `meshwork {args:?}`:\n{all}");
        }
        output
    };
    let secret = Some(token.as_str());
    let applied = run(&["apply"], secret);
    assert!(applied.status.success(), "{}{}", stdout(&applied), stderr(&applied));
    assert!(stdout(&applied).contains("(virtual)"), "{}", stdout(&applied));

    let csv = |who: Option<&str>, sql: &str| {
        let mut args = Vec::new();
        if let Some(who) = who {
            args.extend(["--as", who]);
        }
        args.extend(["query", "--format", "csv", sql]);
        let output = run(&args, secret);
        assert!(output.status.success(), "{sql}: {}", stderr(&output));
        stdout(&output).replace("\"\"", "\"")
    };
    // The rows as the token's principal reads them there: customers redacted by the remote.
    assert_eq!(csv(None, "SELECT * FROM peer.orders ORDER BY order_id"), "order_id,customer,amount\n1,***,10.50\n2,***,20.00\n3,***,5.25\n4,***,100.00\n");
    // Filters (text ordering too: the same engine), limits and aggregates are sent.
    let plan = csv(None, "EXPLAIN SELECT order_id FROM peer.orders WHERE amount > 10 AND customer >= '*' LIMIT 2");
    assert!(plan.contains("RemoteScanExec: connection=emea, sql=SELECT \"order_id\" FROM sales.orders WHERE (amount > CAST('10.00' AS DECIMAL(10,2))) AND (customer >= '*') LIMIT 2"), "{plan}");
    let plan = csv(None, "EXPLAIN SELECT count(*), max(amount) FROM peer.orders");
    assert!(plan.contains("COUNT(*)") && plan.contains("MAX(\"amount\")") && !plan.contains("AggregateExec"), "{plan}");
    assert_eq!(csv(None, "SELECT count(*) AS n, max(amount) AS top FROM peer.orders"), "n,top\n4,100.00\n");
    // The local policy holds above the remote scan.
    assert_eq!(csv(Some("lou"), "SELECT order_id FROM peer.orders ORDER BY order_id"), "order_id\n1\n2\n3\n");
    // Order 4 (100.00) is hidden from lou: dividing by zero on it is never tried.
    assert_eq!(csv(Some("lou"), "SELECT order_id FROM peer.orders WHERE 1 / (order_id - 4) < 0 ORDER BY order_id"), "order_id\n3\n");

    // A bad token: refused by the endpoint, named, never shown; nothing published.
    let refused = run(&["validate"], Some("mw_badbadbadbadbad_0000000000000000"));
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("input `remote`") && stderr(&refused).contains("emea"), "{}", stderr(&refused));
    // No token at all.
    let missing = run(&["apply"], None);
    let said = format!("{}{}", stdout(&missing), stderr(&missing));
    assert!(!missing.status.success() && said.contains("environment variable `EMEA_TOKEN`, which is not set"), "{said}");
}
