//! Meshwork's product storage: one Delta Lake table per data product.
//!
//! Each product lives at `<data_dir>/<domain>/<product>` as a plain Delta table, so any Delta
//! reader (DuckDB, Spark, Polars, deltalake-python) can read it. A publish is one Delta commit
//! that overwrites the table: readers see the old version or the new one, never a mix, and a
//! build that fails before its commit leaves the previous version as it was.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTableError;
/// An opened Delta table at one version, as the query layer caches it.
pub use deltalake::DeltaTable;
use meshwork_core::id::ProductId;
use url::Url;

/// Errors of product storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A Delta operation on the table at `table` failed.
    #[error("delta table `{table}`: {source}")]
    Delta {
        /// Table URL.
        table: String,
        /// The Delta error.
        source: DeltaTableError,
    },
    /// The data directory could not be used.
    #[error("cannot use data directory `{path}`: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The table exists but has no committed version.
    #[error("delta table `{0}` has no committed version")]
    Empty(String),
}

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Where product tables live and how they are written and read.
#[derive(Debug, Clone)]
pub struct ProductStore {
    root: PathBuf,
}

/// Facts about one commit written by [`ProductStore::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedVersion {
    /// The Delta table version created.
    pub delta_version: i64,
}

impl ProductStore {
    /// A store rooted at the data directory `root` (created when missing).
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|source| StorageError::DataDir { path: root.display().to_string(), source })?;
        let root = root.canonicalize().map_err(|source| StorageError::DataDir { path: root.display().to_string(), source })?;
        Ok(ProductStore { root })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The URL of a product's table.
    pub fn table_url(&self, id: &ProductId) -> Url {
        let dir = self.root.join(id.domain.as_str()).join(id.name.as_str());
        Url::from_directory_path(dir).expect("the data directory is absolute")
    }

    /// Commits `batches` as the new content of the product's table (creating it if needed) and
    /// returns the new Delta version. `metadata` is stored in the commit info for auditors.
    pub async fn publish(
        &self,
        id: &ProductId,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        metadata: Vec<(String, String)>,
    ) -> Result<CommittedVersion> {
        let url = self.table_url(id);
        let dir = url.to_file_path().expect("file URL");
        std::fs::create_dir_all(&dir).map_err(|source| StorageError::DataDir { path: dir.display().to_string(), source })?;
        let delta = |source| StorageError::Delta { table: url.to_string(), source };
        // A new table is created by its first write; loading it first would only log errors.
        let table = if dir.join("_delta_log").is_dir() {
            DeltaTable::try_from_url(url.clone()).await.map_err(delta)?
        } else {
            deltalake::DeltaTableBuilder::from_url(url.clone()).and_then(|b| b.build()).map_err(delta)?
        };
        // An empty result still needs its schema in the table: write one empty batch.
        let batches = if batches.is_empty() { vec![RecordBatch::new_empty(schema)] } else { batches };
        let commit = CommitProperties::default()
            .with_metadata(metadata.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))));
        let table = table
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_table_name(id.to_string())
            .with_commit_properties(commit)
            .await
            .map_err(delta)?;
        let delta_version = table.version().ok_or_else(|| StorageError::Empty(url.to_string()))?;
        Ok(CommittedVersion { delta_version: i64::try_from(delta_version).expect("delta versions fit in i64") })
    }

    /// Opens a table at its newest version.
    pub async fn open_table(url: &Url) -> Result<DeltaTable> {
        deltalake::open_table(url.clone()).await.map_err(|source| StorageError::Delta { table: url.to_string(), source })
    }

    /// Opens a table at an earlier version (time travel).
    pub async fn open_table_at(url: &Url, delta_version: i64) -> Result<DeltaTable> {
        let version = u64::try_from(delta_version).map_err(|_| StorageError::Empty(url.to_string()))?;
        deltalake::open_table_with_version(url.clone(), version)
            .await
            .map_err(|source| StorageError::Delta { table: url.to_string(), source })
    }

    /// A DataFusion table provider over `table` that pushes filters and projections into the
    /// Parquet scan, registered with `session`'s object stores.
    pub async fn table_provider(table: &DeltaTable, session: &dyn Session) -> Result<Arc<dyn TableProvider>> {
        let delta = |source| StorageError::Delta { table: table.table_url().to_string(), source };
        table.update_datafusion_session(session).map_err(delta)?;
        table.table_provider().await.map_err(|e| StorageError::Delta {
            table: table.table_url().to_string(),
            source: DeltaTableError::Generic(e.to_string()),
        })
    }
}
