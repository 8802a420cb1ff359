//! Column types of a product contract, as written in `product.yaml` (`bigint`, `decimal(12,2)`, …).

use std::fmt;
use std::str::FromStr;

use crate::diagnostic::{did_you_mean, one_of};

/// A logical column type. Every type maps to one Delta Lake primitive type, so a contract is
/// always storable and readable by other Delta readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ColumnType {
    /// `boolean`
    Boolean,
    /// `tinyint`: 8-bit signed integer.
    TinyInt,
    /// `smallint`: 16-bit signed integer.
    SmallInt,
    /// `int`: 32-bit signed integer.
    Int,
    /// `bigint`: 64-bit signed integer.
    BigInt,
    /// `float`: 32-bit IEEE float.
    Float,
    /// `double`: 64-bit IEEE float.
    Double,
    /// `decimal(precision, scale)`: exact decimal, precision 1..=38.
    Decimal {
        /// Total number of digits.
        precision: u8,
        /// Digits after the decimal point.
        scale: i8,
    },
    /// `string`: UTF-8 text.
    String,
    /// `binary`: bytes.
    Binary,
    /// `date`: calendar date.
    Date,
    /// `timestamp`: instant in time, microsecond precision, UTC.
    Timestamp,
}

/// The canonical names, for messages.
pub const TYPE_NAMES: &[&str] =
    &["boolean", "tinyint", "smallint", "int", "bigint", "float", "double", "decimal(p,s)", "string", "binary", "date", "timestamp"];

/// Accepted spellings and the type each means; aliases follow the common SQL dialects.
const SPELLINGS: &[(&str, ColumnType)] = &[
    ("boolean", ColumnType::Boolean),
    ("bool", ColumnType::Boolean),
    ("tinyint", ColumnType::TinyInt),
    ("smallint", ColumnType::SmallInt),
    ("int", ColumnType::Int),
    ("integer", ColumnType::Int),
    ("bigint", ColumnType::BigInt),
    ("long", ColumnType::BigInt),
    ("float", ColumnType::Float),
    ("real", ColumnType::Float),
    ("double", ColumnType::Double),
    ("string", ColumnType::String),
    ("text", ColumnType::String),
    ("varchar", ColumnType::String),
    ("binary", ColumnType::Binary),
    ("date", ColumnType::Date),
    ("timestamp", ColumnType::Timestamp),
];

/// Why a type name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TypeError {
    /// What is wrong.
    pub message: String,
    /// A fix, if one is likely.
    pub hint: Option<String>,
}

impl FromStr for ColumnType {
    type Err = TypeError;

    fn from_str(text: &str) -> Result<Self, TypeError> {
        let normalized = text.trim().to_ascii_lowercase();
        if let Some((_, ty)) = SPELLINGS.iter().find(|(name, _)| *name == normalized) {
            return Ok(*ty);
        }
        if let Some(args) = normalized.strip_prefix("decimal").map(str::trim) {
            return parse_decimal(text, args);
        }
        let suggestion = did_you_mean(&normalized, SPELLINGS.iter().map(|(name, _)| *name));
        Err(TypeError {
            message: format!("unknown type `{text}`, expected one of {}", one_of(TYPE_NAMES.iter().copied())),
            hint: suggestion.map(|s| format!("did you mean `{s}`?")),
        })
    }
}

fn parse_decimal(text: &str, args: &str) -> Result<ColumnType, TypeError> {
    let bad = |why: &str| TypeError {
        message: format!("invalid decimal type `{text}`: {why}"),
        hint: Some("write it as `decimal(precision,scale)` with 1 <= precision <= 38 and 0 <= scale <= precision, e.g. `decimal(12,2)`".into()),
    };
    let inner = args
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| bad("missing `(precision,scale)`"))?;
    let (precision, scale) = inner.split_once(',').ok_or_else(|| bad("expected two numbers"))?;
    let precision: u8 = precision.trim().parse().map_err(|_| bad("precision is not a number"))?;
    let scale: i8 = scale.trim().parse().map_err(|_| bad("scale is not a number"))?;
    if !(1..=38).contains(&precision) {
        return Err(bad("precision out of range"));
    }
    if scale < 0 || scale as u8 > precision {
        return Err(bad("scale out of range"));
    }
    Ok(ColumnType::Decimal { precision, scale })
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::TinyInt => f.write_str("tinyint"),
            ColumnType::SmallInt => f.write_str("smallint"),
            ColumnType::Int => f.write_str("int"),
            ColumnType::BigInt => f.write_str("bigint"),
            ColumnType::Float => f.write_str("float"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::String => f.write_str("string"),
            ColumnType::Binary => f.write_str("binary"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
        }
    }
}

impl TryFrom<String> for ColumnType {
    type Error = TypeError;
    fn try_from(s: String) -> Result<Self, TypeError> {
        s.parse()
    }
}

impl From<ColumnType> for String {
    fn from(ty: ColumnType) -> String {
        ty.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_aliases_and_decimals() {
        assert_eq!("BIGINT".parse::<ColumnType>().unwrap(), ColumnType::BigInt);
        assert_eq!("integer".parse::<ColumnType>().unwrap(), ColumnType::Int);
        assert_eq!("decimal(12, 2)".parse::<ColumnType>().unwrap(), ColumnType::Decimal { precision: 12, scale: 2 });
        assert_eq!(ColumnType::Decimal { precision: 12, scale: 2 }.to_string(), "decimal(12,2)");
        let err = "strng".parse::<ColumnType>().unwrap_err();
        assert!(err.message.starts_with("unknown type `strng`, expected one of `boolean`"));
        assert_eq!(err.hint.as_deref(), Some("did you mean `string`?"));
        assert!("decimal(40,2)".parse::<ColumnType>().is_err());
        assert!("decimal(4,5)".parse::<ColumnType>().is_err());
    }
}
