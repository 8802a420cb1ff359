//! Rewrites of parsed statements for catalog queries, applied after datafusion-pg-catalog's:
//!
//! * `x::regtype` and `x::regclass` of a column print names, as PostgreSQL does (the library
//!   casts them to plain numbers): in a select list or under a cast to text they become
//!   `_mw_regtype_name(x)` / `_mw_regclass_name(x)`.
//! * `x::regtype[]` (an `oidvector` or `oid[]`) becomes `_mw_regtype_names(x)`, the list of names.
//! * `'integer'::regtype`, which the library turns into a lookup of `typname`, resolves SQL's
//!   type names too (`to_regtype`).
//! * The set-returning `_pg_expandarray(a)` (with `(…).x` / `(…).n`) and
//!   `generate_subscripts(a, d)` become `unnest` of a list, one row per element.
//! * `EXISTS (…)` over `pg_enum` is `false`: Meshwork has no enum types, so the subquery has no
//!   rows (ibis asks it inside a `CASE`, where DataFusion cannot plan a correlated `EXISTS`).
//! * `information_schema.table_constraints` and `key_column_usage`, which DataFusion's
//!   `information_schema` lacks, and `columns` with PostgreSQL's type names (`columns.rs`),
//!   read Meshwork's tables in `pg_catalog`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, Query, SelectItem, SetExpr, Statement, TableAlias, TableFactor,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The `information_schema` views Meshwork adds, and the hidden `pg_catalog` table holding each.
pub(super) const INFORMATION_SCHEMA_VIEWS: &[(&str, &str)] = &[
    ("table_constraints", "_mw_information_schema_table_constraints"),
    ("key_column_usage", "_mw_information_schema_key_column_usage"),
    ("columns", "_mw_information_schema_columns"),
];

/// Rewrites one statement.
pub(crate) fn rewrite(mut statement: Statement) -> Statement {
    let _ = statement.visit(&mut CatalogRewrite);
    statement
}

struct CatalogRewrite;

/// An expression parsed from SQL we print; `None` if it does not parse (the statement is then
/// left as it was).
fn parse(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()?.parse_expr().ok()
}

/// The lower-cased last part of a function's name and its plain arguments.
fn call(expr: &Expr) -> Option<(String, Vec<&Expr>)> {
    let Expr::Function(function) = expr else { return None };
    let name = function.name.0.last()?.to_string().trim_matches('"').to_ascii_lowercase();
    let FunctionArguments::List(list) = &function.args else { return Some((name, Vec::new())) };
    let args = list
        .args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((name, args))
}

fn strip_nested(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

/// The oid-alias type a cast names (`regtype`, `regclass`), lower case without `pg_catalog.`.
fn cast_type(data_type: &impl ToString) -> String {
    let name = data_type.to_string().to_ascii_lowercase();
    name.strip_prefix("pg_catalog.").map(str::to_owned).unwrap_or(name)
}

fn is_textual(data_type: &str) -> bool {
    matches!(data_type, "text" | "varchar" | "character varying" | "name" | "string")
}

/// `x::regtype` / `x::regclass` of something other than a literal or parameter (those the
/// library resolves name → OID): the display function and the type it names.
fn display_cast(expr: &Expr) -> Option<(Expr, &'static str)> {
    let Expr::Cast { expr: operand, data_type, .. } = strip_nested(expr) else { return None };
    let function = match cast_type(data_type).as_str() {
        "regtype" => "_mw_regtype_name",
        "regclass" => "_mw_regclass_name",
        _ => return None,
    };
    if matches!(operand.as_ref(), Expr::Value(_)) {
        return None;
    }
    let kind = if function == "_mw_regtype_name" { "regtype" } else { "regclass" };
    Some((parse(&format!("{function}({operand})"))?, kind))
}

/// The column name PostgreSQL gives an unaliased cast: the column's, else the type's.
fn cast_column_name(expr: &Expr, kind: &str) -> String {
    let mut e = strip_nested(expr);
    while let Expr::Cast { expr: inner, .. } = e {
        e = strip_nested(inner);
    }
    match e {
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(parts) => parts.last().map_or_else(|| kind.to_owned(), |p| p.value.clone()),
        _ => kind.to_owned(),
    }
}

/// The library's `'name'::regtype` lookup (`SELECT oid FROM pg_catalog.pg_type WHERE typname =
/// x`): the `x`.
fn regtype_lookup(query: &Query) -> Option<&Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let [table] = select.from.as_slice() else { return None };
    let TableFactor::Table { name, .. } = &table.relation else { return None };
    if name.to_string() != "pg_catalog.pg_type" || !table.joins.is_empty() || select.projection.len() != 1 {
        return None;
    }
    let Some(Expr::BinaryOp { left, op, right }) = &select.selection else { return None };
    (matches!(left.as_ref(), Expr::Identifier(i) if i.value == "typname") && op.to_string() == "=").then_some(right.as_ref())
}

