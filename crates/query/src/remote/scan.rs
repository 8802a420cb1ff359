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
        Columns { dialect: self.dialect(), columns: &self.source.columns }
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
            // No column is read (`count(*)`): one constant per row, dropped as it arrives.
            list.push("1".into());
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
            let rows = match &source.connection {
                RemoteConnection::Database(connection) => {
                    let connection = meshwork_sources::connect(&source.connection_name, connection).await.map_err(external)?;
                    meshwork_sources::query(connection, what, sql, transfer)
                }
                RemoteConnection::FlightSql(endpoint) => meshwork_sources::connect_flight(&source.connection_name, endpoint).await.map_err(external)?.query(what, sql, transfer),
            };
            Ok::<_, DataFusionError>(rows.batches.map_err(external))
        })
        .try_flatten();
        let target = schema.clone();
        let batches = rows.map(move |batch| batch.and_then(|b| convert(&b, &target)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

fn external(error: meshwork_sources::SourceError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

/// The database's text (or bytes) of each column as `schema`'s type. A value that does not
/// convert is an error naming the column: a virtual product's source changed since its
/// publication checked it.
pub(crate) fn convert(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if schema.fields().is_empty() {
        return Ok(RecordBatch::try_new_with_options(schema.clone(), Vec::new(), &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())))?);
    }
    let options = CastOptions { safe: false, ..Default::default() };
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            cast_with_options(column, field.data_type(), &options).map_err(|e| {
                DataFusionError::Execution(format!(
                    "a value of remote column `{}` is not a `{}`: {e}; the source changed since the product was published, run `meshwork apply` to check it",
                    field.name(),
                    field.data_type()
                ))
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
