//! A boolean compared with an untyped string literal (`indisprimary = 't'`), as PostgreSQL
//! reads it: the literal is a boolean.
//!
//! PostgreSQL gives an untyped literal the type of the other side; DataFusion has no coercion
//! between strings and booleans and refuses the comparison (psqlODBC's primary keys send it).
//! Only the schema knows a column is boolean (`contype = 'f'` is a text comparison), so this
//! is an expression planner, which sees the schema, not a text rewrite. A literal that is not
//! one of PostgreSQL's boolean spellings is left alone, and the comparison fails as before.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, lit};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::BinaryOperator;

#[derive(Debug)]
struct BoolLiteral;

/// Adds the planner to `context`.
pub(crate) fn register(context: &SessionContext) -> datafusion::error::Result<()> {
    context.state_ref().write().register_expr_planner(Arc::new(BoolLiteral))
}

/// The boolean an untyped literal spells, as PostgreSQL's `boolin` reads it (any case, blanks
/// around, any unambiguous prefix of true/false/yes/no, on/off, 1/0).
fn boolean(expr: &Expr) -> Option<bool> {
    let Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)) | ScalarValue::LargeUtf8(Some(text)), _) = expr else { return None };
    let text = text.trim().to_ascii_lowercase();
    let prefix_of = |word: &str| !text.is_empty() && word.starts_with(text.as_str());
    match text.as_str() {
        "on" | "1" => Some(true),
        "of" | "off" | "0" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

impl ExprPlanner for BoolLiteral {
    fn plan_binary_op(&self, mut expr: RawBinaryExpr, schema: &DFSchema) -> datafusion::error::Result<PlannerResult<RawBinaryExpr>> {
        use BinaryOperator::*;
        if !matches!(expr.op, Eq | NotEq | Lt | LtEq | Gt | GtEq) {
            return Ok(PlannerResult::Original(expr));
        }
        let is_boolean = |e: &Expr| matches!(e.get_type(schema), Ok(DataType::Boolean));
        if is_boolean(&expr.left) && let Some(value) = boolean(&expr.right) {
            expr.right = lit(value);
        } else if is_boolean(&expr.right) && let Some(value) = boolean(&expr.left) {
            expr.left = lit(value);
        }
        Ok(PlannerResult::Original(expr))
    }
}
