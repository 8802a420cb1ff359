//! Statement-level PostgreSQL compatibility on the Postgres wire, in the simple and the
//! extended protocol: one server version everywhere, `SHOW` in PostgreSQL's spelling,
//! savepoints and `DEALLOCATE`, and the rewrites of SQL drivers send (`LIKE … ESCAPE`,
//! `ARRAY(SELECT …)`, duplicate output names, booleans compared with `'t'`), none of which
//! reaches a product the principal may not read.

use meshwork_query::QueryLimits;

use crate::wire::{PgError, Rows, Wire, cstr, data_row, error_fields};
use crate::{Served, psql};

/// Everything the server answered to one query, up to `ReadyForQuery`.
#[derive(Debug)]
struct Answer {
    columns: Vec<String>,
    rows: Rows,
    tags: Vec<String>,
    error: Option<PgError>,
    /// The transaction state `ReadyForQuery` reports: `I`, `T` or `E`.
    status: char,
}

impl Answer {
    fn ok(self, sql: &str) -> Answer {
        assert!(self.error.is_none(), "{sql}: {:?}", self.error);
        self
    }

    fn err(self, sql: &str) -> PgError {
        self.error.unwrap_or_else(|| panic!("{sql}: expected an error, got {:?} {:?}", self.tags, self.rows))
    }
}

/// How a statement is sent.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    Simple,
    /// Parse (unnamed), Bind with text parameters, Describe portal, Execute, Sync.
    Extended,
}

const BOTH: [Protocol; 2] = [Protocol::Simple, Protocol::Extended];

impl Wire {
    async fn ask(&mut self, protocol: Protocol, sql: &str) -> Answer {
        self.ask_with(protocol, sql, &[]).await
    }

    async fn ask_with(&mut self, protocol: Protocol, sql: &str, params: &[&str]) -> Answer {
        match protocol {
            Protocol::Simple => {
                assert!(params.is_empty());
                self.send(b'Q', &cstr(sql)).await;
            }
            Protocol::Extended => {
                let mut parse = cstr("");
                parse.extend_from_slice(&cstr(sql));
                parse.extend_from_slice(&0i16.to_be_bytes());
                self.send(b'P', &parse).await;
                let mut bind = cstr("");
                bind.extend_from_slice(&cstr(""));
                bind.extend_from_slice(&0i16.to_be_bytes());
                bind.extend_from_slice(&(params.len() as i16).to_be_bytes());
                for param in params {
                    bind.extend_from_slice(&(param.len() as i32).to_be_bytes());
                    bind.extend_from_slice(param.as_bytes());
                }
                bind.extend_from_slice(&0i16.to_be_bytes());
                self.send(b'B', &bind).await;
                let mut describe = vec![b'P'];
                describe.extend_from_slice(&cstr(""));
                self.send(b'D', &describe).await;
                let mut execute = cstr("");
                execute.extend_from_slice(&0i32.to_be_bytes());
                self.send(b'E', &execute).await;
                self.send(b'S', &[]).await;
            }
        }
        let mut answer = Answer { columns: Vec::new(), rows: Vec::new(), tags: Vec::new(), error: None, status: '?' };
        loop {
            let (tag, body) = self.read().await.expect("the connection stays open");
            match tag {
                b'T' => answer.columns = column_names(&body),
                b'D' => answer.rows.push(data_row(&body)),
                b'C' => answer.tags.push(String::from_utf8_lossy(&body[..body.len() - 1]).into_owned()),
                b'E' => answer.error = Some(error_fields(&body)),
                b'Z' => {
                    answer.status = body[0] as char;
                    return answer;
                }
                _ => {}
            }
        }
    }
}

fn column_names(body: &[u8]) -> Vec<String> {
    let n = i16::from_be_bytes(body[0..2].try_into().unwrap()) as usize;
    let mut at = 2;
    (0..n)
        .map(|_| {
            let end = at + body[at..].iter().position(|b| *b == 0).unwrap();
            let name = String::from_utf8_lossy(&body[at..end]).into_owned();
            at = end + 1 + 18;
            name
        })
        .collect()
}

fn text(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some((*v).to_owned())).collect()
}

fn expected_version() -> String {
    format!(
        "PostgreSQL 16.6 (Meshwork {}, DataFusion {}) on {}-pc-linux-gnu, 64-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH
    )
}

