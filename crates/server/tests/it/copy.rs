//! `COPY … TO STDOUT` and SQL cursors over the Postgres wire: the exact bytes of each COPY
//! format, the rows a principal may read and nothing else (ana sees EU rows, masked names),
//! refusals that look like today's, cancellation, audit; cursors fetched in steps inside a
//! transaction and gone after it; extended-protocol results that stream and still suspend.

use std::time::Duration;

use meshwork_catalog::AuditFilter;
use meshwork_query::QueryLimits;

use crate::wire::{CopyOut, Wire};
use crate::{Served, psql};

fn text(rows: &[&str]) -> Vec<Vec<u8>> {
    rows.iter().map(|r| r.as_bytes().to_vec()).collect()
}

/// The binary format's header: signature, flags, extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

#[tokio::test]
async fn copy_sends_the_governed_rows_in_every_format() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut ana = Wire::connect(port, served.token("ana")).await.unwrap();

    // Text, the default: ana's row filter keeps the EU orders only.
    let copy = ana.copy_out("COPY (SELECT order_id, region, amount FROM sales.orders ORDER BY order_id) TO STDOUT").await.unwrap();
    assert_eq!(copy, CopyOut { format: 0, column_formats: vec![0, 0, 0], data: text(&["101\tEU\t10.00\n", "102\tEU\t25.50\n", "104\tEU\t40.00\n"]), tag: "COPY 3".into() });

    // CSV with a header, NULLs, an empty string and quoting; names come masked.
    let copy = ana
        .copy_out("COPY (SELECT customer_id, name, NULL AS missing, '' AS empty, 'say \"hi\", ok' AS quoted FROM sales.customers ORDER BY customer_id) TO STDOUT WITH CSV HEADER")
        .await
        .unwrap();
    assert_eq!(copy.tag, "COPY 2", "the header line is not a row");
    assert_eq!(copy.text(), "customer_id,name,missing,empty,quoted\n1,A***********,,\"\",\"say \"\"hi\"\", ok\"\n3,C***********,,\"\",\"say \"\"hi\"\", ok\"\n");
    // The same in the new syntax, with other options; text format with NULL and a delimiter to escape.
    let copy = ana.copy_out("COPY (SELECT order_id, 'a;b' AS s, NULL AS n FROM sales.orders WHERE order_id = 101) TO STDOUT (FORMAT csv, DELIMITER ';', NULL 'NA', HEADER true)").await.unwrap();
    assert_eq!(copy.text(), "order_id;s;n\n101;\"a;b\";NA\n");
    let copy = ana.copy_out("COPY (SELECT order_id, 'a|b\tc' AS s, NULL AS n FROM sales.orders WHERE order_id = 101) TO STDOUT WITH DELIMITER '|'").await.unwrap();
    assert_eq!(copy.text(), "101|a\\|b\\tc|\\N\n");

    // Binary: the header travels with the first tuple, the trailer alone.
    let copy = ana.copy_out("COPY (SELECT order_id FROM sales.orders WHERE order_id = 101) TO STDOUT (FORMAT binary)").await.unwrap();
    let tuple = [&1i16.to_be_bytes()[..], &8i32.to_be_bytes(), &101i64.to_be_bytes()].concat();
    assert_eq!(copy, CopyOut { format: 1, column_formats: vec![1], data: vec![[HEADER, &tuple].concat(), vec![0xff, 0xff]], tag: "COPY 1".into() });
    // No rows (order 103 is in NA, which ana may not read): still a valid file, header and trailer.
    let copy = ana.copy_out("COPY (SELECT order_id FROM sales.orders WHERE order_id = 103) TO STDOUT (FORMAT binary)").await.unwrap();
    assert_eq!((copy.data, copy.tag.as_str()), (vec![[HEADER, &[0xff, 0xff][..]].concat()], "COPY 0"));
    // Over the extended protocol, as the ADBC driver reads every result.
    let copy = ana.copy_out_extended("COPY (SELECT order_id FROM sales.orders WHERE order_id = 101) TO STDOUT (FORMAT binary)").await.unwrap();
    assert_eq!(copy.bytes(), [HEADER, &tuple, &[0xff, 0xff]].concat());
    assert_eq!(copy.tag, "COPY 1");

    // A table, as psql's `\copy` and psycopg2's `copy_to` send it: the same governed rows.
    let copy = ana.copy_out("COPY \"sales\".\"orders\" (\"order_id\", \"region\") TO stdout WITH DELIMITER AS '\t' NULL AS '\\N'").await.unwrap();
    let text = copy.text();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["101\tEU", "102\tEU", "104\tEU"]);

    // psql's \copy gets the same bytes.
    let (out, err) = psql(port, served.token("ana"), "\\copy (SELECT order_id, region FROM sales.orders ORDER BY order_id) TO STDOUT WITH CSV HEADER").await;
    assert_eq!(out, "order_id,region\n101,EU\n102,EU\n104,EU\n", "{err}");

    // Every COPY was audited as the query it ran, with its rows.
    let audit = served.catalog.audit(&AuditFilter { principal: Some("ana".into()), ..Default::default() }).await.unwrap();
    let copied = audit.iter().find(|e| e.statement.contains("SELECT order_id, region, amount FROM sales.orders")).expect("an audit event of the first COPY");
    assert_eq!((copied.interface.as_str(), copied.outcome.as_str(), copied.rows), ("postgres", "ok", Some(3)), "{copied:#?}");
    served.stop().await;
}

