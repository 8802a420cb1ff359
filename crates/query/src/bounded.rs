//! Size-checked replacements for the functions that build a value as large as a count the
//! caller gives: `repeat`, `lpad`/`rpad`, `replace`/`regexp_replace` (one argument copied once
//! per match), `array_repeat`, `array_resize`, `array_to_string`, and `range`/`generate_series`
//! as arrays.
//!
//! Their results are built inside one expression evaluation, where the per-query memory pool
//! does not see them: `repeat('x', 1000000000)` allocated gigabytes under a 64 MiB limit and
//! ran past the time limit, which cannot interrupt a synchronous evaluation. Each replacement
//! estimates, from its arguments and before calling DataFusion's own function, how many bytes
//! its result will take, and refuses with a resources error naming the limit when that is more
//! than the query may use. Everything else (types, names, aliases, simplification) is the
//! original function's, so plans and column names do not change.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::execution::registry::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

use crate::engine::QueryLimits;

/// The largest value a function may build when the session has no memory limit (the CLI):
/// more than a gigabyte in one value is a mistake, not a query.
const UNLIMITED_VALUE_BYTES: usize = 1 << 30;

/// How a function's result size follows from its arguments, in bytes, for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Estimate {
    /// `repeat(text, n)`: the text n times.
    Repeat,
    /// `lpad`/`rpad(text, n [, fill])`: n characters.
    Pad,
    /// `replace(text, from, to)`: `to` once per match of `from`.
    Replace,
    /// `regexp_replace(text, pattern, replacement [, flags])`: the replacement once per match,
    /// each group reference in it copying at most the whole text once over all matches.
    RegexpReplace,
    /// `array_repeat(element, n)`: the element n times.
    ArrayRepeat,
    /// `array_resize(array, n [, value])`: n elements.
    ArrayResize,
    /// `array_to_string(array, delimiter [, null_text])`: every element, delimiter and null text.
    ArrayToString,
    /// `range`/`generate_series([start,] stop [, step])`: one 8-byte value per step.
    Range,
}

const BOUNDED: &[(&str, Estimate)] = &[
    ("repeat", Estimate::Repeat),
    ("lpad", Estimate::Pad),
    ("rpad", Estimate::Pad),
    ("replace", Estimate::Replace),
    ("regexp_replace", Estimate::RegexpReplace),
    ("array_repeat", Estimate::ArrayRepeat),
    ("array_resize", Estimate::ArrayResize),
    ("array_to_string", Estimate::ArrayToString),
    ("range", Estimate::Range),
    ("generate_series", Estimate::Range),
];

/// Replaces the functions of [`BOUNDED`] in `state` (under every alias) by size-checked ones
/// that refuse results larger than `limits` allow.
pub(crate) fn install(state: &mut SessionState, limits: &QueryLimits) -> Result<()> {
    let limit = limits.memory_bytes.unwrap_or(UNLIMITED_VALUE_BYTES);
    for (name, estimate) in BOUNDED {
        let inner = state.udf(name)?;
        state.register_udf(Arc::new(ScalarUDF::new_from_impl(Bounded { inner, estimate: *estimate, limit })))?;
    }
    Ok(())
}

/// The limit of `udf` when it is one of the size-checked functions: what a plan sent to another
/// process carries so that the function is checked there too.
pub(crate) fn limit_of(udf: &ScalarUDF) -> Option<usize> {
    (udf.inner().as_ref() as &dyn std::any::Any).downcast_ref::<Bounded>().map(|b| b.limit)
}

/// The size-checked `name` with `limit`, over the function of that name in `registry` (an
/// executor's, which knows only DataFusion's own functions).
pub(crate) fn rebuild(name: &str, limit: usize, registry: &dyn FunctionRegistry) -> Result<Arc<ScalarUDF>> {
    let estimate = BOUNDED
        .iter()
        .find(|(bounded, _)| *bounded == name)
        .map(|(_, estimate)| *estimate)
        .ok_or_else(|| DataFusionError::Internal(format!("`{name}` is not a size-checked function")))?;
    Ok(Arc::new(ScalarUDF::new_from_impl(Bounded { inner: registry.udf(name)?, estimate, limit })))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    estimate: Estimate,
    limit: usize,
}

