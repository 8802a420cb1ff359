//! `information_schema.columns` in PostgreSQL's terms for the product tables a session reads:
//! `data_type` `bigint`, `numeric` (with `numeric_precision` and `numeric_scale`), `text`,
//! `timestamp with time zone`, …. DataFusion's own view spells Arrow's types (`Int64`,
//! `Decimal128(12, 2)`), which tools that compare a declared type with the catalog refuse
//! (datacontract-cli's physical type checks). Drivers read the catalog tables themselves from
//! `pg_catalog`, so only products are listed, as the session may read them.

use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Result, ScalarValue};
use meshwork_core::descriptor::ProductDescriptor;

use super::rows::{Row, batch, schema, text};

/// PostgreSQL's `data_type`, and its numeric precision (with radix) and scale, datetime
/// precision, of an Arrow type.
fn pg_type(ty: &DataType) -> (&'static str, Option<(u64, u64)>, Option<u64>, Option<u64>) {
    match ty {
        DataType::Boolean => ("boolean", None, None, None),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ("smallint", Some((16, 2)), Some(0), None),
        DataType::Int32 | DataType::UInt16 => ("integer", Some((32, 2)), Some(0), None),
        DataType::Int64 | DataType::UInt32 => ("bigint", Some((64, 2)), Some(0), None),
        DataType::UInt64 => ("numeric", Some((20, 10)), Some(0), None),
        DataType::Float16 | DataType::Float32 => ("real", Some((24, 2)), None, None),
        DataType::Float64 => ("double precision", Some((53, 2)), None, None),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            ("numeric", Some((u64::from(*p), 10)), Some((*s).max(0) as u64), None)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("text", None, None, None),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => ("bytea", None, None, None),
        DataType::Date32 | DataType::Date64 => ("date", None, None, Some(0)),
        DataType::Timestamp(_, Some(_)) => ("timestamp with time zone", None, None, Some(6)),
        DataType::Timestamp(_, None) => ("timestamp without time zone", None, None, Some(6)),
        DataType::Time32(_) | DataType::Time64(_) => ("time without time zone", None, None, Some(6)),
        DataType::Interval(_) | DataType::Duration(_) => ("interval", None, None, Some(6)),
        DataType::List(_) | DataType::LargeList(_) | DataType::ListView(_) | DataType::FixedSizeList(..) => ("ARRAY", None, None, None),
        _ => ("USER-DEFINED", None, None, None),
    }
}

/// The rows of `information_schema.columns`, with DataFusion's columns for that view.
pub(super) fn information_schema_columns(products: &[(ProductDescriptor, SchemaRef)]) -> Result<(SchemaRef, RecordBatch)> {
    let u64_field = |name: &str| Field::new(name, DataType::UInt64, true);
    let table = schema(vec![
        Field::new("table_catalog", DataType::Utf8, false),
        Field::new("table_schema", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("ordinal_position", DataType::UInt64, false),
        Field::new("column_default", DataType::Utf8, true),
        Field::new("is_nullable", DataType::Utf8, false),
        Field::new("data_type", DataType::Utf8, false),
        u64_field("character_maximum_length"),
        u64_field("character_octet_length"),
        u64_field("numeric_precision"),
        u64_field("numeric_precision_radix"),
        u64_field("numeric_scale"),
        u64_field("datetime_precision"),
        Field::new("interval_type", DataType::Utf8, true),
    ]);
    let number = |v: Option<u64>| ScalarValue::UInt64(v);
    let mut rows: Vec<Row> = Vec::new();
    for (descriptor, arrow) in products {
        for (i, field) in arrow.fields().iter().enumerate() {
            let (data_type, precision, scale, datetime) = pg_type(field.data_type());
            rows.push(Row::from([
                ("table_catalog", text(meshwork_query::CATALOG_NAME)),
                ("table_schema", text(descriptor.domain.as_str())),
                ("table_name", text(descriptor.name.as_str())),
                ("column_name", text(field.name().as_str())),
                ("ordinal_position", ScalarValue::UInt64(Some(i as u64 + 1))),
                ("is_nullable", text(if field.is_nullable() { "YES" } else { "NO" })),
                ("data_type", text(data_type)),
                ("numeric_precision", number(precision.map(|(p, _)| p))),
                ("numeric_precision_radix", number(precision.map(|(_, r)| r))),
                ("numeric_scale", number(scale)),
                ("datetime_precision", number(datetime)),
            ]));
        }
    }
    Ok((table.clone(), batch(&table, &rows)?))
}
