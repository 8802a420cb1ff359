//! Operational database sources against the machine's real PostgreSQL and MariaDB servers:
//! schemas and their mapping, full and ranged reads, bad credentials and secrets.

use arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use futures::TryStreamExt;
use meshwork_core::column_type::ColumnType;
use meshwork_core::descriptor::{Column, Connection, Contract, DatabaseKind, DatabaseRead};
use meshwork_sources::scratch::ScratchSource;
use meshwork_sources::{Range, SourceError, connect, read};

const PG_TABLE: &str = "
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    score numeric(10,2),
    ratio double precision,
    active boolean,
    born date,
    updated_at timestamptz NOT NULL,
    photo bytea,
    tag uuid
);
INSERT INTO customers VALUES
    (1, 'Ada', 12.50, 0.25, true, '1990-01-02', '2024-01-01 10:00:00+00', '\\x0102', '6f1c7e1e-0000-4000-8000-000000000001'),
    (2, 'Bob', NULL, NULL, false, NULL, '2024-01-02 10:00:00.5+00', NULL, NULL),
    (3, 'Cy', -3.00, 1e300, NULL, '2000-02-29', '2024-01-03 10:00:00+02', '\\x', NULL);
";

const MYSQL_TABLE: &str = "
CREATE TABLE customers (
    id BIGINT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    score DECIMAL(10,2),
    ratio DOUBLE,
    active BOOLEAN,
    born DATE,
    updated_at DATETIME(6) NOT NULL,
    photo VARBINARY(16),
    tag CHAR(36)
);
INSERT INTO customers VALUES
    (1, 'Ada', 12.50, 0.25, TRUE, '1990-01-02', '2024-01-01 10:00:00', X'0102', '6f1c7e1e-0000-4000-8000-000000000001'),
    (2, 'Bob', NULL, NULL, FALSE, NULL, '2024-01-02 10:00:00.5', NULL, NULL),
    (3, 'Cy', -3.00, 1e300, NULL, '2000-02-29', '2024-01-03 08:00:00', X'', NULL);
";

async fn scratch(kind: DatabaseKind) -> (ScratchSource, Connection) {
    let db = ScratchSource::create(kind, "sources_it").await.unwrap();
    db.execute(match kind {
        DatabaseKind::Postgres => PG_TABLE,
        DatabaseKind::Mysql => MYSQL_TABLE,
    })
    .await
    .unwrap();
    let password_env = db.password().map(|p| {
        let variable = format!("MESHWORK_IT_{}_PASSWORD", kind.as_str().to_ascii_uppercase());
        // SAFETY: tests of this binary set these variables before any thread reads them, to
        // the same value each time.
        unsafe { std::env::set_var(&variable, p) };
        variable
    });
    let connection = Connection { kind, url: db.url(), password_env };
    (db, connection)
}

fn contract(columns: &[(&str, ColumnType)]) -> Contract {
    Contract {
        columns: columns.iter().map(|(n, t)| Column { name: (*n).into(), data_type: *t, nullable: true, description: None, classification: None }).collect(),
        primary_key: vec!["id".into()],
    }
}

fn texts(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    (0..array.len()).map(|i| array.is_valid(i).then(|| array.value(i).to_owned())).collect()
}

