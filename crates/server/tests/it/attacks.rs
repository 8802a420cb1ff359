//! The query-layer attacks of a hostile consumer, class by class, on every network interface:
//! HTTP, Flight SQL statements (GetFlightInfo + DoGet ticket), Flight SQL prepared statements
//! and the Postgres wire's simple (`psql`) and extended (Parse/Bind/Execute) protocols. The
//! Python clients run the same classes in `tests/interop/check_attacks.py`; the CLI in the `meshwork`
//! crate's `attacks` tests; the SQL itself in `crates/query/tests/policy/*.slt`.
//!
//! `ana` is the attacker: an EU analyst who reads `sales.orders` filtered to EU rows,
//! `sales.customers` filtered and masked, and may not read `finance.ledger` at all.

use std::time::Duration;

use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::{StreamExt, TryStreamExt};
use meshwork_query::QueryLimits;

use super::{Served, csv, psql};
use crate::wire::Wire;

/// The interfaces a statement can arrive on.
#[derive(Debug, Clone, Copy)]
enum Via {
    Http,
    FlightStatement,
    FlightPrepared,
    Psql,
    PgExtended,
}

const EVERY_INTERFACE: [Via; 5] = [Via::Http, Via::FlightStatement, Via::FlightPrepared, Via::Psql, Via::PgExtended];

/// Rows as `a,b` lines without a header, or the error message the client got.
type Answer = Result<String, String>;

fn without_header(text: &str) -> String {
    text.lines().skip(1).collect::<Vec<_>>().join("\n")
}

fn flight_rows(batches: &[RecordBatch]) -> String {
    without_header(&csv(batches))
}

/// The code and message of a failed Flight call, without the response headers (a date) that
/// differ between any two calls.
fn status_message(err: impl std::fmt::Display) -> String {
    let text = err.to_string();
    let Some(start) = text.find("message: \"") else { return text };
    let rest = &text[start + 10..];
    let end = [rest.find("\", details"), rest.find("\", metadata")].into_iter().flatten().min().unwrap_or(rest.len());
    format!("{}{}", &text[..start], &rest[..end])
}

async fn ask(served: &Served, via: Via, who: &str, sql: &str) -> Answer {
    match via {
        Via::Http => {
            let response = served.post_query(Some(served.token(who)), sql, "text/csv").await;
            let status = response.status();
            let body = response.text().await.map_err(|e| e.to_string())?;
            if status == 200 {
                return Ok(without_header(&body));
            }
            // The message, without the request id that differs between any two requests.
            let error: serde_json::Value = serde_json::from_str(&body).map_err(|_| body.clone())?;
            Err(format!("HTTP {status} {}: {}", error["error"]["code"], error["error"]["message"].as_str().unwrap_or_default()))
        }
        Via::FlightStatement => {
            let mut client = served.flight(served.token(who)).await;
            let info = client.execute(sql.to_owned(), None).await.map_err(status_message)?;
            let ticket = info.endpoint[0].ticket.clone().ok_or("no ticket")?;
            let batches: Vec<RecordBatch> = client.do_get(ticket).await.map_err(status_message)?.try_collect().await.map_err(status_message)?;
            Ok(flight_rows(&batches))
        }
        Via::FlightPrepared => {
            let mut client = served.flight(served.token(who)).await;
            let mut prepared = client.prepare(sql.to_owned(), None).await.map_err(status_message)?;
            let info = prepared.execute().await.map_err(status_message)?;
            let ticket = info.endpoint[0].ticket.clone().ok_or("no ticket")?;
            let batches: Vec<RecordBatch> = client.do_get(ticket).await.map_err(status_message)?.try_collect().await.map_err(status_message)?;
            Ok(flight_rows(&batches))
        }
        Via::Psql => {
            let (out, err) = psql(served.at.postgres.port(), served.token(who), sql).await;
            if err.trim().is_empty() { Ok(out.trim_end().replace('|', ",")) } else { Err(err) }
        }
        Via::PgExtended => {
            let mut wire = Wire::connect(served.at.postgres.port(), served.token(who)).await.map_err(|e| e.message)?;
            wire.prepare("", sql).await.map_err(|e| e.message)?;
            let rows = wire.run_prepared("").await.map_err(|e| e.message)?;
            let line = |row: Vec<Option<String>>| row.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>().join(",");
            Ok(rows.into_iter().map(line).collect::<Vec<_>>().join("\n"))
        }
    }
}

