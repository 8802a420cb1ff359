//! Aggregates of a virtual product answered by its database: an `Aggregate` directly over the
//! product's scan (no policy fence between them, so only for principals who read it unfiltered
//! and unmasked) becomes one `SELECT … GROUP BY` sent to the database.
//!
//! Taken only where the database's answer is DataFusion's: `count`, `sum` of whole numbers and
//! decimals, `avg` of whole numbers (not on MySQL, which answers to four places), `min` and
//! `max` of whole numbers, decimals, dates and timestamps, without `DISTINCT`, `FILTER` or
//! `ORDER BY`; grouped by columns that group alike in both; each column only where its
//! conversion to the contract's type keeps every value and its order (`pushdown::exact_family`:
//! no floating point, whose `-0` and `0` group apart here; text only on PostgreSQL
//! `text`/`varchar` and on another Meshwork); over filters the scan has already taken as exact.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::datasource::{TableType, provider_as_source, source_as_provider};
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams, Alias};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, TableScan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use meshwork_sources::{SourceColumn, TypeFamily};

use super::Dialect;
use super::scan::{RemoteScanExec, RemoteTable};
use crate::guard::ProductTable;

/// The optimizer rule; added after DataFusion's own, so filters and projections have reached
/// the scans when it runs.
#[derive(Debug)]
pub struct RemoteAggregateRule;

