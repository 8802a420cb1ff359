//! Text literals that cannot become the type they meet (`WHERE order_id = 'x'` on a `bigint`)
//! are refused with the position of the column they meet and the fix. DataFusion refuses them
//! at the same point (its optimizer folds the cast and fails), but with Arrow's "Cannot cast
//! string 'x' to value of Int64 type", which names neither the column, nor where, nor what to
//! write instead.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DataFusionError, Diagnostic, Result, ScalarValue, Span};
use datafusion::logical_expr::expr::{Cast, InList};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; it runs after type coercion, which is what puts the casts in place. It
/// does not look below a policy fence: the policy's own expressions are the platform's, and
/// naming them in an error would show a principal what the policy says.
#[derive(Debug)]
pub(crate) struct LiteralRule;

impl AnalyzerRule for LiteralRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut refusal = None;
        plan.apply_with_subqueries(|node| {
            if crate::rewrite::is_fence(node) {
                return Ok(TreeNodeRecursion::Jump);
            }
            node.apply_expressions(|expr| {
                refusal = first_refusal(expr);
                Ok(if refusal.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })
        })?;
        match refusal {
            Some(err) => Err(err),
            None => Ok(plan),
        }
    }

    fn name(&self) -> &str {
        "meshwork_literals"
    }
}

/// The first text literal in `expr` that cannot be cast to the type it meets, as an error.
fn first_refusal(expr: &Expr) -> Option<DataFusionError> {
    let mut refusal = None;
    let _ = expr.apply(|e| {
        // The column a literal is compared with gives the error its position and its name;
        // whether it is an equality decides whether comparing as text is a fix.
        let (column, equality, operands): (Option<&Column>, bool, Vec<&Expr>) = match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                (column_in(left).or_else(|| column_in(right)), matches!(op, Operator::Eq | Operator::NotEq), vec![left, right])
            }
            Expr::InList(InList { expr, list, .. }) => (column_in(expr), true, list.iter().chain([expr.as_ref()]).collect()),
            Expr::Between(Between { expr, low, high, .. }) => (column_in(expr), false, vec![low, high]),
            Expr::Cast(_) => (None, false, vec![e]),
            _ => return Ok(TreeNodeRecursion::Continue),
        };
        for operand in operands {
            if let Some((text, to)) = unconvertible(operand) {
                refusal = Some(refuse(&text, &to, column, equality));
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    refusal
}

/// The column `expr` is, under casts the coercion added.
fn column_in(expr: &Expr) -> Option<&Column> {
    match expr {
        Expr::Column(column) => Some(column),
        Expr::Cast(Cast { expr, .. }) => column_in(expr),
        _ => None,
    }
}

/// `CAST('text' AS to)` where the text is no value of `to`.
fn unconvertible(expr: &Expr) -> Option<(String, DataType)> {
    let Expr::Cast(Cast { expr, field }) = expr else { return None };
    let data_type = field.data_type();
    let text = text_literal(expr)?;
    (!is_value_of(text, data_type)).then(|| (text.to_owned(), data_type.clone()))
}

/// Whether `text` reads as a value of `to` (what a cast of it would do), the one test for
/// literals here and for parameters bound on the Postgres wire.
pub fn is_value_of(text: &str, to: &DataType) -> bool {
    ScalarValue::Utf8(Some(text.to_owned())).cast_to(to).is_ok()
}

/// The text of a string literal, also under casts to text (`'10x'::text`).
fn text_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)) | ScalarValue::LargeUtf8(Some(text)), _) => Some(text),
        Expr::Cast(Cast { expr, field }) if matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => text_literal(expr),
        _ => None,
    }
}