#[tokio::test]
async fn one_server_version_everywhere() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut conn = Wire::connect(port, served.token("ana")).await.unwrap();
    for protocol in BOTH {
        for sql in ["SELECT version()", "select pg_catalog.version()"] {
            let answer = conn.ask(protocol, sql).await.ok(sql);
            assert_eq!((answer.columns, answer.rows), (vec!["version".to_owned()], vec![text(&[&expected_version()])]), "{protocol:?}: {sql}");
        }
        let answer = conn.ask(protocol, "SHOW server_version").await.ok("SHOW server_version");
        assert_eq!((answer.columns, answer.rows), (vec!["server_version".to_owned()], vec![text(&["16.6"])]), "{protocol:?}");
        let answer = conn.ask(protocol, "SHOW server_version_num").await.ok("SHOW server_version_num");
        assert_eq!((answer.columns, answer.rows), (vec!["server_version_num".to_owned()], vec![text(&["160006"])]), "{protocol:?}");
    }
    // The startup parameter (psql keeps it in SERVER_VERSION_NAME) and psql's own query agree.
    let (out, err) = psql(port, served.token("ana"), "\\echo :SERVER_VERSION_NAME").await;
    assert_eq!(out, "16.6\n", "{err}");
    let (out, err) = psql(port, served.token("ana"), "SELECT version()").await;
    assert_eq!(out, format!("{}\n", expected_version()), "{err}");
    served.stop().await;
}

#[tokio::test]
async fn show_answers_what_postgresql_answers() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    let expected = [
        ("SHOW transaction isolation level", "transaction_isolation", "read committed"),
        ("SHOW TRANSACTION ISOLATION LEVEL", "transaction_isolation", "read committed"),
        ("show transaction_isolation", "transaction_isolation", "read committed"),
        ("SHOW standard_conforming_strings", "standard_conforming_strings", "on"),
        ("SHOW server_encoding", "server_encoding", "UTF8"),
        ("SHOW client_encoding", "client_encoding", "UTF8"),
        ("SHOW DateStyle", "DateStyle", "ISO, MDY"),
        ("SHOW datestyle", "DateStyle", "ISO, MDY"),
        ("SHOW integer_datetimes", "integer_datetimes", "on"),
        ("SHOW max_identifier_length", "max_identifier_length", "63"),
        ("SHOW search_path", "search_path", "public"),
        ("SHOW TimeZone", "TimeZone", "Etc/UTC"),
        ("SHOW TIME ZONE", "TimeZone", "Etc/UTC"),
    ];
    for protocol in BOTH {
        for (sql, column, value) in expected {
            let answer = conn.ask(protocol, sql).await.ok(sql);
            assert_eq!((answer.columns, answer.rows, answer.tags), (vec![column.to_owned()], vec![text(&[value])], vec!["SHOW 1".to_owned()]), "{protocol:?}: {sql}");
        }
    }
    // What the client set is what it is shown.
    conn.ask(Protocol::Simple, "SET DateStyle = 'ISO, DMY'").await.ok("SET DateStyle");
    conn.ask(Protocol::Simple, "SET TIME ZONE 'Europe/Berlin'").await.ok("SET TIME ZONE");
    for protocol in BOTH {
        assert_eq!(conn.ask(protocol, "SHOW DateStyle").await.rows, [text(&["ISO, DMY"])], "{protocol:?}");
        assert_eq!(conn.ask(protocol, "SHOW timezone").await.rows, [text(&["Europe/Berlin"])], "{protocol:?}");
    }
    served.stop().await;
}