/// Whether `root` followed by `chain` (ending in a subscript) subscripts a column of
/// PostgreSQL's zero-based vector types (`pg_index.indkey`, `indclass`, `indcollation`,
/// `indoption`; `pg_proc.proargtypes`), named plainly (`indkey[0]`) or qualified (`i.indkey[0]`).
fn subscripts_zero_based_vector(root: &Expr, chain: &[datafusion::sql::sqlparser::ast::AccessExpr]) -> bool {
    use datafusion::sql::sqlparser::ast::AccessExpr;
    let name = match (root, &chain[..chain.len() - 1]) {
        (Expr::Identifier(ident), []) => &ident.value,
        (Expr::CompoundIdentifier(parts), []) => match parts.last() {
            Some(ident) => &ident.value,
            None => return false,
        },
        (Expr::Identifier(_), [AccessExpr::Dot(Expr::Identifier(ident))]) => &ident.value,
        _ => return false,
    };
    matches!(name.to_ascii_lowercase().as_str(), "indkey" | "indclass" | "indcollation" | "indoption" | "proargtypes")
}

/// Whether `query` reads `pg_enum` as its relation or through an inner join, so it has no rows.
fn reads_pg_enum(query: &Query) -> bool {
    use datafusion::sql::sqlparser::ast::JoinOperator;
    let is_pg_enum = |factor: &TableFactor| match factor {
        TableFactor::Table { name, .. } => name.0.last().is_some_and(|part| part.to_string().trim_matches('"').eq_ignore_ascii_case("pg_enum")),
        _ => false,
    };
    let SetExpr::Select(select) = query.body.as_ref() else { return false };
    select.from.iter().any(|table| {
        is_pg_enum(&table.relation) || table.joins.iter().any(|join| is_pg_enum(&join.relation) && matches!(join.join_operator, JoinOperator::Join(_) | JoinOperator::Inner(_)))
    })
}

fn is_placeholder(expr: &Expr) -> bool {
    expr.to_string().starts_with('$')
}