fn refuse(text: &str, to: &DataType, column: Option<&Column>, equality: bool) -> DataFusionError {
    // The type is the one the comparison runs in, which coercion may have widened beyond the
    // column's own (a decimal compared with an integer), so the column is not said to have it.
    let type_name = meshwork_storage::type_name(to);
    let quoted = format!("'{}'", text.replace('\'', "''"));
    let message = match column {
        Some(column) => format!("{quoted} is not a valid {type_name} value to compare with `{}`", column.name),
        None => format!("{quoted} is not a valid {type_name} value"),
    };
    let (kind, example) = value_form(to);
    let mut help = match to {
        t if t.is_numeric() || t == &DataType::Boolean => format!("write {kind} without quotes, e.g. {example}"),
        _ => format!("write {kind}, e.g. '{example}'"),
    };
    // Only equality means the same as text: `<` on text orders '10' before '9'.
    if let (Some(column), true) = (column, equality) {
        help.push_str(&format!(", or compare as text: `CAST({} AS VARCHAR) = {quoted}`", column.name));
    }
    let span: Option<Span> = column.and_then(|c| c.spans().first());
    DataFusionError::Plan(message.clone()).with_diagnostic(Diagnostic::new_error(message, span).with_help(help, None))
}

/// What a value of `to` looks like and an example, for hints: ("a whole number", "42").
/// Every place that tells a user how to write a value uses it (literals here, parameters bound
/// on the Postgres wire).
pub fn value_form(to: &DataType) -> (String, String) {
    let (kind, example) = match to {
        t if t.is_integer() => ("a whole number", "42"),
        t if t.is_numeric() => ("a number", "12.50"),
        DataType::Date32 | DataType::Date64 => ("a date as YYYY-MM-DD", "2026-12-06"),
        DataType::Timestamp(_, _) => ("a timestamp as YYYY-MM-DD HH:MM:SS, with an offset or Z for UTC", "2026-12-06 09:30:00Z"),
        DataType::Boolean => ("true or false", "true"),
        other => return (format!("a {} value", meshwork_storage::type_name(other)), "…".to_owned()),
    };
    (kind.to_owned(), example.to_owned())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{Expr, cast, col, lit};

    use super::first_refusal;

    fn refusal(expr: Expr) -> Option<String> {
        first_refusal(&expr).map(|e| crate::error::sql_message(&e))
    }

    #[test]
    fn text_that_is_no_value_of_the_type_it_meets_is_refused_with_the_fix() {
        let bad = col("order_id").eq(cast(lit("x"), DataType::Int64));
        assert_eq!(
            refusal(bad).unwrap(),
            "'x' is not a valid bigint value to compare with `order_id`; hint: write a whole number without quotes, e.g. 42, or compare as text: `CAST(order_id AS VARCHAR) = 'x'`"
        );
        let date = col("placed").in_list(vec![cast(lit("2026-02-30"), DataType::Date32)], false);
        assert!(refusal(date).unwrap().starts_with("'2026-02-30' is not a valid date value to compare with `placed`; hint: write a date as YYYY-MM-DD, e.g. '2026-12-06'"));
        let nested = col("a").gt(lit(1)).and(col("amount").between(cast(lit("1"), DataType::Float64), cast(lit("ten"), DataType::Float64)));
        let between = refusal(nested).unwrap();
        assert!(between.starts_with("'ten' is not a valid double value to compare with `amount`"), "{between}");
        assert!(!between.contains("as text"), "text order is not number order, so no text comparison is offered: {between}");
        let under_text_cast = col("order_id").eq(cast(cast(lit("O'Brien"), DataType::Utf8), DataType::Int64));
        assert_eq!(
            refusal(under_text_cast).unwrap(),
            "'O''Brien' is not a valid bigint value to compare with `order_id`; hint: write a whole number without quotes, e.g. 42, or compare as text: `CAST(order_id AS VARCHAR) = 'O''Brien'`"
        );
    }

    #[test]
    fn text_that_converts_and_other_casts_pass() {
        assert_eq!(refusal(col("order_id").eq(cast(lit("42"), DataType::Int64))), None);
        assert_eq!(refusal(cast(lit("x"), DataType::Int32)).unwrap(), "'x' is not a valid int value; hint: write a whole number without quotes, e.g. 42");
        assert_eq!(refusal(cast(col("name"), DataType::Int64).eq(lit(3))), None, "a column's values are checked as they are read");
        assert_eq!(refusal(col("name").eq(lit("x"))), None);
    }
}