#[tokio::test]
async fn copy_refuses_what_a_query_refuses() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut ana = Wire::connect(port, served.token("ana")).await.unwrap();
    // A product ana may not read looks like one that does not exist.
    let hidden = ana.copy_out("COPY finance.ledger TO STDOUT").await.unwrap_err();
    let missing = ana.copy_out("COPY finance.nope TO STDOUT").await.unwrap_err();
    assert_eq!(hidden.code, "42P01", "{hidden:?}");
    assert_eq!(hidden.message.replace("ledger", "X"), missing.message.replace("nope", "X"));
    let hidden = ana.copy_out("COPY (SELECT * FROM finance.ledger) TO STDOUT (FORMAT binary)").await.unwrap_err();
    assert_eq!(hidden.code, "42P01", "{hidden:?}");

    // Writes stay refused, with the messages they had.
    let leak = served._dir.path().join("leak.csv");
    let err = ana.copy_out(&format!("COPY (SELECT * FROM sales.orders) TO '{}'", leak.display())).await.unwrap_err();
    assert!(err.message.contains("`COPY` is not allowed"), "{err:?}");
    let err = ana.copy_out("COPY sales.orders FROM STDIN").await.unwrap_err();
    assert_eq!(err.message, "`COPY … FROM` is not allowed: queries are read-only; products are published with `meshwork apply`");
    let err = ana.copy_out("COPY sales.orders TO PROGRAM 'cat > /tmp/x'").await.unwrap_err();
    assert!(err.message.contains("`COPY … TO PROGRAM` is not allowed"), "{err:?}");
    let err = ana.copy_out("COPY (SELECT 1) TO STDOUT (FORMAT binary, HEADER)").await.unwrap_err();
    assert_eq!(err.message, "cannot specify HEADER in BINARY mode");
    assert!(!leak.exists());
    // The connection goes on.
    assert_eq!(ana.simple("SELECT 1").await.unwrap(), [[Some("1".to_owned())]]);
    served.stop().await;
}

