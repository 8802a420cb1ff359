//! Meshwork's build pipeline: load a mesh repository, ingest inputs, run transforms, check the
//! contract, and publish each product as a new Delta version recorded in the catalog.
//!
//! Invariant: a product's data becomes visible only through [`CatalogStore::publish`], after its
//! staged data passed its quality rules and its Delta commit succeeded. Queries read the Delta
//! version the catalog names, so a crash between the steps never serves unrecorded data, and
//! the next run of the product finishes or discards what the crash left ([`recover`]).
//!
//! [`CatalogStore::publish`]: meshwork_catalog::CatalogStore::publish

#![deny(missing_docs)]

mod apply;
mod build;
mod database;
mod declared;
pub mod governance;
pub mod conform;
mod home;
mod incremental;
mod live;
mod plan;
pub mod ingest;
pub mod lifecycle;
pub mod lineage;
mod openlineage;
pub mod quality;
mod recovery;
mod repo;
mod report;
pub mod upstream;
mod unpublish;
mod validate;

pub use apply::{ApplyOptions, apply, apply_with, refresh};
pub use report::{ApplyObserver, ApplyReport, ProductOutcome, SilentObserver};
pub use recovery::{FAILPOINT_ENV, PENDING_FILE, Recovered, recover, recover_all};
pub use build::{BuiltProduct, build_product, input_fingerprint};
pub use declared::DeclaredPlanner;
pub use home::MeshHome;
pub use plan::{MajorChange, PlanAction, PlanItem, READERS_WINDOW_DAYS, ReadChange, plan};
pub use governance::{Finding, check_governance, governance_snapshot, published_descriptors};
pub use repo::{LoadedMesh, MESH_FILE, PRINCIPALS_FILE, load_mesh, load_mesh_with};
pub use unpublish::{Purged, Removal, purge};
pub use validate::{check_sources, validate};

