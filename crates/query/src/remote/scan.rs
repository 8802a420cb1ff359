//! A virtual product's table: its rows read from its database when a query runs, with the
//! projection, the filters [`super::pushdown`] accepts and the limit sent along in the `SELECT`,
//! and each value converted from the database's text to the contract's type.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use futures::{StreamExt, TryStreamExt};
use meshwork_catalog::{RemoteConnection, RemoteSource};
use meshwork_sources::SourceColumn;
use meshwork_sources::schema::describe_read;

use super::Dialect;
use super::pushdown::Columns;

/// A virtual product's rows, read live from the database its publication names.
#[derive(Debug)]
pub struct RemoteTable {
    pub(crate) source: Arc<RemoteSource>,
    /// The contract's columns as Arrow types, in contract order (as `source.columns`).
    schema: SchemaRef,
}

impl RemoteTable {
    /// The table of `source`, typed by `schema` (the contract's Arrow schema, in the order of
    /// `source.columns`).
    pub fn new(source: RemoteSource, schema: SchemaRef) -> RemoteTable {
        RemoteTable { source: Arc::new(source), schema }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        Dialect::of(&self.source.connection)
    }

    pub(crate) fn columns(&self) -> Columns<'_> {
        Columns { dialect: self.dialect(), columns: &self.source.columns, contract: self.schema.as_ref() }
    }

    /// The `WHERE` clause of `filters` (each accepted by [`Columns::pushable`]), if any.
    pub(crate) fn where_clause(&self, filters: &[Expr]) -> Result<String> {
        let columns = self.columns();
        let parts = filters.iter().map(|f| columns.to_sql(f)).collect::<Result<Vec<_>>>()?;
        Ok(if parts.is_empty() { String::new() } else { format!(" WHERE {}", parts.join(" AND ")) })
    }
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        let columns = self.columns();
        Ok(filters
            .iter()
            .map(|f| if columns.pushable(f) { TableProviderFilterPushDown::Exact } else { TableProviderFilterPushDown::Unsupported })
            .collect())
    }

    async fn scan(&self, _state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let dialect = self.dialect();
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&indices)?);
        let mut list: Vec<String> = Vec::with_capacity(indices.len());
        let mut transfer = Vec::with_capacity(indices.len());
        for &i in &indices {
            let column = &self.source.columns[i];
            let source = SourceColumn { name: column.source.clone(), type_name: column.type_name.clone() };
            list.push(dialect.transfer(&source));
            transfer.push(Field::new(&column.name, dialect.transfer_type(source.family(), self.schema.field(i).data_type()), true));
        }
        if list.is_empty() {
            // No column is read (`count(*)`): one constant per row (as text, as every value
            // travels), dropped as it arrives.
            list.push(dialect.as_text("1"));
            transfer.push(Field::new("row", DataType::Utf8, true));
        }
        let mut sql = format!("SELECT {} FROM {}{}", list.join(", "), dialect.from_item(&self.source.read), self.where_clause(filters)?);
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        Ok(Arc::new(RemoteScanExec::new(self.source.clone(), sql, Arc::new(Schema::new(transfer)), schema)))
    }
}

/// Runs one `SELECT` on a virtual product's database and converts its text to `schema`.
#[derive(Debug)]
pub struct RemoteScanExec {
    source: Arc<RemoteSource>,
    sql: String,
    /// The columns as the database sends them (text, or bytes).
    transfer: SchemaRef,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl RemoteScanExec {
    pub(crate) fn new(source: Arc<RemoteSource>, sql: String, transfer: SchemaRef, schema: SchemaRef) -> RemoteScanExec {
        let properties = PlanProperties::new(EquivalenceProperties::new(schema.clone()), Partitioning::UnknownPartitioning(1), EmissionType::Incremental, Boundedness::Bounded);
        RemoteScanExec { source, sql, transfer, schema, properties: Arc::new(properties) }
    }

    /// The statement the database runs.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RemoteScanExec: connection={}, sql={}", self.source.connection_name, self.sql)
    }
}