#[tokio::test]
async fn a_cancel_request_stops_a_copy_with_an_error_the_client_reads() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut conn = Wire::connect(port, served.token("sam")).await.unwrap();
    let (_, pid, key) = conn.cancel_key();
    let sql = "COPY (SELECT value AS copied FROM generate_series(1, 1000000000000)) TO STDOUT";
    conn.send_query(sql).await;
    conn.first_copy_data().await.unwrap();
    Wire::cancel(port, pid, key).await;
    let err = conn.count_copy_rest().await.expect_err("cancelled while copying");
    assert_eq!((err.code.as_str(), err.message.as_str()), ("57014", "canceling statement due to user request"));
    assert_eq!(conn.simple("SELECT 1").await.unwrap(), [[Some("1".to_owned())]]);
    let mut outcome = String::new();
    for _ in 0..100 {
        let audit = served.catalog.audit(&AuditFilter { principal: Some("sam".into()), ..Default::default() }).await.unwrap();
        outcome = audit.iter().find(|e| e.statement.contains("AS copied")).map(|e| e.outcome.to_string()).unwrap_or_default();
        if outcome == "cancelled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outcome, "cancelled");
    served.stop().await;
}

#[tokio::test]
async fn cursors_fetch_in_steps_within_their_transaction() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut ana = Wire::connect(port, served.token("ana")).await.unwrap();
    let row = |v: &str| vec![Some(v.to_owned())];

    let err = ana.command("DECLARE c CURSOR FOR SELECT order_id FROM sales.orders").await.unwrap_err();
    assert_eq!((err.code.as_str(), err.message.as_str()), ("25P01", "DECLARE CURSOR can only be used in transaction blocks; send BEGIN first"));

    ana.command("BEGIN").await.unwrap();
    let declared = ana.command("DECLARE \"c\" CURSOR WITHOUT HOLD FOR SELECT order_id FROM sales.orders ORDER BY order_id").await.unwrap();
    assert_eq!(declared, (vec![], "DECLARE CURSOR".to_owned()));
    assert_eq!(ana.command("FETCH FORWARD 2 FROM \"c\"").await.unwrap(), (vec![row("101"), row("102")], "FETCH 2".to_owned()));
    assert_eq!(ana.command("FETCH 2 FROM c").await.unwrap(), (vec![row("104")], "FETCH 1".to_owned()), "EU rows only");
    assert_eq!(ana.command("FETCH NEXT FROM c").await.unwrap(), (vec![], "FETCH 0".to_owned()));
    assert_eq!(ana.command("CLOSE c").await.unwrap().1, "CLOSE CURSOR");
    let err = ana.command("FETCH 1 FROM c").await.unwrap_err();
    assert_eq!((err.code.as_str(), err.message.as_str()), ("34000", "cursor \"c\" does not exist"));
    ana.command("ROLLBACK").await.unwrap();

    // A cursor ends with its transaction; FETCH ALL and a hidden product.
    ana.command("BEGIN").await.unwrap();
    ana.command("DECLARE d NO SCROLL CURSOR FOR SELECT customer_id, name FROM sales.customers ORDER BY customer_id").await.unwrap();
    let (rows, tag) = ana.command("FETCH ALL FROM d").await.unwrap();
    assert_eq!((rows, tag.as_str()), (vec![vec![Some("1".into()), Some("A***********".into())], vec![Some("3".into()), Some("C***********".into())]], "FETCH 2"));
    ana.command("DECLARE e CURSOR FOR SELECT order_id FROM sales.orders").await.unwrap();
    let err = ana.command("DECLARE e CURSOR FOR SELECT 1").await.unwrap_err();
    assert_eq!(err.code, "42P03");
    ana.command("COMMIT").await.unwrap();
    let err = ana.command("FETCH 1 FROM e").await.unwrap_err();
    assert_eq!(err.code, "34000", "gone after COMMIT: {err:?}");
    ana.command("BEGIN").await.unwrap();
    let err = ana.command("DECLARE h CURSOR FOR SELECT * FROM finance.ledger").await.unwrap_err();
    assert_eq!(err.code, "42P01", "{err:?}");
    ana.command("ROLLBACK").await.unwrap();
    ana.command("BEGIN").await.unwrap();
    let err = ana.command("DECLARE s SCROLL CURSOR FOR SELECT 1").await.unwrap_err();
    assert!(err.message.starts_with("`SCROLL` cursors are not supported"), "{err:?}");
    ana.command("ROLLBACK").await.unwrap();
    ana.command("BEGIN").await.unwrap();
    let err = ana.command("DECLARE w CURSOR WITH HOLD FOR SELECT 1").await.unwrap_err();
    assert!(err.message.starts_with("cursors `WITH HOLD` are not supported"), "{err:?}");
    ana.command("ROLLBACK").await.unwrap();

    // psycopg 3's named cursor: DECLARE with a parameter over the extended protocol, the
    // cursor described as a portal, then FETCH.
    ana.command("BEGIN").await.unwrap();
    assert_eq!(ana.run_with("DECLARE \"ss_cur\" CURSOR FOR SELECT order_id FROM sales.orders WHERE order_id < $1 ORDER BY order_id", &["104"]).await.unwrap().1, "DECLARE CURSOR");
    assert_eq!(ana.describe_portal("ss_cur").await.unwrap(), ["order_id"]);
    assert_eq!(ana.command("FETCH FORWARD ALL FROM \"ss_cur\"").await.unwrap(), (vec![row("101"), row("102")], "FETCH 2".to_owned()));
    ana.command("COMMIT").await.unwrap();

    // psql's FETCH_COUNT reads through a cursor (BEGIN, DECLARE, FETCH FORWARD 2…, CLOSE,
    // COMMIT): the same rows as a plain query.
    let (token, at) = (served.token("ana").to_owned(), port.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &at, "-U", "whoever", "-d", "meshwork", "-X", "-A", "-t", "-v", "FETCH_COUNT=2", "-c", "SELECT order_id, region FROM sales.orders ORDER BY order_id"])
            .env("PGPASSWORD", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "101|EU\n102|EU\n104|EU\n", "{}", String::from_utf8_lossy(&out.stderr));

    let audit = served.catalog.audit(&AuditFilter { principal: Some("ana".into()), ..Default::default() }).await.unwrap();
    assert!(audit.iter().any(|e| e.statement.contains("WHERE order_id < $1") && e.interface == "postgres"), "the cursor's query is audited");
    served.stop().await;
}

