//! Primary keys from product contracts, as PostgreSQL clients look for them: an index row in
//! `pg_index` (and `pg_class`), a `p` constraint in `pg_constraint`, and rows in
//! `information_schema.table_constraints` and `key_column_usage`; plus the descriptions of
//! products and columns for `pg_description`. Built only from products the principal may read.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::Int32Array;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Result, ScalarValue};
use meshwork_core::descriptor::ProductDescriptor;

use super::relations::{Relations, int32_column, quote_ident};
use super::rows::{Row, batch, int2_list, oid_field, oid_list, schema, text};

/// A product's primary key, placed in the session's `pg_class`.
#[derive(Debug, Clone)]
pub(super) struct PrimaryKey {
    pub(super) schema: String,
    pub(super) table: String,
    pub(super) table_oid: i32,
    pub(super) namespace_oid: i32,
    /// The constraint's and its index's name, `<table>_pkey` as PostgreSQL names it.
    pub(super) name: String,
    pub(super) index_oid: i32,
    pub(super) constraint_oid: i32,
    /// Key columns in key order, with their `attnum` (as `pg_attribute` numbers them).
    pub(super) columns: Vec<(String, i16)>,
}

impl PrimaryKey {
    /// `pg_get_constraintdef`: `PRIMARY KEY (a, b)`.
    pub(super) fn constraint_def(&self) -> String {
        format!("PRIMARY KEY ({})", self.column_list())
    }

    /// `pg_get_indexdef`: the statement that would create the index.
    pub(super) fn index_def(&self) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote_ident(&self.name),
            quote_ident(&self.schema),
            quote_ident(&self.table),
            self.column_list()
        )
    }

    fn column_list(&self) -> String {
        self.columns.iter().map(|(c, _)| quote_ident(c)).collect::<Vec<_>>().join(", ")
    }
}

/// A stable OID for a synthetic catalog object, away from the OIDs datafusion-pg-catalog hands
/// out (16384 upwards) and from PostgreSQL's own: FNV-1a of its name into a billion-wide range.
fn synthetic_oid(base: i32, name: &str) -> i32 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    base + (hash % 500_000_000) as i32
}

/// The primary key of each readable product that declares one. `attnum` is the column's
/// position in the session's table (as `pg_attribute` numbers it); a key column the session's
/// table lacks leaves the product out.
pub(super) fn primary_keys(relations: &Relations, products: &[(ProductDescriptor, SchemaRef)]) -> Vec<PrimaryKey> {
    let mut keys = Vec::new();
    for (product, table) in products {
        if product.contract.primary_key.is_empty() {
            continue;
        }
        let (schema, name) = (product.domain.as_str().to_owned(), product.name.as_str().to_owned());
        let (Some(table_oid), Some(namespace_oid)) = (relations.oid(&schema, &name), relations.namespace_oid(&schema)) else { continue };
        let columns: Option<Vec<(String, i16)>> =
            product.contract.primary_key.iter().map(|c| table.index_of(c).ok().map(|i| (c.clone(), i as i16 + 1))).collect();
        let Some(columns) = columns else { continue };
        let qualified = format!("{schema}.{name}");
        keys.push(PrimaryKey {
            name: format!("{name}_pkey"),
            index_oid: synthetic_oid(1_000_000_000, &qualified),
            constraint_oid: synthetic_oid(1_500_000_000, &qualified),
            schema,
            table: name,
            table_oid,
            namespace_oid,
            columns,
        });
    }
    keys
}

fn int16(v: usize) -> ScalarValue {
    ScalarValue::Int16(Some(v as i16))
}

