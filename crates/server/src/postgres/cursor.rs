//! SQL cursors on the Postgres wire: `DECLARE name [BINARY] [NO SCROLL] CURSOR [WITHOUT HOLD]
//! FOR SELECT …`, `FETCH [FORWARD] n|ALL|NEXT FROM name` and `CLOSE name|ALL`, inside a
//! transaction (what psycopg named cursors, pandas `chunksize`, SQLAlchemy `stream_results` and
//! psql's `FETCH_COUNT` send).
//!
//! `DECLARE` runs its query through the gate like any statement (policy rewrite, limits, audit,
//! cancellation) and keeps the governed batch stream in the connection; each `FETCH n` pulls
//! the next n rows from it, so a cursor never holds more than a batch. Cursors scan forward only
//! and end with their transaction (`COMMIT`/`ROLLBACK` drop them); `SCROLL` and `WITH HOLD` are
//! refused, since either would mean keeping the whole result. datafusion-postgres has a cursor
//! hook of its own, which plans on the session without the gate: it is not used.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{CloseCursor, Declare, FetchDirection, Query, Statement, Value};
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::pgwire;
use futures::StreamExt;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Batches, user_error};

/// A `DECLARE … CURSOR` to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Declaration {
    pub(super) name: String,
    /// The cursor's query, run through the gate.
    pub(super) sql: String,
    pub(super) query: Box<Query>,
    /// `BINARY`: rows are fetched in binary format over the simple protocol.
    pub(super) binary: bool,
}

/// How many rows a `FETCH` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    Rows(usize),
    All,
}

/// The cursor statements: what to do, or why it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CursorStatement {
    Declare(Declaration),
    Fetch { name: String, count: Count },
    Close(Option<String>),
}

/// Reads a cursor statement; `None` for any other statement.
pub(super) fn statement(statement: &Statement) -> Option<PgWireResult<CursorStatement>> {
    match statement {
        Statement::Declare { stmts } => Some(declaration(stmts).map(CursorStatement::Declare)),
        Statement::Fetch { name, direction, into, .. } => Some(if into.is_some() {
            Err(user_error("ERROR", "0A000", "`FETCH … INTO` is not supported; fetch the rows to the client"))
        } else {
            count(direction).map(|count| CursorStatement::Fetch { name: name.value.clone(), count })
        }),
        Statement::Close { cursor: CloseCursor::All } => Some(Ok(CursorStatement::Close(None))),
        Statement::Close { cursor: CloseCursor::Specific { name } } => Some(Ok(CursorStatement::Close(Some(name.value.clone())))),
        _ => None,
    }
}

fn declaration(stmts: &[Declare]) -> PgWireResult<Declaration> {
    let [declare] = stmts else { return Err(user_error("ERROR", "42601", "declare one cursor per statement")) };
    let (Some(query), [name]) = (&declare.for_query, declare.names.as_slice()) else {
        return Err(user_error("ERROR", "0A000", "only `DECLARE name CURSOR FOR SELECT …` is supported"));
    };
    if declare.scroll == Some(true) {
        return Err(user_error("ERROR", "0A000", "`SCROLL` cursors are not supported: cursors scan forward only; declare it `NO SCROLL` (the default)"));
    }
    if declare.hold == Some(true) {
        return Err(user_error("ERROR", "0A000", "cursors `WITH HOLD` are not supported: a cursor ends with its transaction; declare it `WITHOUT HOLD` (the default) and fetch before `COMMIT`"));
    }
    Ok(Declaration { name: name.value.clone(), sql: query.to_string(), query: query.clone(), binary: declare.binary == Some(true) })
}

