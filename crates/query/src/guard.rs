//! Turning an access decision into enforceable expressions for one principal: the row filter
//! with `principal.*` helpers bound to values, and one masked expression per masked column.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, TableProviderFilterPushDown, lit};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::{self, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Value, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use meshwork_core::descriptor::Mask;
use meshwork_core::id::ProductId;
use meshwork_core::principal::Principal;
use meshwork_policy::AccessDecision;

use crate::masks::{MaskHash, MaskPartial};

/// What to enforce on one product for the session's principal; expressions use unqualified
/// columns and are bound to each scan's qualifier by the rewrite.
#[derive(Debug, Clone)]
pub(crate) struct ProductGuard {
    pub(crate) filter: Option<Expr>,
    pub(crate) masks: BTreeMap<String, Expr>,
    /// Read only in aggregate: always fenced, so the aggregate-only rule finds every scan.
    pub(crate) aggregate_only: bool,
}

impl ProductGuard {
    /// Nothing to enforce: the scan is left as it is.
    pub(crate) fn is_open(&self) -> bool {
        self.filter.is_none() && self.masks.is_empty() && !self.aggregate_only
    }

    /// Builds the guard for an allowed decision. Any error (a filter that does not parse, a
    /// helper that does not exist, a mask on an unknown column) denies the product.
    pub(crate) fn build(state: &SessionState, schema: &SchemaRef, decision: &AccessDecision, principal: &Principal, salt: &str) -> Result<ProductGuard, String> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
        let mut filter: Option<Expr> = None;
        for sql in &decision.row_filters {
            let expr = sql_expr(state, &df_schema, sql, principal).map_err(|e| format!("row filter `{sql}`: {e}"))?;
            let data_type = expr.get_type(&df_schema).map_err(|e| format!("row filter `{sql}`: {e}"))?;
            if data_type != DataType::Boolean && data_type != DataType::Null {
                return Err(format!("row filter `{sql}` is {data_type}, not a boolean condition"));
            }
            let simplified = evaluable(&expr, &df_schema).map_err(|e| format!("row filter `{sql}` cannot be evaluated: {e}"))?;
            // A filter that spares this principal (`… OR principal.in_domain('sales')` for a
            // member) filters nothing: no fence for it, so the scan keeps its own pushdown. Only
            // a filter without function calls is decided once: one that reads the clock
            // (`current_date <= DATE '2026-03-31'`) must be evaluated by every statement of a
            // long-lived session, not folded when the session opened.
            if simplified == lit(true) && !calls_functions(&expr) {
                continue;
            }
            filter = Some(match filter {
                Some(f) => f.and(expr),
                None => expr,
            });
        }
        let mut masks = BTreeMap::new();
        for (column, mask) in &decision.masks {
            let field = schema.field_with_name(column).map_err(|_| format!("mask on unknown column `{column}`"))?;
            let raw = Expr::Column(Column::new_unqualified(column));
            let string_like = matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
            let masked = match mask {
                Mask::Hash => Expr::ScalarFunction(ScalarFunction::new_udf(MaskHash::udf(salt), vec![raw])),
                Mask::Redact if string_like => lit("***"),
                Mask::Redact | Mask::Null => lit(ScalarValue::try_from(field.data_type()).map_err(|e| e.to_string())?),
                Mask::Partial { keep_first, keep_last } => Expr::ScalarFunction(ScalarFunction::new_udf(MaskPartial::udf(*keep_first, *keep_last), vec![raw])),
                Mask::Sql { expr } => {
                    let masked = sql_expr(state, &df_schema, expr, principal).map_err(|e| format!("mask of `{column}` `{expr}`: {e}"))?;
                    evaluable(&masked, &df_schema).map(drop).map_err(|e| format!("mask of `{column}` `{expr}` cannot be evaluated: {e}"))?;
                    masked
                }
            };
            masks.insert(column.clone(), masked);
        }
        Ok(ProductGuard { filter, masks, aggregate_only: decision.aggregate.is_some() })
    }
}

