//! Result rows on the Postgres wire, encoded a batch and a column at a time: every DataRow of a
//! batch, in the client's text or binary format, written into one buffer.
//!
//! arrow-pg's row encoder (what pgwire-based servers use) decides every value on its own: it
//! matches the Arrow type, downcasts the array, reads the field's format options, parses the
//! column's time zone for every timestamp and the date style's strftime string for every date,
//! formats integers through `fmt`, and gives every row a buffer of its own. Here a batch is
//! encoded column by column: the type, the format, the time zone and the parsed date/time
//! format are resolved once per column and batch, and each column's values are written in one
//! typed loop into a reused buffer (each value with its 4-byte length, -1 for NULL, as a
//! DataRow carries it). The rows are then assembled into one allocation per batch and split
//! off it, so a batch of 8,192 rows costs a handful of allocations instead of 8,192.
//!
//! The bytes are those arrow-pg writes (the same pgwire/postgres-types `ToSqlText`/`ToSql`
//! impls for dates, times, floats and numerics, or a direct equivalent for integers and
//! strings), which `tests` checks type by type and format by format against arrow-pg itself.
//! Columns of any other type (lists, structs, intervals, binary, dictionaries, and any column
//! carrying pgwire type metadata such as `oid` or `"char"`) are encoded by arrow-pg value by
//! value, into the same column buffer.

use std::sync::Arc;

use chrono::Datelike;
use chrono::format::{Item, StrftimeItems};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};
use datafusion_postgres::arrow_pg::encoder::{Encoder, encode_value};
use datafusion_postgres::pgwire;
use pgwire::api::Type;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use pgwire::types::format::date_style::DateStyle;
use pgwire::types::format::float_digits::ExtraFloatDigits;
use postgres_types::{IsNull, ToSql};
use prost::bytes::{BufMut, BytesMut};
use rust_decimal::Decimal;

/// Encodes the batches of one result: keeps its column buffers between batches.
pub(super) struct RowEncoder {
    fields: Arc<Vec<FieldInfo>>,
    /// Per column: every value of the batch, each with its length prefix.
    columns: Vec<Vec<u8>>,
    /// Per column: where each row's value ends in `columns`.
    ends: Vec<Vec<usize>>,
}

impl RowEncoder {
    /// An encoder of rows described by `fields` (their types, formats and format options).
    pub(super) fn new(fields: Arc<Vec<FieldInfo>>) -> RowEncoder {
        let n = fields.len();
        RowEncoder { fields, columns: vec![Vec::new(); n], ends: vec![Vec::new(); n] }
    }

    /// Every row of `batch` as a DataRow, in order.
    pub(super) fn encode(&mut self, batch: &RecordBatch) -> PgWireResult<Vec<DataRow>> {
        let rows = batch.num_rows();
        let schema = batch.schema();
        for (i, field) in self.fields.iter().enumerate() {
            let (bytes, ends) = (&mut self.columns[i], &mut self.ends[i]);
            bytes.clear();
            ends.clear();
            ends.reserve(rows);
            encode_column(batch.column(i), schema.field(i), field, &mut Column { bytes, ends })?;
        }
        let total: usize = self.columns.iter().map(Vec::len).sum();
        let mut buffer = BytesMut::with_capacity(total);
        let mut starts = vec![0usize; self.fields.len()];
        let mut out = Vec::with_capacity(rows);
        let count = i16::try_from(self.fields.len()).map_err(|_| user_error("54011", "a result row has more than 32767 columns".into()))?;
        for row in 0..rows {
            for (c, start) in starts.iter_mut().enumerate() {
                let end = self.ends[c][row];
                buffer.put_slice(&self.columns[c][*start..end]);
                *start = end;
            }
            out.push(DataRow::new(buffer.split(), count));
        }
        Ok(out)
    }
}

impl RowEncoder {
    /// The rows of `batch` as the items of pgwire's row stream: the rows, or the one error.
    pub(super) fn items(&mut self, batch: &RecordBatch) -> Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> {
        match self.encode(batch) {
            Ok(rows) => Box::new(rows.into_iter().map(Ok)),
            Err(err) => Box::new(std::iter::once(Err(err))),
        }
    }
}

/// One column being written: its values' bytes and where each row's value ends.
struct Column<'a> {
    bytes: &'a mut Vec<u8>,
    ends: &'a mut Vec<usize>,
}