fn count(direction: &FetchDirection) -> PgWireResult<Count> {
    let number = |value: &datafusion::sql::sqlparser::ast::ValueWithSpan| match &value.value {
        Value::Number(n, _) => n.to_string().parse::<i64>().ok(),
        _ => None,
    };
    let backward = || user_error("ERROR", "55000", "cursor can only scan forward: cursors are NO SCROLL; fetch forward, or declare the cursor again");
    match direction {
        FetchDirection::Next => Ok(Count::Rows(1)),
        FetchDirection::All | FetchDirection::ForwardAll => Ok(Count::All),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => match number(limit) {
            Some(n) if n >= 0 => Ok(Count::Rows(n as usize)),
            Some(_) => Err(backward()),
            None => Err(user_error("ERROR", "42601", format!("FETCH count `{limit}` is not a number of rows"))),
        },
        FetchDirection::Forward { limit: None } => Ok(Count::Rows(1)),
        _ => Err(backward()),
    }
}

/// One open cursor: the rest of its query's rows.
struct Cursor {
    schema: SchemaRef,
    binary: bool,
    batches: Batches,
    /// Rows of the last batch that the last `FETCH` did not take.
    pending: Option<RecordBatch>,
}

/// The cursors of one connection.
#[derive(Default)]
pub(super) struct Cursors {
    open: std::sync::Mutex<HashMap<String, Arc<Mutex<Cursor>>>>,
}

impl Cursors {
    /// Keeps a declared cursor; an open cursor of the same name is an error, as in PostgreSQL.
    pub(super) fn declare(&self, declaration: &Declaration, schema: SchemaRef, batches: Batches) -> PgWireResult<()> {
        let mut open = self.open.lock().expect("cursors lock");
        if open.contains_key(&declaration.name) {
            return Err(user_error("ERROR", "42P03", format!("cursor \"{}\" already exists", declaration.name)));
        }
        let cursor = Cursor { schema, binary: declaration.binary, batches, pending: None };
        open.insert(declaration.name.clone(), Arc::new(Mutex::new(cursor)));
        Ok(())
    }

    /// Whether `name` is open.
    pub(super) fn schema(&self, name: &str) -> Option<SchemaRef> {
        let cursor = self.open.lock().expect("cursors lock").get(name).cloned()?;
        cursor.try_lock().ok().map(|c| c.schema.clone())
    }

    /// The next rows of `name`, as they stream, tagged `FETCH n`. `format` is the Bind's result
    /// format over the extended protocol; over the simple protocol (`None`) rows are text, or
    /// binary for a `BINARY` cursor.
    pub(super) async fn fetch(&self, name: &str, count: Count, format: Option<&Format>, options: Arc<FormatOptions>) -> PgWireResult<QueryResponse> {
        let cursor = self.open.lock().expect("cursors lock").get(name).cloned().ok_or_else(|| missing(name))?;
        let cursor = cursor.lock_owned().await;
        let format = match format {
            Some(format) => format.clone(),
            None if cursor.binary => Format::UnifiedBinary,
            None => Format::UnifiedText,
        };
        let fields = Arc::new(arrow_schema_to_pg_fields(&cursor.schema, &format, Some(options))?);
        let limit = match count {
            Count::Rows(n) => Some(n),
            Count::All => None,
        };
        let mut response = QueryResponse::new(fields.clone(), rows(cursor, limit, fields));
        response.set_command_tag("FETCH");
        Ok(response)
    }

    /// Closes `name`, or every cursor (`CLOSE ALL`); dropping a cursor's stream ends its query.
    pub(super) fn close(&self, name: Option<&str>) -> PgWireResult<()> {
        let mut open = self.open.lock().expect("cursors lock");
        match name {
            None => open.clear(),
            Some(name) => {
                open.remove(name).ok_or_else(|| missing(name))?;
            }
        }
        Ok(())
    }

    /// The names of the open cursors, closing them all: at the end of a transaction.
    pub(super) fn end_transaction(&self) -> Vec<String> {
        self.open.lock().expect("cursors lock").drain().map(|(name, _)| name).collect()
    }
}

fn missing(name: &str) -> pgwire::error::PgWireError {
    user_error("ERROR", "34000", format!("cursor \"{name}\" does not exist"))
}

