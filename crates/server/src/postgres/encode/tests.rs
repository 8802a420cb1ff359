//! The columnar encoder writes exactly the bytes arrow-pg's row encoder writes, type by type, in
//! text and binary, with NULLs, time zones, date styles and float digits.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, LargeStringArray,
    ListArray, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::types::format::FormatOptions;

use super::RowEncoder;

/// A batch with every type the encoder writes itself and a few it leaves to arrow-pg, each
/// column with a NULL among extreme and ordinary values.
fn batch() -> RecordBatch {
    let oid = Field::new("oid", DataType::Int32, true).with_metadata(HashMap::from([("pg.oid_alias".to_owned(), "oid".to_owned())]));
    let columns: Vec<(Field, ArrayRef)> = vec![
        (Field::new("b", DataType::Boolean, true), Arc::new(BooleanArray::from(vec![Some(true), None, Some(false), Some(true)]))),
        (Field::new("i16", DataType::Int16, true), Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(-1), None, Some(i16::MAX)]))),
        (Field::new("i32", DataType::Int32, true), Arc::new(Int32Array::from(vec![Some(0), Some(i32::MIN), Some(i32::MAX), None]))),
        (Field::new("i64", DataType::Int64, false), Arc::new(Int64Array::from(vec![i64::MIN, -42, 7, i64::MAX]))),
        (Field::new("f32", DataType::Float32, true), Arc::new(Float32Array::from(vec![Some(1.5), Some(f32::NAN), None, Some(-0.1)]))),
        (Field::new("f64", DataType::Float64, true), Arc::new(Float64Array::from(vec![Some(0.1 + 0.2), Some(f64::INFINITY), Some(1e300), None]))),
        (Field::new("s", DataType::Utf8, true), Arc::new(StringArray::from(vec![Some("plain"), Some(""), None, Some("quote \" tab\t ünï")]))),
        (Field::new("ls", DataType::LargeUtf8, true), Arc::new(LargeStringArray::from(vec![None, Some("x"), Some("{a,b}"), Some("null")]))),
        (Field::new("sv", DataType::Utf8View, true), Arc::new(StringViewArray::from(vec![Some("a string longer than twelve bytes"), None, Some("short"), Some("")]))),
        (Field::new("d", DataType::Date32, true), Arc::new(Date32Array::from(vec![Some(0), Some(-719_000), None, Some(20_000)]))),
        // Years of more than four digits and before the common era go through chrono.
        (Field::new("d2", DataType::Date32, true), Arc::new(Date32Array::from(vec![Some(3_000_000), Some(-800_000), Some(-693_000), Some(10_957)]))),
        (
            Field::new("ts", DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None), true),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(0), Some(1_700_000_000_123_456), None, Some(-1_000_000)])),
        ),
        (
            Field::new("tsz", DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, Some("Europe/Paris".into())), true),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), None, Some(0), Some(1_720_000_000_000_000)]).with_timezone("Europe/Paris")),
        ),
        (
            Field::new("tss", DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Second, Some("+05:30".into())), true),
            Arc::new(TimestampSecondArray::from(vec![Some(1), Some(1_700_000_000), None, Some(-86_400)]).with_timezone("+05:30")),
        ),
        (
            Field::new("tsm", DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None), true),
            Arc::new(TimestampMillisecondArray::from(vec![None, Some(1_700_000_000_123), Some(5), Some(-5)])),
        ),
        (
            Field::new("tsn", DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, Some("UTC".into())), true),
            Arc::new(TimestampNanosecondArray::from(vec![Some(1_700_000_000_123_456_789), Some(-1), None, Some(0)]).with_timezone("UTC")),
        ),
        (
            Field::new("dec", DataType::Decimal128(15, 2), true),
            Arc::new(Decimal128Array::from(vec![Some(100_000), Some(-5), None, Some(999_999_999_999_999)]).with_precision_and_scale(15, 2).unwrap()),
        ),
        (
            Field::new("dec0", DataType::Decimal128(38, 0), true),
            Arc::new(Decimal128Array::from(vec![Some(0), Some(12_345_678_901_234_567_890_123), None, Some(-1)]).with_precision_and_scale(38, 0).unwrap()),
        ),
        (
            Field::new("dec4", DataType::Decimal128(20, 4), true),
            Arc::new(Decimal128Array::from(vec![Some(0), Some(7), Some(-123_456_789), Some(10_000)]).with_precision_and_scale(20, 4).unwrap()),
        ),
        (oid, Arc::new(Int32Array::from(vec![Some(16_384), None, Some(1), Some(0)]))),
        (Field::new("u32", DataType::UInt32, true), Arc::new(UInt32Array::from(vec![Some(u32::MAX), Some(0), None, Some(1)]))),
        (
            Field::new("list", DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))), true),
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), None, Some(vec![]), Some(vec![Some(3)])])),
        ),
    ];
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn options(date_style: &str, extra_float_digits: i8) -> Arc<FormatOptions> {
    let mut metadata = HashMap::from([("datestyle".to_owned(), date_style.to_owned())]);
    metadata.insert("extra_float_digits".into(), extra_float_digits.to_string());
    Arc::new(FormatOptions::from_client_metadata(&metadata))
}