impl Column<'_> {
    fn null(&mut self) {
        self.bytes.extend_from_slice(&(-1i32).to_be_bytes());
        self.end();
    }

    fn end(&mut self) {
        self.ends.push(self.bytes.len());
    }

    /// Writes one value: its length, then what `write` puts.
    fn value(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        write(self.bytes);
        let len = (self.bytes.len() - at - 4) as i32;
        self.bytes[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self.end();
    }

    /// Writes one value through a pgwire or postgres-types encoder into a scratch buffer.
    fn encoded(&mut self, scratch: &mut BytesMut, encode: impl FnOnce(&mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>>) -> PgWireResult<()> {
        scratch.clear();
        match encode(scratch).map_err(PgWireError::ApiError)? {
            IsNull::Yes => self.null(),
            IsNull::No => self.value(|bytes| bytes.extend_from_slice(scratch)),
        }
        Ok(())
    }
}

/// Writes every value of `array` into `out`, in the format and type of `field`.
fn encode_column(array: &ArrayRef, arrow: &Field, field: &FieldInfo, out: &mut Column) -> PgWireResult<()> {
    let binary = field.format() == FieldFormat::Binary;
    let options = field.format_options();
    // pgwire type metadata (`oid`, `"char"`, vectors) changes how arrow-pg writes a value.
    if !arrow.metadata().is_empty() {
        return by_value(array, arrow, field, out);
    }
    match (array.data_type(), field.datatype()) {
        (DataType::Boolean, &Type::BOOL) => each(array.as_boolean(), out, |a: &BooleanArray, i, bytes| match binary {
            true => bytes.push(a.value(i) as u8),
            false => bytes.push(if a.value(i) { b't' } else { b'f' }),
        }),
        (DataType::Int16, &Type::INT2) => each(array.as_primitive(), out, |a: &Int16Array, i, bytes| integer(a.value(i), binary, bytes)),
        (DataType::Int32, &Type::INT4) => each(array.as_primitive(), out, |a: &Int32Array, i, bytes| integer(a.value(i), binary, bytes)),
        (DataType::Int64, &Type::INT8) => each(array.as_primitive(), out, |a: &Int64Array, i, bytes| integer(a.value(i), binary, bytes)),
        (DataType::Float32, &Type::FLOAT4) => {
            let digits = ExtraFloatDigits(options.extra_float_digits);
            each(array.as_primitive(), out, |a: &Float32Array, i, bytes| match binary {
                true => bytes.extend_from_slice(&a.value(i).to_bits().to_be_bytes()),
                false => bytes.extend_from_slice(digits.format_f32(a.value(i)).as_bytes()),
            })
        }
        (DataType::Float64, &Type::FLOAT8) => {
            let digits = ExtraFloatDigits(options.extra_float_digits);
            each(array.as_primitive(), out, |a: &Float64Array, i, bytes| match binary {
                true => bytes.extend_from_slice(&a.value(i).to_bits().to_be_bytes()),
                false => bytes.extend_from_slice(digits.format_f64(a.value(i)).as_bytes()),
            })
        }
        // Text and binary are the UTF-8 bytes alike for a scalar text type.
        (DataType::Utf8, &Type::TEXT | &Type::VARCHAR) => each(array.as_string::<i32>(), out, |a: &StringArray, i, bytes| bytes.extend_from_slice(a.value(i).as_bytes())),
        (DataType::LargeUtf8, &Type::TEXT | &Type::VARCHAR) => {
            each(array.as_string::<i64>(), out, |a: &LargeStringArray, i, bytes| bytes.extend_from_slice(a.value(i).as_bytes()))
        }
        (DataType::Utf8View, &Type::TEXT | &Type::VARCHAR) => each(array.as_string_view(), out, |a: &StringViewArray, i, bytes| bytes.extend_from_slice(a.value(i).as_bytes())),
        (DataType::Date32, &Type::DATE) => dates(array.as_primitive(), field, binary, options, out),
        // A zone with TIMESTAMPTZ, none with TIMESTAMP (as arrow-pg maps them); any other pair is
        // arrow-pg's to refuse.
        (DataType::Timestamp(unit, Some(tz)), &Type::TIMESTAMPTZ) => timestamps(array, *unit, Some(tz.as_ref()), field, binary, options, out),
        (DataType::Timestamp(unit, None), &Type::TIMESTAMP) => timestamps(array, *unit, None, field, binary, options, out),
        (DataType::Decimal128(_, scale), &Type::NUMERIC) if *scale >= 0 => decimals(array.as_primitive(), *scale as u32, field, binary, out),
        _ => by_value(array, arrow, field, out),
    }
}

/// Writes each value of a typed array with `write`, NULLs as -1.
fn each<A: Array>(array: &A, out: &mut Column, write: impl Fn(&A, usize, &mut Vec<u8>)) -> PgWireResult<()> {
    if array.null_count() == 0 {
        for i in 0..array.len() {
            out.value(|bytes| write(array, i, bytes));
        }
    } else {
        for i in 0..array.len() {
            if array.is_null(i) {
                out.null();
            } else {
                out.value(|bytes| write(array, i, bytes));
            }
        }
    }
    Ok(())
}

/// An integer: big-endian in binary, decimal digits in text (what `fmt` writes).
fn integer<T: itoa::Integer + ToBeBytes>(value: T, binary: bool, bytes: &mut Vec<u8>) {
    if binary {
        value.put_be(bytes);
    } else {
        bytes.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }
}

/// Big-endian bytes of the integer types the wire carries.
trait ToBeBytes {
    fn put_be(self, bytes: &mut Vec<u8>);
}

impl ToBeBytes for i16 {
    fn put_be(self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&self.to_be_bytes());
    }
}

