//! `pg_catalog` as Postgres drivers query it: the verbatim metadata SQL of SQLAlchemy/psycopg,
//! the ADBC driver, pgJDBC and psql, answered from the session's catalog, so primary keys,
//! relations and roles of products the principal may not read never appear.

use meshwork_auth::issue_token;
use meshwork_query::QueryLimits;

use super::wire::{PgError, Wire};
use super::{Served, psql};

/// Rows as `a|b|c` lines, NULL as `∅`.
async fn lines(wire: &mut Wire, sql: &str) -> Result<Vec<String>, PgError> {
    let rows = wire.simple(sql).await?;
    Ok(rows.into_iter().map(|row| row.into_iter().map(|v| v.unwrap_or_else(|| "∅".to_owned())).collect::<Vec<_>>().join("|")).collect())
}

async fn ok(wire: &mut Wire, sql: &str) -> Vec<String> {
    lines(wire, sql).await.unwrap_or_else(|e| panic!("{sql}\n{e:?}"))
}

/// carl (a contractor) may read `sales.customers` but not `sales.orders`.
async fn carl(served: &Served) -> String {
    issue_token(served.catalog.as_ref(), "carl", None, None).await.unwrap().token
}

const KEYS: &str = "SELECT n.nspname, c.relname, ci.relname, ci.relkind, i.indisprimary, i.indkey, array_length(i.indkey, 1), con.conname, con.contype, con.conkey, \
     pg_get_constraintdef(con.oid), pg_get_indexdef(i.indexrelid), pg_get_indexdef(i.indexrelid, 1, true), c.relhasindex \
     FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = c.oid \
     ORDER BY 1, 2";

#[tokio::test]
async fn primary_keys_come_from_contracts_for_readable_products_only() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut ana = Wire::connect(port, served.token("ana")).await.unwrap();
    assert_eq!(
        ok(&mut ana, KEYS).await,
        [
            "sales|customers|customers_pkey|i|t|{1}|1|customers_pkey|p|{1}|PRIMARY KEY (customer_id)|CREATE UNIQUE INDEX customers_pkey ON sales.customers USING btree (customer_id)|customer_id|t",
            "sales|orders|orders_pkey|i|t|{1}|1|orders_pkey|p|{1}|PRIMARY KEY (order_id)|CREATE UNIQUE INDEX orders_pkey ON sales.orders USING btree (order_id)|order_id|t",
        ]
    );
    assert_eq!(
        ok(&mut ana, "SELECT constraint_schema, constraint_name, table_name, constraint_type FROM information_schema.table_constraints ORDER BY table_name").await,
        ["sales|customers_pkey|customers|PRIMARY KEY", "sales|orders_pkey|orders|PRIMARY KEY"]
    );
    assert_eq!(
        ok(&mut ana, "SELECT k.table_name, k.column_name, k.ordinal_position FROM information_schema.key_column_usage k WHERE k.table_schema = 'sales' ORDER BY 1").await,
        ["customers|customer_id|1", "orders|order_id|1"]
    );

    // pgJDBC DatabaseMetaData.getPrimaryKeys (42.5), verbatim.
    let jdbc = "SELECT        result.TABLE_CAT,        result.TABLE_SCHEM,        result.TABLE_NAME,        result.COLUMN_NAME,        result.KEY_SEQ,        result.PK_NAME FROM      (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,   (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME,   information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE true  AND n.nspname = 'sales' AND ct.relname = 'orders' AND i.indisprimary  ) result where  result.A_ATTNUM = (result.KEYS).x  ORDER BY result.table_name, result.pk_name, result.key_seq";
    assert_eq!(ok(&mut ana, jdbc).await, ["∅|sales|orders|order_id|1|orders_pkey"]);

    // SQLAlchemy's get_indexes/get_pk_constraint shape: unnest and generate_subscripts in step.
    assert_eq!(
        ok(&mut ana, "SELECT c.relname, unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, 1) AS ord FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid ORDER BY 1").await,
        ["customers|1|1", "orders|1|1"]
    );

    // The ADBC PostgreSQL driver's table listing: a text array literal bound without a type.
    let adbc = "SELECT c.relname, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END AS reltype FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = ANY($2) ORDER BY 1";
    let (rows, _) = ana.run_with(adbc, &["sales", r#"{"p", "f", "t", "m", "v", "r"}"#]).await.unwrap();
    assert_eq!(rows, [[Some("customers".to_owned()), Some("table".to_owned())], [Some("orders".to_owned()), Some("table".to_owned())]]);

    // An index lists its columns in pg_attribute; psqlODBC reads them through indkey[n - 1].
    let index_columns = "SELECT a.attname, a.attnum FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relname = 'orders_pkey'";
    assert_eq!(ok(&mut ana, index_columns).await, ["order_id|1"]);
    let odbc = "SELECT ta.attname, ia.attnum FROM pg_catalog.pg_attribute ta, pg_catalog.pg_attribute ia, pg_catalog.pg_class c, pg_catalog.pg_index i WHERE c.relname = 'orders' AND i.indrelid = c.oid AND i.indisprimary AND ia.attrelid = i.indexrelid AND ta.attrelid = i.indrelid AND ta.attnum = i.indkey[ia.attnum - 1]";
    assert_eq!(ok(&mut ana, odbc).await, ["order_id|1"]);

    // A product the principal may not read has no relation, index or constraint.
    let mut carl = Wire::connect(port, &carl(&served).await).await.unwrap();
    assert_eq!(ok(&mut carl, index_columns).await, Vec::<String>::new());
    let seen = ok(&mut carl, KEYS).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("sales|customers|customers_pkey|"), "{seen:?}");
    assert_eq!(ok(&mut carl, "SELECT relname FROM pg_catalog.pg_class WHERE relname LIKE 'orders%'").await, Vec::<String>::new());
    assert_eq!(ok(&mut carl, "SELECT conname FROM pg_catalog.pg_constraint").await, ["customers_pkey"]);
    assert_eq!(ok(&mut carl, "SELECT table_name FROM information_schema.table_constraints").await, ["customers"]);
    assert_eq!(ok(&mut carl, "SELECT table_name FROM information_schema.key_column_usage").await, ["customers"]);
    assert_eq!(ok(&mut carl, &jdbc.replace("'orders'", "'customers'")).await, ["∅|sales|customers|customer_id|1|customers_pkey"]);
    assert_eq!(ok(&mut carl, jdbc).await, Vec::<String>::new());
    served.stop().await;
}

