//! The relations of a session as `pg_class` lists them, read once when the session opens.
//!
//! A session's catalog does not change while it is open (a connection reopens its session when
//! rights or publications change), and datafusion-pg-catalog hands out a relation's OID once
//! per session and keeps it, so one read gives the OIDs every later `pg_class` and
//! `pg_attribute` scan shows. Functions that PostgreSQL answers from its catalog
//! (`pg_table_is_visible`, `to_regclass`, `::regclass` names) answer from this.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, new_null_array};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::prelude::SessionContext;

use super::keys::PrimaryKey;
use super::rows::{Row, batch, text};

/// Schemas on PostgreSQL's default search path (`"$user", public`, with `pg_catalog` first).
const SEARCH_PATH: &[&str] = &["pg_catalog", "public"];

/// PostgreSQL's OID of the btree access method (`pg_am`), which indexes name in `relam`.
pub(super) const BTREE_AM: i32 = 403;

/// The session's relations, by OID and by name.
#[derive(Debug, Default)]
pub(super) struct Relations {
    by_oid: HashMap<i32, (String, String)>,
    by_name: HashMap<(String, String), i32>,
    namespaces: HashMap<String, i32>,
}

impl Relations {
    /// From scans of `pg_class` and `pg_namespace`.
    pub(super) fn new(class: &RecordBatch, namespace: &RecordBatch) -> Result<Relations> {
        let nsp_oids = int32_column(namespace, "oid")?;
        let nsp_names = text_column(namespace, "nspname")?;
        let mut namespaces = HashMap::new();
        let mut nsp_by_oid = HashMap::new();
        for (oid, name) in nsp_oids.iter().zip(nsp_names.iter()) {
            if let (Some(oid), Some(name)) = (oid, name) {
                namespaces.insert(name.clone(), *oid);
                nsp_by_oid.insert(*oid, name.clone());
            }
        }
        let mut relations = Relations { namespaces, ..Relations::default() };
        let oids = int32_column(class, "oid")?;
        let names = text_column(class, "relname")?;
        let nsps = int32_column(class, "relnamespace")?;
        for ((oid, name), nsp) in oids.iter().zip(names.iter()).zip(nsps.iter()) {
            if let (Some(oid), Some(name), Some(nsp)) = (oid, name, nsp.and_then(|n| nsp_by_oid.get(&n))) {
                relations.add(*oid, nsp, name);
            }
        }
        Ok(relations)
    }

    pub(super) fn add(&mut self, oid: i32, namespace: &str, name: &str) {
        self.by_oid.insert(oid, (namespace.to_owned(), name.to_owned()));
        self.by_name.insert((namespace.to_owned(), name.to_owned()), oid);
    }

    /// The OID of `namespace.name`.
    pub(super) fn oid(&self, namespace: &str, name: &str) -> Option<i32> {
        self.by_name.get(&(namespace.to_owned(), name.to_owned())).copied()
    }

    /// The OID of schema `name`.
    pub(super) fn namespace_oid(&self, name: &str) -> Option<i32> {
        self.namespaces.get(name).copied()
    }

    /// A relation's schema and name.
    pub(super) fn name(&self, oid: i32) -> Option<(&str, &str)> {
        self.by_oid.get(&oid).map(|(n, r)| (n.as_str(), r.as_str()))
    }

    /// Whether an unqualified name finds the relation: it exists and its schema is on the
    /// search path. Products live in their domain's schema, which is not, so clients name them
    /// `domain.product`, as queries must.
    pub(super) fn visible(&self, oid: i32) -> bool {
        self.name(oid).is_some_and(|(nsp, name)| SEARCH_PATH.iter().find_map(|s| self.oid(s, name)) == Some(oid) && SEARCH_PATH.contains(&nsp))
    }

    /// `to_regclass`: a possibly qualified, possibly quoted name, searched on the search path
    /// when unqualified.
    pub(super) fn resolve(&self, name: &str) -> Option<i32> {
        let parts = split_ident(name)?;
        match parts.as_slice() {
            [name] => SEARCH_PATH.iter().find_map(|s| self.oid(s, name)),
            [schema, name] => self.oid(schema, name),
            [catalog, schema, name] if catalog == meshwork_query::CATALOG_NAME => self.oid(schema, name),
            _ => None,
        }
    }