/// A statement and the messages, one of which its refusal must contain.
fn case(sql: impl Into<String>, expected: &'static [&'static str]) -> (String, &'static [&'static str]) {
    (sql.into(), expected)
}

/// Asserts that every interface refuses `sql` with a message containing one of `expected`.
async fn refused_everywhere(served: &Served, who: &str, sql: &str, expected: &[&str]) {
    for via in EVERY_INTERFACE {
        let short: String = sql.chars().take(80).collect();
        match ask(served, via, who, sql).await {
            Ok(rows) => panic!("{via:?} ran `{short}` for {who}: {rows}"),
            Err(err) => assert!(expected.iter().any(|e| err.contains(e)), "{via:?} refused `{short}` without naming why ({expected:?}): {err}"),
        }
    }
}

/// Asserts that every interface answers `sql` with exactly `rows`.
async fn answered_everywhere(served: &Served, who: &str, sql: &str, rows: &str) {
    for via in EVERY_INTERFACE {
        assert_eq!(ask(served, via, who, sql).await.as_deref(), Ok(rows), "{via:?}: `{sql}`");
    }
}

#[tokio::test]
async fn statements_that_touch_files_or_settings_are_refused_on_every_interface() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let leak = served._dir.path().join("leak.csv");
    let leak = leak.display();
    let cases: Vec<(String, &[&str])> = vec![
        case(format!("COPY (SELECT * FROM sales.orders) TO '{leak}'"), &["`COPY` is not allowed"]),
        case(format!("COPY sales.orders TO '{leak}'"), &["`COPY` is not allowed"]),
        // A comment splitting the keyword leaves two words no parser takes for COPY.
        case(format!("CO/**/PY (SELECT 1) TO '{leak}'"), &["Expected", "syntax"]),
        case(format!("SELECT 1; COPY (SELECT 1) TO '{leak}'"), &["only supports a single SQL statement", "cannot insert multiple commands", "`COPY` is not allowed"]),
        case(format!("SELECT 1 AS one;COPY (SELECT 1) TO '{leak}';"), &["only supports a single SQL statement", "cannot insert multiple commands", "`COPY` is not allowed"]),
        case("CREATE EXTERNAL TABLE passwd (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'", &["`CREATE EXTERNAL TABLE` is not allowed", "Expected"]),
        case("SELECT * FROM '/etc/passwd'", &["reading `/etc/passwd` is not allowed"]),
        case("SELECT * FROM 'file:///etc/passwd'", &["reading `file:///etc/passwd` is not allowed"]),
        case("SELECT * FROM \"../../etc/passwd\"", &["reading `../../etc/passwd` is not allowed"]),
        case("SELECT * FROM read_csv('/etc/passwd')", &["table function `read_csv` is not allowed"]),
        case("SELECT * FROM read_parquet('/etc/passwd')", &["table function `read_parquet` is not allowed"]),
        case("INSERT INTO sales.orders SELECT * FROM sales.orders", &["`INSERT` is not allowed"]),
        case("CREATE VIEW v AS SELECT * FROM sales.orders", &["`CREATE VIEW` is not allowed"]),
        // Settings: the memory limit, spilling, the catalog's shape.
        case("SET datafusion.execution.batch_size = 1", &["`SET` is not allowed", "`SET datafusion.*` is not allowed", "engine settings are fixed by the server"]),
        case("SET datafusion.runtime.memory_limit = '100G'", &["`SET` is not allowed", "`SET datafusion.*` is not allowed", "engine settings are fixed by the server"]),
        case("set DataFusion.Catalog.Information_Schema = false", &["`SET` is not allowed", "`SET datafusion.*` is not allowed", "engine settings are fixed by the server"]),
        case("SELECT 1; SET datafusion.execution.batch_size = 1", &["only supports a single SQL statement", "cannot insert multiple commands", "`SET datafusion.*` is not allowed", "engine settings are fixed by the server"]),
    ];
    for (sql, expected) in &cases {
        refused_everywhere(&served, "ana", sql, expected).await;
    }
    assert!(!served._dir.path().join("leak.csv").exists(), "a refused COPY wrote its file");
    // The settings did not change: every interface still reads Meshwork's own batch size, not
    // the `1` the refused statements asked for.
    let batch_size = meshwork_query::BATCH_ROWS.to_string();
    answered_everywhere(&served, "ana", "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'", &batch_size).await;
    served.stop().await;
}