#[tokio::test]
async fn savepoints_are_accepted_inside_a_transaction_only() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    for protocol in BOTH {
        // Outside a transaction block, as PostgreSQL.
        for (sql, message) in [
            ("SAVEPOINT a", "SAVEPOINT can only be used in transaction blocks"),
            ("RELEASE SAVEPOINT a", "RELEASE SAVEPOINT can only be used in transaction blocks"),
            ("ROLLBACK TO SAVEPOINT a", "ROLLBACK TO SAVEPOINT can only be used in transaction blocks"),
        ] {
            let answer = conn.ask(protocol, sql).await;
            assert_eq!(answer.status, 'I', "{protocol:?}: {sql}");
            let err = answer.err(sql);
            assert_eq!((err.code.as_str(), err.message.as_str()), ("25P01", message), "{protocol:?}: {sql}");
        }
        // Inside one: no-ops with PostgreSQL's tags; ROLLBACK TO stays in the block.
        let steps = [
            ("BEGIN", "BEGIN", 'T'),
            ("SAVEPOINT \"_pg3_1\"", "SAVEPOINT", 'T'),
            ("RELEASE \"_pg3_1\"", "RELEASE", 'T'),
            ("SAVEPOINT a", "SAVEPOINT", 'T'),
            ("ROLLBACK TO a", "ROLLBACK", 'T'),
            ("ROLLBACK TO SAVEPOINT a", "ROLLBACK", 'T'),
            ("RELEASE SAVEPOINT a", "RELEASE", 'T'),
        ];
        for (sql, tag, status) in steps {
            let answer = conn.ask(protocol, sql).await.ok(sql);
            assert_eq!((answer.tags, answer.status), (vec![tag.to_owned()], status), "{protocol:?}: {sql}");
        }
        let answer = conn.ask(protocol, "SELECT order_id FROM sales.orders ORDER BY 1 LIMIT 1").await.ok("select");
        assert_eq!((answer.rows, answer.status), (vec![text(&["101"])], 'T'), "{protocol:?}");
        // An error fails the block: everything but leaving it is refused with 25P02, and
        // ROLLBACK TO goes back into it, as pgJDBC's autosave and psycopg expect.
        let answer = conn.ask(protocol, "SELECT no_such_column FROM sales.orders").await;
        assert_eq!(answer.status, 'E', "{protocol:?}");
        for sql in ["SELECT 1", "SAVEPOINT b", "SHOW server_version"] {
            let answer = conn.ask(protocol, sql).await;
            assert_eq!(answer.status, 'E', "{protocol:?}: {sql}");
            let err = answer.err(sql);
            assert_eq!((err.code.as_str(), err.message.as_str()), ("25P02", "current transaction is aborted, commands ignored until end of transaction block"), "{protocol:?}: {sql}");
        }
        let answer = conn.ask(protocol, "ROLLBACK TO SAVEPOINT a").await.ok("ROLLBACK TO");
        assert_eq!((answer.tags, answer.status), (vec!["ROLLBACK".to_owned()], 'T'), "{protocol:?}");
        let answer = conn.ask(protocol, "SELECT 1 AS one").await.ok("select after ROLLBACK TO");
        assert_eq!((answer.rows, answer.status), (vec![text(&["1"])], 'T'), "{protocol:?}");
        let answer = conn.ask(protocol, "COMMIT").await.ok("COMMIT");
        assert_eq!((answer.tags, answer.status), (vec!["COMMIT".to_owned()], 'I'), "{protocol:?}");
    }
    // Several statements in one query, as psqlODBC sends them, and psycopg's rollback pair.
    let answer = conn.ask(Protocol::Simple, "BEGIN;SAVEPOINT _EXEC_SVP_1;SELECT 1 AS one").await.ok("batch");
    assert_eq!((answer.tags, answer.rows, answer.status), (vec!["BEGIN".to_owned(), "SAVEPOINT".to_owned(), "SELECT 1".to_owned()], vec![text(&["1"])], 'T'));
    let answer = conn.ask(Protocol::Simple, "RELEASE _EXEC_SVP_1;SAVEPOINT _EXEC_SVP_1;SELECT nope").await;
    assert_eq!((answer.tags.clone(), answer.status), (vec!["RELEASE".to_owned(), "SAVEPOINT".to_owned()], 'E'));
    let answer = conn.ask(Protocol::Simple, "ROLLBACK TO \"_EXEC_SVP_1\"; RELEASE \"_EXEC_SVP_1\"").await.ok("rollback pair");
    assert_eq!((answer.tags, answer.status), (vec!["ROLLBACK".to_owned(), "RELEASE".to_owned()], 'T'));
    let answer = conn.ask(Protocol::Simple, "ROLLBACK").await.ok("ROLLBACK");
    assert_eq!((answer.tags, answer.status), (vec!["ROLLBACK".to_owned()], 'I'));
    served.stop().await;
}

