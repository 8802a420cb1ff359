//! Column types in ODCS terms: a logical type with its options, and the physical type the
//! product has on Meshwork's Postgres output port; and the way back, for contracts Meshwork
//! did not write.

use crate::column_type::ColumnType;
use crate::standards::yaml::Yaml;

/// ODCS `logicalType`, `logicalTypeOptions` and `physicalType` of a Meshwork column type.
pub fn to_odcs(ty: ColumnType) -> (&'static str, Option<Yaml>, String) {
    let format = |f: &str| Some(Yaml::map().with("format", f));
    match ty {
        ColumnType::Boolean => ("boolean", None, "boolean".into()),
        // PostgreSQL has no one-byte integer: the port serves it as smallint, and the logical
        // format keeps the difference.
        ColumnType::TinyInt => ("integer", format("i8"), "smallint".into()),
        ColumnType::SmallInt => ("integer", format("i16"), "smallint".into()),
        ColumnType::Int => ("integer", format("i32"), "integer".into()),
        ColumnType::BigInt => ("integer", format("i64"), "bigint".into()),
        ColumnType::Float => ("number", format("f32"), "real".into()),
        ColumnType::Double => ("number", format("f64"), "double precision".into()),
        ColumnType::Decimal { precision, scale } => ("number", None, format!("numeric({precision},{scale})")),
        ColumnType::String => ("string", None, "text".into()),
        ColumnType::Binary => ("string", format("binary"), "bytea".into()),
        ColumnType::Date => ("date", None, "date".into()),
        ColumnType::Timestamp => ("timestamp", Some(Yaml::map().with("timezone", true)), "timestamp with time zone".into()),
    }
}

/// A PostgreSQL or Meshwork type name read as a Meshwork type.
fn physical(text: &str) -> Option<ColumnType> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.as_str();
    let direct = match t {
        "bool" | "boolean" => Some(ColumnType::Boolean),
        "int2" | "smallint" => Some(ColumnType::SmallInt),
        "int4" | "int" | "integer" => Some(ColumnType::Int),
        "int8" | "bigint" | "long" => Some(ColumnType::BigInt),
        "float4" | "real" | "float" => Some(ColumnType::Float),
        "float8" | "double" | "double precision" => Some(ColumnType::Double),
        "text" | "string" | "varchar" | "character varying" => Some(ColumnType::String),
        "bytea" | "binary" => Some(ColumnType::Binary),
        "date" => Some(ColumnType::Date),
        "timestamp" | "timestamptz" | "timestamp with time zone" => Some(ColumnType::Timestamp),
        "tinyint" => Some(ColumnType::TinyInt),
        _ => None,
    };
    if direct.is_some() {
        return direct;
    }
    if let Some(args) = t.strip_prefix("numeric").or_else(|| t.strip_prefix("decimal")) {
        return format!("decimal{args}").parse().ok();
    }
    if t.starts_with("varchar(") || t.starts_with("character varying(") || t.starts_with("char(") {
        return Some(ColumnType::String);
    }
    None
}

/// The Meshwork type of an ODCS property, and a note when it is only an approximation.
pub fn from_odcs(logical: Option<&str>, format: Option<&str>, physical_type: Option<&str>) -> Result<(ColumnType, Option<String>), String> {
    let from_physical = physical_type.and_then(physical);
    let from_logical = match (logical, format) {
        (Some("integer"), Some("i8")) => Some(ColumnType::TinyInt),
        (Some("integer"), Some("i16" | "u8")) => Some(ColumnType::SmallInt),
        (Some("integer"), Some("i32" | "u16")) => Some(ColumnType::Int),
        (Some("integer"), _) => Some(ColumnType::BigInt),
        (Some("number"), Some("f32")) => Some(ColumnType::Float),
        (Some("number"), _) => Some(ColumnType::Double),
        (Some("string"), Some("binary" | "byte")) => Some(ColumnType::Binary),
        (Some("string"), _) => Some(ColumnType::String),
        (Some("boolean"), _) => Some(ColumnType::Boolean),
        (Some("date"), _) => Some(ColumnType::Date),
        (Some("timestamp"), _) => Some(ColumnType::Timestamp),
        _ => None,
    };
    match (from_physical, from_logical) {
        // The port serves tinyint as smallint; the logical format tells them apart.
        (Some(ColumnType::SmallInt), Some(ColumnType::TinyInt)) => Ok((ColumnType::TinyInt, None)),
        (Some(ty), _) => Ok((ty, None)),
        (None, Some(ty)) => {
            let note = physical_type.map(|p| format!("physical type `{p}` is not a Meshwork type; read as `{ty}` from the logical type"));
            Ok((ty, note))
        }
        (None, None) => match logical {
            Some(l @ ("time" | "object" | "array")) => Ok((ColumnType::String, Some(format!("logical type `{l}` has no Meshwork column type; read as `string`")))),
            Some(other) => Err(format!("unknown logical type `{other}`")),
            None => Err("no logical or physical type".into()),
        },
    }
}
