//! Correlated scalar subqueries that are not aggregated, as PostgreSQL runs them.
//!
//! PostgreSQL runs `(SELECT d.x FROM d WHERE d.k = o.k)` once per outer row and fails when it
//! returns more than one row. DataFusion decorrelates only aggregated ones ("Correlated scalar
//! subquery must be aggregated to return at most one row"), and not those whose WHERE also
//! tests only the outer row; SQLAlchemy's `get_columns` sends such subqueries inside `CASE`,
//! pgJDBC's `getTypeInfo` in `WHERE … OR`. So
//! `(SELECT e FROM … WHERE outer AND local)` becomes
//! `CASE WHEN outer THEN __meshwork_single_row((SELECT array_agg(e) FROM … WHERE local)) END`:
//! the subquery aggregates, and [`SINGLE_ROW`], applied per outer row after the join, gives the
//! one value (NULL for no rows) and fails as PostgreSQL does for more. Same answers, same errors.
//! Only subqueries that reference an outer table by name are rewritten (an uncorrelated one
//! plans already), and only when their output is not already an aggregate. An output that reads
//! the outer row too (SQLAlchemy's identity options) aggregates only its inner columns; see
//! [`OuterSplit`]. datafusion-postgres
//! replaces correlated subqueries that are a whole item of the outermost select list with NULL
//! before this runs.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, GroupByExpr, Ident, Query, SelectItem, SetExpr, Statement, TableFactor, Visit, Visitor, visit_expressions_mut};
use datafusion_postgres::datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule;

/// The function that takes the one row of an aggregated subquery.
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
            if let Expr::Subquery(query) = expr
                && let Some(rewritten) = per_row(query)
            {
                *expr = rewritten;
            }
            ControlFlow::<()>::Continue(())
        });
        statement
    }
}

fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

/// The rewrite of a correlated, unaggregated SELECT of one expression; `None` for any other.
fn per_row(query: &Query) -> Option<Expr> {
    if query.with.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let local = local_names(query)?;
    if !mentions_outer(query, &local) {
        return None;
    }
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(keys, modifiers) if keys.is_empty() && modifiers.is_empty());
    if !plain || select.projection.len() != 1 {
        return None;
    }
    let output = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    if aggregated(&output) {
        return None;
    }
    let split = OuterSplit::of(&output, &local)?;
    select.projection = vec![SelectItem::UnnamedExpr(super::expression(&format!("array_agg({})", split.aggregated()))?)];
    // Conditions on the outer row alone leave the subquery: DataFusion cannot decorrelate them.
    let mut outer = Vec::new();
    if let Some(selection) = select.selection.take() {
        let (only_outer, rest): (Vec<Expr>, Vec<Expr>) = conjuncts(selection).into_iter().partition(|c| outer_only(c, &local));
        outer = only_outer;
        select.selection = rest.into_iter().reduce(|a, b| Expr::BinaryOp { left: Box::new(a), op: BinaryOperator::And, right: Box::new(b) });
    }
    let value = split.value(&format!("{SINGLE_ROW}(({query}))"));
    if outer.is_empty() {
        super::expression(&value)
    } else {
        let condition = outer.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" AND ");
        super::expression(&format!("CASE WHEN {condition} THEN {value} END"))
    }
}

/// A subquery's output expression split around the outer row's columns, which DataFusion cannot
/// decorrelate inside the aggregate: `f(outer, inner)` aggregates only the inner columns, as a
/// struct, and `f` is applied to the one row afterwards:
/// `CASE WHEN row IS NULL THEN NULL ELSE f(outer, get_field(row, 'c1')) END`, NULL for no row as in
/// PostgreSQL. An output without outer columns is aggregated as it is.
struct OuterSplit {
    /// The output, with each inner column replaced by a placeholder when there are outer ones.
    output: String,
    /// The inner columns, printed, when the output has outer ones.
    inner: Option<Vec<String>>,
}

/// Placeholder of the `i`th inner column; no identifier a client writes starts this way.
fn placeholder(i: usize) -> String {
    format!("__meshwork_inner_{i}")
}