/// Whether `expr` calls any function (after `principal.*` helpers became literals).
fn calls_functions(expr: &Expr) -> bool {
    expr.exists(|e| Ok(matches!(e, Expr::ScalarFunction(_) | Expr::AggregateFunction(_) | Expr::WindowFunction(_) | Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_))))
        .unwrap_or(true)
}

/// Checks that a policy expression can be evaluated, as the optimizer will: coerced to the
/// columns' types and its constant parts folded (the folded expression is returned). One that cannot (`orders <> 'EU'` on a
/// `bigint`) would fail every statement that reads the product, with an error printing what
/// the policy says; it denies the product instead, the reason going to the audit log.
fn evaluable(expr: &Expr, schema: &DFSchema) -> Result<Expr, String> {
    let context = SimplifyContext::builder().with_schema(Arc::new(schema.clone())).with_current_time().build();
    let simplifier = ExprSimplifier::new(context);
    let coerced = simplifier.coerce(expr.clone(), schema).map_err(|e| crate::error::sql_message(&e))?;
    simplifier.simplify(coerced).map_err(|e| crate::error::sql_message(&e))
}

/// Parses a policy SQL expression, binds its `principal.*` helpers, and plans it against the
/// product's columns.
fn sql_expr(state: &SessionState, schema: &DFSchema, sql: &str, principal: &Principal) -> Result<Expr, String> {
    let mut expr = Parser::new(&GenericDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_expr()).map_err(|e| e.to_string())?;
    bind_principal(&mut expr, principal)?;
    state
        .create_logical_expr_from_sql_expr(ast::ExprWithAlias { expr, alias: None }, schema)
        .map_err(|e| crate::error::sql_message(&e))
}