impl ExecutionPlan for RemoteScanExec {
    fn name(&self) -> &str {
        "RemoteScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() { Ok(self) } else { datafusion::common::internal_err!("RemoteScanExec has no children") }
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!("RemoteScanExec has one partition, not {partition}");
        }
        let source = self.source.clone();
        let (sql, transfer, schema) = (self.sql.clone(), self.transfer.clone(), self.schema.clone());
        let what = describe_read(&source.read);
        let rows = futures::stream::once(async move {
            let name = source.connection_name.clone();
            let failed = move |e| external(&name, e);
            let rows = match &source.connection {
                RemoteConnection::Database(connection) => {
                    let connection = meshwork_sources::connect(&source.connection_name, connection).await.map_err(&failed)?;
                    meshwork_sources::query(connection, what, sql, transfer)
                }
                RemoteConnection::FlightSql(endpoint) => meshwork_sources::connect_flight(&source.connection_name, endpoint).await.map_err(&failed)?.query(what, sql, transfer),
            };
            Ok::<_, DataFusionError>(rows.batches.map_err(failed))
        })
        .try_flatten();
        let target = schema.clone();
        let batches = rows.map(move |batch| batch.and_then(|b| convert(&b, &target)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// A source's failure as a reader sees it: which connection, and where the rest is. The
/// database's own message can carry the connection's address and user, or a value of the
/// policy's predicate sent with the scan, so it goes to the server's log only.
fn external(connection: &str, error: meshwork_sources::SourceError) -> DataFusionError {
    tracing::warn!(connection, error = %error, "a virtual product's source failed");
    DataFusionError::Execution(format!(
        "the database of this virtual product (connection `{connection}`) did not answer the query; the server's log says why, and `meshwork validate` checks the connection"
    ))
}

/// The database's text (or bytes, or an endpoint's Arrow values) of each column as `schema`'s
/// type. A value that does not convert, or a decimal with more places than the contract's
/// scale (which would be rounded, and compare otherwise here than in the database), fails the
/// query naming the column only: it may sit in a row the reader's policy hides, so its value
/// is never shown.
pub(crate) fn convert(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if schema.fields().is_empty() {
        return Ok(RecordBatch::try_new_with_options(schema.clone(), Vec::new(), &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())))?);
    }
    let options = CastOptions { safe: true, ..Default::default() };
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            let unfit = || {
                DataFusionError::Execution(format!(
                    "a value of remote column `{}` does not fit the contract's `{}`: the source changed since the product was published; run `meshwork apply` to check it",
                    field.name(),
                    meshwork_storage::type_name(field.data_type())
                ))
            };
            if let DataType::Decimal128(_, scale) = field.data_type()
                && beyond_scale(column, *scale)
            {
                return Err(unfit());
            }
            let converted = cast_with_options(column, field.data_type(), &options).map_err(|_| unfit())?;
            // A value that did not convert became NULL.
            if converted.null_count() > column.null_count() {
                return Err(unfit());
            }
            Ok(converted)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|_| {
        DataFusionError::Execution("a remote column the contract says is never NULL holds NULL: the source changed since the product was published; run `meshwork apply` to check it".into())
    })
}

/// Whether any value of `column` (text, or a decimal) has more decimal places than `scale`.
fn beyond_scale(column: &ArrayRef, scale: i8) -> bool {
    use datafusion::arrow::array::{Array, AsArray};
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().iter().flatten().any(|text| {
            let digits = text.split_once('.').map_or("", |(_, fraction)| fraction.trim_end_matches('0'));
            digits.len() > usize::try_from(scale.max(0)).unwrap_or(0)
        }),
        DataType::Decimal128(_, from) if *from > scale => {
            let factor = 10i128.pow(u32::try_from(from - scale).unwrap_or(0));
            let values = column.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
            (0..values.len()).any(|i| values.is_valid(i) && values.value(i) % factor != 0)
        }
        _ => false,
    }
}