#[test]
fn rows_are_byte_for_byte_what_arrow_pg_writes() {
    let batch = batch();
    for format in [Format::UnifiedText, Format::UnifiedBinary] {
        for (style, digits) in [("ISO, YMD", 1), ("SQL, DMY", 0), ("German", 3), ("Postgres, MDY", -2)] {
            let fields = Arc::new(arrow_schema_to_pg_fields(&batch.schema(), &format, Some(options(style, digits))).unwrap());
            let expected: Vec<_> = encode_recordbatch(fields.clone(), batch.clone()).collect::<Result<_, _>>().unwrap();
            let mut encoder = RowEncoder::new(fields);
            // Twice: the buffers kept between batches start clean.
            for _ in 0..2 {
                let rows = encoder.encode(&batch).unwrap();
                assert_eq!(rows.len(), expected.len());
                for (row, (got, want)) in rows.iter().zip(&expected).enumerate() {
                    assert_eq!(got.field_count, want.field_count);
                    assert_eq!(got.data, want.data, "{format:?} {style} {digits}: row {row}");
                }
            }
        }
    }
}

#[test]
fn a_slice_and_an_empty_batch_encode_like_arrow_pg() {
    let batch = batch();
    for format in [Format::UnifiedText, Format::UnifiedBinary] {
        let fields = Arc::new(arrow_schema_to_pg_fields(&batch.schema(), &format, Some(options("ISO, YMD", 1))).unwrap());
        let mut encoder = RowEncoder::new(fields.clone());
        for part in [batch.slice(1, 2), batch.slice(3, 1), batch.slice(0, 0)] {
            let expected: Vec<_> = encode_recordbatch(fields.clone(), part.clone()).collect::<Result<_, _>>().unwrap();
            let rows = encoder.encode(&part).unwrap();
            assert_eq!(rows.iter().map(|r| r.data.clone()).collect::<Vec<_>>(), expected.iter().map(|r| r.data.clone()).collect::<Vec<_>>(), "{format:?}");
        }
    }
}

#[test]
fn a_decimal_beyond_numeric_is_an_error_like_arrow_pg() {
    let array = Decimal128Array::from(vec![Some(i128::MAX / 10)]).with_precision_and_scale(38, 0).unwrap();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![Field::new("d", DataType::Decimal128(38, 0), true)])), vec![Arc::new(array)]).unwrap();
    let fields = Arc::new(arrow_schema_to_pg_fields(&batch.schema(), &Format::UnifiedText, None).unwrap());
    let expected = encode_recordbatch(fields.clone(), batch.clone()).next().unwrap().unwrap_err().to_string();
    let got = RowEncoder::new(fields).encode(&batch).unwrap_err().to_string();
    assert_eq!(got, expected);
}