impl Bounded {
    fn check(&self, args: &[ColumnarValue], number_rows: usize) -> Result<()> {
        let rows = if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) { 1 } else { number_rows };
        let mut total: u128 = 0;
        for row in 0..rows {
            total = total.saturating_add(self.row_bytes(args, row));
            if total > self.limit as u128 {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "`{}` would build a value of more than {} at once, the memory one query may use",
                    self.inner.name(),
                    crate::engine::human_bytes(self.limit)
                )));
            }
        }
        Ok(())
    }

    fn row_bytes(&self, args: &[ColumnarValue], row: usize) -> u128 {
        let arg = |i: usize| args.get(i);
        let len = |i: usize| arg(i).map_or(0, |a| text(a, row).map_or(0, str::len)) as u128;
        let count = |i: usize| arg(i).map_or(0, |a| integer(a, row).max(0)) as u128;
        match self.estimate {
            Estimate::Repeat => len(0).saturating_mul(count(1)),
            Estimate::Pad => {
                let ascii = [0, 2].iter().all(|&i| arg(i).is_none_or(|a| text(a, row).is_none_or(str::is_ascii)));
                count(1).saturating_mul(if ascii { 1 } else { 4 })
            }
            Estimate::Replace => {
                let matches = len(0) / len(1).max(1) + 1;
                len(0).saturating_add(matches.saturating_mul(len(2)))
            }
            Estimate::RegexpReplace => {
                let references = arg(2).and_then(|a| text(a, row)).map_or(0, |r| r.matches(['\\', '$']).count()) as u128;
                let text_len = len(0);
                text_len.saturating_add((text_len + 1).saturating_mul(len(2))).saturating_add(references.saturating_mul(text_len))
            }
            Estimate::ArrayRepeat => arg(0).map_or(0, |a| element_bytes(a, row)).saturating_mul(count(1)),
            Estimate::ArrayResize => count(1).saturating_mul(arg(2).map_or(8, |a| element_bytes(a, row).max(8))),
            Estimate::ArrayToString => {
                // Numbers print in at most 24 characters; text elements are already in memory.
                let elements = arg(0).map_or(0, |a| list_len(a, row)) as u128;
                elements.saturating_mul(24 + len(1) + len(2))
            }
            Estimate::Range => {
                let values: Vec<i128> = args.iter().map(|a| position(a, row)).collect();
                let (start, stop, step) = match values.as_slice() {
                    [stop] => (0, *stop, 1),
                    [start, stop] => (*start, *stop, 1),
                    [start, stop, step, ..] => (*start, *stop, *step),
                    [] => (0, 0, 1),
                };
                if step == 0 || (stop - start).signum() * step.signum() < 0 {
                    return 0;
                }
                (((stop - start) / step).unsigned_abs() + 1).saturating_mul(8)
            }
        }
    }
}

/// A text argument's value at `row`; `None` for null or a non-text argument.
fn text(arg: &ColumnarValue, row: usize) -> Option<&str> {
    match arg {
        ColumnarValue::Scalar(ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v)) => v.as_deref(),
        ColumnarValue::Scalar(_) => None,
        ColumnarValue::Array(array) if array.is_null(row) => None,
        ColumnarValue::Array(array) => match array.data_type() {
            DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
            DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
            DataType::Utf8View => Some(array.as_string_view().value(row)),
            _ => None,
        },
    }
}

fn scalar_at(arg: &ColumnarValue, row: usize) -> Option<ScalarValue> {
    match arg {
        ColumnarValue::Scalar(value) => Some(value.clone()),
        ColumnarValue::Array(array) => ScalarValue::try_from_array(array, row).ok(),
    }
}

/// An integer argument's value at `row`; 0 for null or anything that is not a number.
fn integer(arg: &ColumnarValue, row: usize) -> i64 {
    match scalar_at(arg, row).and_then(|v| v.cast_to(&DataType::Int64).ok()) {
        Some(ScalarValue::Int64(Some(v))) => v,
        _ => 0,
    }
}

/// A `range` argument as a position on one axis: integers as they are, dates and timestamps
/// in nanoseconds, intervals as nanoseconds (a month counted as 30 days).
fn position(arg: &ColumnarValue, row: usize) -> i128 {
    const DAY: i128 = 86_400_000_000_000;
    match scalar_at(arg, row) {
        Some(ScalarValue::Date32(Some(d))) => d as i128 * DAY,
        Some(ScalarValue::Date64(Some(ms))) => ms as i128 * 1_000_000,
        Some(ScalarValue::TimestampSecond(Some(v), _)) => v as i128 * 1_000_000_000,
        Some(ScalarValue::TimestampMillisecond(Some(v), _)) => v as i128 * 1_000_000,
        Some(ScalarValue::TimestampMicrosecond(Some(v), _)) => v as i128 * 1_000,
        Some(ScalarValue::TimestampNanosecond(Some(v), _)) => v as i128,
        Some(ScalarValue::IntervalMonthDayNano(Some(v))) => v.months as i128 * 30 * DAY + v.days as i128 * DAY + v.nanoseconds as i128,
        Some(ScalarValue::IntervalDayTime(Some(v))) => v.days as i128 * DAY + v.milliseconds as i128 * 1_000_000,
        Some(ScalarValue::IntervalYearMonth(Some(v))) => v as i128 * 30 * DAY,
        Some(other) => match other.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(v))) => v as i128,
            _ => 0,
        },
        None => 0,
    }
}

/// Bytes one element takes: fixed-width values their width, text its length, anything else
/// its in-memory size.
fn element_bytes(arg: &ColumnarValue, row: usize) -> u128 {
    let data_type = arg.data_type();
    if let Some(width) = data_type.primitive_width() {
        return width as u128;
    }
    if let Some(value) = text(arg, row) {
        return value.len() as u128;
    }
    match arg {
        ColumnarValue::Scalar(value) => value.size() as u128,
        ColumnarValue::Array(array) => (array.get_array_memory_size() / array.len().max(1)) as u128,
    }
}

/// The number of elements of a list argument at `row`.
fn list_len(arg: &ColumnarValue, row: usize) -> usize {
    let (array, row) = match arg {
        ColumnarValue::Scalar(value) => match value.to_array() {
            Ok(array) => (array, 0),
            Err(_) => return 0,
        },
        ColumnarValue::Array(array) => (array.clone(), row),
    };
    if array.is_null(row) {
        return 0;
    }
    match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().value_length(row) as usize,
        DataType::LargeList(_) => array.as_list::<i64>().value_length(row) as usize,
        DataType::FixedSizeList(_, n) => *n as usize,
        _ => 0,
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}
