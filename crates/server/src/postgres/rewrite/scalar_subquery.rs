//! Correlated scalar subqueries that are not aggregated, as PostgreSQL runs them.
//!
//! PostgreSQL runs `(SELECT d.x FROM d WHERE d.k = o.k)` once per outer row and fails when it
//! returns more than one row. DataFusion decorrelates only aggregated ones ("Correlated scalar
//! subquery must be aggregated to return at most one row"); SQLAlchemy's `get_columns` sends
//! them inside `CASE`, pgJDBC's `getTypeInfo` in `WHERE … OR`. So the subquery's one output is
//! wrapped in [`SINGLE_ROW`], an aggregate that gives the one value (NULL for no rows) and fails
//! as PostgreSQL does for more: the same answers and the same errors. Only subqueries that
//! reference an outer table by name are rewritten (an uncorrelated one plans already), and
//! only when their output is not already an aggregate. datafusion-postgres replaces correlated
//! subqueries that are a whole item of the outermost select list with NULL before this runs.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, GroupByExpr, Ident, Query, SelectItem, SetExpr, Statement, TableFactor, Visit, Visitor, visit_expressions_mut};
use datafusion_postgres::datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule;

/// The aggregate that stands for "the one row".
pub(crate) const SINGLE_ROW: &str = "__meshwork_single_row";

/// Aggregates that already make a subquery return one row.
const AGGREGATES: &[&str] = &[
    "count", "sum", "min", "max", "avg", "array_agg", "string_agg", "bool_and", "bool_or", "every", "json_agg", "jsonb_agg", "json_object_agg",
    "first_value", "last_value", "median", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "bit_and", "bit_or", "bit_xor", SINGLE_ROW,
];

/// The rewrite rule.
#[derive(Debug)]
pub(crate) struct ScalarSubquery;

impl SqlStatementRewriteRule for ScalarSubquery {
    fn rewrite(&self, mut statement: Statement) -> Statement {
        let _ = visit_expressions_mut(&mut statement, |expr| {
            if let Expr::Subquery(query) = expr {
                wrap(query);
            }
            ControlFlow::<()>::Continue(())
        });
        statement
    }
}

fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

/// Wraps the output of `query` in [`SINGLE_ROW`] when it is a correlated, unaggregated SELECT of
/// one expression.
fn wrap(query: &mut Query) {
    if query.with.is_some() || query.limit_clause.is_some() || query.fetch.is_some() || !correlated(query) {
        return;
    }
    let SetExpr::Select(select) = query.body.as_mut() else { return };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(keys, modifiers) if keys.is_empty() && modifiers.is_empty());
    if !plain || select.projection.len() != 1 {
        return;
    }
    let output = match &mut select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return,
    };
    if aggregated(output) {
        return;
    }
    if let Some(wrapped) = super::expression(&format!("{SINGLE_ROW}({output})")) {
        *output = wrapped;
    }
}

/// Whether `expr` calls an aggregate or a window function.
fn aggregated(expr: &Expr) -> bool {
    struct Calls(bool);
    impl Visitor for Calls {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = expr {
                let name = f.name.0.last().and_then(|p| p.as_ident()).map(folded).unwrap_or_default();
                if f.over.is_some() || AGGREGATES.contains(&name.as_str()) {
                    self.0 = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut calls = Calls(false);
    let _ = expr.visit(&mut calls);
    calls.0
}

/// Whether `query` (a SELECT) names a table that is not in its own FROM: a column qualified by
/// an outer table.
fn correlated(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else { return false };
    let mut local = HashSet::new();
    for from in &select.from {
        for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)) {
            match factor {
                TableFactor::Table { alias: Some(alias), .. } => {
                    local.insert(folded(&alias.name));
                }
                TableFactor::Table { name, alias: None, .. } => {
                    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(folded).collect();
                    for start in 0..parts.len() {
                        local.insert(parts[start..].join("."));
                    }
                }
                TableFactor::Derived { alias: Some(alias), .. } => {
                    local.insert(folded(&alias.name));
                }
                // A FROM item we cannot name: assume its columns are local.
                _ => return false,
            }
        }
    }
    struct Outer<'a>(&'a HashSet<String>, bool);
    impl Visitor for Outer<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr
                && parts.len() >= 2
            {
                let qualifier = parts[..parts.len() - 1].iter().map(folded).collect::<Vec<_>>().join(".");
                if !self.0.contains(&qualifier) {
                    self.1 = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut outer = Outer(&local, false);
    let _ = select.visit(&mut outer);
    outer.1
}

/// Registers [`SINGLE_ROW`] in `context`.
pub(crate) fn register(context: &SessionContext) {
    context.register_udaf(AggregateUDF::new_from_impl(SingleRow { signature: Signature::any(1, Volatility::Immutable) }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleRow {
    signature: Signature,
}

impl AggregateUDFImpl for SingleRow {
    fn name(&self) -> &str {
        SINGLE_ROW
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> datafusion::error::Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneRow { value: ScalarValue::try_from(args.return_field.data_type())?, rows: 0 }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> datafusion::error::Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format_state_name(args.name, "value"), args.return_field.data_type().clone(), true)),
            Arc::new(Field::new(format_state_name(args.name, "rows"), DataType::UInt64, false)),
        ])
    }
}

#[derive(Debug)]
struct OneRow {
    value: ScalarValue,
    rows: u64,
}

impl OneRow {
    fn take(&mut self, value: ScalarValue, rows: u64) -> datafusion::error::Result<()> {
        self.rows += rows;
        if self.rows > 1 {
            return exec_err!("more than one row returned by a subquery used as an expression");
        }
        self.value = value;
        Ok(())
    }
}

impl Accumulator for OneRow {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        for row in 0..values[0].len() {
            self.take(ScalarValue::try_from_array(&values[0], row)?, 1)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }

    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        Ok(vec![self.value.clone(), ScalarValue::UInt64(Some(self.rows))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        let rows = states[1].as_primitive::<UInt64Type>();
        for row in 0..states[0].len() {
            if rows.value(row) > 0 {
                self.take(ScalarValue::try_from_array(&states[0], row)?, rows.value(row))?;
            }
        }
        Ok(())
    }
}