    /// How `oid::regclass` prints: the name, qualified when it is not visible, or the number
    /// for an unknown OID.
    pub(super) fn regclass(&self, oid: i32) -> String {
        match self.name(oid) {
            Some((_, name)) if self.visible(oid) => quote_ident(name),
            Some((nsp, name)) => format!("{}.{}", quote_ident(nsp), quote_ident(name)),
            None => oid.to_string(),
        }
    }
}

/// Splits a SQL name into its parts: unquoted parts fold to lower case, `"quoted"` ones keep
/// theirs. `None` for a malformed name.
pub(super) fn split_ident(input: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = input.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != '.') {
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            part = part.trim().to_owned();
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

/// An identifier as PostgreSQL prints it: quoted unless it is lower case and plain.
pub(super) fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_owned() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

/// Every row of a table, as one batch.
pub(super) async fn scan(ctx: &SessionContext, table: Option<Arc<dyn TableProvider>>) -> Result<RecordBatch> {
    let table = table.ok_or_else(|| DataFusionError::Internal("a pg_catalog table is missing".to_owned()))?;
    let schema = table.schema();
    let batches = ctx.read_table(table)?.collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// `pg_class` as read, plus what the library leaves out: a row per primary-key index
/// (relkind `i`), `relhasindex` true on tables that have one, and `reloptions` (NULL).
pub(super) fn pg_class(class: &RecordBatch, keys: &[PrimaryKey]) -> Result<(SchemaRef, RecordBatch)> {
    let keyed: HashSet<i32> = keys.iter().map(|k| k.table_oid).collect();
    let mut fields: Vec<Field> = class.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("reloptions", DataType::new_list(DataType::Utf8, true), true));
    fields.push(Field::new("relacl", DataType::new_list(DataType::Utf8, true), true));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let oids = int32_column(class, "oid")?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in class.schema().fields().iter().enumerate() {
        if field.name() == "relhasindex" {
            let values: BooleanArray = oids.iter().map(|oid| Some(oid.is_some_and(|o| keyed.contains(&o)))).collect();
            columns.push(Arc::new(values));
        } else {
            columns.push(class.column(i).clone());
        }
    }
    for extra in &schema.fields()[class.num_columns()..] {
        columns.push(new_null_array(extra.data_type(), class.num_rows()));
    }
    let tables = RecordBatch::try_new(schema.clone(), columns)?;
    let indexes: Vec<Row> = keys
        .iter()
        .map(|k| {
            Row::from([
                ("oid", ScalarValue::Int32(Some(k.index_oid))),
                ("relname", text(&k.name)),
                ("relnamespace", ScalarValue::Int32(Some(k.namespace_oid))),
                ("relam", ScalarValue::Int32(Some(BTREE_AM))),
                ("relpersistence", text("p")),
                ("relkind", text("i")),
                ("relnatts", ScalarValue::Int16(Some(k.columns.len() as i16))),
                ("relispopulated", ScalarValue::Boolean(Some(true))),
                ("relreplident", text("n")),
            ])
        })
        .collect();
    let indexes = batch(&schema, &indexes)?;
    Ok((schema.clone(), concat_batches(&schema, [&tables, &indexes])?))
}

/// The values of an integer column (OIDs), whatever integer type it has.
pub(super) fn int32_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i32>>> {
    let column = batch.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("pg_catalog column `{name}` is missing")))?;
    let column = cast(column, &DataType::Int32)?;
    Ok(column.as_primitive::<Int32Type>().iter().collect())
}

/// The values of a text column.
pub(super) fn text_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let column = batch.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("pg_catalog column `{name}` is missing")))?;
    let column = cast(column, &DataType::Utf8)?;
    Ok(column.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect())
}

/// Rows of `batch` whose text column `name` equals `value`.
pub(super) fn rows_where(batch: &RecordBatch, name: &str, value: &str) -> Result<RecordBatch> {
    let keep: BooleanArray = text_column(batch, name)?.iter().map(|v| Some(v.as_deref() == Some(value))).collect();
    Ok(datafusion::arrow::compute::filter_record_batch(batch, &keep)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_quote_like_postgres() {
        assert_eq!(split_ident("Sales.\"Big Orders\""), Some(vec!["sales".to_owned(), "Big Orders".to_owned()]));
        assert_eq!(split_ident("a..b"), None);
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
    }
}
