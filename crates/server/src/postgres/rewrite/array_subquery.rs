//! `ARRAY(SELECT …)`, PostgreSQL's array constructor from a subquery, as an aggregate.
//!
//! sqlparser reads it as a call of a function `array` with a subquery argument, which
//! DataFusion does not have (psql's `\du` sends it). It becomes a scalar subquery that
//! aggregates the rows with `array_agg`, in the subquery's order:
//! `ARRAY(SELECT e FROM … WHERE … ORDER BY o)` → `(SELECT array_agg(e ORDER BY o) FROM … WHERE …)`,
//! and a subquery with `DISTINCT`, `GROUP BY` or `LIMIT` is kept whole and aggregated from
//! outside: `(SELECT array_agg(a.v ORDER BY a.v) FROM (<subquery>) AS a(v))`. A correlated
//! subquery stays correlated (an aggregated scalar subquery is one DataFusion decorrelates).
//! No rows give an empty array, as in PostgreSQL.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, FunctionArguments, GroupByExpr, OrderByExpr, OrderByKind, Query, SelectItem, SetExpr, Statement, Value, visit_expressions_mut};
use datafusion_postgres::datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule;

/// The rewrite rule.
#[derive(Debug)]
pub(crate) struct ArraySubquery;

impl SqlStatementRewriteRule for ArraySubquery {
    fn rewrite(&self, mut statement: Statement) -> Statement {
        let _ = visit_expressions_mut(&mut statement, |expr| {
            if let Expr::Function(function) = expr
                && function.name.0.len() == 1
                && function.name.to_string().eq_ignore_ascii_case("array")
                && let FunctionArguments::Subquery(query) = &function.args
                && let Some(rewritten) = aggregate(query)
            {
                *expr = rewritten;
            }
            ControlFlow::<()>::Continue(())
        });
        statement
    }
}

/// The one output expression of `query` and its alias, if its body is a plain SELECT of one
/// expression.
fn single_output(query: &Query) -> Option<(&Expr, Option<String>)> {
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] => Some((e, None)),
        [SelectItem::ExprWithAlias { expr, alias }] => Some((expr, Some(alias.value.clone()))),
        _ => None,
    }
}

/// The ORDER BY of `query` with each key that names the output (`ORDER BY 1`, its alias or
/// the expression itself) replaced by `output`; `None` if a key is anything else.
fn order_on_output(query: &Query, output: &Expr, alias: Option<&str>, replacement: &Expr) -> Option<Vec<OrderByExpr>> {
    let Some(order_by) = &query.order_by else { return Some(Vec::new()) };
    let OrderByKind::Expressions(keys) = &order_by.kind else { return None };
    keys.iter()
        .map(|key| {
            let names_output = match &key.expr {
                Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if n == "1"),
                Expr::Identifier(i) => alias.is_some_and(|a| a.eq_ignore_ascii_case(&i.value)) || key.expr == *output,
                other => other == output,
            };
            names_output.then(|| OrderByExpr { expr: replacement.clone(), ..key.clone() })
        })
        .collect()
}

fn order_clause(keys: &[OrderByExpr]) -> String {
    if keys.is_empty() { String::new() } else { format!(" ORDER BY {}", keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
}

/// The aggregate that builds the same array as `ARRAY(query)`.
fn aggregate(query: &Query) -> Option<Expr> {
    let (output, alias) = single_output(query)?;
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let plain = query.with.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(keys, modifiers) if keys.is_empty() && modifiers.is_empty());
    let rewritten = if plain {
        // Aggregate in place: the subquery's rows are the aggregate's input.
        let keys = order_on_output(query, output, alias.as_deref(), output).or_else(|| {
            // Keys on other columns of the same rows aggregate in place too.
            let Some(order_by) = &query.order_by else { return Some(Vec::new()) };
            match &order_by.kind {
                OrderByKind::Expressions(keys) if keys.iter().all(|k| !matches!(&k.expr, Expr::Value(_))) => Some(keys.clone()),
                _ => None,
            }
        })?;
        let mut inner = query.clone();
        inner.order_by = None;
        let SetExpr::Select(select) = inner.body.as_mut() else { return None };
        select.projection = vec![SelectItem::UnnamedExpr(super::expression(&format!("array_agg({output}{})", order_clause(&keys)))?)];
        format!("({inner})")
    } else {
        let value = super::expression("__mw_array.v")?;
        let keys = order_on_output(query, output, alias.as_deref(), &value)?;
        format!("(SELECT array_agg({value}{}) FROM ({query}) AS __mw_array (v))", order_clause(&keys))
    };
    // array_agg of no rows is NULL; PostgreSQL's constructor gives an empty array.
    super::expression(&format!("coalesce({rewritten}, make_array())"))
}