fn yes(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

fn oid(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}

/// `pg_index`: one row per primary key. `indkey`, `indclass`, `indoption` and `indcollation`
/// are arrays, so `unnest(indkey)` and `array_length` work (subscripts start at 1, not at 0 as
/// in PostgreSQL's int2vector).
pub(super) fn pg_index(keys: &[PrimaryKey]) -> Result<(SchemaRef, RecordBatch)> {
    let bool_field = |name: &str| Field::new(name, DataType::Boolean, false);
    let schema = schema(vec![
        oid_field("indexrelid", false),
        oid_field("indrelid", false),
        Field::new("indnatts", DataType::Int16, false),
        Field::new("indnkeyatts", DataType::Int16, false),
        bool_field("indisunique"),
        bool_field("indnullsnotdistinct"),
        bool_field("indisprimary"),
        bool_field("indisexclusion"),
        bool_field("indimmediate"),
        bool_field("indisclustered"),
        bool_field("indisvalid"),
        bool_field("indcheckxmin"),
        bool_field("indisready"),
        bool_field("indislive"),
        bool_field("indisreplident"),
        Field::new("indkey", DataType::new_list(DataType::Int16, true), false),
        Field::new("indcollation", DataType::new_list(DataType::Int32, true), false),
        Field::new("indclass", DataType::new_list(DataType::Int32, true), false),
        Field::new("indoption", DataType::new_list(DataType::Int16, true), false),
        Field::new("indexprs", DataType::Utf8, true),
        Field::new("indpred", DataType::Utf8, true),
    ]);
    let rows: Vec<Row> = keys
        .iter()
        .map(|k| {
            let n = k.columns.len();
            let attnums: Vec<i16> = k.columns.iter().map(|(_, a)| *a).collect();
            Row::from([
                ("indexrelid", oid(k.index_oid)),
                ("indrelid", oid(k.table_oid)),
                ("indnatts", int16(n)),
                ("indnkeyatts", int16(n)),
                ("indisunique", yes(true)),
                ("indisprimary", yes(true)),
                ("indimmediate", yes(true)),
                ("indisvalid", yes(true)),
                ("indisready", yes(true)),
                ("indislive", yes(true)),
                ("indkey", int2_list(&attnums)),
                ("indcollation", oid_list(&vec![0; n])),
                ("indclass", oid_list(&vec![0; n])),
                ("indoption", int2_list(&vec![0; n])),
            ])
        })
        .collect();
    Ok((schema.clone(), batch(&schema, &rows)?))
}

/// `pg_attribute` with the columns of each primary key's index, as PostgreSQL lists an
/// index's columns (psqlODBC's `SQLPrimaryKeys` joins them): numbered from 1 in key order, with
/// the table column's type.
pub(super) fn pg_attribute(attribute: &RecordBatch, keys: &[PrimaryKey], typmods: &HashMap<(i32, i32), i32>) -> Result<(SchemaRef, RecordBatch)> {
    let schema = attribute.schema();
    let (relids, nums, types) = (int32_column(attribute, "attrelid")?, int32_column(attribute, "attnum")?, int32_column(attribute, "atttypid")?);
    let type_of = |table: i32, attnum: i16| (0..attribute.num_rows()).find(|&r| relids[r] == Some(table) && nums[r] == Some(i32::from(attnum))).and_then(|r| types[r]);
    let typmod_of = |table: i32, attnum: i32| typmods.get(&(table, attnum)).copied().unwrap_or(-1);
    // The products' own columns with their type modifiers.
    let attribute = {
        let column = schema.index_of("atttypmod")?;
        let current = int32_column(attribute, "atttypmod")?;
        let typmods: Int32Array = (0..attribute.num_rows())
            .map(|r| match (relids[r], nums[r]) {
                (Some(table), Some(attnum)) if typmods.contains_key(&(table, attnum)) => Some(typmod_of(table, attnum)),
                _ => current[r],
            })
            .collect();
        let mut columns = attribute.columns().to_vec();
        columns[column] = Arc::new(typmods);
        RecordBatch::try_new(schema.clone(), columns)?
    };
    let attribute = &attribute;
    let rows: Vec<Row> = keys
        .iter()
        .flat_map(|key| {
            key.columns.iter().enumerate().map(move |(position, (name, attnum))| {
                Row::from([
                    ("attrelid", ScalarValue::Int32(Some(key.index_oid))),
                    ("attname", text(name.clone())),
                    ("atttypid", ScalarValue::Int32(type_of(key.table_oid, *attnum))),
                    ("attnum", ScalarValue::Int16(Some(position as i16 + 1))),
                    ("attnotnull", ScalarValue::Boolean(Some(true))),
                    ("attisdropped", ScalarValue::Boolean(Some(false))),
                    ("atttypmod", ScalarValue::Int32(Some(typmod_of(key.table_oid, i32::from(*attnum))))),
                ])
            })
        })
        .collect();
    let indexes = batch(&schema, &rows)?;
    Ok((schema.clone(), concat_batches(&schema, [attribute, &indexes])?))
}

/// `pg_constraint`: a `p` row per primary key; `conkey` is an `int2[]`.
pub(super) fn pg_constraint(keys: &[PrimaryKey]) -> Result<(SchemaRef, RecordBatch)> {
    let bool_field = |name: &str| Field::new(name, DataType::Boolean, false);
    let char_field = |name: &str| Field::new(name, DataType::Utf8, false);
    let int2s = |name: &str| Field::new(name, DataType::new_list(DataType::Int16, true), true);
    let oids = |name: &str| Field::new(name, DataType::new_list(DataType::Int32, true), true);
    let schema = schema(vec![
        oid_field("oid", false),
        Field::new("conname", DataType::Utf8, false),
        oid_field("connamespace", false),
        char_field("contype"),
        bool_field("condeferrable"),
        bool_field("condeferred"),
        bool_field("convalidated"),
        oid_field("conrelid", false),
        oid_field("contypid", false),
        oid_field("conindid", false),
        oid_field("conparentid", false),
        oid_field("confrelid", false),
        char_field("confupdtype"),
        char_field("confdeltype"),
        char_field("confmatchtype"),
        bool_field("conislocal"),
        Field::new("coninhcount", DataType::Int16, false),
        bool_field("connoinherit"),
        int2s("conkey"),
        int2s("confkey"),
        oids("conpfeqop"),
        oids("conppeqop"),
        oids("conffeqop"),
        int2s("confdelsetcols"),
        oids("conexclop"),
        Field::new("conbin", DataType::Utf8, true),
    ]);
    let rows: Vec<Row> = keys
        .iter()
        .map(|k| {
            let attnums: Vec<i16> = k.columns.iter().map(|(_, a)| *a).collect();
            Row::from([
                ("oid", oid(k.constraint_oid)),
                ("conname", text(&k.name)),
                ("connamespace", oid(k.namespace_oid)),
                ("contype", text("p")),
                ("convalidated", yes(true)),
                ("conrelid", oid(k.table_oid)),
                ("conindid", oid(k.index_oid)),
                ("confupdtype", text(" ")),
                ("confdeltype", text(" ")),
                ("confmatchtype", text(" ")),
                ("conislocal", yes(true)),
                ("connoinherit", yes(true)),
                ("conkey", int2_list(&attnums)),
            ])
        })
        .collect();
    Ok((schema.clone(), batch(&schema, &rows)?))
}

/// `information_schema.table_constraints`.
pub(super) fn table_constraints(keys: &[PrimaryKey]) -> Result<(SchemaRef, RecordBatch)> {
    let names = [
        "constraint_catalog",
        "constraint_schema",
        "constraint_name",
        "table_catalog",
        "table_schema",
        "table_name",
        "constraint_type",
        "is_deferrable",
        "initially_deferred",
        "enforced",
        "nulls_distinct",
    ];
    let schema = schema(names.iter().map(|n| Field::new(*n, DataType::Utf8, *n == "nulls_distinct")).collect());
    let catalog = meshwork_query::CATALOG_NAME;
    let rows: Vec<Row> = keys
        .iter()
        .map(|k| {
            Row::from([
                ("constraint_catalog", text(catalog)),
                ("constraint_schema", text(&k.schema)),
                ("constraint_name", text(&k.name)),
                ("table_catalog", text(catalog)),
                ("table_schema", text(&k.schema)),
                ("table_name", text(&k.table)),
                ("constraint_type", text("PRIMARY KEY")),
                ("is_deferrable", text("NO")),
                ("initially_deferred", text("NO")),
                ("enforced", text("YES")),
            ])
        })
        .collect();
    Ok((schema.clone(), batch(&schema, &rows)?))
}

/// `information_schema.key_column_usage`.
pub(super) fn key_column_usage(keys: &[PrimaryKey]) -> Result<(SchemaRef, RecordBatch)> {
    let names = ["constraint_catalog", "constraint_schema", "constraint_name", "table_catalog", "table_schema", "table_name", "column_name"];
    let mut fields: Vec<Field> = names.iter().map(|n| Field::new(*n, DataType::Utf8, false)).collect();
    fields.push(Field::new("ordinal_position", DataType::Int32, false));
    fields.push(Field::new("position_in_unique_constraint", DataType::Int32, true));
    let schema = schema(fields);
    let catalog = meshwork_query::CATALOG_NAME;
    let rows: Vec<Row> = keys
        .iter()
        .flat_map(|k| {
            k.columns.iter().enumerate().map(move |(i, (column, _))| {
                Row::from([
                    ("constraint_catalog", text(catalog)),
                    ("constraint_schema", text(&k.schema)),
                    ("constraint_name", text(&k.name)),
                    ("table_catalog", text(catalog)),
                    ("table_schema", text(&k.schema)),
                    ("table_name", text(&k.table)),
                    ("column_name", text(column)),
                    ("ordinal_position", ScalarValue::Int32(Some(i as i32 + 1))),
                ])
            })
        })
        .collect();
    Ok((schema.clone(), batch(&schema, &rows)?))
}

/// Descriptions by `(objoid, objsubid)`: a product's on its table (0), a column's on its
/// `attnum`.
pub(super) fn descriptions(relations: &Relations, products: &[(ProductDescriptor, SchemaRef)]) -> HashMap<(i32, i32), String> {
    let mut out = HashMap::new();
    for (product, table) in products {
        let Some(table_oid) = relations.oid(product.domain.as_str(), product.name.as_str()) else { continue };
        if let Some(description) = &product.description {
            out.insert((table_oid, 0), description.clone());
        }
        for column in &product.contract.columns {
            if let (Some(description), Ok(i)) = (&column.description, table.index_of(&column.name)) {
                out.insert((table_oid, i as i32 + 1), description.clone());
            }
        }
    }
    out
}

/// `pg_description` with those descriptions; `classoid` is the session's OID of
/// `pg_catalog.pg_class`, which is what `'pg_catalog.pg_class'::regclass` gives here.
pub(super) fn pg_description(descriptions: &HashMap<(i32, i32), String>, pg_class_oid: i32) -> Result<(SchemaRef, RecordBatch)> {
    let schema = schema(vec![
        oid_field("objoid", false),
        oid_field("classoid", false),
        Field::new("objsubid", DataType::Int32, false),
        Field::new("description", DataType::Utf8, false),
    ]);
    let mut entries: Vec<_> = descriptions.iter().collect();
    entries.sort();
    let rows: Vec<Row> = entries
        .into_iter()
        .map(|((objoid, subid), description)| {
            Row::from([
                ("objoid", oid(*objoid)),
                ("classoid", oid(pg_class_oid)),
                ("objsubid", ScalarValue::Int32(Some(*subid))),
                ("description", text(description)),
            ])
        })
        .collect();
    Ok((schema.clone(), batch(&schema, &rows)?))
}
