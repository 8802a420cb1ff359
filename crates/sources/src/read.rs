//! Streaming a source's rows into Arrow batches of [`BLOCK_ROWS`] rows, all of them or those in a
//! watermark range, on a task that owns the connection: the channel holds two blocks, so the
//! database is read as fast as the product is written and memory does not grow with the source.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::{Stream, StreamExt, TryStreamExt};
use meshwork_core::descriptor::{DatabaseKind, DatabaseRead};
use sqlx::Row as _;

use crate::SourceError;
use crate::connect::{Session, SourceConnection, quote_ident};
use crate::schema::{SourceColumn, TypeFamily, describe_read, from_item, transfer_expr};

/// Rows per batch: the unit of streaming and of memory, as for files.
pub const BLOCK_ROWS: usize = 64 * 1024;

/// Which rows of an incremental source a build reads, by its watermark column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The watermark column.
    pub column: SourceColumn,
    /// The high-water mark of the last publication (the database's text of the value); `None`:
    /// the first load, which also reads rows whose watermark is NULL.
    pub after: Option<String>,
    /// Whether rows at `after` itself are read again (`merge` re-reads them, harmlessly, so that
    /// a row written later with the same watermark is not missed; `append` must not).
    pub inclusive: bool,
    /// The highest watermark when the build started: rows past it wait for the next build, so
    /// that the recorded mark is exactly what was read.
    pub up_to: String,
}

/// A source's rows, streamed.
pub struct SourceRows {
    /// Text columns (bytes as binary), named as the caller asked.
    pub schema: SchemaRef,
    /// The batches; the first `Err` ends them.
    pub batches: std::pin::Pin<Box<dyn Stream<Item = Result<RecordBatch, SourceError>> + Send>>,
}

impl SourceConnection {
    /// The highest value of `column` in the source, as the database's text, among the values
    /// at or past `from` if given; `None` when there is none (so a mark never moves back when
    /// the newest rows are deleted).
    pub async fn high_mark(&mut self, read: &DatabaseRead, column: &SourceColumn, from: Option<&str>) -> Result<Option<String>, SourceError> {
        let kind = self.kind();
        let text = match kind {
            DatabaseKind::Postgres => "TEXT",
            DatabaseKind::Mysql => "CHAR",
        };
        let name = quote_ident(kind, &column.name);
        let mut sql = format!("SELECT CAST(MAX({name}) AS {text}) FROM {}", from_item(read));
        if from.is_some() {
            sql.push_str(&format!(" WHERE {name} >= {}", typed_param(kind, column, 1)));
        }
        let mark: Result<Option<String>, sqlx::Error> = match &mut self.session {
            Session::Postgres(c) => {
                let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                match from {
                    Some(from) => query.bind(from).fetch_one(c).await,
                    None => query.fetch_one(c).await,
                }
            }
            Session::Mysql(c) => {
                let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                match from {
                    Some(from) => query.bind(from).fetch_one(c).await,
                    None => query.fetch_one(c).await,
                }
            }
        };
        mark.map_err(|e| self.query_error(&describe_read(read), e))
    }
}

/// Parameter `n` (text, the database's own text of a value of `column`) cast to the type its
/// family compares in, so the comparison is the type's and never a string's or a double's:
/// whole numbers and decimals as exact numerics, dates and timestamps as such, text as text.
/// Built from the family, never from the type name the source reports.
fn typed_param(kind: DatabaseKind, column: &SourceColumn, n: usize) -> String {
    let upper = column.type_name.to_ascii_uppercase();
    let target = match (kind, column.family()) {
        (DatabaseKind::Postgres, TypeFamily::Integer | TypeFamily::Decimal) => "NUMERIC",
        (DatabaseKind::Postgres, TypeFamily::Date) => "DATE",
        (DatabaseKind::Postgres, TypeFamily::Timestamp) if upper == "TIMESTAMPTZ" => "TIMESTAMPTZ",
        (DatabaseKind::Postgres, TypeFamily::Timestamp) => "TIMESTAMP",
        (DatabaseKind::Postgres, _) => "TEXT",
        (DatabaseKind::Mysql, TypeFamily::Integer) if upper.ends_with("UNSIGNED") => "UNSIGNED",
        (DatabaseKind::Mysql, TypeFamily::Integer) => "SIGNED",
        (DatabaseKind::Mysql, TypeFamily::Decimal) => "DECIMAL(65,30)",
        (DatabaseKind::Mysql, TypeFamily::Date) => "DATE",
        (DatabaseKind::Mysql, TypeFamily::Timestamp) => "DATETIME(6)",
        (DatabaseKind::Mysql, _) => "CHAR",
    };
    match kind {
        DatabaseKind::Postgres => format!("CAST(${n} AS {target})"),
        DatabaseKind::Mysql => format!("CAST(? AS {target})"),
    }
}