impl OuterSplit {
    /// `None` when the output names a column without its table: it could be outer or inner.
    fn of(output: &Expr, local: &HashSet<String>) -> Option<OuterSplit> {
        struct Columns<'a> {
            local: &'a HashSet<String>,
            inner: Vec<String>,
            outer: bool,
            unqualified: bool,
        }
        impl Visitor for Columns<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
                match expr {
                    Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                        if self.local.contains(&qualifier(parts)) {
                            let printed = expr.to_string();
                            if !self.inner.contains(&printed) {
                                self.inner.push(printed);
                            }
                        } else {
                            self.outer = true;
                        }
                    }
                    Expr::Identifier(_) => self.unqualified = true,
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
        let mut columns = Columns { local, inner: Vec::new(), outer: false, unqualified: false };
        let _ = output.visit(&mut columns);
        if !columns.outer {
            return Some(OuterSplit { output: output.to_string(), inner: None });
        }
        if columns.unqualified {
            return None;
        }
        let mut replaced = output.clone();
        let _ = visit_expressions_mut(&mut replaced, |expr| {
            if matches!(expr, Expr::CompoundIdentifier(_))
                && let Some(i) = columns.inner.iter().position(|c| *c == expr.to_string())
            {
                *expr = Expr::Identifier(Ident::new(placeholder(i)));
            }
            ControlFlow::<()>::Continue(())
        });
        Some(OuterSplit { output: replaced.to_string(), inner: Some(columns.inner) })
    }

    /// What the subquery aggregates.
    fn aggregated(&self) -> String {
        match &self.inner {
            None => self.output.clone(),
            // A marker field makes a row with only NULL columns a non-NULL struct.
            Some(inner) => {
                let fields: Vec<String> = std::iter::once("'row', TRUE".to_owned()).chain(inner.iter().enumerate().map(|(i, c)| format!("'c{i}', {c}"))).collect();
                format!("named_struct({})", fields.join(", "))
            }
        }
    }

    /// The value, given the expression that takes the subquery's one row.
    fn value(&self, row: &str) -> String {
        match &self.inner {
            None => row.to_owned(),
            Some(inner) => {
                let mut applied = self.output.clone();
                // Highest index first, so `__meshwork_inner_1` does not match `…_10`.
                for i in (0..inner.len()).rev() {
                    applied = applied.replace(&placeholder(i), &format!("get_field({row}, 'c{i}')"));
                }
                format!("CASE WHEN {row} IS NULL THEN NULL ELSE {applied} END")
            }
        }
    }
}

/// The operands of a chain of ANDs.
fn conjuncts(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            let mut all = conjuncts(*left);
            all.extend(conjuncts(*right));
            all
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::And, .. }) => conjuncts(*inner),
        other => vec![other],
    }
}

/// Whether `expr` reads only columns qualified by tables outside `local`, at least one, and no
/// subquery.
fn outer_only(expr: &Expr, local: &HashSet<String>) -> bool {
    struct Columns<'a>(&'a HashSet<String>, bool, bool);
    impl Visitor for Columns<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    if self.0.contains(&qualifier(parts)) {
                        self.2 = true;
                        return ControlFlow::Break(());
                    }
                    self.1 = true;
                }
                Expr::Identifier(_) | Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    self.2 = true;
                    return ControlFlow::Break(());
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut columns = Columns(local, false, false);
    let _ = expr.visit(&mut columns);
    columns.1 && !columns.2
}

fn qualifier(parts: &[Ident]) -> String {
    parts[..parts.len() - 1].iter().map(folded).collect::<Vec<_>>().join(".")
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

/// The names a column of `query`'s own FROM can be qualified with; `None` if a FROM item has
/// no name we can tell (its columns could be anything).
fn local_names(query: &Query) -> Option<HashSet<String>> {
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let mut local = HashSet::new();
    for from in &select.from {
        for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)) {
            match factor {
                TableFactor::Table { alias: Some(alias), .. } | TableFactor::Derived { alias: Some(alias), .. } => {
                    local.insert(folded(&alias.name));
                }
                TableFactor::Table { name, alias: None, .. } => {
                    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(folded).collect();
                    for start in 0..parts.len() {
                        local.insert(parts[start..].join("."));
                    }
                }
                _ => return None,
            }
        }
    }
    Some(local)
}

/// Whether `query` reads a column qualified by a table that is not in `local`.
fn mentions_outer(query: &Query, local: &HashSet<String>) -> bool {
    struct Outer<'a>(&'a HashSet<String>, bool);
    impl Visitor for Outer<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr
                && parts.len() >= 2
                && !self.0.contains(&qualifier(parts))
            {
                self.1 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut outer = Outer(local, false);
    let _ = query.body.visit(&mut outer);
    outer.1
}

/// Registers [`SINGLE_ROW`] in `context`.
pub(crate) fn register(context: &SessionContext) {
    context.register_udf(ScalarUDF::new_from_impl(SingleRow { signature: Signature::any(1, Volatility::Immutable) }));
}

/// `__meshwork_single_row(list)`: the list's one element, NULL for none, an error for more.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleRow {
    signature: Signature,
}

impl ScalarUDFImpl for SingleRow {
    fn name(&self) -> &str {
        SINGLE_ROW
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match &args[0] {
            DataType::List(element) | DataType::LargeList(element) => Ok(element.data_type().clone()),
            DataType::Null => Ok(DataType::Null),
            other => exec_err!("{SINGLE_ROW} takes a list, not {other}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let rows = if scalar { 1 } else { args.number_rows };
        let array = args.args[0].to_array(rows)?;
        let empty = ScalarValue::try_from(args.return_field.data_type())?;
        let mut values = Vec::with_capacity(rows);
        for row in 0..rows {
            let items = match array.data_type() {
                _ if array.is_null(row) => None,
                DataType::List(_) => Some(array.as_list::<i32>().value(row)),
                DataType::LargeList(_) => Some(array.as_list::<i64>().value(row)),
                _ => None,
            };
            values.push(match items {
                None => empty.clone(),
                Some(items) if items.is_empty() => empty.clone(),
                Some(items) if items.len() == 1 => ScalarValue::try_from_array(&items, 0)?,
                Some(_) => return exec_err!("more than one row returned by a subquery used as an expression"),
            });
        }
        if scalar {
            Ok(ColumnarValue::Scalar(values.pop().unwrap_or(empty)))
        } else {
            Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
        }
    }
}