async fn read_all(kind: DatabaseKind) {
    let (db, connection) = scratch(kind).await;
    let table = DatabaseRead::Table("customers".into());
    let mut source = connect("crm", &connection).await.unwrap();
    let columns = source.columns(&table).await.unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "score", "ratio", "active", "born", "updated_at", "photo", "tag"]);
    let good = contract(&[
        ("id", ColumnType::BigInt),
        ("name", ColumnType::String),
        ("score", ColumnType::Decimal { precision: 12, scale: 2 }),
        ("ratio", ColumnType::Double),
        ("active", ColumnType::Boolean),
        ("born", ColumnType::Date),
        ("updated_at", ColumnType::Timestamp),
        ("photo", ColumnType::Binary),
        ("tag", ColumnType::String),
    ]);
    source.check(&table, &columns, Some(&good), Some("updated_at")).unwrap();
    // Drift: a renamed column and a type the contract cannot take are both named.
    let drifted = contract(&[("id", ColumnType::BigInt), ("full_name", ColumnType::String), ("born", ColumnType::Int)]);
    let error = source.check(&table, &columns, Some(&drifted), Some("changed_at")).unwrap_err().to_string();
    assert!(error.contains("table `customers` of database `crm` does not match the contract"), "{error}");
    assert!(error.contains("contract column `full_name` is not in the source"), "{error}");
    assert!(error.contains("column `born` is `date` in the source and `int` in the contract"), "{error}");
    assert!(error.contains("watermark column `changed_at` is not in the source"), "{error}");

    let watermark = columns.iter().find(|c| c.name == "updated_at").unwrap().clone();
    let high = source.high_mark(&table, &watermark, None).await.unwrap().unwrap();
    // Past the maximum there is none: a mark never moves back.
    assert_eq!(source.high_mark(&table, &watermark, Some(&high)).await.unwrap().as_deref(), Some(high.as_str()));
    let selected: Vec<(String, _)> = columns.iter().map(|c| (c.name.clone(), c.clone())).collect();
    let rows = read(source, &table, selected.clone(), None);
    let batches: Vec<RecordBatch> = rows.batches.try_collect().await.unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(texts(batch, "id"), [Some("1".into()), Some("2".into()), Some("3".into())]);
    assert_eq!(texts(batch, "score"), [Some("12.50".into()), None, Some("-3.00".into())]);
    let ratio = texts(batch, "ratio");
    assert_eq!(ratio[0].as_deref(), Some("0.25"));
    assert_eq!(ratio[2].as_deref().map(|r| r.parse::<f64>().unwrap()), Some(1e300));
    let active = texts(batch, "active");
    assert!(matches!(active[0].as_deref(), Some("true" | "1")) && matches!(active[1].as_deref(), Some("false" | "0")) && active[2].is_none(), "{active:?}");
    assert_eq!(texts(batch, "born"), [Some("1990-01-02".into()), None, Some("2000-02-29".into())]);
    let updated = texts(batch, "updated_at");
    assert!(updated[0].as_deref().unwrap().starts_with("2024-01-01T10:00:00.000000"), "{updated:?}");
    assert!(updated[1].as_deref().unwrap().starts_with("2024-01-02T10:00:00.500000"), "{updated:?}");
    // PostgreSQL's `+02` is converted to UTC.
    assert!(updated[2].as_deref().unwrap().starts_with("2024-01-03T08:00:00"), "{updated:?}");
    let photo = batch.column_by_name("photo").unwrap().as_any().downcast_ref::<BinaryArray>().unwrap();
    assert_eq!(photo.value(0), [1u8, 2]);
    assert!(photo.is_null(1));
    assert_eq!(photo.value(2), [0u8; 0]);

    // A range: rows after the first row's watermark, up to the high mark.
    let mut source = connect("crm", &connection).await.unwrap();
    let first: Option<String> = {
        let marks = source.high_mark(&DatabaseRead::Query("SELECT * FROM customers WHERE id = 1 -- the first".into()), &watermark, None).await.unwrap();
        marks
    };
    let range = Range { column: watermark.clone(), after: first.clone(), inclusive: false, up_to: high.clone() };
    let rows = read(source, &table, selected.clone(), Some(range));
    let batches: Vec<RecordBatch> = rows.batches.try_collect().await.unwrap();
    let ids: Vec<Option<String>> = batches.iter().flat_map(|b| texts(b, "id")).collect();
    assert_eq!(ids, [Some("2".into()), Some("3".into())]);
    let source = connect("crm", &connection).await.unwrap();
    let range = Range { column: watermark.clone(), after: first, inclusive: true, up_to: high };
    let batches: Vec<RecordBatch> = read(source, &table, selected, Some(range)).batches.try_collect().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn postgres_tables_are_described_checked_and_read_as_text() {
    read_all(DatabaseKind::Postgres).await;
}

#[tokio::test]
async fn mysql_tables_are_described_checked_and_read_as_text() {
    read_all(DatabaseKind::Mysql).await;
}

