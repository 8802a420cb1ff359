//! Virtual products: tables read from a database when queried ([`RemoteTable`]), with
//! projections, exact filters, limits ([`pushdown`]) and plain aggregates ([`aggregate`]) sent to
//! it. Below a policy fence only the policy's own filter is sent: a user's predicate, limit or
//! aggregate never crosses the fence, so the database evaluates nothing a principal wrote on
//! rows the policy hides.

pub(crate) mod aggregate;
pub(crate) mod pushdown;
mod scan;

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