/// The statement reading `columns` (output name, source column) of `read`, in `range` if given.
fn select(kind: DatabaseKind, read: &DatabaseRead, columns: &[(String, SourceColumn)], range: Option<&Range>) -> (String, Vec<String>) {
    let list: Vec<String> = columns.iter().map(|(_, c)| transfer_expr(kind, c)).collect();
    let mut sql = format!("SELECT {} FROM {}", list.join(", "), from_item(read));
    let mut params = Vec::new();
    if let Some(range) = range {
        let column = quote_ident(kind, &range.column.name);
        let param = |n: usize| typed_param(kind, &range.column, n);
        match &range.after {
            Some(after) => {
                let op = if range.inclusive { ">=" } else { ">" };
                sql.push_str(&format!(" WHERE {column} {op} {} AND {column} <= {}", param(1), param(2)));
                params.extend([after.clone(), range.up_to.clone()]);
            }
            None => {
                sql.push_str(&format!(" WHERE {column} <= {} OR {column} IS NULL", param(1)));
                params.push(range.up_to.clone());
            }
        }
    }
    (sql, params)
}

/// Streams `columns` (each named as the caller wants it, read from a source column) of `read`,
/// in `range` if given. The connection moves into the reading task and closes with it.
pub fn read(connection: SourceConnection, read: &DatabaseRead, columns: Vec<(String, SourceColumn)>, range: Option<Range>) -> SourceRows {
    let kind = connection.kind();
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, c)| Field::new(name, if c.family() == TypeFamily::Binary { DataType::Binary } else { DataType::Utf8 }, true))
        .collect();
    let (sql, params) = select(kind, read, &columns, range.as_ref());
    stream(connection, describe_read(read), sql, params, Arc::new(Schema::new(fields)))
}

/// Streams the rows of `sql`, a `SELECT` the caller built over `what` of this connection's
/// database (with [`transfer_expr`] for each column, so that each is text, or bytes where
/// `schema` says `Binary`), in the read-only snapshot of the session.
pub fn query(connection: SourceConnection, what: String, sql: String, schema: SchemaRef) -> SourceRows {
    stream(connection, what, sql, Vec::new(), schema)
}

/// Runs `sql` with `params` on a task that owns the connection, its rows sent in blocks.
fn stream(connection: SourceConnection, what: String, sql: String, params: Vec<String>, schema: SchemaRef) -> SourceRows {
    let name = connection.name().to_owned();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<RecordBatch, SourceError>>(2);
    let task_schema = schema.clone();
    let task_what = what.clone();
    let task = tokio::spawn(async move {
        let mut connection = connection;
        let outcome = stream_rows(&mut connection, &sql, &params, &task_schema, &sender).await;
        if let Err(error) = outcome {
            let error = connection.query_error(&task_what, error);
            let _ = sender.send(Err(error)).await;
        }
        connection.close().await;
    });
    // When the channel ends, the task's outcome decides: a reader that panicked or was cancelled
    // must not pass for the end of the rows (a full load would publish part of them). A stream
    // dropped before its end (a query cancelled or past its time limit) aborts the task, which
    // drops the connection and with it the statement's transaction.
    let batches = futures::stream::unfold((receiver, Reader(Some(task))), move |(mut receiver, mut task)| {
        let (what, name) = (what.clone(), name.clone());
        async move {
            if let Some(item) = receiver.recv().await {
                return Some((item, (receiver, task)));
            }
            match task.0.take()?.await {
                Ok(()) => None,
                Err(error) => Some((Err(SourceError::Query { connection: name, what, reason: format!("the reader stopped: {error}") }), (receiver, task))),
            }
        }
    });
    SourceRows { schema, batches: Box::pin(batches) }
}

