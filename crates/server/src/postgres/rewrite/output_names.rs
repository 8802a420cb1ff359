//! PostgreSQL's output column names, duplicates included.
//!
//! PostgreSQL names an unaliased output column after its column or function (`count`, not
//! `count(*)`; `?column?` for anything else) and allows the same name twice; DataFusion refuses
//! duplicate names, which psqlODBC's `SELECT NULL, nspname, NULL …` (Excel and Power BI list
//! schemas with it) and any `SELECT a.x, b.x` run into. So in every SELECT a name that is
//! already taken is aliased to `__mw_dup<position>__<name>`, which [`wire_name`] turns back into
//! `<name>` where the server builds the columns it sends; and in the outermost SELECT the first
//! of a repeated unaliased expression is aliased to PostgreSQL's name, so clients see the names
//! PostgreSQL would send (`?column?`, `count`).

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{DataType, Expr, Ident, Query, Select, SelectItem, SetExpr, Statement, VisitMut, VisitorMut};
use datafusion_postgres::datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule;

const DUPLICATE: &str = "__mw_dup";

/// The name a client sees for an output column named `name`.
pub(crate) fn wire_name(name: &str) -> &str {
    name.strip_prefix(DUPLICATE)
        .and_then(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()).strip_prefix("__"))
        .unwrap_or(name)
}

/// The rewrite rule.
#[derive(Debug)]
pub(crate) struct OutputNames;

impl SqlStatementRewriteRule for OutputNames {
    fn rewrite(&self, mut statement: Statement) -> Statement {
        if let Statement::Query(query) = &mut statement {
            name_outputs(&mut query.body);
        }
        let _ = statement.visit(&mut Deduplicate);
        statement
    }
}

/// The outermost SELECT (the left side of a set operation) names its columns as PostgreSQL.
fn name_outputs(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => rename(select, true),
        SetExpr::SetOperation { left, .. } => name_outputs(left),
        SetExpr::Query(query) => name_outputs(&mut query.body),
        _ => {}
    }
}

struct Deduplicate;

impl VisitorMut for Deduplicate {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        deduplicate(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn deduplicate(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => rename(select, false),
        SetExpr::SetOperation { left, right, .. } => {
            deduplicate(left);
            deduplicate(right);
        }
        _ => {}
    }
}

/// The PostgreSQL name of a select item; `None` for a wildcard.
fn item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(expr) => Some(pg_name(expr).unwrap_or_else(|| "?column?".to_owned())),
        SelectItem::ExprWithAlias { alias, .. } => Some(folded(alias)),
        _ => None,
    }
}

/// Aliases repeated names in `select`; with `outermost`, the first of a repeated name too, so
/// that all of them reach the client as PostgreSQL names them. (Other expressions keep
/// DataFusion's names, so the statement, which the audit records, stays as written.)
fn rename(select: &mut Select, outermost: bool) {
    // DISTINCT matches ORDER BY keys against the select list; leave its names alone.
    let outermost = outermost && select.distinct.is_none();
    let names: Vec<Option<String>> = select.projection.iter().map(item_name).collect();
    let repeated = |name: &String| names.iter().flatten().filter(|n| *n == name).count() > 1;
    let mut seen = HashSet::new();
    for (position, item) in select.projection.iter_mut().enumerate() {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                let name = pg_name(expr).unwrap_or_else(|| "?column?".to_owned());
                let alias = if seen.contains(&name) {
                    Some(format!("{DUPLICATE}{position}__{name}"))
                } else {
                    (outermost && repeated(&name) && !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))).then(|| name.clone())
                };
                if let Some(alias) = alias {
                    *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::with_quote('"', alias) };
                }
                seen.insert(name);
            }
            SelectItem::ExprWithAlias { alias, .. } => {
                let name = folded(alias);
                if seen.contains(&name) {
                    *alias = Ident::with_quote('"', format!("{DUPLICATE}{position}__{name}"));
                }
                seen.insert(name);
            }
            _ => {}
        }
    }
}

/// An identifier as PostgreSQL stores it: unquoted ones in lower case.
fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

/// PostgreSQL's name for an unaliased output expression (`FigureColname`); `None` for
/// `?column?`.
fn pg_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(folded(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(folded),
        Expr::Function(function) => function.name.0.last().and_then(|part| part.as_ident()).map(folded),
        Expr::Cast { expr, data_type, .. } => pg_name(expr).or_else(|| Some(type_name(data_type))),
        Expr::Nested(inner) => pg_name(inner),
        Expr::Case { .. } => Some("case".to_owned()),
        Expr::Exists { .. } => Some("exists".to_owned()),
        Expr::Array(_) => Some("array".to_owned()),
        Expr::Subquery(query) => match query.body.as_ref() {
            SetExpr::Select(select) => match select.projection.first() {
                Some(SelectItem::UnnamedExpr(e)) => pg_name(e),
                Some(SelectItem::ExprWithAlias { alias, .. }) => Some(folded(alias)),
                _ => None,
            },
            _ => None,
        },
        Expr::Substring { .. } => Some("substring".to_owned()),
        Expr::Position { .. } => Some("position".to_owned()),
        Expr::Trim { .. } => Some("btrim".to_owned()),
        Expr::Extract { .. } => Some("extract".to_owned()),
        Expr::TypedString(typed) => Some(type_name(&typed.data_type)),
        _ => None,
    }
}

/// PostgreSQL's internal name of a type, which names a cast of an unnamed expression.
fn type_name(data_type: &DataType) -> String {
    let text = data_type.to_string().to_lowercase();
    let base = text.split('(').next().unwrap_or(&text).trim();
    let base = base.rsplit('.').next().unwrap_or(base).trim_matches('"');
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "boolean" | "bool" => "bool",
        "real" | "float4" => "float4",
        "double precision" | "double" | "float8" | "float" => "float8",
        "decimal" | "numeric" => "numeric",
        "character varying" | "varchar" => "varchar",
        "character" | "char" | "bpchar" => "bpchar",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        other => other,
    }
    .to_owned()
}
