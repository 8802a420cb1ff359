//! The server settings clients read: `pg_settings` rows and `current_setting()`, from one table.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Result, ScalarValue};

use super::rows::{Row, batch};
use crate::postgres::version::{SERVER_VERSION, SERVER_VERSION_NUM};

/// `(name, setting, category, vartype)`: what drivers read (pgJDBC `max_index_keys`,
/// SQLAlchemy `default_table_access_method`, ODBC `standard_conforming_strings`, …).
const SETTINGS: &[(&str, &str, &str, &str)] = &[
    ("server_version", SERVER_VERSION, "Preset Options", "string"),
    ("server_version_num", SERVER_VERSION_NUM, "Preset Options", "integer"),
    ("server_encoding", "UTF8", "Preset Options", "string"),
    ("client_encoding", "UTF8", "Client Connection Defaults / Locale and Formatting", "string"),
    ("standard_conforming_strings", "on", "Version and Platform Compatibility", "bool"),
    ("integer_datetimes", "on", "Preset Options", "bool"),
    ("max_identifier_length", "63", "Preset Options", "integer"),
    ("max_index_keys", "32", "Preset Options", "integer"),
    ("max_function_args", "100", "Preset Options", "integer"),
    ("block_size", "8192", "Preset Options", "integer"),
    ("DateStyle", "ISO, MDY", "Client Connection Defaults / Locale and Formatting", "string"),
    ("IntervalStyle", "postgres", "Client Connection Defaults / Locale and Formatting", "enum"),
    ("TimeZone", "UTC", "Client Connection Defaults / Locale and Formatting", "string"),
    ("extra_float_digits", "1", "Client Connection Defaults / Locale and Formatting", "integer"),
    ("lc_messages", "C", "Client Connection Defaults / Locale and Formatting", "string"),
    ("transaction_isolation", "read committed", "Client Connection Defaults / Statement Behavior", "string"),
    ("default_transaction_isolation", "read committed", "Client Connection Defaults / Statement Behavior", "enum"),
    ("default_transaction_read_only", "on", "Client Connection Defaults / Statement Behavior", "bool"),
    ("transaction_read_only", "on", "Client Connection Defaults / Statement Behavior", "bool"),
    ("default_table_access_method", "heap", "Client Connection Defaults / Statement Behavior", "string"),
    ("search_path", "\"$user\", public", "Client Connection Defaults / Statement Behavior", "string"),
    ("statement_timeout", "0", "Client Connection Defaults / Statement Behavior", "integer"),
    ("bytea_output", "hex", "Client Connection Defaults / Statement Behavior", "enum"),
    ("application_name", "", "Reporting and Logging / What to Log", "string"),
];

/// The value of setting `name` (case-insensitive, as in PostgreSQL).
pub(crate) fn setting(name: &str) -> Option<&'static str> {
    SETTINGS.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name)).map(|(_, v, ..)| *v)
}

/// `pg_settings`, with PostgreSQL's columns.
pub(super) fn pg_settings() -> Result<(SchemaRef, RecordBatch)> {
    let utf8 = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let schema = Arc::new(Schema::new(vec![
        utf8("name", false),
        utf8("setting", false),
        utf8("unit", true),
        utf8("category", false),
        utf8("short_desc", false),
        utf8("extra_desc", true),
        utf8("context", false),
        utf8("vartype", false),
        utf8("source", false),
        utf8("min_val", true),
        utf8("max_val", true),
        Field::new("enumvals", DataType::new_list(DataType::Utf8, true), true),
        utf8("boot_val", true),
        utf8("reset_val", true),
        utf8("sourcefile", true),
        Field::new("sourceline", DataType::Int32, true),
        Field::new("pending_restart", DataType::Boolean, false),
    ]));
    let text = |s: &str| ScalarValue::Utf8(Some(s.to_owned()));
    let rows: Vec<Row> = SETTINGS
        .iter()
        .map(|(name, value, category, vartype)| {
            Row::from([
                ("name", text(name)),
                ("setting", text(value)),
                ("category", text(category)),
                ("context", text(if category.starts_with("Preset") { "internal" } else { "user" })),
                ("vartype", text(vartype)),
                ("source", text("default")),
                ("boot_val", text(value)),
                ("reset_val", text(value)),
            ])
        })
        .collect();
    let data = batch(&schema, &rows)?;
    Ok((schema, data))
}
