//! Records the catalog stores and returns.

use meshwork_core::id::{DomainName, ProductId};

/// A domain as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    /// Name.
    pub name: DomainName,
    /// Human title.
    pub title: Option<String>,
    /// What the domain covers.
    pub description: Option<String>,
    /// Owning principals.
    pub owners: Vec<String>,
}

/// A product as stored: its current descriptor and where its table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRecord {
    /// Address.
    pub id: ProductId,
    /// Semantic version of the current descriptor.
    pub version: String,
    /// Human title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Owner reference.
    pub owner: Option<String>,
    /// Lifecycle state (`draft`, `active`, `deprecated`).
    pub status: String,
    /// Search tags.
    pub tags: Vec<String>,
    /// The current descriptor as JSON (see `meshwork_core::descriptor::ProductDescriptor`).
    pub descriptor_json: String,
    /// Fingerprint of the current descriptor.
    pub descriptor_hash: String,
    /// URL of the product's Delta table.
    pub table_uri: String,
    /// When the product row last changed (RFC 3339).
    pub updated_at: String,
}

/// One published version of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The product.
    pub product: ProductId,
    /// Publication number, 1 for the first publish of the product.
    pub seq: i64,
    /// Semantic version of the descriptor it was built from.
    pub version: String,
    /// Delta table version holding its data.
    pub delta_version: i64,
    /// Output schema as JSON: `[{"name", "type", "nullable"}]`.
    pub schema_json: String,
    /// Number of rows.
    pub row_count: i64,
    /// Fingerprint of the descriptor it was built from.
    pub descriptor_hash: String,
    /// Fingerprint of the input data it was built from.
    pub input_fingerprint: String,
    /// When it was published (RFC 3339, UTC).
    pub published_at: String,
}

/// A new version to record; see [`crate::CatalogStore::publish`].
#[derive(Debug, Clone)]
pub struct Publication {
    /// The product row to create or update.
    pub product: ProductRecord,
    /// Delta table version of the new data.
    pub delta_version: i64,
    /// Output schema as JSON.
    pub schema_json: String,
    /// Number of rows.
    pub row_count: i64,
    /// Fingerprint of the input data.
    pub input_fingerprint: String,
    /// Products it reads.
    pub upstream: Vec<ProductId>,
}

/// `downstream` reads `upstream`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineageEdge {
    /// The product read.
    pub upstream: ProductId,
    /// The product reading it.
    pub downstream: ProductId,
}