#[tokio::test]
async fn deallocate_closes_a_prepared_statement() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    conn.prepare("_PLAN0x55", "SELECT 1 AS one").await.unwrap();
    conn.prepare("s2", "SELECT 2 AS two").await.unwrap();
    assert_eq!(conn.run_prepared("_PLAN0x55").await.unwrap(), [text(&["1"])]);
    let answer = conn.ask(Protocol::Simple, "DEALLOCATE \"_PLAN0x55\"").await.ok("DEALLOCATE");
    assert_eq!(answer.tags, ["DEALLOCATE"]);
    conn.run_prepared("_PLAN0x55").await.expect_err("the statement is closed");
    let err = conn.ask(Protocol::Simple, "DEALLOCATE \"_PLAN0x55\"").await.err("DEALLOCATE again");
    assert_eq!((err.code.as_str(), err.message.as_str()), ("26000", "prepared statement \"_PLAN0x55\" does not exist"));
    // Extended protocol, with PREPARE, and an unquoted name folded to lower case.
    let answer = conn.ask(Protocol::Extended, "DEALLOCATE PREPARE S2").await.ok("DEALLOCATE PREPARE");
    assert_eq!(answer.tags, ["DEALLOCATE"]);
    conn.run_prepared("s2").await.expect_err("the statement is closed");
    for protocol in BOTH {
        let answer = conn.ask(protocol, "DEALLOCATE ALL").await.ok("DEALLOCATE ALL");
        assert_eq!(answer.tags, ["DEALLOCATE ALL"], "{protocol:?}");
    }
    served.stop().await;
}

const WORDS: &str = "(VALUES ('pg_a'), ('pgxa'), ('p%g'), ('pag'), ('a/b'), ('a\\b'), ('PG_A')) AS t(x)";

#[tokio::test]
async fn like_escape_with_any_character_keeps_the_wildcards() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    let cases: &[(&str, &[&str])] = &[
        // An escaped `_` is a literal underscore; `%` stays a wildcard.
        ("x LIKE 'pg/_%' ESCAPE '/'", &["pg_a"]),
        // SQLAlchemy's get_schema_names: the pattern is an expression, not a literal.
        ("x NOT LIKE lower('PG/_') || '%' ESCAPE '/'", &["PG_A", "a/b", "a\\b", "p%g", "pag", "pgxa"]),
        ("x LIKE 'p_g' ESCAPE '!'", &["p%g", "pag"]),
        ("x LIKE 'p!%g' ESCAPE '!'", &["p%g"]),
        ("x LIKE 'p%g' ESCAPE '!'", &["p%g", "pag"]),
        ("x LIKE 'a//b' ESCAPE '/'", &["a/b"]),
        // A backslash that is not the escape character is a backslash.
        ("x LIKE 'a\\b' ESCAPE '/'", &["a\\b"]),
        ("x LIKE 'a\\b' ESCAPE ''", &["a\\b"]),
        ("x LIKE 'a\\/b' ESCAPE '\\'", &["a/b"]),
        ("x ILIKE 'pg#_a' ESCAPE '#'", &["PG_A", "pg_a"]),
        ("x NOT ILIKE 'pg#_a' ESCAPE '#'", &["a/b", "a\\b", "p%g", "pag", "pgxa"]),
    ];
    for protocol in BOTH {
        for (condition, expected) in cases {
            let sql = format!("SELECT x FROM {WORDS} WHERE {condition} ORDER BY x");
            let answer = conn.ask(protocol, &sql).await.ok(&sql);
            let expected: Rows = expected.iter().map(|v| text(&[v])).collect();
            assert_eq!(answer.rows, expected, "{protocol:?}: {condition}");
        }
        let sql = format!("SELECT x FROM {WORDS} WHERE x LIKE 'a/' ESCAPE '/'");
        let err = conn.ask(protocol, &sql).await.err(&sql);
        assert!(err.message.contains("LIKE pattern must not end with escape character"), "{protocol:?}: {err:?}");
    }
    // A bound parameter, as SQLAlchemy sends it.
    let sql = format!("SELECT x FROM {WORDS} WHERE x NOT LIKE $1::VARCHAR || '%' ESCAPE '/' ORDER BY x");
    let answer = conn.ask_with(Protocol::Extended, &sql, &["pg/_"]).await.ok(&sql);
    assert_eq!(answer.rows, [["PG_A"], ["a/b"], ["a\\b"], ["p%g"], ["pag"], ["pgxa"]].map(|r| text(&r)));
    served.stop().await;
}

