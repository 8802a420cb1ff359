//! SQL names of the Arrow types products are served in, for Flight SQL metadata: the column
//! `TYPE_NAME` of `GetTables` (what ADBC shows as `xdbc_type_name` and JDBC as `TYPE_NAME`) and
//! the rows of `GetXdbcTypeInfo` (JDBC's `getTypeInfo`).

use arrow_flight::sql::metadata::{XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{Nullable, Searchable, XdbcDataType, XdbcDatetimeSubcode};
use datafusion::arrow::datatypes::DataType;

/// The SQL name of `data_type`, as a statement would write it in a `CAST`.
pub(super) fn sql_type_name(data_type: &DataType) -> String {
    let name = match data_type {
        DataType::Null => "NULL",
        DataType::Boolean => "BOOLEAN",
        DataType::Int8 => "TINYINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "BIGINT",
        DataType::UInt8 => "TINYINT UNSIGNED",
        DataType::UInt16 => "SMALLINT UNSIGNED",
        DataType::UInt32 => "INTEGER UNSIGNED",
        DataType::UInt64 => "BIGINT UNSIGNED",
        DataType::Float16 | DataType::Float32 => "REAL",
        DataType::Float64 => "DOUBLE",
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => "DECIMAL",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "VARBINARY",
        DataType::Date32 | DataType::Date64 => "DATE",
        DataType::Time32(_) | DataType::Time64(_) => "TIME",
        DataType::Timestamp(_, None) => "TIMESTAMP",
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE",
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL",
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) | DataType::ListView(item) | DataType::LargeListView(item) => {
            return format!("{}[]", sql_type_name(item.data_type()));
        }
        DataType::Struct(_) => "STRUCT",
        DataType::Map(..) => "MAP",
        DataType::Dictionary(_, values) => return sql_type_name(values),
        DataType::RunEndEncoded(_, values) => return sql_type_name(values.data_type()),
        DataType::Union(..) => "UNION",
    };
    name.to_owned()
}

/// Decimal precision and scale, the only types whose size a column's metadata states.
pub(super) fn precision_and_scale(data_type: &DataType) -> Option<(u8, i8)> {
    match data_type {
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => Some((*p, *s)),
        _ => None,
    }
}

/// One row of `GetXdbcTypeInfo` per type a contract can declare, under the names
/// [`sql_type_name`] gives them.
pub(super) fn xdbc_type_info() -> &'static XdbcTypeInfoData {
    static INFO: std::sync::OnceLock<XdbcTypeInfoData> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        let mut builder = XdbcTypeInfoDataBuilder::new();
        let integer = |name: &str, data_type: XdbcDataType, digits: i32| XdbcTypeInfo {
            column_size: Some(digits),
            unsigned_attribute: Some(false),
            num_prec_radix: Some(10),
            ..base(name, data_type)
        };
        builder.append(XdbcTypeInfo { column_size: Some(1), ..base("BOOLEAN", XdbcDataType::XdbcBit) });
        builder.append(integer("TINYINT", XdbcDataType::XdbcTinyint, 3));
        builder.append(integer("SMALLINT", XdbcDataType::XdbcSmallint, 5));
        builder.append(integer("INTEGER", XdbcDataType::XdbcInteger, 10));
        builder.append(integer("BIGINT", XdbcDataType::XdbcBigint, 19));
        builder.append(XdbcTypeInfo { column_size: Some(24), unsigned_attribute: Some(false), num_prec_radix: Some(2), ..base("REAL", XdbcDataType::XdbcReal) });
        builder.append(XdbcTypeInfo { column_size: Some(53), unsigned_attribute: Some(false), num_prec_radix: Some(2), ..base("DOUBLE", XdbcDataType::XdbcDouble) });
        builder.append(XdbcTypeInfo {
            column_size: Some(38),
            create_params: Some(vec!["precision".into(), "scale".into()]),
            unsigned_attribute: Some(false),
            fixed_prec_scale: true,
            minimum_scale: Some(0),
            maximum_scale: Some(38),
            num_prec_radix: Some(10),
            ..base("DECIMAL", XdbcDataType::XdbcDecimal)
        });
        builder.append(XdbcTypeInfo {
            literal_prefix: Some("'".into()),
            literal_suffix: Some("'".into()),
            case_sensitive: true,
            ..base("VARCHAR", XdbcDataType::XdbcVarchar)
        });
        builder.append(XdbcTypeInfo { searchable: Searchable::Basic, ..base("VARBINARY", XdbcDataType::XdbcVarbinary) });
        builder.append(XdbcTypeInfo {
            column_size: Some(10),
            literal_prefix: Some("DATE '".into()),
            literal_suffix: Some("'".into()),
            datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeUnknown),
            ..base("DATE", XdbcDataType::XdbcDate)
        });
        for (name, subcode) in [("TIMESTAMP", XdbcDatetimeSubcode::XdbcSubcodeTimestamp), ("TIMESTAMP WITH TIME ZONE", XdbcDatetimeSubcode::XdbcSubcodeTimestampWithTimezone)] {
            builder.append(XdbcTypeInfo {
                literal_prefix: Some("TIMESTAMP '".into()),
                literal_suffix: Some("'".into()),
                minimum_scale: Some(0),
                maximum_scale: Some(9),
                datetime_subcode: Some(subcode),
                ..base(name, XdbcDataType::XdbcTimestamp)
            });
        }
        builder.build().expect("static type info builds")
    })
}

/// What every type shares: nullable, searchable in `WHERE`, no auto-increment.
fn base(name: &str, data_type: XdbcDataType) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: name.to_owned(),
        data_type,
        nullable: Nullable::NullabilityNullable,
        searchable: Searchable::Full,
        auto_increment: Some(false),
        local_type_name: Some(name.to_owned()),
        sql_data_type: data_type,
        ..Default::default()
    }
}