/// Errors of building and publishing products.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// An input file could not be read or parsed.
    #[error("{file}: cannot read input: {message}")]
    Read {
        /// The file, relative to the mesh repository.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A value does not fit the contract type of its column.
    #[error("{location}: column `{column}`: value `{value}` is not a valid {expected}{}", more_rows(*more, checked))]
    BadValue {
        /// File and row, or transform result row.
        location: String,
        /// Column name.
        column: String,
        /// The offending value.
        value: String,
        /// The contract type.
        expected: String,
        /// How many more rows of this column do not fit among `checked`.
        more: usize,
        /// The rows checked with it (`rows 1–4`): data is checked as it streams, one block of
        /// rows at a time, and the first bad block stops the build.
        checked: String,
    },
    /// A NULL in a column the contract declares non-nullable.
    #[error("{location}: column `{column}` is NULL but the contract declares it `nullable: false` ({count} NULL in {checked}); fill it in the source or the transform, or make the column nullable")]
    NullValue {
        /// File and row.
        location: String,
        /// Column name.
        column: String,
        /// NULL rows in the column among `checked`.
        count: usize,
        /// The rows checked with it (`rows 1–4`).
        checked: String,
    },
    /// A contract column is absent from the data.
    #[error("{source_name}: missing column `{column}` required by the contract (found {found}); add it to the source or the transform")]
    MissingColumn {
        /// Where the data came from.
        source_name: String,
        /// Column name.
        column: String,
        /// Columns that are present.
        found: String,
    },
    /// A column the contract does not declare.
    #[error("{source_name}: column `{column}` is not in the contract (which declares {contract}); add it to the contract or leave it out of the transform")]
    ExtraColumn {
        /// Where the data came from.
        source_name: String,
        /// Column name.
        column: String,
        /// Declared columns.
        contract: String,
    },
    /// A column whose type cannot be converted to the contract type.
    #[error("{source_name}: column `{column}` is {found} but the contract declares {expected}; add a CAST in the transform or change the contract")]
    TypeMismatch {
        /// Where the data came from.
        source_name: String,
        /// Column name.
        column: String,
        /// Type in the data.
        found: String,
        /// Type in the contract.
        expected: String,
    },
    /// The transform SQL failed to plan or run.
    #[error("{origin}: {message}")]
    Transform {
        /// Where the SQL came from.
        origin: String,
        /// DataFusion's message.
        message: String,
    },
    /// An action reserved to administrators.
    #[error("`{principal}` may not {action}: only administrators may; run it as an administrator (`--as NAME`)")]
    NotAllowed {
        /// Who asked.
        principal: String,
        /// What was refused.
        action: String,
    },
    /// `purge` of a product the repository still declares.
    #[error("product `{0}` is still in the mesh repository; delete its directory and run `meshwork apply` to unpublish it, then purge it (a product past its `sunset` date is purged while declared)")]
    PurgeDeclared(String),
    /// `purge` of a product still published (removed from the repository since the last apply).
    #[error("product `{0}` is still published; run `meshwork apply` to unpublish it, then purge it")]
    PurgePublished(String),
    /// `purge` of a product the catalog does not hold as unpublished.
    #[error("product `{0}` is not an unpublished product; only products unpublished by `meshwork apply` can be purged (`meshwork events --product {0}` shows its history)")]
    PurgeUnknown(String),
    /// `purge` of a product whose table is not under the storage `mesh.yaml` names now.
    #[error("product `{product}` was published to `{table}`, which is not under this mesh's storage `{storage}`; set `storage:` back to where it was to purge it, or delete that table with the storage's own tools")]
    PurgeElsewhere {
        /// The product.
        product: String,
        /// Its table, as the catalog recorded it.
        table: String,
        /// The storage root `mesh.yaml` names.
        storage: String,
    },
    /// A product named on the command line or by the scheduler is not in the repository.
    #[error("product `{0}` is not in the mesh repository; `meshwork product list` shows what is published")]
    UnknownProduct(String),
    /// An upstream product has never been published.
    #[error("upstream product `{0}` has no published version; apply it first")]
    UpstreamMissing(String),
    /// The consuming product's domain may not read an upstream product (the message names the
    /// upstream's `access.readers` line and the fix).
    #[error("{message}")]
    UpstreamDenied {
        /// The explanation.
        message: String,
    },
    /// The query layer failed while reading upstream products.
    #[error(transparent)]
    Query(meshwork_query::QueryError),
    /// An operational database source failed: unreachable, refused, or not matching the contract.
    #[error(transparent)]
    Source(#[from] meshwork_sources::SourceError),
    /// Reading a virtual product's rows from its database failed while checking it.
    #[error("reading virtual product `{product}` from its database failed: {message}")]
    Remote {
        /// The product.
        product: meshwork_core::id::ProductId,
        /// What failed.
        message: String,
    },
    /// Writing the Delta table failed.
    #[error(transparent)]
    Storage(#[from] meshwork_storage::StorageError),
    /// The product's lock was lost during a run (its catalog connection dropped).
    #[error("lost the lock of product `{0}` (the metadata store connection holding it dropped); nothing was published; run `meshwork apply` again")]
    LockLost(meshwork_core::id::ProductId),
    /// The metadata store failed.
    #[error(transparent)]
    Catalog(#[from] meshwork_catalog::CatalogError),
    /// `metadata.password_env` names a variable that is not set.
    #[error("the metadata store's password is read from the environment variable `{0}` (`metadata.password_env` in mesh.yaml), which is not set; set it before running meshwork")]
    MetadataPassword(String),
    /// A bug in Meshwork, not in the user's input.
    #[error("internal error (this is a bug in meshwork): {0}")]
    Internal(String),
}

fn more_rows(more: usize, checked: &str) -> String {
    match more {
        0 => String::new(),
        n => format!(" (and {n} more in {checked})"),
    }
}