#[tokio::test]
async fn explain_in_every_form_shows_ana_the_fence_and_nothing_behind_it() {
    let served = Served::start(QueryLimits::default(), 8).await;
    for sql in ["EXPLAIN SELECT * FROM sales.customers WHERE customer_id > 0", "EXPLAIN ANALYZE SELECT count(*) FROM sales.orders", "EXPLAIN FORMAT indent SELECT email FROM sales.customers"] {
        for via in EVERY_INTERFACE {
            // PostgreSQL's grammar has no `FORMAT indent` outside parentheses: the Postgres wire gets a syntax
            // error, which shows nothing either.
            if matches!(via, Via::Psql | Via::PgExtended) && sql.contains("FORMAT indent") {
                let refused = ask(&served, via, "ana", sql).await;
                assert!(refused.as_ref().is_err_and(|e| e.contains("sql parser error")), "{refused:?}");
                continue;
            }
            let plan = ask(&served, via, "ana", sql).await.unwrap_or_else(|e| panic!("{via:?}: `{sql}`: {e}"));
            assert!(plan.contains("PolicyFence"), "{via:?}: `{sql}`:\n{plan}");
            for secret in ["EU", "principal", "mask_", ".parquet", "file_groups", "output_rows=6"] {
                assert!(!plan.contains(secret), "{via:?}: `{secret}` leaked through `{sql}`:\n{plan}");
            }
        }
    }
    for (sql, form) in [
        ("EXPLAIN VERBOSE SELECT * FROM sales.orders", "`EXPLAIN VERBOSE`"),
        ("EXPLAIN ANALYZE VERBOSE SELECT * FROM sales.orders", "`EXPLAIN VERBOSE`"),
        ("EXPLAIN FORMAT tree SELECT * FROM sales.orders", "`EXPLAIN FORMAT tree`"),
        ("EXPLAIN FORMAT graphviz SELECT * FROM sales.orders", "`EXPLAIN FORMAT graphviz`"),
        ("EXPLAIN FORMAT pgjson SELECT * FROM sales.orders", "`EXPLAIN FORMAT pgjson`"),
        ("EXPLAIN (FORMAT tree) SELECT * FROM sales.orders", "`EXPLAIN FORMAT tree`"),
    ] {
        refused_everywhere(&served, "ana", sql, &[format!("{form} is not allowed for `ana`").as_str(), "sql parser error"]).await;
    }
    served.stop().await;
}

