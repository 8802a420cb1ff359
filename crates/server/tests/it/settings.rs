//! Engine settings cannot be changed from any interface, however the statement spells them;
//! the client settings drivers send at connect time still pass on the Postgres wire.

use std::time::Duration;

use meshwork_query::QueryLimits;
use serde_json::Value;

use crate::Served;
use crate::wire::Wire;

/// Every way to name an engine setting we know of: quoted, mixed case, spaces and comments,
/// one quoted identifier with dots, the `LOCAL`/`SESSION` scopes, and `RESET`.
fn engine_settings(spill: &str) -> Vec<String> {
    vec![
        "SET datafusion.execution.batch_size = 1".into(),
        "SET \"datafusion\".execution.batch_size = 1".into(),
        "SET \"DataFusion\".\"Runtime\".memory_limit = '10G'".into(),
        "SET /* spill */ \"datafusion\" . runtime . temp_directory = '{spill}'".replace("{spill}", spill),
        format!("SET \"datafusion.runtime.temp_directory\" TO '{spill}'"),
        "SET LOCAL \"datafusion\".explain.logical_plan_only = true".into(),
        "SET SESSION \"datafusion\".explain.physical_plan_only TO true".into(),
        "RESET \"datafusion\".execution.batch_size".into(),
        "RESET ALL".into(),
        "SET work_mem = '1GB'".into(),
    ]
}

#[tokio::test]
async fn engine_settings_are_refused_on_every_interface() {
    let limits = QueryLimits { memory_bytes: Some(64 << 20), timeout: Some(Duration::from_secs(30)), ..Default::default() };
    let served = Served::start(limits, 8).await;
    let spill = served._dir.path().join("chosen-by-the-caller");
    let statements = engine_settings(&spill.display().to_string());
    let sam = served.token("sam").to_owned();

    // Postgres wire, simple and extended protocol, on one connection that then must still run
    // under the server's limits.
    let mut conn = Wire::connect(served.at.postgres.port(), &sam).await.unwrap();
    for sql in &statements {
        let err = conn.simple(sql).await.expect_err(sql);
        assert_eq!(err.code, "42501", "{sql}: {err:?}");
        assert!(err.message.contains("is not allowed: engine settings are fixed by the server"), "{sql}: {}", err.message);
        let err = conn.prepare("s", sql).await.expect_err(sql);
        assert_eq!(err.code, "42501", "extended {sql}: {err:?}");
    }
    let err = conn.simple("SET \"DataFusion\".\"Runtime\".memory_limit = '10G'").await.unwrap_err();
    assert!(err.message.contains("setting `datafusion.runtime.memory_limit` is not allowed"), "{}", err.message);
    let err = conn.simple("SELECT * FROM generate_series(1, 200000000) ORDER BY 1 DESC").await.expect_err("the memory limit holds");
    assert_eq!(err.code, "53200", "{err:?}");
    assert!(!spill.exists(), "the server created the caller's spill directory");
    let plan = conn.simple("EXPLAIN SELECT order_id FROM sales.orders").await.unwrap();
    let kinds: Vec<&str> = plan.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(kinds, ["logical_plan", "physical_plan"], "EXPLAIN shows both plans as configured by the server");

    // Flight SQL and HTTP refuse them too (the query layer allows no statements).
    let mut flight = served.flight(&sam).await;
    for sql in &statements {
        let err = flight.execute(sql.clone(), None).await.expect_err(sql).to_string();
        assert!(err.contains("invalid argument") && (err.contains("not allowed") || err.contains("not supported") || err.contains("nsupported")), "flight {sql}: {err}");
        let response = served.post_query(Some(&sam), sql, "application/json").await;
        assert_eq!(response.status(), 400, "http {sql}");
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_query", "http {sql}: {body}");
    }
    assert!(!spill.exists());
    served.stop().await;
}

