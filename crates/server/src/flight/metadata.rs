//! Catalog answers of the Flight SQL server built from the tables a principal may read: each
//! table's schema with the Flight SQL column metadata clients show (`GetTables`), and primary
//! keys from the product contracts (`GetPrimaryKeys`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_flight::sql::CommandGetPrimaryKeys;
use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use meshwork_core::descriptor::Contract;
use meshwork_query::CATALOG_NAME;

use super::types::{precision_and_scale, sql_type_name};

/// A product the principal may read, as its session's catalog lists it.
pub(super) struct VisibleTable {
    /// The domain: the table's schema.
    pub(super) domain: String,
    /// The product: the table's name.
    pub(super) name: String,
    /// The columns the session reads.
    pub(super) schema: SchemaRef,
    /// The product's contract, when the metadata store has its descriptor.
    pub(super) contract: Option<Contract>,
}

/// The keys Flight SQL defines for a column's metadata in a table schema.
mod key {
    pub(super) const CATALOG_NAME: &str = "ARROW:FLIGHT:SQL:CATALOG_NAME";
    /// What the specification's text names the schema key.
    pub(super) const DB_SCHEMA_NAME: &str = "ARROW:FLIGHT:SQL:DB_SCHEMA_NAME";
    /// What the Go, C++ and Java implementations (ADBC, the JDBC driver) read and write.
    pub(super) const SCHEMA_NAME: &str = "ARROW:FLIGHT:SQL:SCHEMA_NAME";
    pub(super) const TABLE_NAME: &str = "ARROW:FLIGHT:SQL:TABLE_NAME";
    pub(super) const TYPE_NAME: &str = "ARROW:FLIGHT:SQL:TYPE_NAME";
    pub(super) const PRECISION: &str = "ARROW:FLIGHT:SQL:PRECISION";
    pub(super) const SCALE: &str = "ARROW:FLIGHT:SQL:SCALE";
    pub(super) const IS_AUTO_INCREMENT: &str = "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT";
    pub(super) const IS_CASE_SENSITIVE: &str = "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE";
    pub(super) const IS_READ_ONLY: &str = "ARROW:FLIGHT:SQL:IS_READ_ONLY";
    pub(super) const IS_SEARCHABLE: &str = "ARROW:FLIGHT:SQL:IS_SEARCHABLE";
}

/// The schema `GetTables` returns for `table`: its columns, nullable as the contract says (a
/// column the contract declares `nullable: false` is never NULL: publishing refuses it), each
/// with its SQL type name and the other Flight SQL column metadata.
pub(super) fn described_schema(table: &VisibleTable) -> Schema {
    let fields: Vec<Field> = table
        .schema
        .fields()
        .iter()
        .map(|field| {
            let declared = table.contract.as_ref().and_then(|c| c.column(field.name()));
            let nullable = declared.map_or(field.is_nullable(), |c| c.nullable);
            let flag = |yes: bool| if yes { "1" } else { "0" }.to_owned();
            let mut metadata: HashMap<String, String> = field.metadata().clone();
            metadata.insert(key::CATALOG_NAME.into(), CATALOG_NAME.into());
            metadata.insert(key::DB_SCHEMA_NAME.into(), table.domain.clone());
            metadata.insert(key::SCHEMA_NAME.into(), table.domain.clone());
            metadata.insert(key::TABLE_NAME.into(), table.name.clone());
            metadata.insert(key::TYPE_NAME.into(), sql_type_name(field.data_type()));
            if let Some((precision, scale)) = precision_and_scale(field.data_type()) {
                metadata.insert(key::PRECISION.into(), precision.to_string());
                metadata.insert(key::SCALE.into(), scale.to_string());
            }
            metadata.insert(key::IS_AUTO_INCREMENT.into(), flag(false));
            metadata.insert(key::IS_CASE_SENSITIVE.into(), flag(is_text(field.data_type())));
            metadata.insert(key::IS_READ_ONLY.into(), flag(true));
            metadata.insert(key::IS_SEARCHABLE.into(), flag(true));
            Field::new(field.name(), served_type(field.data_type()), nullable).with_metadata(metadata)
        })
        .collect();
    Schema::new(fields)
}

/// The type a query returns a column in: products are scanned as string views, but results
/// leave as plain `Utf8` (see the query layer's `plain_strings`).
fn served_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        other => other.clone(),
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The result schema of `GetPrimaryKeys`, as the Flight SQL specification states it.
pub(super) fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// The primary key columns of the one table `query` names, among `tables` (those the principal
/// may read): no rows for a table that is hidden, missing, or declares no key. The key is named
/// `<table>_pkey`, as PostgreSQL and the Postgres wire catalogs name it.
pub(super) fn primary_keys(query: &CommandGetPrimaryKeys, tables: &[VisibleTable]) -> Result<RecordBatch, ArrowError> {
    let mut rows: Vec<(&VisibleTable, &str, i32)> = Vec::new();
    let wanted = |t: &VisibleTable| {
        query.catalog.as_deref().is_none_or(|c| c == CATALOG_NAME) && query.db_schema.as_deref().is_none_or(|s| s == t.domain) && query.table == t.name
    };
    for table in tables.iter().filter(|t| wanted(t)) {
        let Some(contract) = &table.contract else { continue };
        // A key column the served version does not have (a contract applied but not yet
        // published) is not reported.
        if !contract.primary_key.iter().all(|c| table.schema.field_with_name(c).is_ok()) {
            continue;
        }
        for (i, column) in contract.primary_key.iter().enumerate() {
            rows.push((table, column, i as i32 + 1));
        }
    }
    let text = |f: &dyn Fn(&(&VisibleTable, &str, i32)) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
    let columns: Vec<ArrayRef> = vec![
        text(&|_| CATALOG_NAME.to_owned()),
        text(&|(t, _, _)| t.domain.clone()),
        text(&|(t, _, _)| t.name.clone()),
        text(&|(_, c, _)| (*c).to_owned()),
        text(&|(t, _, _)| format!("{}_pkey", t.name)),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|(_, _, n)| *n))),
    ];
    RecordBatch::try_new(primary_keys_schema(), columns)
}

/// The result schema of `GetImportedKeys`, `GetExportedKeys` and `GetCrossReference`, as the
/// Flight SQL specification states it.
pub(super) fn foreign_keys_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("pk_catalog_name", true),
        text("pk_db_schema_name", true),
        text("pk_table_name", false),
        text("pk_column_name", false),
        text("fk_catalog_name", true),
        text("fk_db_schema_name", true),
        text("fk_table_name", false),
        text("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        text("fk_key_name", true),
        text("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// The answer to every foreign key question: contracts declare none, so there are none to
/// list (JDBC tools ask for them when they open a table).
pub(super) fn no_foreign_keys() -> RecordBatch {
    RecordBatch::new_empty(foreign_keys_schema())
}