#[tokio::test]
async fn metadata_lists_only_readable_products_on_every_interface() {
    let served = Served::start(QueryLimits::default(), 8).await;
    answered_everywhere(
        &served,
        "ana",
        "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_catalog = 'meshwork' AND table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1",
        "marketing.campaigns\nsales.customers\nsales.orders",
    )
    .await;
    answered_everywhere(&served, "ana", "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'finance' OR table_name = 'ledger'", "0").await;
    answered_everywhere(&served, "ana", "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'finance'", "0").await;
    // A hidden product and a missing one are described alike.
    for statement in ["DESCRIBE", "SHOW COLUMNS FROM"] {
        for via in EVERY_INTERFACE {
            let hidden = ask(&served, via, "ana", &format!("{statement} finance.ledger")).await.expect_err("hidden");
            let missing = ask(&served, via, "ana", &format!("{statement} finance.nope")).await.expect_err("missing");
            assert_eq!(hidden.replace("ledger", "X"), missing.replace("nope", "X"), "{via:?}: {statement}");
        }
    }
    for via in EVERY_INTERFACE {
        // Listings through SHOW and pg_catalog, where an interface has them, never name it.
        for sql in ["SHOW TABLES", "SELECT relname FROM pg_catalog.pg_class", "SELECT nspname FROM pg_catalog.pg_namespace"] {
            if let Ok(rows) = ask(&served, via, "ana", sql).await {
                assert!(!rows.contains("ledger") && !rows.contains("finance"), "{via:?}: `{sql}`: {rows}");
            }
        }
    }
    // Flight SQL's own listings.
    let mut client = served.flight(served.token("ana")).await;
    let info = client.get_catalogs().await.unwrap();
    let catalogs: Vec<RecordBatch> = client.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(flight_rows(&catalogs), "meshwork");
    let info = client.get_db_schemas(CommandGetDbSchemas::default()).await.unwrap();
    let schemas: Vec<RecordBatch> = client.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(flight_rows(&schemas), "meshwork,marketing\nmeshwork,sales");
    let info = client.get_tables(CommandGetTables { db_schema_filter_pattern: Some("finance".into()), include_schema: true, ..Default::default() }).await.unwrap();
    let tables: Vec<RecordBatch> = client.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    let text = pretty_format_batches(&tables).unwrap().to_string();
    assert!(!text.contains("ledger"), "{text}");
    // psql's describe commands.
    let port = served.at.postgres.port();
    let (hidden, hidden_err) = psql(port, served.token("ana"), "\\d finance.ledger").await;
    let (missing, missing_err) = psql(port, served.token("ana"), "\\d finance.nope").await;
    assert_eq!((hidden, hidden_err.replace("ledger", "X")), (missing, missing_err.replace("nope", "X")));
    let (schemas, err) = psql(port, served.token("ana"), "\\dn").await;
    assert!(schemas.contains("sales") && !schemas.contains("finance"), "{schemas}{err}");
    let (tables, err) = psql(port, served.token("ana"), "\\dt *.*").await;
    assert!(tables.contains("orders") && !tables.contains("ledger"), "{tables}{err}");
    served.stop().await;
}