impl VisitorMut for CatalogRewrite {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut datafusion::sql::sqlparser::ast::Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            match item {
                SelectItem::UnnamedExpr(expr) => {
                    if let Some((display, kind)) = display_cast(expr) {
                        let alias = Ident::new(cast_column_name(expr, kind));
                        *item = SelectItem::ExprWithAlias { expr: display, alias };
                    }
                }
                SelectItem::ExprWithAlias { expr, .. } => {
                    if let Some((display, _)) = display_cast(expr) {
                        *expr = display;
                    }
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let replacement = match &*expr {
            // `x::regtype::text`: the name, wherever it appears.
            Expr::Cast { expr: inner, data_type, .. } if is_textual(&cast_type(data_type)) => display_cast(inner).map(|(display, _)| display),
            // `x::regtype[]`: an array of type OIDs only ever shown, so its names.
            Expr::Cast { expr: inner, data_type, .. } if cast_type(data_type) == "regtype[]" => parse(&format!("_mw_regtype_names({inner})")),
            Expr::Exists { subquery, negated } if reads_pg_enum(subquery) => parse(if *negated { "true" } else { "false" }),
            Expr::Subquery(query) => regtype_lookup(query).and_then(|name| {
                let name = if is_placeholder(name) { format!("CAST({name} AS TEXT)") } else { name.to_string() };
                parse(&format!("to_regtype({name})"))
            }),
            Expr::CompoundFieldAccess { root, access_chain } => match (call(strip_nested(root)), access_chain.as_slice()) {
                (Some((unnest, args)), [datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field))]) if unnest == "unnest" && args.len() == 1 => {
                    match (call(args[0]), field.value.to_ascii_lowercase().as_str()) {
                        (Some((name, inner)), part @ ("x" | "n")) if name == "_pg_expandarray" && inner.len() == 1 => {
                            parse(&format!("unnest(_pg_expandarray_{part}({}))", inner[0]))
                        }
                        _ => None,
                    }
                }
                // `indkey[i]`: PostgreSQL's `int2vector`/`oidvector` columns are subscripted from
                // 0 (psqlODBC reads `indkey[n - 1]`), DataFusion's lists from 1.
                (_, [.., datafusion::sql::sqlparser::ast::AccessExpr::Subscript(datafusion::sql::sqlparser::ast::Subscript::Index { .. })]) if subscripts_zero_based_vector(root, access_chain) => {
                    let mut shifted = (*expr).clone();
                    let mut done = false;
                    if let Expr::CompoundFieldAccess { access_chain, .. } = &mut shifted
                        && let Some(datafusion::sql::sqlparser::ast::AccessExpr::Subscript(datafusion::sql::sqlparser::ast::Subscript::Index { index })) = access_chain.last_mut()
                        && let Some(plus_one) = parse(&format!("({index}) + 1"))
                    {
                        *index = plus_one;
                        done = true;
                    }
                    done.then_some(shifted)
                }
                // `(composite).field`, which DataFusion's planner refuses on anything but a
                // column: `get_field`.
                (_, [datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field))]) if matches!(root.as_ref(), Expr::Nested(_)) => {
                    parse(&format!("get_field({}, '{}')", strip_nested(root), field.value.to_ascii_lowercase().replace('\'', "''")))
                }
                _ => None,
            },
            Expr::Function(_) => match call(expr) {
                Some((name, args)) if name == "_pg_expandarray" && args.len() == 1 => parse(&format!("unnest({expr})")),
                Some((name, args)) if name == "generate_subscripts" && args.len() == 2 => parse(&format!("unnest(_mw_subscripts({}, {}))", args[0], args[1])),
                Some((name, args)) if matches!(name.as_str(), "to_regtype" | "to_regclass") && args.len() == 1 && is_placeholder(args[0]) => {
                    parse(&format!("{name}(CAST({} AS TEXT))", args[0]))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = factor {
            let parts: Vec<String> = name.0.iter().map(|p| p.to_string().trim_matches('"').to_ascii_lowercase()).collect();
            let view = match parts.as_slice() {
                [schema, view] if schema == "information_schema" => Some(view),
                [catalog, schema, view] if catalog == meshwork_query::CATALOG_NAME && schema == "information_schema" => Some(view),
                _ => None,
            };
            if let Some((view, table)) = view.and_then(|v| INFORMATION_SCHEMA_VIEWS.iter().find(|(name, _)| name == v)) {
                if alias.is_none() {
                    *alias = Some(TableAlias { name: Ident::new(*view), columns: Vec::new(), explicit: true, at: None });
                }
                *name = ObjectName::from(vec![Ident::new("pg_catalog"), Ident::new(*table)]);
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let parser = PostgresCompatibilityParser::new();
        parser.parse(sql).unwrap().into_iter().map(rewrite).map(|s| s.to_string()).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn regtype_and_regclass_casts_print_names() {
        let sql = rewritten("SELECT typname, oid::regtype::text AS regtype, c.oid::regclass FROM pg_type t, pg_class c WHERE t.oid = to_regtype($1)");
        assert!(sql.contains("_mw_regtype_name(oid) AS regtype"), "{sql}");
        assert!(sql.contains("_mw_regclass_name(c.oid) AS oid"), "{sql}");
        assert!(sql.contains("to_regtype(CAST($1 AS TEXT))"), "{sql}");
        let sql = rewritten("SELECT 'integer'::regtype");
        assert!(sql.contains("to_regtype('integer')"), "{sql}");
    }

    #[test]
    fn arrays_of_type_oids_print_names() {
        let sql = rewritten("SELECT COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::TEXT[] FROM pg_catalog.pg_proc");
        assert!(sql.contains("COALESCE(_mw_regtype_names(proallargtypes), _mw_regtype_names(proargtypes))"), "{sql}");
    }

    #[test]
    fn zero_based_vector_subscripts_are_shifted() {
        let sql = rewritten("SELECT i.indkey[k.n - 1], indoption[0], x[1] FROM pg_catalog.pg_index i");
        assert!(sql.contains("i.indkey[(k.n - 1) + 1], indoption[(0) + 1], x[1]"), "{sql}");
    }

    #[test]
    fn set_returning_catalog_functions_become_unnest() {
        let sql = rewritten(
            "SELECT (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, information_schema._pg_expandarray(i.indkey) AS KEYS, generate_subscripts(i.indkey, 1) AS ord FROM pg_catalog.pg_index i",
        );
        assert!(sql.contains("unnest(_pg_expandarray_n(i.indkey)) AS KEY_SEQ"), "{sql}");
        assert!(sql.contains("unnest(_pg_expandarray(i.indkey)) AS KEYS"), "{sql}");
        assert!(sql.contains("unnest(_mw_subscripts(i.indkey, 1)) AS ord"), "{sql}");
        let sql = rewritten("SELECT r.a FROM (SELECT 1 AS a) r WHERE r.a = (r.keys).x");
        assert!(sql.contains("get_field(r.keys, 'x')"), "{sql}");
        let sql = rewritten("SELECT * FROM information_schema.table_constraints WHERE table_name = 'orders'");
        assert!(sql.contains("FROM pg_catalog._mw_information_schema_table_constraints AS table_constraints"), "{sql}");
    }
}
