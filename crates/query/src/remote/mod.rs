//! Virtual products: tables read from a database when queried ([`RemoteTable`]), with
//! projections, exact filters, limits ([`pushdown`]) and plain aggregates ([`aggregate`]) sent to
//! it. Below a policy fence only the policy's own filter is sent: a user's predicate, limit or
//! aggregate never crosses the fence, so the database evaluates nothing a principal wrote on
//! rows the policy hides.

pub(crate) mod aggregate;
pub(crate) mod pushdown;
mod scan;

use datafusion::arrow::datatypes::DataType;
use meshwork_catalog::RemoteConnection;
use meshwork_core::descriptor::{DatabaseKind, DatabaseRead};
use meshwork_sources::{SourceColumn, TypeFamily};

pub use aggregate::RemoteAggregateRule;
pub use scan::{RemoteScanExec, RemoteTable};

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use meshwork_catalog::VersionRecord;

/// The table a virtual product's publication reads live, `None` for a product stored in Delta.
pub fn virtual_table(version: &VersionRecord) -> Option<Arc<RemoteTable>> {
    let remote = version.remote.as_ref()?;
    let fields: Vec<Field> = version.schema.iter().map(|c| Field::new(&c.name, meshwork_storage::arrow_type(c.data_type), c.nullable)).collect();
    Some(Arc::new(RemoteTable::new(remote.clone(), Arc::new(Schema::new(fields)))))
}

/// The SQL a virtual product's source speaks, and how each value travels back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL: values as text (bytes as bytes), timestamps as ISO text in UTC.
    Postgres,
    /// MySQL or MariaDB, likewise.
    Mysql,
    /// A Flight SQL endpoint speaking DataFusion's SQL (another Meshwork): values as Arrow.
    DataFusion,
}

impl Dialect {
    pub(crate) fn of(connection: &RemoteConnection) -> Dialect {
        match connection {
            RemoteConnection::Database(c) if c.kind == DatabaseKind::Postgres => Dialect::Postgres,
            RemoteConnection::Database(_) => Dialect::Mysql,
            RemoteConnection::FlightSql(_) => Dialect::DataFusion,
        }
    }

    fn database(self) -> Option<DatabaseKind> {
        match self {
            Dialect::Postgres => Some(DatabaseKind::Postgres),
            Dialect::Mysql => Some(DatabaseKind::Mysql),
            Dialect::DataFusion => None,
        }
    }

    /// `name` as an identifier.
    pub(crate) fn quote(self, name: &str) -> String {
        match self.database() {
            Some(kind) => meshwork_sources::quote_ident(kind, name),
            None => meshwork_sources::flight_quote(name),
        }
    }

    /// The `SELECT` item reading `column` as it travels back.
    pub(crate) fn transfer(self, column: &SourceColumn) -> String {
        match self.database() {
            Some(kind) => meshwork_sources::schema::transfer_expr(kind, column),
            None => self.quote(&column.name),
        }
    }

    /// The `SELECT` item reading the value of SQL expression `expr` (a named aggregate) back.
    pub(crate) fn as_text(self, expr: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({expr} AS TEXT)"),
            Dialect::Mysql => format!("CAST({expr} AS CHAR)"),
            Dialect::DataFusion => expr.to_owned(),
        }
    }

    /// `read` as a `FROM` item.
    pub(crate) fn from_item(self, read: &DatabaseRead) -> String {
        match self {
            Dialect::DataFusion => meshwork_sources::flight_from_item(read),
            _ => meshwork_sources::schema::from_item(read),
        }
    }

    /// The type a value of a column of family `family` (to become `target`) travels as.
    pub(crate) fn transfer_type(self, family: TypeFamily, target: &DataType) -> DataType {
        match self {
            Dialect::DataFusion => target.clone(),
            _ if family == TypeFamily::Binary => DataType::Binary,
            _ => DataType::Utf8,
        }
    }
}