#[tokio::test]
async fn error_and_statistics_oracles_see_only_filtered_masked_rows_on_every_interface() {
    let served = Served::start(QueryLimits::default(), 8).await;
    for (sql, rows) in [
        // Order 103 (NA, 123.45) would divide by zero, or fail a cast, if ana's expression ran on it.
        ("SELECT order_id FROM sales.orders WHERE 1 / (amount - CAST(123.45 AS DECIMAL(10, 2))) <> 0 ORDER BY 1", "101\n102\n104"),
        ("SELECT order_id FROM sales.orders WHERE CAST(CASE WHEN region = 'NA' THEN 'x' ELSE '1' END AS INT) = 1 ORDER BY 1", "101\n102\n104"),
        ("SELECT order_id FROM sales.orders WHERE 100 / (order_id - 103) < 1000 ORDER BY 1", "101\n102\n104"),
        // Statistics: count, min and max of the filtered rows, never of the table's files.
        ("SELECT count(*), min(order_id), max(order_id) FROM sales.orders", "3,101,104"),
        ("SELECT count(*) FROM sales.orders WHERE region <> 'EU'", "0"),
        // Masked columns: patterns see the mask, never the clear value.
        ("SELECT count(*) FROM sales.customers WHERE email LIKE '%@%' OR name LIKE 'Alice%' OR card LIKE '4111%'", "0"),
        ("SELECT count(*) FROM sales.customers WHERE regexp_like(email, 'example') OR starts_with(name, 'Al') OR strpos(card, '4111') > 0", "0"),
        ("SELECT count(*) FROM sales.customers WHERE length(email) <> 32 OR email ILIKE '%ALICE%'", "0"),
        // Ordering by a masked column orders by its mask: Alice's 'A***' before Chloé's 'C***'.
        ("SELECT customer_id FROM sales.customers ORDER BY name DESC", "3\n1"),
        ("SELECT min(name), max(card) FROM sales.customers", "A***********,************1234"),
        // The hash is salted: hashing a guess never finds the row.
        (
            "SELECT count(*) FROM sales.customers WHERE email IN (SELECT md5('alice@example.com') UNION ALL SELECT left(encode(sha256('alice@example.com'), 'hex'), 32) UNION ALL SELECT 'alice@example.com')",
            "0",
        ),
        // Joining the masked column with a clear value the caller supplies finds nothing.
        ("SELECT count(*) FROM sales.customers c JOIN (SELECT 'alice@example.com' AS email) g ON c.email = g.email", "0"),
    ] {
        answered_everywhere(&served, "ana", sql, rows).await;
    }
    served.stop().await;
}

#[tokio::test]
async fn shadowing_names_never_reach_a_hidden_or_unfiltered_product_on_every_interface() {
    let served = Served::start(QueryLimits::default(), 8).await;
    for (sql, rows) in [
        ("WITH orders AS (SELECT 1 AS order_id) SELECT order_id FROM orders", "1"),
        ("WITH ledger AS (SELECT 7 AS x) SELECT x FROM ledger", "7"),
        ("SELECT count(*) FROM meshwork.sales.orders WHERE region <> 'EU'", "0"),
        ("SELECT count(*) FROM \"meshwork\".\"sales\".\"orders\" WHERE region <> 'EU'", "0"),
        ("SELECT count(*) FROM SALES.Orders WHERE region <> 'EU'", "0"),
        ("SELECT count(*) FROM sales.orders AS ledger WHERE ledger.region <> 'EU'", "0"),
        ("WITH c AS (SELECT * FROM sales.customers) SELECT count(*) FROM c WHERE email LIKE '%@%'", "0"),
        ("SELECT count(*) FROM (SELECT region FROM sales.orders) AS orders WHERE orders.region = 'NA'", "0"),
    ] {
        answered_everywhere(&served, "ana", sql, rows).await;
    }
    for sql in [
        "SELECT * FROM finance.ledger",
        "SELECT * FROM meshwork.finance.ledger",
        "SELECT * FROM \"finance\".\"ledger\"",
        "SELECT * FROM FINANCE.LEDGER",
        "SELECT * FROM datafusion.finance.ledger",
        "SELECT * FROM datafusion.public.ledger",
        "SELECT * FROM ledger",
        "WITH x AS (SELECT * FROM finance.ledger) SELECT * FROM x",
        "SELECT * FROM sales.orders o JOIN finance.ledger l ON true",
    ] {
        refused_everywhere(&served, "ana", sql, &["not found", "does not exist"]).await;
    }
    served.stop().await;
}

const NESTING: &str = "the statement nests more than 500 levels deep (hint:";

fn chain(term: &str, operator: &str, terms: usize) -> String {
    let mut sql = String::with_capacity(terms * (term.len() + operator.len()));
    sql.push_str(term);
    for _ in 1..terms {
        sql.push_str(operator);
        sql.push_str(term);
    }
    sql
}

