//! What Flight SQL drivers (the Arrow Flight SQL JDBC driver, ADBC's Flight SQL driver) expect of
//! the server: `?` placeholders bound by position, table schemas carrying SQL type names and the
//! contract's nullability, primary keys from the contract, and truthful `GetSqlInfo` values;
//! all of it limited to what the principal may read.

use std::sync::Arc;

use arrow_flight::IpcMessage;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo, SqlInfo};
use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, Decimal128Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use meshwork_query::QueryLimits;
use tonic::transport::Channel;

use crate::{Served, csv};

type Client = FlightSqlServiceClient<Channel>;

/// Prepares `sql`, binds `params` (one row, typed as the server's parameter schema says) and
/// runs it; the parameter schema as (name, type) pairs and the rows as CSV.
async fn run_prepared(client: &mut Client, sql: &str, params: Vec<ArrayRef>) -> (Vec<(String, DataType)>, String) {
    let mut prepared = client.prepare(sql.to_owned(), None).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let schema = prepared.parameter_schema().unwrap().clone();
    let fields = schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    if !params.is_empty() {
        prepared.set_parameters(RecordBatch::try_new(Arc::new(schema), params).unwrap()).unwrap();
    }
    let info = prepared.execute().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let announced = Schema::try_from(info.clone()).unwrap();
    let batches = fetch(client, info).await;
    // ADBC refuses a stream whose schema differs from the one announced.
    for batch in &batches {
        assert_eq!(batch.schema().as_ref(), &announced, "{sql}");
    }
    (fields, csv(&batches))
}

async fn fetch(client: &mut Client, info: arrow_flight::FlightInfo) -> Vec<RecordBatch> {
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    client.do_get(ticket).await.unwrap().try_collect().await.unwrap()
}

fn int64(v: i64) -> ArrayRef {
    Arc::new(Int64Array::from(vec![v]))
}

#[tokio::test]
async fn question_mark_and_dollar_placeholders_bind_by_position() {
    let served = Served::start(QueryLimits::default(), 8).await;
    // ana reads EU orders only: the row filter holds under bound parameters too.
    let mut ana = served.flight(served.token("ana")).await;
    let expected = served.reference("ana", "SELECT order_id, region FROM sales.orders WHERE order_id >= 102 AND order_id <= 105 ORDER BY order_id").await;
    assert_eq!(expected, "order_id,region\n102,EU\n104,EU\n");
    for sql in [
        "SELECT order_id, region FROM sales.orders WHERE order_id >= ? AND order_id <= ? ORDER BY order_id",
        "SELECT order_id, region FROM sales.orders WHERE order_id >= $1 AND order_id <= $2 ORDER BY order_id",
    ] {
        let (fields, rows) = run_prepared(&mut ana, sql, vec![int64(102), int64(105)]).await;
        assert_eq!(fields, [("$1".to_owned(), DataType::Int64), ("$2".to_owned(), DataType::Int64)], "{sql}");
        assert_eq!(rows, expected, "{sql}");
    }
    // The parameter takes the type of the column it is compared with.
    let decimal: ArrayRef = Arc::new(Decimal128Array::from(vec![2000i128]).with_precision_and_scale(10, 2).unwrap());
    let (fields, rows) = run_prepared(&mut ana, "SELECT order_id, amount FROM sales.orders WHERE amount > ? ORDER BY order_id", vec![decimal]).await;
    assert_eq!(fields, [("$1".to_owned(), DataType::Decimal128(10, 2))]);
    assert_eq!(rows, "order_id,amount\n102,25.50\n104,40.00\n");

    // A placeholder nothing gives a type to takes text, and the result the type of its value.
    let (fields, rows) = run_prepared(&mut ana, "SELECT ? AS x", vec![Arc::new(StringArray::from(vec!["hello"]))]).await;
    assert_eq!(fields, [("$1".to_owned(), DataType::Utf8)]);
    assert_eq!(rows, "x\nhello\n");

    // A `?` in a literal, a quoted name or a comment is not a placeholder.
    let sql = "SELECT '?' AS q, order_id AS \"id?\" FROM sales.orders -- really?\nWHERE /* ? */ order_id = ? AND region <> 'x?'";
    let (fields, rows) = run_prepared(&mut ana, sql, vec![int64(101)]).await;
    assert_eq!(fields, [("$1".to_owned(), DataType::Int64)]);
    assert_eq!(rows, "q,id?\n?,101\n");
    // A row the policy hides stays hidden whatever is bound.
    let (_, rows) = run_prepared(&mut ana, "SELECT order_id FROM sales.orders WHERE order_id = ?", vec![int64(103)]).await;
    assert_eq!(rows, served.reference("ana", "SELECT order_id FROM sales.orders WHERE order_id = 103").await);
    assert_eq!(rows, "", "no rows, so no batches");

    // A statement does not mix the styles.
    let err = ana.prepare("SELECT order_id FROM sales.orders WHERE order_id = ? OR order_id = $1".into(), None).await.unwrap_err().to_string();
    assert!(err.contains("the statement mixes `?` and `$1` placeholders (hint: write every placeholder as `?`"), "{err}");
    served.stop().await;
}