/// Replaces `principal.attr('k')`, `principal.in_group('g')`, `principal.in_domain('d')`,
/// `principal.is_admin()` and `principal.name` / `principal.name()` with literals. A missing
/// attribute is NULL, so a comparison with it selects nothing.
pub(crate) fn bind_principal(expr: &mut ast::Expr, principal: &Principal) -> Result<(), String> {
    let outcome = visit_expressions_mut(expr, |e| {
        let replacement = match e {
            ast::Expr::Function(f) if is_principal_name(&f.name.0) => {
                let helper = match f.name.0.last() {
                    Some(ObjectNamePart::Identifier(ident)) => ident.value.to_lowercase(),
                    _ => String::new(),
                };
                let args = match &f.args {
                    FunctionArguments::List(list) => list
                        .args
                        .iter()
                        .map(|a| match a {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Value(v))) => match &v.value {
                                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
                                other => Err(format!("`principal.{helper}` takes a quoted text argument, found {other}")),
                            },
                            other => Err(format!("`principal.{helper}` takes a quoted text argument, found {other}")),
                        })
                        .collect::<Result<Vec<_>, _>>(),
                    FunctionArguments::None => Ok(Vec::new()),
                    FunctionArguments::Subquery(_) => Err(format!("`principal.{helper}` takes no subquery")),
                };
                let args = match args {
                    Ok(args) => args,
                    Err(err) => return ControlFlow::Break(err),
                };
                match (helper.as_str(), args.as_slice()) {
                    ("attr", [key]) => Some(principal.attributes.get(key).map(|v| Value::SingleQuotedString(v.clone())).unwrap_or(Value::Null)),
                    ("in_group", [group]) => Some(Value::Boolean(principal.groups.contains(group))),
                    ("in_domain", [domain]) => Some(Value::Boolean(principal.domains.iter().any(|d| d.as_str() == domain))),
                    ("is_admin", []) => Some(Value::Boolean(principal.admin)),
                    ("name", []) => Some(Value::SingleQuotedString(principal.name.clone())),
                    _ => {
                        return ControlFlow::Break(format!(
                            "unknown helper `principal.{helper}` with {} argument(s); use principal.attr('k'), principal.in_group('g'), principal.in_domain('d'), principal.is_admin() or principal.name",
                            args.len()
                        ));
                    }
                }
            }
            ast::Expr::CompoundIdentifier(parts) if parts.len() == 2 && parts[0].value.eq_ignore_ascii_case("principal") => {
                match parts[1].value.to_lowercase().as_str() {
                    "name" => Some(Value::SingleQuotedString(principal.name.clone())),
                    other => return ControlFlow::Break(format!("unknown field `principal.{other}`; use principal.name or principal.attr('{other}')")),
                }
            }
            _ => None,
        };
        if let Some(value) = replacement {
            *e = ast::Expr::Value(value.into());
        }
        ControlFlow::Continue(())
    });
    match outcome {
        ControlFlow::Break(err) => Err(err),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn is_principal_name(parts: &[ObjectNamePart]) -> bool {
    matches!(parts, [ObjectNamePart::Identifier(first), _] if first.value.eq_ignore_ascii_case("principal"))
}

/// A product's table: the Delta provider with the product's identity attached, so the policy
/// rewrite recognises product scans by provider rather than by name. Reports no statistics.
#[derive(Debug)]
pub(crate) struct ProductTable {
    pub(crate) id: ProductId,
    pub(crate) inner: Arc<dyn TableProvider>,
    /// Rows of the publication this table reads, as the catalog records (and shows) it: the
    /// only size the policy fence passes on (see [`crate::rewrite::PolicyFenceExec`]).
    pub(crate) published_rows: u64,
    /// Whether filters the inner table evaluates exactly may leave the plan: only for a virtual
    /// product read without a row filter or mask, whose database then also takes limits and
    /// aggregates. Below a policy fence the only filter that reaches the scan is the policy's,
    /// which stays in the plan (evaluated here again) whatever the table says.
    pub(crate) exact_filters: bool,
}

#[async_trait]
impl TableProvider for ProductTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        None
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }

    async fn scan_with_args<'a>(&self, state: &dyn Session, args: ScanArgs<'a>) -> Result<ScanResult> {
        self.inner.scan_with_args(state, args).await
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Otherwise never `Exact`: the filter node must stay in the plan above the scan.
        Ok(self
            .inner
            .supports_filters_pushdown(filters)?
            .into_iter()
            .map(|p| match p {
                TableProviderFilterPushDown::Exact if !self.exact_filters => TableProviderFilterPushDown::Inexact,
                other => other,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::SessionStateBuilder;
    use meshwork_core::principal::{Principal, PrincipalKind};
    use meshwork_policy::AccessDecision;

    use super::ProductGuard;

    fn guard(filter: &str) -> ProductGuard {
        let state = SessionStateBuilder::new().with_default_features().build();
        let schema = Arc::new(Schema::new(vec![Field::new("region", DataType::Utf8, true)]));
        let mut decision = AccessDecision::deny("sales.orders".parse().unwrap(), "");
        (decision.allowed, decision.reasons, decision.row_filters) = (true, Vec::new(), vec![filter.to_owned()]);
        let auditor = Principal {
            name: "aud".into(),
            kind: PrincipalKind::User,
            groups: ["audit".to_owned()].into(),
            domains: Default::default(),
            attributes: Default::default(),
            admin: false,
        };
        ProductGuard::build(&state, &schema, &decision, &auditor, "salt").unwrap()
    }

    #[test]
    fn a_filter_that_spares_the_principal_is_dropped_unless_it_reads_the_clock() {
        assert!(guard("region = 'EU' OR principal.in_group('audit')").is_open(), "always true for an auditor: no fence");
        assert!(!guard("region = 'EU' OR principal.in_group('sales')").is_open());
        // True today, false after the date: evaluated by each statement, never folded once.
        let dated = guard("region = 'EU' OR (principal.in_group('audit') AND current_date <= DATE '2999-01-01')");
        assert!(dated.filter.is_some(), "a clock-reading filter stays");
    }
}