#[tokio::test]
async fn types_casts_and_functions_answer_like_postgres() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut ana = Wire::connect(port, served.token("ana")).await.unwrap();

    // psycopg 3 TypeInfo.fetch, as SQLAlchemy runs it at connect ('hstore' finds nothing).
    let typeinfo = "SELECT typname AS name, oid, typarray AS array_oid, oid::regtype::text AS regtype, typdelim AS delimiter FROM pg_type t WHERE t.oid = to_regtype('{}') ORDER BY t.oid";
    assert_eq!(ok(&mut ana, &typeinfo.replace("{}", "integer")).await, ["int4|23|1007|integer|,"]);
    assert_eq!(ok(&mut ana, &typeinfo.replace("{}", "character varying")).await, ["varchar|1043|1015|character varying|,"]);
    assert_eq!(ok(&mut ana, &typeinfo.replace("{}", "hstore")).await, Vec::<String>::new());
    assert_eq!(
        ok(&mut ana, "SELECT to_regtype('integer'), to_regtype('pg_catalog.int8'), to_regtype('text[]'), to_regtype('nope'), 'integer'::regtype = 23").await,
        ["23|20|1009|∅|t"]
    );
    assert_eq!(ok(&mut ana, "SELECT t.oid::regtype, typname FROM pg_catalog.pg_type t WHERE t.oid IN (16, 1184, 1007) ORDER BY 2").await, [
        "integer[]|_int4",
        "boolean|bool",
        "timestamp with time zone|timestamptz"
    ]);

    // pgcli's function list: argument types as names.
    assert_eq!(
        ok(&mut ana, "SELECT COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::TEXT[] AS a FROM pg_catalog.pg_proc WHERE proname = 'aclexplode'").await,
        ["{aclitem[],oid,oid,text,boolean}"]
    );
    // A contract's decimal(10,2) keeps its precision and scale.
    assert_eq!(
        ok(&mut ana, "SELECT a.atttypmod, format_type(a.atttypid, a.atttypmod) AS t FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relname = 'orders' AND a.attname = 'amount'").await,
        ["655366|numeric(10,2)"]
    );

    // SQLAlchemy reads identity options with json_build_object.
    assert_eq!(
        ok(&mut ana, "SELECT json_build_object('always', 1 = 1, 'start', 5, 'name', 'x', 'none', NULL) AS o").await,
        [r#"{"always":true,"name":"x","none":null,"start":5}"#]
    );

    // The ADBC driver's type resolver, verbatim: regproc columns compared with 0.
    let adbc = "SELECT oid, typname, typreceive, typbasetype, typrelid, typarray FROM pg_catalog.pg_type WHERE (typreceive != 0 OR typsend != 0) AND typtype != 'r' AND typreceive::TEXT != 'array_recv'";
    let types = ok(&mut ana, adbc).await;
    assert!(types.contains(&"23|int4|int4recv|0|0|1007".to_owned()), "{types:?}");
    assert!(!types.iter().any(|t| t.split('|').nth(2) == Some("array_recv")), "{types:?}");

    // Relations: names for ::regclass, truthful visibility, to_regclass.
    let orders = "(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'sales' AND c.relname = 'orders')";
    assert_eq!(
        ok(&mut ana, &format!("SELECT o.oid::regclass, pg_table_is_visible(o.oid), to_regclass('sales.orders') = o.oid, to_regclass('orders'), to_regclass('pg_class') IS NOT NULL, 'sales.orders'::regclass = o.oid FROM {orders} o")).await,
        ["sales.orders|f|t|∅|t|t"]
    );
    assert_eq!(ok(&mut ana, "SELECT c.oid::regclass, pg_table_is_visible(c.oid) FROM pg_catalog.pg_class c WHERE c.relname = 'pg_type'").await, ["pg_type|t"]);

    // Who is connected.
    assert_eq!(ok(&mut ana, "SELECT session_user AS s, current_user AS c, pg_get_userbyid(10) AS o").await, ["ana|ana|ana"]);
    assert_eq!(ok(&mut ana, "SELECT rolname, rolcanlogin FROM pg_catalog.pg_roles").await, ["ana|t"]);
    assert_eq!(ok(&mut ana, "SELECT usename FROM pg_catalog.pg_user").await, ["ana"]);
    assert_eq!(ok(&mut ana, "SELECT rolname FROM pg_catalog.pg_authid").await, ["ana"]);
    assert_eq!(ok(&mut ana, "SELECT datname FROM pg_catalog.pg_database").await, ["meshwork"]);

    // Settings drivers read, and current_setting from the same table.
    assert_eq!(
        ok(&mut ana, "SELECT name, setting FROM pg_catalog.pg_settings WHERE name IN ('server_version', 'server_version_num', 'standard_conforming_strings', 'max_identifier_length', 'max_index_keys', 'client_encoding', 'server_encoding', 'DateStyle', 'TimeZone', 'integer_datetimes', 'transaction_isolation', 'search_path') ORDER BY name").await,
        [
            "DateStyle|ISO, MDY",
            "TimeZone|UTC",
            "client_encoding|UTF8",
            "integer_datetimes|on",
            "max_identifier_length|63",
            "max_index_keys|32",
            "search_path|\"$user\", public",
            "server_encoding|UTF8",
            "server_version|16.6",
            "server_version_num|160006",
            "standard_conforming_strings|on",
            "transaction_isolation|read committed",
        ]
    );
    assert_eq!(ok(&mut ana, "SELECT current_setting('max_index_keys'), current_setting('datestyle'), current_setting('nope', true)").await, ["32|ISO, MDY|∅"]);
    let unknown = lines(&mut ana, "SELECT current_setting('nope')").await.unwrap_err();
    assert!(unknown.message.contains("unrecognized configuration parameter `nope`"), "{unknown:?}");

    // Functions drivers call on objects Meshwork does not have.
    assert_eq!(
        ok(&mut ana, "SELECT pg_get_serial_sequence('sales.orders', 'order_id'), pg_function_is_visible(1), pg_type_is_visible(23), pg_collation_is_visible(100), pg_my_temp_schema(), pg_get_function_result(1), pg_get_function_arguments(1), pg_get_triggerdef(1), shobj_description(1, 'pg_database')").await,
        ["∅|t|t|t|0|∅|∅|∅|∅"]
    );
    served.stop().await;
}

#[tokio::test]
async fn psql_describes_a_product_with_its_primary_key() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    // Without `-t`, which would leave out the footers that list indexes.
    let token = served.token("ana").to_owned();
    let (out, err) = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "whoever", "-d", "meshwork", "-X", "-c", "\\d sales.orders"])
            .env("PGPASSWORD", token)
            .output()
            .expect("psql is installed (postgresql-client)");
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .unwrap();
    assert!(out.contains("order_id") && out.contains("\"orders_pkey\" PRIMARY KEY, btree (order_id)"), "{out}{err}");
    let (out, err) = psql(port, served.token("ana"), "\\dn").await;
    assert!(out.contains("sales|ana"), "{out}{err}");
    let (out, err) = psql(port, served.token("ana"), "\\l").await;
    assert!(out.starts_with("meshwork|"), "{out}{err}");
    served.stop().await;
}
