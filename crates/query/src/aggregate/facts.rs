//! Facts about one expression of an aggregate-only check: the product column it is, its value
//! when constant, whether a cast can fail, and the expression with a level's columns inlined.

use std::collections::HashMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::logical_expr::Expr;

/// `expr` with the columns of one level replaced by their expressions over the fence.
pub(super) fn inline(expr: &Expr, columns: &HashMap<Column, Expr>) -> Result<Expr> {
    expr.clone()
        .transform(|e| match e {
            Expr::Column(c) => match columns.get(&c).or_else(|| unique_by_name(columns, &c.name)) {
                Some(replacement) => Ok(Transformed::yes(replacement.clone())),
                None => Ok(Transformed::no(Expr::Column(c))),
            },
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

fn unique_by_name<'a>(columns: &'a HashMap<Column, Expr>, name: &str) -> Option<&'a Expr> {
    let mut found = columns.iter().filter(|(c, _)| c.name == name).map(|(_, e)| e);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// The column `expr` is, through casts.
pub(super) fn plain_column(expr: &Expr) -> Option<&Column> {
    match expr {
        Expr::Column(c) => Some(c),
        Expr::Cast(cast) => plain_column(&cast.expr),
        Expr::TryCast(cast) => plain_column(&cast.expr),
        Expr::Alias(alias) => plain_column(&alias.expr),
        _ => None,
    }
}

/// Whether `expr` reads no column (of any level).
pub(super) fn reads_no_column(expr: &Expr) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        found |= matches!(e, Expr::Column(_) | Expr::OuterReferenceColumn(..));
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    !found
}

/// The value of a constant expression: a literal, or a cast of one that succeeds.
pub(super) fn constant(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Cast(cast) => constant(&cast.expr)?.cast_to(cast.field.data_type()).ok(),
        Expr::TryCast(cast) => constant(&cast.expr)?.cast_to(cast.field.data_type()).ok(),
        Expr::Alias(alias) => constant(&alias.expr),
        _ => None,
    }
}

/// A cast of a constant that succeeds while planning: it cannot fail on a row.
pub(super) fn constant_cast(expr: &Expr, to: &DataType) -> bool {
    constant(expr).is_some_and(|value| value.cast_to(to).is_ok())
}

/// Whether a literal divisor could fail a division: zero, or minus one (`i64::MIN / -1`
/// overflows); anything unreadable counts as failing.
pub(super) fn is_zero_or_minus_one(value: &ScalarValue) -> bool {
    value.to_string().parse::<f64>().map_or(true, |v| v == 0.0 || v == -1.0)
}

/// Casts that give a value for every input: to text, and widening numbers and dates.
pub(super) fn infallible_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to || matches!(from, Null) || matches!(to, Utf8 | LargeUtf8 | Utf8View) {
        return true;
    }
    let int_bits = |t: &DataType| match t {
        Int8 => Some(8),
        Int16 => Some(16),
        Int32 => Some(32),
        Int64 => Some(64),
        _ => None,
    };
    match (from, to) {
        (f, t) if int_bits(f).is_some() && int_bits(t).is_some() => int_bits(f) <= int_bits(t),
        (f, Float64) if f.is_numeric() => true,
        (Float32, Float64) => true,
        (Int8 | Int16 | Int32, Float32) => true,
        (f, Decimal128(p, s)) if int_bits(f).is_some() => {
            let digits = match f {
                Int8 => 3,
                Int16 => 5,
                Int32 => 10,
                _ => 19,
            };
            i16::from(*p) - i16::from(*s) >= digits
        }
        (Decimal128(p1, s1), Decimal128(p2, s2)) => s2 >= s1 && i16::from(*p2) - i16::from(*s2) >= i16::from(*p1) - i16::from(*s1),
        // Nanoseconds overflow from 2262 on (a `9999-12-31` "no end" date fails); coarser units
        // reach ±292,000 years.
        (Date32, Date64) => true,
        (Date32, Timestamp(unit, _)) => !matches!(unit, datafusion::arrow::datatypes::TimeUnit::Nanosecond),
        (Boolean, Int8 | Int16 | Int32 | Int64) => true,
        _ => false,
    }
}
