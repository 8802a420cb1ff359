//! A mesh repository's root and configuration, and the stores it points at.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshwork_catalog::{CatalogStore, Location, SqlCatalog};
use meshwork_core::descriptor::{MeshConfig, MetadataStore};
use meshwork_core::diagnostic::{Diagnostic, DiagnosticCode};
use meshwork_core::parse::parse_mesh_config;
use meshwork_storage::ProductStore;

use crate::PipelineError;
use crate::repo::MESH_FILE;

/// The diagnostic for a directory without `mesh.yaml`.
pub(crate) fn no_mesh(root: &Path) -> Diagnostic {
    Diagnostic::new(DiagnosticCode::MissingReference, MESH_FILE, format!("no `mesh.yaml` in `{}`", root.display()))
        .hint("run `meshwork init DIR` to create a mesh repository, or pass the directory that holds `mesh.yaml`")
}

/// The root of a mesh repository with its parsed `mesh.yaml`: enough to reach the catalog and
/// the data, without reading (or failing on) any product descriptor.
#[derive(Debug, Clone)]
pub struct MeshHome {
    /// Absolute path of the repository.
    pub root: PathBuf,
    /// Parsed `mesh.yaml`.
    pub config: MeshConfig,
}

impl MeshHome {
    /// Reads `mesh.yaml` under `root`.
    pub fn open(root: &Path) -> Result<Self, Vec<Diagnostic>> {
        let no_mesh = || vec![no_mesh(root)];
        let root = root.canonicalize().map_err(|_| no_mesh())?;
        let text = std::fs::read_to_string(root.join(MESH_FILE)).map_err(|_| no_mesh())?;
        let config = parse_mesh_config(MESH_FILE, &text)?.value;
        Ok(MeshHome { root, config })
    }

    /// Meshwork's own state directory (`.meshwork/`).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".meshwork")
    }

    /// Where the metadata store is. A relative SQLite path is relative to the mesh repository,
    /// not to the working directory, so `meshwork -C DIR` finds the same catalog from
    /// anywhere; a PostgreSQL password comes from the environment variable `mesh.yaml` names.
    pub fn catalog_location(&self) -> Result<Location, PipelineError> {
        Ok(match &self.config.metadata {
            MetadataStore::Sqlite { path } => Location::Sqlite(self.root.join(path)),
            MetadataStore::Postgres { url, password_env } => {
                let password = match password_env {
                    Some(name) => Some(std::env::var(name).map_err(|_| PipelineError::MetadataPassword(name.clone()))?),
                    None => None,
                };
                Location::Postgres { url: url.clone(), password }
            }
        })
    }

    /// Opens the metadata store named in `mesh.yaml` (embedded SQLite by default), creating it.
    pub async fn open_catalog(&self) -> Result<Arc<dyn CatalogStore>, PipelineError> {
        Ok(Arc::new(self.open_sql_catalog().await?))
    }

    /// The metadata store as its SQL adapter, for what only it offers (migrations, readiness).
    pub async fn open_sql_catalog(&self) -> Result<SqlCatalog, PipelineError> {
        Ok(SqlCatalog::open(&self.catalog_location()?).await?)
    }

    /// Opens the metadata store only if it exists: offline commands like `validate` compare with
    /// what is published without creating a store. A PostgreSQL store always exists.
    pub async fn existing_catalog(&self) -> Result<Option<Arc<dyn CatalogStore>>, PipelineError> {
        let location = self.catalog_location()?;
        if let Location::Sqlite(path) = &location
            && !path.is_file()
        {
            return Ok(None);
        }
        Ok(Some(Arc::new(SqlCatalog::open(&location).await?)))
    }

    /// Opens the product store `storage:` names (the local data directory by default). A
    /// process opens it before reading any table: it is also what lets `s3://` table URLs of
    /// the catalog open, with this mesh's endpoint and the environment's credentials.
    pub fn open_store(&self) -> Result<ProductStore, PipelineError> {
        Ok(ProductStore::connect(&self.config.storage, &self.root)?)
    }
}