#[tokio::test]
async fn array_of_a_subquery_is_an_ordered_array() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    let cases: &[(&str, &[&str], Rows)] = &[
        ("SELECT ARRAY(SELECT x FROM (VALUES (3), (1), (2)) AS t(x) ORDER BY x DESC) AS a", &["a"], vec![text(&["{3,2,1}"])]),
        ("SELECT ARRAY(SELECT x AS v FROM (VALUES (3), (1), (2)) AS t(x) ORDER BY v) AS a", &["a"], vec![text(&["{1,2,3}"])]),
        ("SELECT ARRAY(SELECT x FROM (VALUES (3), (1), (2)) AS t(x) ORDER BY x LIMIT 2) AS a", &["a"], vec![text(&["{1,2}"])]),
        ("SELECT ARRAY(SELECT DISTINCT x FROM (VALUES (2), (1), (2)) AS t(x) ORDER BY 1) AS a", &["a"], vec![text(&["{1,2}"])]),
        (
            "SELECT o.k, ARRAY(SELECT i.v FROM (VALUES (1, 'b'), (1, 'a'), (2, 'c')) AS i(k, v) WHERE i.k = o.k ORDER BY i.v) AS vs FROM (VALUES (1), (2), (3)) AS o(k) ORDER BY o.k",
            &["k", "vs"],
            vec![text(&["1", "{a,b}"]), text(&["2", "{c}"]), text(&["3", "{}"])],
        ),
        (
            "SELECT ARRAY(SELECT order_id FROM sales.orders ORDER BY order_id DESC) AS ids",
            &["ids"],
            vec![text(&["{104,102,101}"])],
        ),
    ];
    for protocol in BOTH {
        for (sql, columns, rows) in cases {
            let answer = conn.ask(protocol, sql).await.ok(sql);
            assert_eq!((&answer.columns, &answer.rows), (&columns.iter().map(|c| c.to_string()).collect::<Vec<_>>(), rows), "{protocol:?}: {sql}");
        }
    }
    served.stop().await;
}

#[tokio::test]
async fn output_names_are_postgresql_names_duplicates_included() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    let cases: &[(&str, &[&str], Rows)] = &[
        ("SELECT NULL, 'x' AS nspname, NULL", &["?column?", "nspname", "?column?"], vec![vec![None, Some("x".into()), None]]),
        ("SELECT a.x, b.x FROM (VALUES (1)) AS a(x), (VALUES (2)) AS b(x)", &["x", "x"], vec![text(&["1", "2"])]),
        ("SELECT count(*), count(*) FROM (VALUES (1), (2)) AS t(x)", &["count", "count"], vec![text(&["2", "2"])]),
        ("SELECT 1, 2, 3::int, 4::int, lower('A'), lower('B'), 'a' AS x, 'b' AS x", &["?column?", "?column?", "int4", "int4", "lower", "lower", "x", "x"], vec![text(&["1", "2", "3", "4", "a", "b", "a", "b"])]),
        // A name that is not repeated keeps DataFusion's name, so the statement stays as written.
        ("SELECT count(*), 1 AS one FROM (VALUES (1)) AS t(x)", &["count(*)", "one"], vec![text(&["1", "1"])]),
        // psqlODBC's list of table types.
        (
            "select NULL, NULL, relkind from (select 'r' as relkind union select 'v' union select 'm' union select 'f' union select 'p') as a order by relkind",
            &["?column?", "?column?", "relkind"],
            vec![vec![None, None, Some("f".into())], vec![None, None, Some("m".into())], vec![None, None, Some("p".into())], vec![None, None, Some("r".into())], vec![None, None, Some("v".into())]],
        ),
        // Inside a derived table too.
        ("SELECT * FROM (SELECT 1 AS x, 2 AS x) AS t", &["x", "x"], vec![text(&["1", "2"])]),
    ];
    for protocol in BOTH {
        for (sql, columns, rows) in cases {
            let answer = conn.ask(protocol, sql).await.ok(sql);
            assert_eq!((&answer.columns, &answer.rows), (&columns.iter().map(|c| c.to_string()).collect::<Vec<_>>(), rows), "{protocol:?}: {sql}");
        }
    }
    // psqlODBC's list of all schemas: ana sees hers, not finance.
    let sql = "select NULL, nspname, NULL from pg_catalog.pg_namespace n where true and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') order by nspname";
    let answer = conn.ask(Protocol::Simple, sql).await.ok(sql);
    assert_eq!(answer.columns, ["?column?", "nspname", "?column?"]);
    let schemas: Vec<&str> = answer.rows.iter().map(|r| r[1].as_deref().unwrap()).collect();
    assert!(schemas.contains(&"sales") && !schemas.contains(&"finance"), "{schemas:?}");
    served.stop().await;
}