/// The `table_schema` column of a `GetTables` answer, by table name.
async fn table_schemas(client: &mut Client) -> Vec<(String, Schema)> {
    let info = client.get_tables(CommandGetTables { include_schema: true, ..Default::default() }).await.unwrap();
    let mut out = Vec::new();
    for batch in fetch(client, info).await {
        let schemas = batch.column_by_name("db_schema_name").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let names = batch.column_by_name("table_name").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let blobs = batch.column_by_name("table_schema").unwrap().as_any().downcast_ref::<BinaryArray>().unwrap().clone();
        for i in 0..batch.num_rows() {
            let schema = Schema::try_from(IpcMessage(blobs.value(i).to_vec().into())).unwrap();
            out.push((format!("{}.{}", schemas.value(i), names.value(i)), schema));
        }
    }
    out
}

/// One line per column: name, Arrow type, nullability and the Flight SQL metadata, sorted.
fn describe(schema: &Schema) -> String {
    let mut lines = Vec::new();
    for field in schema.fields() {
        let mut metadata: Vec<String> = field.metadata().iter().map(|(k, v)| format!("{}={v}", k.trim_start_matches("ARROW:FLIGHT:SQL:"))).collect();
        metadata.sort();
        lines.push(format!("{} {} {} {}", field.name(), field.data_type(), if field.is_nullable() { "null" } else { "not-null" }, metadata.join(" ")));
    }
    lines.join("\n")
}

#[tokio::test]
async fn table_schemas_carry_type_names_and_contract_nullability() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut ana = served.flight(served.token("ana")).await;
    let tables = table_schemas(&mut ana).await;
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    // finance.ledger is not ana's to read, so it is not listed.
    assert_eq!(names, ["marketing.campaigns", "sales.customers", "sales.orders"]);
    let orders = &tables.iter().find(|(n, _)| n == "sales.orders").unwrap().1;
    assert_eq!(
        describe(orders),
        "order_id Int64 not-null CATALOG_NAME=meshwork DB_SCHEMA_NAME=sales IS_AUTO_INCREMENT=0 IS_CASE_SENSITIVE=0 IS_READ_ONLY=1 IS_SEARCHABLE=1 SCHEMA_NAME=sales TABLE_NAME=orders TYPE_NAME=BIGINT
customer_id Int64 not-null CATALOG_NAME=meshwork DB_SCHEMA_NAME=sales IS_AUTO_INCREMENT=0 IS_CASE_SENSITIVE=0 IS_READ_ONLY=1 IS_SEARCHABLE=1 SCHEMA_NAME=sales TABLE_NAME=orders TYPE_NAME=BIGINT
region Utf8 null CATALOG_NAME=meshwork DB_SCHEMA_NAME=sales IS_AUTO_INCREMENT=0 IS_CASE_SENSITIVE=1 IS_READ_ONLY=1 IS_SEARCHABLE=1 SCHEMA_NAME=sales TABLE_NAME=orders TYPE_NAME=VARCHAR
amount Decimal128(10, 2) null CATALOG_NAME=meshwork DB_SCHEMA_NAME=sales IS_AUTO_INCREMENT=0 IS_CASE_SENSITIVE=0 IS_READ_ONLY=1 IS_SEARCHABLE=1 PRECISION=10 SCALE=2 SCHEMA_NAME=sales TABLE_NAME=orders TYPE_NAME=DECIMAL"
    );
    // A name pattern narrows the listing; a hidden product matches no pattern.
    let info = ana.get_tables(CommandGetTables { db_schema_filter_pattern: Some("fin%".into()), include_schema: true, ..Default::default() }).await.unwrap();
    let rows: usize = fetch(&mut ana, info).await.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 0);
    // Those who may read the ledger see it.
    let mut admin = served.flight(served.token("admin")).await;
    let names: Vec<String> = table_schemas(&mut admin).await.into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"finance.ledger".to_owned()), "{names:?}");
    served.stop().await;
}