impl ToBeBytes for i32 {
    fn put_be(self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&self.to_be_bytes());
    }
}

impl ToBeBytes for i64 {
    fn put_be(self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&self.to_be_bytes());
    }
}

/// A strftime format parsed once for a whole column.
fn parsed(format: &str) -> Vec<Item<'static>> {
    StrftimeItems::new(format).parse_to_owned().unwrap_or_default()
}

fn dates(array: &Date32Array, field: &FieldInfo, binary: bool, options: &FormatOptions, out: &mut Column) -> PgWireResult<()> {
    let format = DateStyle::new(&options.date_style).date_format_str().to_owned();
    let iso = format == "%Y-%m-%d";
    let items = parsed(&format);
    let mut scratch = BytesMut::new();
    for i in 0..array.len() {
        // arrow-pg writes a date chrono cannot represent as NULL, and so does this.
        match array.is_valid(i).then(|| array.value_as_date(i)).flatten() {
            None => out.null(),
            Some(date) if binary => out.encoded(&mut scratch, |buf| date.to_sql(field.datatype(), buf))?,
            Some(date) if iso && (0..=9999).contains(&date.year()) => out.value(|bytes| iso_date(date, bytes)),
            Some(date) => out.value(|bytes| formatted(bytes, date.format_with_items(items.iter()))),
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` for a year of four digits: what chrono's `%Y-%m-%d` writes, without going
/// through `fmt` (the ISO date style is PostgreSQL's and every driver's default).
fn iso_date(date: chrono::NaiveDate, bytes: &mut Vec<u8>) {
    let (y, m, d) = (date.year() as u32, date.month(), date.day());
    let digit = |n: u32| b'0' + n as u8;
    bytes.extend_from_slice(&[
        digit(y / 1000),
        digit(y / 100 % 10),
        digit(y / 10 % 10),
        digit(y % 10),
        b'-',
        digit(m / 10),
        digit(m % 10),
        b'-',
        digit(d / 10),
        digit(d % 10),
    ]);
}

/// Writes a chrono formatter's output.
fn formatted(bytes: &mut Vec<u8>, value: impl std::fmt::Display) {
    use std::io::Write;
    // Writing to a Vec fails only when the formatter does; chrono's does for an item the value
    // lacks, which the formats of pgwire's date styles never ask for.
    let _ = write!(bytes, "{value}");
}

fn timestamps(array: &ArrayRef, unit: TimeUnit, tz: Option<&str>, field: &FieldInfo, binary: bool, options: &FormatOptions, out: &mut Column) -> PgWireResult<()> {
    if array.null_count() == array.len() {
        // All NULL: arrow-pg never reads the zone then, so neither does this.
        (0..array.len()).for_each(|_| out.null());
        return Ok(());
    }
    let style = DateStyle::new(&options.date_style);
    let tz: Option<Tz> = tz.map(|tz| tz.parse().map_err(|e: datafusion::arrow::error::ArrowError| PgWireError::ApiError(Box::new(e)))).transpose()?;
    let items = match *field.datatype() {
        Type::TIMESTAMPTZ => parsed(&style.full_tz_format_smolstr()),
        _ => parsed(style.full_format_str()),
    };
    let mut scratch = BytesMut::new();
    macro_rules! each_timestamp {
        ($t:ty) => {{
            let array = array.as_primitive::<$t>();
            for i in 0..array.len() {
                if array.is_null(i) {
                    out.null();
                    continue;
                }
                match tz {
                    Some(tz) => match array.value_as_datetime_with_tz(i, tz).map(|d| d.fixed_offset()) {
                        None => out.null(),
                        Some(at) if binary => out.encoded(&mut scratch, |buf| at.to_sql(field.datatype(), buf))?,
                        Some(at) => out.value(|bytes| formatted(bytes, at.format_with_items(items.iter()))),
                    },
                    None => match array.value_as_datetime(i) {
                        None => out.null(),
                        Some(at) if binary => out.encoded(&mut scratch, |buf| at.to_sql(field.datatype(), buf))?,
                        Some(at) => out.value(|bytes| formatted(bytes, at.format_with_items(items.iter()))),
                    },
                }
            }
        }};
    }
    match unit {
        TimeUnit::Second => each_timestamp!(TimestampSecondType),
        TimeUnit::Millisecond => each_timestamp!(TimestampMillisecondType),
        TimeUnit::Microsecond => each_timestamp!(TimestampMicrosecondType),
        TimeUnit::Nanosecond => each_timestamp!(TimestampNanosecondType),
    }
    Ok(())
}

fn decimals(array: &Decimal128Array, scale: u32, field: &FieldInfo, binary: bool, out: &mut Column) -> PgWireResult<()> {
    let mut scratch = BytesMut::new();
    for i in 0..array.len() {
        if array.is_null(i) {
            out.null();
            continue;
        }
        let raw = array.value(i);
        // Checked as arrow-pg checks it, so a value numeric cannot hold is the same error.
        let value = Decimal::try_from_i128_with_scale(raw, scale).map_err(numeric_error)?;
        match binary {
            true => out.encoded(&mut scratch, |buf| value.to_sql(field.datatype(), buf))?,
            false => out.value(|bytes| decimal_text(raw, scale, bytes)),
        }
    }
    Ok(())
}

/// A decimal's text with all its `scale` digits after the point (`1000.00`, `-0.05`): what
/// rust_decimal's `Display` writes, which pgwire sends, without building the `Decimal`.
fn decimal_text(value: i128, scale: u32, bytes: &mut Vec<u8>) {
    if value < 0 {
        bytes.push(b'-');
    }
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value.unsigned_abs()).as_bytes();
    let scale = scale as usize;
    if scale == 0 {
        bytes.extend_from_slice(digits);
    } else if digits.len() <= scale {
        bytes.extend_from_slice(b"0.");
        bytes.resize(bytes.len() + scale - digits.len(), b'0');
        bytes.extend_from_slice(digits);
    } else {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        bytes.extend_from_slice(whole);
        bytes.push(b'.');
        bytes.extend_from_slice(fraction);
    }
}

/// A decimal that does not fit PostgreSQL's numeric as rust_decimal holds it: arrow-pg's
/// answer, SQLSTATE 22003.
fn numeric_error(e: rust_decimal::Error) -> PgWireError {
    match e {
        rust_decimal::Error::ScaleExceedsMaximumPrecision(scale) => user_error("22003", format!("Scale {scale} exceeds maximum precision for numeric type")),
        e => user_error("22003", format!("Numeric value conversion failed: {e}")),
    }
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

/// Any other column: arrow-pg's encoder, one value at a time, into the column's buffer.
fn by_value(array: &ArrayRef, arrow: &Field, field: &FieldInfo, out: &mut Column) -> PgWireResult<()> {
    let mut one = OneValue { bytes: BytesMut::new() };
    for i in 0..array.len() {
        one.bytes.clear();
        encode_value(&mut one, array, i, arrow, field)?;
        out.bytes.extend_from_slice(&one.bytes);
        out.end();
    }
    Ok(())
}

/// arrow-pg's [`Encoder`] writing one value with its length prefix, as its DataRow encoder does.
struct OneValue {
    bytes: BytesMut,
}

impl Encoder for OneValue {
    type Item = ();

    fn encode_field<T>(&mut self, value: &T, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        let at = self.bytes.len();
        self.bytes.put_i32(-1);
        let is_null = match field.format() {
            FieldFormat::Text => value.to_sql_text(field.datatype(), &mut self.bytes, field.format_options()),
            FieldFormat::Binary => value.to_sql(field.datatype(), &mut self.bytes),
        }
        .map_err(PgWireError::ApiError)?;
        if let IsNull::No = is_null {
            let len = (self.bytes.len() - at - 4) as i32;
            self.bytes[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    fn take_row(&mut self) -> Self::Item {}
}

#[cfg(test)]
mod tests;