impl OptimizerRule for RemoteAggregateRule {
    fn name(&self) -> &str {
        "meshwork_remote_aggregate"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else { return Ok(Transformed::no(plan)) };
        let LogicalPlan::TableScan(scan) = aggregate.input.as_ref() else { return Ok(Transformed::no(plan)) };
        let Some(remote) = remote_of(scan) else { return Ok(Transformed::no(plan)) };
        match pushed(aggregate, scan, &remote)? {
            Some(replacement) => Ok(Transformed::yes(replacement)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// The virtual product's table a scan reads, directly or as a product.
fn remote_of(scan: &TableScan) -> Option<Arc<dyn TableProvider>> {
    let provider = source_as_provider(&scan.source).ok()?;
    if provider.downcast_ref::<RemoteTable>().is_some() {
        return Some(provider);
    }
    let product = provider.downcast_ref::<ProductTable>()?;
    product.inner.downcast_ref::<RemoteTable>().map(|_| product.inner.clone())
}

/// The source column behind a contract column of the scan, and the family it compares and
/// aggregates exactly in once converted to the contract's type (see `pushdown::exact_family`).
fn source_column(table: &RemoteTable, expr: &Expr) -> Option<(SourceColumn, TypeFamily)> {
    let Expr::Column(c) = expr else { return None };
    let (column, family) = table.columns().exact(&c.name)?;
    Some((SourceColumn { name: column.source.clone(), type_name: column.type_name.clone() }, family))
}

/// The aggregate as a scan of the database's `GROUP BY`, or `None` where it cannot be.
fn pushed(aggregate: &Aggregate, scan: &TableScan, provider: &Arc<dyn TableProvider>) -> Result<Option<LogicalPlan>> {
    let table = provider.downcast_ref::<RemoteTable>().expect("remote_of returns remote tables");
    let dialect = table.dialect();
    if scan.fetch.is_some() || aggregate.group_expr.iter().any(|e| !matches!(e, Expr::Column(_))) {
        return Ok(None);
    }
    let columns = table.columns();
    if !scan.filters.iter().all(|f| columns.pushable(f)) {
        return Ok(None);
    }
    // The database aggregates in a derived table (each aggregate under a name of its own), and
    // the outer `SELECT` sends every value as the scan would: a `max` of a timestamp as ISO text
    // in UTC, like the column itself.
    let mut inner = Vec::new();
    let mut outer = Vec::new();
    let mut group_by = Vec::new();
    for expr in &aggregate.group_expr {
        let Some((column, family)) = source_column(table, expr) else { return Ok(None) };
        let groups_alike = match family {
            TypeFamily::Text => match dialect {
                Dialect::Postgres => matches!(column.type_name.to_ascii_uppercase().as_str(), "TEXT" | "VARCHAR" | "CHARACTER VARYING"),
                Dialect::Mysql => false,
                Dialect::DataFusion => column.type_name == "TEXT",
            },
            _ => true,
        };
        if !groups_alike {
            return Ok(None);
        }
        inner.push(dialect.quote(&column.name));
        outer.push(dialect.transfer(&column));
        group_by.push(dialect.quote(&column.name));
    }
    for (i, expr) in aggregate.aggr_expr.iter().enumerate() {
        let expr = match expr {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params: AggregateFunctionParams { args, distinct: false, filter: None, order_by, .. } }) = expr else {
            return Ok(None);
        };
        if !order_by.is_empty() {
            return Ok(None);
        }
        let name = func.name().to_ascii_lowercase();
        let alias = format!("a{i}");
        let cast = dialect.as_text(&dialect.quote(&alias));
        let (sql, transfer) = match (name.as_str(), args.as_slice()) {
            ("count", [Expr::Literal(value, _)]) if !value.is_null() => ("COUNT(*)".to_owned(), cast),
            ("count", [Expr::Column(c)]) => match table.source.columns.iter().find(|rc| rc.name == c.name) {
                Some(column) => (format!("COUNT({})", dialect.quote(&column.source)), cast),
                None => return Ok(None),
            },
            (function @ ("sum" | "avg" | "min" | "max"), [arg]) => {
                let Some((column, family)) = source_column(table, arg) else { return Ok(None) };
                let taken = match function {
                    "sum" => matches!(family, TypeFamily::Integer | TypeFamily::Decimal),
                    // DataFusion averages decimals as decimals of a scale of its own, and MySQL
                    // answers an average of whole numbers to four places: left to DataFusion.
                    "avg" => family == TypeFamily::Integer && dialect != Dialect::Mysql,
                    // Text orders by the database's collation: left out.
                    _ => matches!(family, TypeFamily::Integer | TypeFamily::Decimal | TypeFamily::Date | TypeFamily::Timestamp),
                };
                if !taken {
                    return Ok(None);
                }
                let aggregated = format!("{}({})", function.to_ascii_uppercase(), dialect.quote(&column.name));
                let transfer = match function {
                    "min" | "max" => dialect.transfer(&SourceColumn { name: alias.clone(), type_name: column.type_name.clone() }),
                    _ => cast,
                };
                (aggregated, transfer)
            }
            _ => return Ok(None),
        };
        inner.push(format!("{sql} AS {}", dialect.quote(&alias)));
        outer.push(transfer);
    }
    if outer.is_empty() {
        return Ok(None);
    }
    let mut sql = format!("SELECT {} FROM {}{}", inner.join(", "), dialect.from_item(&table.source.read), table.where_clause(&scan.filters)?);
    if !group_by.is_empty() {
        sql.push_str(&format!(" GROUP BY {}", group_by.join(", ")));
    }
    let sql = format!("SELECT {} FROM ({sql}) AS meshwork_aggregate", outer.join(", "));
    // The aggregate's own output types and nullability, under positional names; a projection
    // gives each column back its qualified name.
    let output = aggregate.schema.as_ref();
    let fields: Vec<Field> = output.fields().iter().enumerate().map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), f.is_nullable())).collect();
    let transfer: Vec<Field> = output
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let family = if f.data_type() == &DataType::Binary { TypeFamily::Binary } else { TypeFamily::Text };
            Field::new(format!("c{i}"), dialect.transfer_type(family, f.data_type()), true)
        })
        .collect();
    let query = RemoteQuery { table: table.source.clone(), sql, transfer: Arc::new(Schema::new(transfer)), schema: Arc::new(Schema::new(fields)) };
    let scanned = LogicalPlanBuilder::scan(scan.table_name.clone(), provider_as_source(Arc::new(query)), None)?.build()?;
    let renamed = output.iter().enumerate().map(|(i, (qualifier, field))| {
        Expr::Column(Column::new(Some(scan.table_name.clone()), format!("c{i}"))).alias_qualified(qualifier.cloned(), field.name())
    });
    Ok(Some(LogicalPlanBuilder::from(scanned).project(renamed)?.build()?))
}

/// A fixed statement on a virtual product's database, as a table.
#[derive(Debug)]
struct RemoteQuery {
    table: Arc<meshwork_catalog::RemoteSource>,
    sql: String,
    transfer: SchemaRef,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for RemoteQuery {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(&self, _state: &dyn Session, projection: Option<&Vec<usize>>, _filters: &[Expr], _limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let exec: Arc<dyn ExecutionPlan> = Arc::new(RemoteScanExec::new(self.table.clone(), self.sql.clone(), self.transfer.clone(), self.schema.clone()));
        match projection {
            Some(p) if p.len() != self.schema.fields().len() || p.iter().enumerate().any(|(i, &j)| i != j) => {
                let exprs = p
                    .iter()
                    .map(|&i| {
                        let name = self.schema.field(i).name().clone();
                        (Arc::new(datafusion::physical_expr::expressions::Column::new(&name, i)) as Arc<dyn datafusion::physical_expr::PhysicalExpr>, name)
                    })
                    .collect::<Vec<_>>();
                Ok(Arc::new(datafusion::physical_plan::projection::ProjectionExec::try_new(exprs, exec)?))
            }
            _ => Ok(exec),
        }
    }
}