#[tokio::test]
async fn extended_results_stream_and_portals_still_suspend() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut sam = Wire::connect(port, served.token("sam")).await.unwrap();
    // JDBC's setFetchSize: a named portal executed a few rows at a time.
    sam.command("BEGIN").await.unwrap();
    sam.prepare("s", "SELECT order_id FROM sales.orders ORDER BY order_id").await.unwrap();
    sam.bind("s", "p").await.unwrap();
    let ids = |rows: Vec<Vec<Option<String>>>| rows.into_iter().map(|r| r[0].clone().unwrap()).collect::<Vec<_>>();
    let (rows, suspended) = sam.execute_some("p", 4).await.unwrap();
    assert_eq!((ids(rows), suspended), (vec!["101".to_owned(), "102".into(), "103".into(), "104".into()], true));
    let (rows, suspended) = sam.execute_some("p", 4).await.unwrap();
    assert_eq!((ids(rows), suspended), (vec!["105".to_owned(), "106".into()], false));
    sam.command("COMMIT").await.unwrap();

    // No row limit: rows go out as they are made. An endless result sends its first row (it
    // would never come if the rows were collected first), then a cancel request stops it.
    let (_, pid, key) = sam.cancel_key();
    sam.send_run("SELECT value FROM generate_series(1, 1000000000000)").await;
    sam.first_row().await.unwrap();
    Wire::cancel(port, pid, key).await;
    let err = sam.count_rest().await.expect_err("cancelled while streaming");
    assert_eq!(err.code, "57014", "{err:?}");
    assert_eq!(sam.run_with("SELECT $1::bigint + 1", &["41"]).await.unwrap(), (vec![vec![Some("42".to_owned())]], "SELECT 1".to_owned()));
    // A bound value that is no value of its type is told as PostgreSQL tells it, with the fix.
    let err = sam.run_with("SELECT count(*) FROM sales.orders WHERE region = $1 AND order_id = $2", &["EU", "10x"]).await.unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.message.as_str()),
        ("22P02", "invalid input syntax for type bigint: \"10x\" (parameter $2); hint: bind a whole number, e.g. 42")
    );
    served.stop().await;
}
