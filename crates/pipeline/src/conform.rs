//! Checks built data against a product's contract and casts it to the contract's types,
//! naming the exact row, column and value that does not fit.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Array, RecordBatch, StringArray};
use arrow::compute::kernels::cast::parse_string_to_decimal_native;
use arrow::datatypes::{Decimal128Type, DecimalType};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use meshwork_core::descriptor::Contract;

use crate::PipelineError;
use crate::ingest::Provenance;

pub use meshwork_storage::{arrow_type, contract_schema};
use meshwork_storage::type_name;

/// Whether values of `from` may be converted to `to` (checking each value); other pairs are
/// type mismatches the user must resolve with an explicit CAST.
fn convertible(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let integer = |t: &DataType| matches!(t, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64);
    let float = |t: &DataType| matches!(t, Float16 | Float32 | Float64);
    let text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    match (from, to) {
        (Null, _) => true,
        (f, _) if text(f) => true,
        (Dictionary(_, value), t) => convertible(value, t),
        (f, t) if integer(f) => integer(t) || float(t) || matches!(t, Decimal128(_, _)),
        (f, t) if float(f) => float(t) || matches!(t, Decimal128(_, _)),
        (Decimal128(_, s), t) | (Decimal256(_, s), t) => {
            float(t) || matches!(t, Decimal128(_, _)) || (integer(t) && *s == 0)
        }
        (Boolean, Boolean) => true,
        (Date32 | Date64, Date32 | Timestamp(_, _)) => true,
        (Timestamp(_, _), Timestamp(_, _)) => true,
        (Binary | LargeBinary | BinaryView, Binary) => true,
        (f, t) if text(t) => text(f),
        _ => false,
    }
}

