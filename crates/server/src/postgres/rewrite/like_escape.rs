//! `LIKE`/`ILIKE … ESCAPE 'c'` with any escape character, as PostgreSQL reads it.
//!
//! DataFusion only runs LIKE with the backslash as escape (another character fails when the
//! plan runs), and SQLAlchemy sends `ESCAPE '/'`. A literal pattern is rewritten here to the
//! same pattern with backslash escapes; any other pattern (a parameter, a concatenation) is
//! wrapped in [`ESCAPE_FUNCTION`], which does the same translation on each value when the
//! query runs. Either way `%` and `_` keep their meaning, escaped ones match themselves, and
//! a backslash that is not the escape character matches a backslash.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Statement, Value, ValueWithSpan, visit_expressions_mut};
use datafusion_postgres::datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule;

/// The function that translates a pattern written with another escape character.
pub(crate) const ESCAPE_FUNCTION: &str = "__meshwork_like_escape";

/// The rewrite rule.
#[derive(Debug)]
pub(crate) struct LikeEscape;

impl SqlStatementRewriteRule for LikeEscape {
    fn rewrite(&self, mut statement: Statement) -> Statement {
        let _ = visit_expressions_mut(&mut statement, |expr| {
            if let Expr::Like { pattern, escape_char, .. } | Expr::ILike { pattern, escape_char, .. } = expr
                && let Some(escape) = escape_char.as_ref().and_then(|v| string(&v.value))
                && let Some(rewritten) = rewrite_pattern(pattern, &escape)
            {
                **pattern = rewritten;
                *escape_char = None;
            }
            ControlFlow::<()>::Continue(())
        });
        statement
    }
}

/// The text of a string literal.
fn string(value: &Value) -> Option<String> {
    match value {
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
        _ => None,
    }
}

/// `pattern` with backslash escapes, for the escape `escape` (empty: no escape character);
/// `None` to leave the SQL as written (an escape string of several characters, refused by
/// the planner as PostgreSQL refuses it).
fn rewrite_pattern(pattern: &Expr, escape: &str) -> Option<Expr> {
    let mut chars = escape.chars();
    let escape = match (chars.next(), chars.next()) {
        (None, _) => None,
        (Some(c), None) => Some(c),
        (Some(_), Some(_)) => return None,
    };
    if let Expr::Value(ValueWithSpan { value, span }) = pattern
        && let Some(text) = string(value)
        && let Ok(translated) = translate(&text, escape)
    {
        return Some(Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(translated), span: *span }));
    }
    let escape = Value::SingleQuotedString(escape.map(String::from).unwrap_or_default());
    super::expression(&format!("{ESCAPE_FUNCTION}({pattern}, {escape})"))
}

/// A pattern whose escape character is `escape` rewritten with the backslash as escape.
fn translate(pattern: &str, escape: Option<char>) -> Result<String, &'static str> {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            let Some(next) = chars.next() else { return Err("LIKE pattern must not end with escape character") };
            if matches!(next, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(next);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Registers [`ESCAPE_FUNCTION`] in `context`.
pub(crate) fn register(context: &SessionContext) {
    context.register_udf(ScalarUDF::new_from_impl(EscapeFunction { signature: Signature::string(2, Volatility::Immutable) }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct EscapeFunction {
    signature: Signature,
}

impl ScalarUDFImpl for EscapeFunction {
    fn name(&self) -> &str {
        ESCAPE_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let arrays = args.args.iter().map(|a| a.to_array(rows).and_then(|a| Ok(cast(&a, &DataType::Utf8)?))).collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
        let (patterns, escapes) = (arrays[0].as_any().downcast_ref::<StringArray>(), arrays[1].as_any().downcast_ref::<StringArray>());
        let (Some(patterns), Some(escapes)) = (patterns, escapes) else { return exec_err!("{ESCAPE_FUNCTION} takes two strings") };
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if patterns.is_null(row) || escapes.is_null(row) {
                out.push(None);
                continue;
            }
            let escape = escapes.value(row);
            let mut chars = escape.chars();
            let escape = match (chars.next(), chars.next()) {
                (None, _) => None,
                (Some(c), None) => Some(c),
                _ => return exec_err!("invalid escape string `{escape}`: an escape string must be empty or one character"),
            };
            match translate(patterns.value(row), escape) {
                Ok(pattern) => out.push(Some(pattern)),
                Err(message) => return exec_err!("{message}"),
            }
        }
        let array: ArrayRef = Arc::new(StringArray::from(out));
        if scalar { Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)) } else { Ok(ColumnarValue::Array(array)) }
    }
}