#[tokio::test]
async fn client_settings_drivers_send_still_pass() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    for sql in [
        "SET client_encoding = 'UTF8'",
        "SET DateStyle = 'ISO, MDY'",
        "SET extra_float_digits = 3",
        "SET application_name = 'PostgreSQL JDBC Driver'",
        "SET search_path = public",
        "SET SESSION \"TimeZone\" = 'UTC'",
        "SET TIME ZONE 'UTC'",
        "SET statement_timeout = 0",
        "RESET application_name",
    ] {
        conn.simple(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        conn.prepare("s", sql).await.unwrap_or_else(|e| panic!("extended {sql}: {e:?}"));
        conn.run_prepared("s").await.unwrap_or_else(|e| panic!("extended {sql}: {e:?}"));
    }
    assert_eq!(conn.simple("SELECT order_id FROM sales.orders ORDER BY 1 LIMIT 1").await.unwrap(), [[Some("101".to_owned())]]);
    served.stop().await;
}

/// `search_path` names the schema of unqualified product names, set with `SET` or with
/// `set_config` as ibis (and so datacontract-cli) sends it, with a bound parameter; a schema the
/// principal does not read leaves `public`. `information_schema.columns` speaks PostgreSQL's
/// types, and an `EXISTS` over the empty `pg_enum` inside a `CASE` is answered.
#[tokio::test]
async fn search_path_resolves_unqualified_names_for_what_the_principal_reads() {
    let limits = QueryLimits { memory_bytes: Some(64 << 20), timeout: Some(Duration::from_secs(30)), ..Default::default() };
    let served = Served::start(limits, 8).await;
    let mut conn = Wire::connect(served.at.postgres.port(), served.token("ana")).await.unwrap();
    let unqualified = "SELECT count(*) FROM orders";
    let err = conn.simple(unqualified).await.expect_err("no search path yet");
    assert!(err.message.contains("table 'meshwork.public.orders' not found"), "{err:?}");

    let (rows, _) = conn.run_with("SELECT set_config('search_path', $1, false)", &["sales"]).await.unwrap();
    assert_eq!(rows, [[Some("sales".to_owned())]]);
    assert_eq!(conn.simple("SELECT current_schema").await.unwrap(), [[Some("sales".to_owned())]]);
    assert_eq!(conn.simple("SHOW search_path").await.unwrap(), [[Some("sales".to_owned())]]);
    let qualified = conn.simple("SELECT count(*) FROM sales.orders").await.unwrap();
    assert_eq!(conn.simple(unqualified).await.unwrap(), qualified);
    assert_eq!(conn.run_with(unqualified, &[]).await.unwrap().0, qualified, "the extended protocol plans with it too");

    // A schema the session does not have is skipped, as PostgreSQL does; a product ana may not
    // read stays not found however it is named.
    conn.simple("SET search_path = nowhere, public").await.unwrap();
    assert_eq!(conn.simple("SELECT current_schema").await.unwrap(), [[Some("public".to_owned())]]);
    conn.simple("SET search_path = finance").await.unwrap();
    assert!(conn.simple("SELECT count(*) FROM ledger").await.unwrap_err().message.contains("not found"));
    let err = conn.simple("SELECT set_config('datafusion.execution.batch_size', '1', false)").await.unwrap_err();
    assert_eq!(err.code, "42501", "{err:?}");

    let types = conn
        .simple("SELECT DISTINCT data_type FROM information_schema.columns WHERE table_schema = 'sales' AND table_name = 'orders'")
        .await
        .unwrap();
    let known = ["bigint", "integer", "smallint", "real", "double precision", "numeric", "text", "bytea", "boolean", "date", "timestamp with time zone"];
    assert!(!types.is_empty() && types.iter().all(|r| known.contains(&r[0].as_deref().unwrap())), "{types:?}");
    assert_eq!(conn.simple("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'finance'").await.unwrap(), [[Some("0".to_owned())]]);
    let enum_case = "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_type t INNER JOIN pg_catalog.pg_enum e ON e.enumtypid = t.oid) THEN 'enum' ELSE 'plain' END";
    assert_eq!(conn.simple(enum_case).await.unwrap(), [[Some("plain".to_owned())]]);
}