fn value_text(array: &ArrayRef, index: usize) -> String {
    ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
        .map(|f| f.value(index).to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Text to `decimal(precision, scale)` as Arrow's cast reads it (a value that does not parse or
/// does not fit becomes NULL), with a fast path for plain `[-+]digits[.digits]` text holding at
/// most `scale` decimals: Arrow's parser allocates and formats a string per value, a tenth of
/// a CSV ingest with a few decimal columns. Anything else (whitespace, rounding, exponents,
/// errors) goes to Arrow's own parser, so the two agree on every input.
fn text_to_decimal128(strings: &StringArray, precision: u8, scale: u32) -> Result<Decimal128Array, arrow::error::ArrowError> {
    let values = strings.iter().map(|text| {
        let text = text?;
        let value = plain_decimal(text.as_bytes(), scale).or_else(|| parse_string_to_decimal_native::<Decimal128Type>(text, scale as usize).ok())?;
        Decimal128Type::is_valid_decimal_precision(value, precision).then_some(value)
    });
    Decimal128Array::from_iter(values).with_precision_and_scale(precision, scale as i8)
}

/// `[-+]digits[.digits]` with at most `scale` decimals and 38 digits, as an integer of `scale`
/// decimals; `None` for anything else.
fn plain_decimal(text: &[u8], scale: u32) -> Option<i128> {
    let (negative, digits) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mut value, mut count, mut decimals) = (0i128, 0u32, None::<u32>);
    for &byte in digits {
        match byte {
            b'0'..=b'9' => {
                if count == 38 {
                    return None;
                }
                value = value * 10 + i128::from(byte - b'0');
                count += 1;
                if let Some(d) = decimals.as_mut() {
                    *d += 1;
                }
            }
            b'.' if decimals.is_none() => decimals = Some(0),
            _ => return None,
        }
    }
    let decimals = decimals.unwrap_or(0);
    if count == 0 || decimals > scale {
        return None;
    }
    let value = value.checked_mul(10i128.checked_pow(scale - decimals)?)?;
    Some(if negative { -value } else { value })
}

/// Names the rows of a block checked together, 1-based like [`Provenance::locate`].
fn checked_rows(first_row: usize, len: usize) -> String {
    format!("rows {}–{}", first_row + 1, first_row + len)
}

/// Converts one column to a contract type, reporting the first value that does not fit.
fn convert_column(
    source: &ArrayRef,
    column: &meshwork_core::descriptor::Column,
    provenance: &Provenance,
    first_row: usize,
    locate: &dyn Fn(usize) -> String,
) -> Result<ArrayRef, PipelineError> {
    let target = arrow_type(column.data_type);
    if source.data_type() == &target {
        return Ok(source.clone());
    }
    if !convertible(source.data_type(), &target) {
        return Err(PipelineError::TypeMismatch {
            source_name: provenance.describe(),
            column: column.name.clone(),
            found: type_name(source.data_type()),
            expected: column.data_type.to_string(),
        });
    }
    let cast = match (source.data_type(), &target) {
        (DataType::Utf8, DataType::Decimal128(precision, scale)) if *scale >= 0 => {
            let strings = source.as_any().downcast_ref::<StringArray>().expect("utf8 arrays are string arrays");
            Arc::new(text_to_decimal128(strings, *precision, *scale as u32).map_err(|e| PipelineError::Internal(format!("cast of `{}`: {e}", column.name)))?) as ArrayRef
        }
        _ => {
            let options = CastOptions { safe: true, ..Default::default() };
            cast_with_options(source, &target, &options).map_err(|e| PipelineError::Internal(format!("cast of `{}`: {e}", column.name)))?
        }
    };
    // A value that was present but became NULL did not fit the type.
    let bad: Vec<usize> = (0..source.len()).filter(|&i| source.is_valid(i) && cast.is_null(i)).collect();
    if let Some(&first) = bad.first() {
        return Err(PipelineError::BadValue {
            location: locate(first),
            column: column.name.clone(),
            value: value_text(source, first),
            expected: column.data_type.to_string(),
            more: bad.len() - 1,
            checked: checked_rows(first_row, source.len()),
        });
    }
    Ok(cast)
}

/// Reads the text columns of a source file that share a name with a contract column as that
/// column's type, so that a bad value is reported with its file and row even when a transform
/// sits between the file and the contract. Other columns are left as they are.
pub fn type_like_contract(batch: &RecordBatch, contract: &Contract, provenance: &Provenance) -> Result<RecordBatch, PipelineError> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, source) in schema.fields().iter().zip(batch.columns()) {
        match contract.column(field.name()) {
            Some(column) if field.data_type() == &DataType::Utf8 => {
                let converted = convert_column(source, column, provenance, 0, &|i| provenance.locate_in(batch, 0, i))?;
                fields.push(Field::new(field.name(), converted.data_type().clone(), true));
                columns.push(converted);
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(source.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| PipelineError::Internal(e.to_string()))
}

/// Casts `batch` to the contract: every contract column must be present and convertible, every
/// value must fit its type, non-nullable columns must have no NULL, and no other column may
/// appear. `first_row` is the 0-based index of the batch's first row within its source.
pub fn conform(batch: &RecordBatch, contract: &Contract, provenance: &Provenance, first_row: usize) -> Result<RecordBatch, PipelineError> {
    let schema = batch.schema();
    for field in schema.fields() {
        if contract.column(field.name()).is_none() {
            return Err(PipelineError::ExtraColumn {
                source_name: provenance.describe(),
                column: field.name().clone(),
                contract: contract.columns.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", "),
            });
        }
    }
    let mut columns = Vec::with_capacity(contract.columns.len());
    for column in &contract.columns {
        let Ok(index) = schema.index_of(&column.name) else {
            return Err(PipelineError::MissingColumn {
                source_name: provenance.describe(),
                column: column.name.clone(),
                found: schema.fields().iter().map(|f| format!("`{}`", f.name())).collect::<Vec<_>>().join(", "),
            });
        };
        let locate = |i| provenance.locate_in(batch, first_row, i);
        let converted = convert_column(batch.column(index), column, provenance, first_row, &locate)?;
        if !column.nullable && converted.null_count() > 0 {
            let first = (0..converted.len()).find(|&i| converted.is_null(i)).unwrap_or(0);
            return Err(PipelineError::NullValue {
                location: locate(first),
                column: column.name.clone(),
                count: converted.null_count(),
                checked: checked_rows(first_row, converted.len()),
            });
        }
        columns.push(converted);
    }
    RecordBatch::try_new(contract_schema(contract), columns).map_err(|e| PipelineError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path and Arrow's cast agree on every kind of text, valid or not.
    #[test]
    fn text_to_decimal_agrees_with_arrows_cast() {
        let texts = [
            "0", "1", "-1", "+7", "12.5", "12.50", "-0.07", ".5", "-.5", "5.", "0012.30", "99999999.99", "100000000.00", "-99999999.99", "1.005", "1.004", "-1.005",
            " 3.2", "3.2 ", "1e3", "", "-", "+", ".", "1.2.3", "abc", "12a", "99999999999999999999999999999999999999", "123456789012345678901234567890123456789", "--1",
        ];
        let strings: StringArray = texts.iter().map(|t| Some(*t)).chain([None]).collect();
        for (precision, scale) in [(10u8, 2i8), (15, 2), (38, 0), (38, 10), (5, 0), (12, 4)] {
            let ours = text_to_decimal128(&strings, precision, scale as u32).unwrap();
            let options = CastOptions { safe: true, ..Default::default() };
            let arrow = cast_with_options(&strings, &DataType::Decimal128(precision, scale), &options).unwrap();
            let arrow = arrow.as_any().downcast_ref::<Decimal128Array>().unwrap();
            for (i, text) in texts.iter().enumerate() {
                assert_eq!(ours.is_null(i), arrow.is_null(i), "`{text}` as decimal({precision},{scale})");
                if !ours.is_null(i) {
                    assert_eq!(ours.value(i), arrow.value(i), "`{text}` as decimal({precision},{scale})");
                }
            }
            assert!(ours.is_null(texts.len()));
            assert_eq!(ours.data_type(), arrow.data_type());
        }
    }
}