/// Up to `limit` rows of `cursor` (all when `None`), pulled batch by batch; what a batch has
/// beyond the limit stays in the cursor for the next `FETCH`.
fn rows(cursor: OwnedMutexGuard<Cursor>, limit: Option<usize>, fields: Arc<Vec<FieldInfo>>) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send {
    let encoder = super::encode::RowEncoder::new(fields);
    futures::stream::unfold((cursor, limit, encoder), move |(mut cursor, left, mut encoder)| {
        async move {
            if left == Some(0) {
                return None;
            }
            let batch = match cursor.pending.take() {
                Some(batch) => batch,
                None => match cursor.batches.next().await? {
                    Ok(batch) => batch,
                    Err(err) => {
                        // The query failed: the cursor has nothing more to give.
                        cursor.batches = Box::pin(futures::stream::empty());
                        let failed: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = Box::new(std::iter::once(Err(err)));
                        return Some((failed, (cursor, Some(0), encoder)));
                    }
                },
            };
            let take = left.map_or(batch.num_rows(), |left| left.min(batch.num_rows()));
            if take < batch.num_rows() {
                cursor.pending = Some(batch.slice(take, batch.num_rows() - take));
            }
            let rows = encoder.items(&batch.slice(0, take));
            Some((rows, (cursor, left.map(|left| left - take), encoder)))
        }
    })
    .flat_map(futures::stream::iter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse(sql: &str) -> PgWireResult<CursorStatement> {
        statement(&Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0)).expect("a cursor statement")
    }

    fn message(result: PgWireResult<CursorStatement>) -> String {
        match result {
            Err(pgwire::error::PgWireError::UserError(info)) => format!("{}: {}", info.code, info.message),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn what_drivers_send() {
        let CursorStatement::Declare(declared) = parse("DECLARE \"big_cur\" CURSOR WITHOUT HOLD FOR select * from orders where id < 60").unwrap() else { panic!() };
        assert_eq!((declared.name.as_str(), declared.sql.as_str(), declared.binary), ("big_cur", "SELECT * FROM orders WHERE id < 60", false));
        assert!(matches!(parse("DECLARE _psql_cursor NO SCROLL CURSOR FOR SELECT 1").unwrap(), CursorStatement::Declare(_)));
        assert!(matches!(parse("DECLARE c BINARY CURSOR FOR SELECT 1").unwrap(), CursorStatement::Declare(Declaration { binary: true, .. })));
        assert_eq!(parse("FETCH FORWARD 20 FROM \"big_cur\"").unwrap(), CursorStatement::Fetch { name: "big_cur".into(), count: Count::Rows(20) });
        assert_eq!(parse("FETCH FORWARD ALL FROM c").unwrap(), CursorStatement::Fetch { name: "c".into(), count: Count::All });
        assert_eq!(parse("FETCH NEXT IN c").unwrap(), CursorStatement::Fetch { name: "c".into(), count: Count::Rows(1) });
        assert_eq!(parse("FETCH 5 FROM c").unwrap(), CursorStatement::Fetch { name: "c".into(), count: Count::Rows(5) });
        assert_eq!(parse("CLOSE \"big_cur\"").unwrap(), CursorStatement::Close(Some("big_cur".into())));
        assert_eq!(parse("CLOSE ALL").unwrap(), CursorStatement::Close(None));
    }

    #[test]
    fn what_would_keep_the_whole_result_is_refused() {
        assert!(message(parse("DECLARE c SCROLL CURSOR FOR SELECT 1")).starts_with("0A000: `SCROLL` cursors are not supported"));
        assert!(message(parse("DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1")).starts_with("0A000: cursors `WITH HOLD` are not supported"));
        assert!(message(parse("FETCH PRIOR FROM c")).starts_with("55000: cursor can only scan forward"));
        assert!(message(parse("FETCH BACKWARD 2 FROM c")).starts_with("55000"));
        assert!(message(parse("FETCH ABSOLUTE 1 FROM c")).starts_with("55000"));
    }
}
