//! Building the small in-memory catalog tables: rows as column-name → value maps, with a
//! PostgreSQL-like default (0, false, '' or NULL) for every column a row does not name.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, new_empty_array};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{Result, ScalarValue};

/// One row: the values it sets, by column.
pub(super) type Row = HashMap<&'static str, ScalarValue>;

/// The value of a column a row leaves out: zero, false or empty when the column is NOT NULL.
fn default_value(field: &Field) -> Result<ScalarValue> {
    if field.is_nullable() {
        return ScalarValue::try_from(field.data_type());
    }
    Ok(match field.data_type() {
        DataType::Int16 => ScalarValue::Int16(Some(0)),
        DataType::Int32 => ScalarValue::Int32(Some(0)),
        DataType::Int64 => ScalarValue::Int64(Some(0)),
        DataType::Float32 => ScalarValue::Float32(Some(0.0)),
        DataType::Float64 => ScalarValue::Float64(Some(0.0)),
        DataType::Boolean => ScalarValue::Boolean(Some(false)),
        DataType::Utf8 => ScalarValue::Utf8(Some(String::new())),
        other => ScalarValue::try_from(other)?,
    })
}

/// The rows as one batch of `schema`.
pub(super) fn batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef> {
            if rows.is_empty() {
                return Ok(new_empty_array(field.data_type()));
            }
            let values = rows
                .iter()
                .map(|row| match row.get(field.name().as_str()) {
                    Some(value) if !value.is_null() => value.cast_to(field.data_type()),
                    _ => default_value(field),
                })
                .collect::<Result<Vec<_>>>()?;
            ScalarValue::iter_to_array(values)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &RecordBatchOptions::new().with_row_count(Some(rows.len())))?)
}

/// A text value.
pub(super) fn text(s: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(s.into()))
}

/// An `int2[]`/`int2vector` value.
pub(super) fn int2_list(values: &[i16]) -> ScalarValue {
    let items: Vec<ScalarValue> = values.iter().map(|v| ScalarValue::Int16(Some(*v))).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int16))
}

/// An `oid[]`/`oidvector` value.
pub(super) fn oid_list(values: &[i32]) -> ScalarValue {
    let items: Vec<ScalarValue> = values.iter().map(|v| ScalarValue::Int32(Some(*v))).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int32))
}

/// A field holding an OID, marked as PostgreSQL's `oid` the way datafusion-pg-catalog marks its
/// own.
pub(super) fn oid_field(name: &str, nullable: bool) -> Field {
    datafusion_postgres::datafusion_pg_catalog::pg_catalog::oid_field::oid_field(name, "oid", nullable)
}

/// Shared schema handle.
pub(super) fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
}