/// The task reading a source, aborted if its rows are dropped before their end.
struct Reader(Option<tokio::task::JoinHandle<()>>);

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Reads every row of `sql` into blocks sent on `sender`; stops quietly if the receiver is gone.
async fn stream_rows(
    connection: &mut SourceConnection,
    sql: &str,
    params: &[String],
    schema: &SchemaRef,
    sender: &tokio::sync::mpsc::Sender<Result<RecordBatch, SourceError>>,
) -> Result<(), sqlx::Error> {
    let mut block = Block::new(schema);
    macro_rules! drain {
        ($conn:expr) => {{
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for param in params {
                query = query.bind(param.clone());
            }
            let mut rows = query.fetch($conn).map_err(sqlx::Error::from);
            while let Some(row) = rows.next().await {
                let row = row?;
                for (i, column) in block.columns.iter_mut().enumerate() {
                    match column {
                        Builder::Text(b) => b.append_option(row.try_get::<Option<String>, _>(i)?),
                        Builder::Binary(b) => b.append_option(row.try_get::<Option<Vec<u8>>, _>(i)?),
                    }
                }
                block.rows += 1;
                if block.rows == BLOCK_ROWS && sender.send(Ok(block.finish(schema))).await.is_err() {
                    return Ok(());
                }
            }
        }};
    }
    match &mut connection.session {
        Session::Postgres(c) => drain!(&mut *c),
        Session::Mysql(c) => drain!(&mut *c),
    }
    if block.rows > 0 {
        let _ = sender.send(Ok(block.finish(schema))).await;
    }
    Ok(())
}

enum Builder {
    Text(StringBuilder),
    Binary(BinaryBuilder),
}

/// The rows of one batch being collected.
struct Block {
    columns: Vec<Builder>,
    rows: usize,
}

impl Block {
    fn new(schema: &SchemaRef) -> Block {
        let columns = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Binary => Builder::Binary(BinaryBuilder::with_capacity(BLOCK_ROWS, BLOCK_ROWS * 16)),
                _ => Builder::Text(StringBuilder::with_capacity(BLOCK_ROWS, BLOCK_ROWS * 16)),
            })
            .collect();
        Block { columns, rows: 0 }
    }

    /// The block as a batch; the builders start over.
    fn finish(&mut self, schema: &SchemaRef) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| match b {
                Builder::Text(b) => Arc::new(b.finish()) as ArrayRef,
                Builder::Binary(b) => Arc::new(b.finish()) as ArrayRef,
            })
            .collect();
        self.rows = 0;
        RecordBatch::try_new(schema.clone(), arrays).expect("columns built for the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, type_name: &str) -> SourceColumn {
        SourceColumn { name: name.into(), type_name: type_name.into() }
    }

    #[test]
    fn an_incremental_read_is_bounded_on_both_sides_and_the_first_takes_nulls() {
        let read = DatabaseRead::Table("public.customers".into());
        let columns = vec![("id".to_owned(), column("id", "INT8"))];
        let range = Range { column: column("updated_at", "TIMESTAMPTZ"), after: Some("2024-01-01 00:00:00+00".into()), inclusive: true, up_to: "2024-02-01 00:00:00+00".into() };
        let (sql, params) = select(DatabaseKind::Postgres, &read, &columns, Some(&range));
        assert_eq!(sql, "SELECT CAST(\"id\" AS TEXT) FROM public.customers WHERE \"updated_at\" >= CAST($1 AS TIMESTAMPTZ) AND \"updated_at\" <= CAST($2 AS TIMESTAMPTZ)");
        assert_eq!(params, ["2024-01-01 00:00:00+00", "2024-02-01 00:00:00+00"]);
        let first = Range { after: None, inclusive: false, ..range };
        let (sql, params) = select(DatabaseKind::Mysql, &read, &columns, Some(&first));
        assert_eq!(sql, "SELECT CAST(`id` AS CHAR) FROM public.customers WHERE `updated_at` <= CAST(? AS DATETIME(6)) OR `updated_at` IS NULL");
        assert_eq!(params, ["2024-02-01 00:00:00+00"]);
    }
}