#[tokio::test]
async fn a_boolean_compares_with_an_untyped_literal() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    let flags = "(VALUES (1, true, 'f'), (2, false, 't')) AS t(n, b, c)";
    let cases: &[(&str, &[&str])] = &[
        ("b = 't'", &["1"]),
        ("b = 'true'", &["1"]),
        ("b = 'f'", &["2"]),
        ("'yes' = b", &["1"]),
        ("b <> 'TRUE'", &["2"]),
        ("b = ' off '", &["2"]),
        // A text column compared with 'f' stays a text comparison.
        ("c = 'f'", &["1"]),
    ];
    for protocol in BOTH {
        for (condition, expected) in cases {
            let sql = format!("SELECT n FROM {flags} WHERE {condition} ORDER BY n");
            let answer = conn.ask(protocol, &sql).await.ok(&sql);
            assert_eq!(answer.rows, expected.iter().map(|v| text(&[v])).collect::<Rows>(), "{protocol:?}: {condition}");
        }
        let sql = format!("SELECT n, b = 't' AS is_true FROM {flags} ORDER BY n");
        assert_eq!(conn.ask(protocol, &sql).await.ok(&sql).rows, [text(&["1", "t"]), text(&["2", "f"])], "{protocol:?}");
    }
    served.stop().await;
}

#[tokio::test]
async fn rewrites_do_not_reach_a_hidden_product() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    // ana may not read finance.ledger: through every rewrite it answers like a missing product.
    let statements = [
        "SELECT ARRAY(SELECT account FROM {t} ORDER BY account) AS a",
        "SELECT ARRAY(SELECT account FROM {t} ORDER BY account LIMIT 1) AS a",
        "SELECT account FROM {t} WHERE account LIKE 'a/_%' ESCAPE '/'",
        "SELECT a.account, b.account FROM {t} AS a, {t} AS b",
        "SELECT NULL, NULL, account FROM {t}",
        "SELECT entry_id FROM (VALUES (true)) AS f(b), {t} WHERE f.b = 't'",
    ];
    for protocol in BOTH {
        for statement in statements {
            let hidden = conn.ask(protocol, &statement.replace("{t}", "finance.ledger")).await.err(statement);
            let missing = conn.ask(protocol, &statement.replace("{t}", "finance.nope")).await.err(statement);
            assert_eq!(hidden.code, missing.code, "{protocol:?}: {statement}");
            assert_eq!(hidden.message.replace("ledger", "X"), missing.message.replace("nope", "X"), "{protocol:?}: {statement}");
            assert!(!hidden.message.contains("account") && !hidden.message.contains("entry_id"), "{protocol:?}: {statement}: {hidden:?}");
        }
    }
    // Someone who may read it gets its rows through the same rewrites.
    let mut admin = Wire::connect(served.at.postgres.port(), served.token("admin")).await.unwrap();
    let answer = admin.ask(Protocol::Simple, "SELECT NULL, NULL, count(*) FROM finance.ledger").await.ok("admin");
    assert_eq!(answer.columns, ["?column?", "?column?", "count(*)"]);
    served.stop().await;
}