#[tokio::test]
async fn a_source_session_is_read_only() {
    let (db, connection) = scratch(DatabaseKind::Postgres).await;
    // A data-modifying CTE cannot sit in the derived table the query is read through; a
    // function with side effects can, and the read-only session refuses it.
    db.execute("CREATE FUNCTION forget() RETURNS bigint LANGUAGE sql AS 'DELETE FROM customers RETURNING id'").await.unwrap();
    let query = DatabaseRead::Query("SELECT forget() AS id".into());
    let source = connect("crm", &connection).await.unwrap();
    let columns = vec![("id".to_owned(), meshwork_sources::SourceColumn { name: "id".into(), type_name: "INT8".into() })];
    let error = read(source, &query, columns, None).batches.try_collect::<Vec<_>>().await.unwrap_err().to_string();
    assert!(error.contains("read-only transaction"), "{error}");
    // Nor can a query switch its session to read-write first.
    let query = DatabaseRead::Query("SELECT set_config('transaction_read_only', 'off', false) AS id".into());
    let source = connect("crm", &connection).await.unwrap();
    let columns = vec![("id".to_owned(), meshwork_sources::SourceColumn { name: "id".into(), type_name: "TEXT".into() })];
    let error = read(source, &query, columns, None).batches.try_collect::<Vec<_>>().await.unwrap_err().to_string();
    assert!(error.contains("read-write mode must be set before any query"), "{error}");
    db.execute("DO $$ BEGIN IF (SELECT count(*) FROM customers) <> 3 THEN RAISE 'rows were deleted'; END IF; END $$").await.unwrap();
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn bad_credentials_are_refused_without_showing_the_password() {
    // MariaDB checks passwords on this machine (PostgreSQL trusts local connections, so there the
    // wrong credential is the user).
    let (db, _) = scratch(DatabaseKind::Mysql).await;
    let user = format!("reader_{}", std::process::id());
    db.admin(&format!("DROP USER IF EXISTS '{user}'@'%'; CREATE USER '{user}'@'%' IDENTIFIED BY 'right-horse-battery'")).await.unwrap();
    let host = db.url().split('@').nth(1).unwrap().to_owned();
    let secret = "Wr0ng-staple-SECRET";
    unsafe { std::env::set_var("MESHWORK_IT_WRONG_PASSWORD", secret) };
    let connection = Connection { kind: DatabaseKind::Mysql, url: format!("mysql://{user}@{host}"), password_env: Some("MESHWORK_IT_WRONG_PASSWORD".into()) };
    let error = connect("erp", &connection).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, SourceError::Connect { .. }), "{message}");
    assert!(message.starts_with("cannot connect to database `erp` (mysql://"), "{message}");
    assert!(message.contains("Access denied"), "{message}");
    assert!(message.contains("$MESHWORK_IT_WRONG_PASSWORD"), "{message}");
    assert!(!message.contains(secret) && !format!("{error:?}").contains(secret), "{message}");

    let connection = Connection { password_env: Some("MESHWORK_IT_UNSET_PASSWORD".into()), ..connection };
    let message = connect("erp", &connection).await.unwrap_err().to_string();
    assert_eq!(message, "connection `erp` takes its password from the environment variable `MESHWORK_IT_UNSET_PASSWORD`, which is not set; set it and run again");
    db.admin(&format!("DROP USER '{user}'@'%'")).await.unwrap();
    db.drop_now().await.unwrap();

    let (db, connection) = scratch(DatabaseKind::Postgres).await;
    let url = connection.url.replacen("://postgres@", "://no_such_reader@", 1);
    let message = connect("crm", &Connection { url, ..connection }).await.unwrap_err().to_string();
    assert!(message.contains("cannot connect to database `crm`") && message.contains("no_such_reader"), "{message}");
    db.drop_now().await.unwrap();

    // Nothing listens on port 9: refused at once, named.
    let connection = Connection { kind: DatabaseKind::Postgres, url: "postgres://reader@127.0.0.1:9/crm".into(), password_env: None };
    let message = connect("crm", &connection).await.unwrap_err().to_string();
    assert!(message.contains("cannot connect to database `crm` (postgres://reader@127.0.0.1:9/crm)"), "{message}");
}
