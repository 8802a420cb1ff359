//! Open standards: a product descriptor as a Bitol Open Data Contract Standard v3.1.0 contract
//! and an Open Data Product Standard v1.0.0 product, and such documents (Meshwork's or
//! anyone's) read back into `product.yaml`. No IO: the CLI reads the catalog and writes files.
//!
//! What a standard has a field for goes into that field. What only Meshwork has (input ports,
//! transform, refresh, row filter and masks, SLO target and window, a rule the standard form
//! would not read back exactly) goes into custom properties named `meshwork…`, holding the
//! `product.yaml` fragment itself, so export → import → export gives the same documents and
//! the same descriptor. The mapping, field by field, is in `docs/standards.md`.

pub mod fields;
pub mod import;
pub mod odcs;
pub mod odps;
pub mod quality;
pub mod render;
pub mod types;
pub mod yaml;

use crate::id::ProductId;

/// A field of an imported document that Meshwork did not take over, or took over only
/// approximately.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unmapped {
    /// The file it is in (set by the import for every entry).
    pub file: String,
    /// Its path in the document, e.g. `schema[0].properties[2].quality[0]`.
    pub path: String,
    /// What happened to it.
    pub reason: String,
}

impl Unmapped {
    /// An entry at `path`; the file is filled in by the import.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Unmapped {
        Unmapped { file: String::new(), path: path.into(), reason: reason.into() }
    }
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.path, self.reason)
    }
}

/// Where this mesh serves products: the output ports a contract's `servers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    /// Host clients reach the servers at.
    pub host: String,
    /// PostgreSQL wire port.
    pub postgres_port: u16,
    /// Arrow Flight SQL port.
    pub flight_sql_port: u16,
    /// HTTP port.
    pub http_port: u16,
    /// The database (catalog) name products are in on the Postgres port.
    pub database: String,
    /// The product's Delta table, when the caller may be told where it is.
    pub table_uri: Option<String>,
}

/// The id both standards give the contract of product `id`: its SQL name.
pub fn contract_id(id: &ProductId) -> String {
    id.to_string()
}