#[tokio::test]
async fn correlated_scalar_subqueries_run_per_row() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    let cases: &[(&str, Rows)] = &[
        (
            "SELECT o.k, CASE WHEN o.k > 1 THEN (SELECT i.v FROM (VALUES (1, 'a'), (2, 'b')) AS i(k, v) WHERE i.k = o.k) ELSE 'none' END AS v FROM (VALUES (1), (2), (3)) AS o(k) ORDER BY o.k",
            vec![text(&["1", "none"]), text(&["2", "b"]), vec![Some("3".into()), None]],
        ),
        (
            "SELECT t.n FROM (VALUES (0, 1), (5, 2), (7, 3)) AS t(r, n) WHERE t.r = 0 OR (SELECT c.kind = 'c' FROM (VALUES (5, 'c'), (7, 'r')) AS c(oid, kind) WHERE c.oid = t.r) ORDER BY t.n",
            vec![text(&["1"]), text(&["2"])],
        ),
    ];
    for protocol in BOTH {
        for (sql, rows) in cases {
            assert_eq!(&conn.ask(protocol, sql).await.ok(sql).rows, rows, "{protocol:?}: {sql}");
        }
        // More than one row is an error, as in PostgreSQL.
        let sql = "SELECT o.k, CASE WHEN true THEN (SELECT i.v FROM (VALUES (1, 'a'), (1, 'b')) AS i(k, v) WHERE i.k = o.k) END AS v FROM (VALUES (1)) AS o(k)";
        let err = conn.ask(protocol, sql).await.err(sql);
        assert!(err.message.contains("more than one row returned by a subquery used as an expression"), "{protocol:?}: {err:?}");
    }
    // pgJDBC's getTypeInfo.
    let sql = "SELECT t.typname,t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON (t.typnamespace = n.oid)  WHERE n.nspname  != 'pg_toast' AND  (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))";
    let answer = conn.ask(Protocol::Simple, sql).await.ok(sql);
    assert!(answer.rows.iter().any(|r| r[0].as_deref() == Some("int4")), "{:?}", answer.rows.len());
    served.stop().await;
}

#[tokio::test]
async fn a_per_row_subquery_may_test_the_outer_row() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    // SQLAlchemy get_columns' shape: the subquery's WHERE also tests the outer row alone; the
    // duplicate k=9 is never asked for, so it is no error (PostgreSQL does not run it).
    let sql = "SELECT o.k, CASE WHEN o.b THEN (SELECT i.v FROM (VALUES (1, 'a'), (9, 'x'), (9, 'y')) AS i(k, v) WHERE o.b AND i.k = o.k) END AS v FROM (VALUES (1, true), (2, true), (9, false)) AS o(k, b) ORDER BY o.k";
    for protocol in BOTH {
        assert_eq!(conn.ask(protocol, sql).await.ok(sql).rows, [text(&["1", "a"]), vec![Some("2".into()), None], vec![Some("9".into()), None]], "{protocol:?}");
    }
    // SQLAlchemy's identity options: the output reads the outer row too. An inner row whose
    // column is NULL still counts (`2:`); no inner row is NULL.
    let sql = "SELECT o.k, CASE WHEN o.b THEN (SELECT concat(o.k, ':', i.v) FROM (VALUES (1, 'a'), (2, NULL), (2, NULL)) AS i(k, v) WHERE o.b AND i.k = o.k AND i.v IS DISTINCT FROM 'z') END AS v FROM (VALUES (1, true), (3, true), (4, false)) AS o(k, b) ORDER BY o.k";
    for protocol in BOTH {
        let rows = conn.ask(protocol, sql).await.ok(sql).rows;
        assert_eq!(rows, [text(&["1", "1:a"]), vec![Some("3".into()), None], vec![Some("4".into()), None]], "{protocol:?}");
    }
    let sql = "SELECT o.k, CASE WHEN o.b THEN (SELECT concat(o.k, ':', i.v) FROM (VALUES (2, CAST(NULL AS TEXT))) AS i(k, v) WHERE i.k = o.k) END AS v FROM (VALUES (2, true)) AS o(k, b)";
    assert_eq!(conn.ask(Protocol::Simple, sql).await.ok(sql).rows, [text(&["2", "2:"])]);
    let sql = "SELECT a.attname FROM pg_catalog.pg_attribute a WHERE CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_catalog.pg_attrdef d WHERE a.atthasdef AND d.adrelid = a.attrelid AND d.adnum = a.attnum) END IS NULL AND a.attname = 'order_id'";
    // Two rows, as in PostgreSQL: the column of `sales.orders` and that of its primary key index.
    assert_eq!(conn.ask(Protocol::Simple, sql).await.ok(sql).rows, [text(&["order_id"]), text(&["order_id"])]);
    served.stop().await;
}