#[tokio::test]
async fn resource_exhaustion_is_an_error_and_the_server_keeps_serving_others() {
    let limits = QueryLimits { memory_bytes: Some(64 << 20), timeout: Some(Duration::from_secs(4)), ..Default::default() };
    let served = Served::start(limits, 8).await;
    // Under psql's 128 KiB argument limit, and still deep enough to overflow any stack.
    let cases: Vec<(String, &[&str])> = vec![
        case(format!("SELECT {}", chain("1", "+", 60_000)), &[NESTING]),
        case(format!("SELECT 1 WHERE {}", chain("true", " AND ", 12_000)), &[NESTING]),
        case(format!("SELECT {}", chain("'a'", "||", 20_000)), &[NESTING]),
        case(format!("SELECT order_id FROM sales.orders WHERE {}", chain("order_id > 0", " OR ", 6_000)), &[NESTING]),
        case(format!("SELECT {}", chain("1", " UNION ALL SELECT ", 5_000)), &[NESTING]),
        case(format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000)), &["brackets or subqueries", "recursion limit"]),
        case(format!("SELECT {}1{}", "(SELECT ".repeat(2_000), ")".repeat(2_000)), &["brackets or subqueries", "recursion limit"]),
        case(format!("SELECT {}1{}", "abs(".repeat(2_000), ")".repeat(2_000)), &["brackets or subqueries", "recursion limit", NESTING]),
        // Values built from a count the caller gives.
        case("SELECT repeat('x', 1000000000)", &["`repeat` would build a value of more than 64 MiB"]),
        case("SELECT length(repeat(email, 100000000)) FROM sales.customers", &["`repeat` would build a value of more than 64 MiB"]),
        case("SELECT lpad('x', 2000000000)", &["`lpad` would build a value of more than 64 MiB"]),
        case("SELECT rpad('x', 2000000000, 'ab')", &["`rpad` would build a value of more than 64 MiB"]),
        case("SELECT replace(repeat('x', 20000), 'x', repeat('y', 20000))", &["`replace` would build"]),
        case("SELECT regexp_replace(repeat('x', 20000), '', repeat('y', 20000), 'g')", &["`regexp_replace` would build"]),
        case("SELECT cardinality(array_repeat(1, 1000000000))", &["`array_repeat` would build a value of more than 64 MiB"]),
        case("SELECT cardinality(array_repeat(repeat('x', 1000), 1000000))", &["`array_repeat` would build"]),
        case("SELECT cardinality(range(1, 1000000000))", &["`range` would build a value of more than 64 MiB"]),
        case("SELECT cardinality(generate_series(DATE '1970-01-01', DATE '2100-01-01', INTERVAL '1 second'))", &["`generate_series` would build"]),
        case("SELECT length(array_to_string(range(1, 100000), repeat('-', 1000)))", &["`array_to_string` would build"]),
        // Work without a single large value: stopped by the memory pool or the time limit.
        case("SELECT count(*) FROM generate_series(1, 1000000) a CROSS JOIN generate_series(1, 1000000) b", &["longer than the 4s limit", "resources exhausted"]),
        case("SELECT length(string_agg(repeat('x', 1000), ',')) FROM generate_series(1, 1000000)", &["resources exhausted", "longer than the 4s limit"]),
        case("SELECT count(*) FROM generate_series(1, 1000000000000)", &["longer than the 4s limit"]),
    ];
    for (sql, expected) in &cases {
        // Another principal is served while the attack is planned and refused.
        let (_, other) = tokio::join!(refused_everywhere(&served, "sam", sql, expected), ask(&served, Via::Http, "ana", "SELECT 42"));
        assert_eq!(other.as_deref(), Ok("42"));
    }
    // SQL longer than a statement may be, on the interfaces that can carry it.
    let long = format!("SELECT 1 AS one{}", " ".repeat(meshwork_query::MAX_SQL_BYTES));
    for via in [Via::Http, Via::FlightStatement, Via::FlightPrepared] {
        let err = ask(&served, via, "sam", &long).await.expect_err("too long");
        assert!(err.contains("bytes long, more than the 1024 KiB a statement may have"), "{via:?}: {}", &err[..err.len().min(300)]);
    }
    answered_everywhere(&served, "sam", "SELECT 1 + 1", "2").await;
    served.stop().await;
}