async fn primary_keys(client: &mut Client, db_schema: Option<&str>, table: &str) -> String {
    let info = client.get_primary_keys(CommandGetPrimaryKeys { catalog: None, db_schema: db_schema.map(str::to_owned), table: table.to_owned() }).await.unwrap();
    pretty_format_batches(&fetch(client, info).await).unwrap().to_string()
}

#[tokio::test]
async fn primary_keys_come_from_readable_contracts() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut ana = served.flight(served.token("ana")).await;
    let expected = "\
+--------------+----------------+------------+-------------+-------------+--------------+
| catalog_name | db_schema_name | table_name | column_name | key_name    | key_sequence |
+--------------+----------------+------------+-------------+-------------+--------------+
| meshwork     | sales          | orders     | order_id    | orders_pkey | 1            |
+--------------+----------------+------------+-------------+-------------+--------------+";
    assert_eq!(primary_keys(&mut ana, Some("sales"), "orders").await, expected);
    assert_eq!(primary_keys(&mut ana, None, "orders").await, expected);
    // No rows: the stream carries the schema and no batch.
    let empty = "++\n++";
    // No key declared, a missing table, and a product olga may not read all answer the same.
    assert_eq!(primary_keys(&mut ana, Some("marketing"), "campaigns").await, empty);
    assert_eq!(primary_keys(&mut ana, Some("sales"), "nothing").await, empty);
    let mut olga = served.flight(served.token("olga")).await;
    assert_eq!(primary_keys(&mut olga, Some("sales"), "orders").await, empty);
    // Foreign keys: contracts declare none; the answer is empty, not an error.
    let info = ana.get_imported_keys(arrow_flight::sql::CommandGetImportedKeys { catalog: None, db_schema: Some("sales".into()), table: "orders".into() }).await.unwrap();
    assert_eq!(fetch(&mut ana, info).await.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    served.stop().await;
}

#[tokio::test]
async fn sql_info_and_type_info_tell_the_truth() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let mut ana = served.flight(served.token("ana")).await;
    let asked = vec![
        SqlInfo::FlightSqlServerName,
        SqlInfo::FlightSqlServerVersion,
        SqlInfo::FlightSqlServerReadOnly,
        SqlInfo::FlightSqlServerTransaction,
        SqlInfo::SqlIdentifierQuoteChar,
        SqlInfo::SqlIdentifierCase,
        SqlInfo::SqlTransactionsSupported,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlSchemaTerm,
    ];
    let info = ana.get_sql_info(asked).await.unwrap();
    let text = pretty_format_batches(&fetch(&mut ana, info).await).unwrap().to_string();
    let version = env!("CARGO_PKG_VERSION");
    let expected = format!(
        "\
+-----------+-------------------------+
| info_name | value                   |
+-----------+-------------------------+
| 0         | {{string_value=Meshwork}} |
| 1         | {{string_value={version}}}    |
| 3         | {{bool_value=true}}       |
| 8         | {{int32_bitmask=0}}       |
| 503       | {{int32_bitmask=3}}       |
| 504       | {{string_value=\"}}        |
| 529       | {{string_value=domain}}   |
| 557       | {{bigint_value=1048576}}  |
| 563       | {{bool_value=false}}      |
+-----------+-------------------------+"
    );
    assert_eq!(text, expected);
    // JDBC's getTypeInfo: every type name GetTables uses is listed.
    let info = ana.get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None }).await.unwrap();
    let batches = fetch(&mut ana, info).await;
    let mut names: Vec<String> = Vec::new();
    for batch in &batches {
        let column = batch.column_by_name("type_name").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        names.extend((0..column.len()).map(|i| column.value(i).to_owned()));
    }
    names.sort();
    assert_eq!(
        names,
        ["BIGINT", "BOOLEAN", "DATE", "DECIMAL", "DOUBLE", "INTEGER", "REAL", "SMALLINT", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TINYINT", "VARBINARY", "VARCHAR"]
    );
    served.stop().await;
}