#[tokio::test]
async fn cancelled_streams_are_audited_and_the_server_keeps_going() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let endless = "SELECT * FROM generate_series(1, 100000000)";
    // HTTP: the client reads the first bytes and goes away.
    let response = served.post_query(Some(served.token("sam")), endless, "text/csv").await;
    let mut response = response;
    assert!(!response.chunk().await.unwrap().unwrap().is_empty());
    drop(response);
    // Flight SQL: the DoGet stream is dropped after its first batch.
    let mut client = served.flight(served.token("sam")).await;
    let info = client.execute(endless.into(), None).await.unwrap();
    let mut stream = client.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    // Both are recorded as cancelled (the audit is completed by a task of its own).
    let mut seen = Vec::new();
    for _ in 0..100 {
        let audit = served.catalog.audit(&meshwork_catalog::AuditFilter { principal: Some("sam".into()), ..Default::default() }).await.unwrap();
        seen = audit.iter().filter(|e| e.outcome == "cancelled").map(|e| e.interface.clone()).collect::<Vec<_>>();
        seen.sort();
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, ["flight_sql", "http"]);
    answered_everywhere(&served, "sam", "SELECT 3", "3").await;
    served.stop().await;
}

/// Time travel on every interface: an earlier publication answers under today's row filter and
/// masks, exactly as today's rows that existed then; a product the caller may not read has no
/// history either, and asking for it answers like asking for a missing product.
#[tokio::test]
async fn earlier_publications_answer_under_todays_policy_on_every_interface() {
    let served = Served::start(QueryLimits::default(), 8).await;
    served
        .reapply(|root| {
            let path = root.join("data/customers.csv");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("{text}7,Fay Lin,fay@example.com,EU,4777777777777777\n")).unwrap();
        })
        .await;
    for via in EVERY_INTERFACE {
        let then = ask(&served, via, "ana", "SELECT customer_id, name, card FROM sales.\"customers@1\" ORDER BY customer_id").await;
        let now = ask(&served, via, "ana", "SELECT customer_id, name, card FROM sales.customers WHERE customer_id <> 7 ORDER BY customer_id").await;
        assert!(then.as_ref().is_ok_and(|rows| rows.lines().count() == 2 && !rows.contains("4111111111111111")), "{via:?}: {then:?}");
        assert_eq!(then, now, "{via:?}");
        let hidden = ask(&served, via, "ana", "SELECT * FROM finance.\"ledger@1\"").await.unwrap_err();
        let missing = ask(&served, via, "ana", "SELECT * FROM finance.\"nothing@1\"").await.unwrap_err();
        assert_eq!(hidden.replace("ledger@1", "X"), missing.replace("nothing@1", "X"), "{via:?}");
    }
    served.stop().await;
}

#[tokio::test]
async fn a_text_literal_that_is_no_value_of_its_column_type_is_refused_alike_on_every_interface() {
    // Refused while planning, so the answer is the same whether or not any row the principal may
    // see would have reached the comparison: no oracle on the rows behind the row filter.
    let served = Served::start(QueryLimits::default(), 8).await;
    for sql in ["SELECT * FROM sales.orders WHERE order_id = '10x'", "SELECT * FROM sales.orders WHERE order_id = '10x' AND region = 'NA'"] {
        refused_everywhere(&served, "ana", sql, &["'10x' is not a valid bigint value to compare with `order_id` (at line 1, column 34); hint: write a whole number"]).await;
    }
    answered_everywhere(&served, "ana", "SELECT count(*) FROM sales.orders WHERE order_id = '101'", "1").await;
    served.stop().await;
}
