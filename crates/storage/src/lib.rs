//! Meshwork's product storage: one Delta Lake table per data product.
//!
//! The storage location is a local directory or an S3-compatible bucket and prefix (`s3.rs`);
//! everything below is the same on both. Each product lives at `<root>/<domain>/<product>` as a
//! plain Delta table, so any Delta reader (DuckDB, Spark, Polars, deltalake-python) can read it. A publish is one Delta commit
//! that overwrites the table: readers see the old version or the new one, never a mix, and a
//! build that fails before its commit leaves the previous version as it was.
//!
//! Write-audit-publish (`staging.rs`): new data is streamed once into the Parquet files of a
//! separate Delta table under `<root>/_staging/<domain>.<product>/<run>/`, where quality rules
//! read it; publishing moves those files into the product's table and commits them there. Staging
//! directories are never read by queries and are removed when the run ends or, after a crash,
//! by the next run of the product. Runs of one product are made exclusive by the catalog's
//! product lock (`meshwork_catalog::product_lock`), which every process and machine sharing the
//! catalog sees.

#![deny(missing_docs)]

mod layout;
mod provider;
mod s3;
pub mod scratch;
mod staging;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use deltalake::DeltaTableError;
/// An opened Delta table at one version, as the query layer caches it.
pub use deltalake::DeltaTable;
pub use layout::{CREATED_BY, Codec, DEFAULT_CODEC, writer_properties, writer_properties_for};
pub use staging::{Commit, StagedTable};
use futures::{StreamExt, TryStreamExt};
use meshwork_core::descriptor::{S3Location, StorageLocation};
use meshwork_core::id::ProductId;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

/// The Arrow type a contract type is stored as.
pub fn arrow_type(ty: meshwork_core::column_type::ColumnType) -> datafusion::arrow::datatypes::DataType {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    use meshwork_core::column_type::ColumnType;
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::TinyInt => DataType::Int8,
        ColumnType::SmallInt => DataType::Int16,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Float => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        ColumnType::String => DataType::Utf8,
        ColumnType::Binary => DataType::Binary,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// A readable name of an Arrow type, in contract terms where there is one (`bigint`,
/// `decimal(12,2)`, `timestamp`): how errors name the types users declared.
pub fn type_name(ty: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::DataType;
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// The Arrow schema a product with this contract is stored with.
pub fn contract_schema(contract: &meshwork_core::descriptor::Contract) -> SchemaRef {
    use datafusion::arrow::datatypes::{Field, Schema};
    Arc::new(Schema::new(contract.columns.iter().map(|c| Field::new(&c.name, arrow_type(c.data_type), c.nullable)).collect::<Vec<_>>()))
}

/// Errors of product storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A Delta operation on the table at `table` failed. The message never shows what an S3
    /// error can echo of a signed request.
    #[error("delta table `{table}`: {}", s3::redact(&.source.to_string()))]
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
    /// The object storage location could not be used.
    #[error("storage `{location}`: {message}")]
    ObjectStore {
        /// The location (`s3://bucket/prefix/...`), never with credentials.
        location: String,
        /// What failed.
        message: String,
    },
    /// The table exists but has no committed version.
    #[error("delta table `{0}` has no committed version")]
    Empty(String),
}


/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Where product tables live and how they are written and read.
#[derive(Clone)]
pub struct ProductStore {
    /// The root as a URL ending in `/`: `file:///…/data/` or `s3://bucket/prefix/`.
    root: Url,
    /// The local directory, when the root is one.
    local: Option<PathBuf>,
    /// The store holding the root, and the root's path in it.
    objects: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The codec of the data files it writes.
    codec: Codec,
}

impl std::fmt::Debug for ProductStore {
    // Not derived: the S3 client's own `Debug` prints its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductStore").field("root", &self.root.as_str()).finish_non_exhaustive()
    }
}

/// Facts about one commit written by [`ProductStore::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedVersion {
    /// The Delta table version created.
    pub delta_version: i64,
}

/// How long a readiness probe of the storage may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl ProductStore {
    /// The store `location` names; a local directory is relative to `base` unless absolute.
    pub fn connect(location: &StorageLocation, base: &Path) -> Result<Self> {
        match location {
            StorageLocation::Local { data_dir } => Self::open(&base.join(data_dir)),
            StorageLocation::S3(s3) => Self::open_s3(s3),
        }
    }

    /// A store rooted at the data directory `root` (created when missing).
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|source| StorageError::DataDir { path: root.display().to_string(), source })?;
        let root = root.canonicalize().map_err(|source| StorageError::DataDir { path: root.display().to_string(), source })?;
        let objects = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| StorageError::ObjectStore { location: root.display().to_string(), message: e.to_string() })?
            // Deleting a run's last file removes its directories too, so no empty run is left.
            .with_automatic_cleanup(true);
        let url = Url::from_directory_path(&root).expect("a canonical path is absolute");
        Ok(ProductStore { root: url, local: Some(root), objects: Arc::new(objects), prefix: ObjectPath::default(), codec: DEFAULT_CODEC })
    }

    /// The same store writing its data files with `codec` (the benchmark compares codecs).
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// A store rooted at an S3-compatible bucket and prefix. Nothing is sent to the server
    /// yet: [`ProductStore::probe`] checks that it answers.
    pub fn open_s3(location: &S3Location) -> Result<Self> {
        Self::s3(location, None)
    }

    /// [`ProductStore::open_s3`] with credentials given rather than from the environment.
    pub fn open_s3_with_credentials(location: &S3Location, access_key_id: &str, secret_access_key: &str) -> Result<Self> {
        Self::s3(location, Some((access_key_id, secret_access_key)))
    }

    fn s3(location: &S3Location, credentials: Option<(&str, &str)>) -> Result<Self> {
        let objects = s3::connect(location, credentials)?;
        let root = Url::parse(&format!("{}/", location.url())).map_err(|e| StorageError::ObjectStore { location: location.url(), message: e.to_string() })?;
        // The key prefix as delta-rs derives it from table URLs, so both name the same objects.
        let prefix = ObjectPath::from_url_path(root.path()).map_err(|e| StorageError::ObjectStore { location: location.url(), message: e.to_string() })?;
        Ok(ProductStore { root, local: None, objects, prefix, codec: DEFAULT_CODEC })
    }

    /// The root every table lives under, as a URL (`file:///…/` or `s3://bucket/prefix/`).
    pub fn location(&self) -> &Url {
        &self.root
    }

    /// Checks that the storage answers: a directory listing or one bucket `LIST` of the root,
    /// given a few seconds. What `/ready` asks before telling a load balancer to send traffic.
    pub async fn probe(&self) -> Result<()> {
        if let Some(dir) = &self.local {
            // A local listing of a missing directory is empty, not an error: ask the OS.
            return match tokio::time::timeout(PROBE_TIMEOUT, tokio::fs::read_dir(dir)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(source)) => Err(StorageError::DataDir { path: dir.display().to_string(), source }),
                Err(_) => Err(StorageError::ObjectStore { location: dir.display().to_string(), message: format!("no answer within {} s", PROBE_TIMEOUT.as_secs()) }),
            };
        }
        // The first page of one listing: enough to know the bucket answers and lets us read.
        let mut listing = self.objects.list(Some(&self.prefix));
        match tokio::time::timeout(PROBE_TIMEOUT, listing.next()).await {
            Ok(None | Some(Ok(_))) => Ok(()),
            Ok(Some(Err(e))) => Err(self.object_error(&self.prefix, e)),
            Err(_) => Err(StorageError::ObjectStore { location: self.root.to_string(), message: format!("no answer within {} s", PROBE_TIMEOUT.as_secs()) }),
        }
    }

    fn object_error(&self, path: &ObjectPath, error: object_store::Error) -> StorageError {
        // object_store's messages name the path and the failure (status, service message), not
        // the signed request, so they carry no credentials.
        let location = if self.local.is_some() { self.root.join(path.as_ref()).map(|u| u.to_string()).unwrap_or_else(|_| path.to_string()) } else { format!("{}://{}/{}", self.root.scheme(), self.root.host_str().unwrap_or_default(), path) };
        StorageError::ObjectStore { location, message: s3::redact(&error.to_string()) }
    }

    /// The key of `parts` under the root.
    fn key<'a>(&self, parts: impl IntoIterator<Item = &'a str>) -> ObjectPath {
        parts.into_iter().fold(self.prefix.clone(), |path, part| path.join(part))
    }

    fn staging_key(&self, id: &ProductId) -> ObjectPath {
        self.key(["_staging", &format!("{}.{}", id.domain, id.name)])
    }

    fn table_key(&self, id: &ProductId) -> ObjectPath {
        self.key([id.domain.as_str(), id.name.as_str()])
    }

    /// The URL of a product's table.
    pub fn table_url(&self, id: &ProductId) -> Url {
        self.root.join(&format!("{}/{}/", id.domain, id.name)).expect("product ids are URL-safe")
    }

    /// The URL of one staged run of a product.
    pub fn staging_url(&self, id: &ProductId, run: &str) -> Url {
        self.root.join(&format!("_staging/{}.{}/{run}/", id.domain, id.name)).expect("product ids and run names are URL-safe")
    }

    /// Creates a local table directory before delta-rs writes into it (object stores have none).
    async fn ensure_local_dir(&self, url: &Url) -> Result<()> {
        if self.local.is_some()
            && let Ok(dir) = url.to_file_path()
        {
            tokio::fs::create_dir_all(&dir).await.map_err(|source| StorageError::DataDir { path: dir.display().to_string(), source })?;
        }
        Ok(())
    }

    /// Deletes every object under `prefix`; how many there were.
    async fn delete_all(&self, prefix: &ObjectPath) -> Result<usize> {
        let listed = self.objects.list(Some(prefix)).map_ok(|meta| meta.location).boxed();
        let mut results = self.objects.delete_stream(listed);
        let mut deleted = 0;
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                // Gone already (another process cleaning up the same run): nothing to do.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.object_error(prefix, e)),
            }
        }
        Ok(deleted)
    }

    /// Names of the sub-directories of `prefix` (runs of a product, products with staged runs).
    async fn children(&self, prefix: &ObjectPath) -> Result<Vec<String>> {
        let listed = match self.objects.list_with_delimiter(Some(prefix)).await {
            Ok(listed) => listed,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.object_error(prefix, e)),
        };
        let mut names: Vec<String> = listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        names.sort();
        Ok(names)
    }

    /// Whether a product's table has a Delta log.
    async fn has_table(&self, id: &ProductId) -> Result<bool> {
        let log = self.table_key(id).join("_delta_log");
        let mut listed = self.objects.list(Some(&log));
        match listed.next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
            Some(Err(e)) => Err(self.object_error(&log, e)),
        }
    }

    /// The newest Delta version of a product's table and its commit metadata (the
    /// `meshwork.*` keys written by [`ProductStore::publish`]), if the table exists.
    pub async fn latest_commit(&self, id: &ProductId) -> Result<Option<(i64, serde_json::Map<String, serde_json::Value>)>> {
        if !self.has_table(id).await? {
            return Ok(None);
        }
        let table = Self::open_table(&self.table_url(id)).await?;
        let Some(version) = table.version() else { return Ok(None) };
        // Commit files are newline-delimited JSON actions; the commitInfo holds our metadata.
        let key = self.table_key(id).join("_delta_log").join(format!("{version:020}.json"));
        let found = self.objects.get(&key).await.map_err(|e| self.object_error(&key, e))?;
        let bytes = found.bytes().await.map_err(|e| self.object_error(&key, e))?;
        let info = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find_map(|action| action.get("commitInfo").and_then(|c| c.as_object()).cloned())
            .unwrap_or_default();
        Ok(Some((version as i64, info)))
    }

    /// Deletes a product's table and any staging runs it left; `false` when there was no
    /// table. Only `meshwork product purge` calls this, for a product the catalog no longer
    /// serves, under the product's lock.
    pub async fn remove_table(&self, id: &ProductId) -> Result<bool> {
        self.delete_all(&self.staging_key(id)).await?;
        let deleted = self.delete_all(&self.table_key(id)).await?;
        if let Some(dir) = &self.local {
            let path = dir.join(id.domain.as_str()).join(id.name.as_str());
            if let Err(source) = tokio::fs::remove_dir_all(&path).await
                && source.kind() != std::io::ErrorKind::NotFound
            {
                return Err(StorageError::DataDir { path: path.display().to_string(), source });
            }
        }
        Ok(deleted > 0)
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

    /// Registers the object-storage buckets this process opened (`open_store`) with `runtime`,
    /// for scans planned elsewhere (a cluster executor's tasks).
    pub fn register_buckets(runtime: &datafusion::execution::runtime_env::RuntimeEnv) {
        s3::register_buckets(runtime);
    }

    /// Registers the object store of `table` with `session`'s runtime, for a provider built
    /// with another session and scanned by this one.
    pub fn register_object_store(table: &DeltaTable, session: &dyn Session) -> Result<()> {
        table.update_datafusion_session(session).map_err(|source| StorageError::Delta { table: table.table_url().to_string(), source })
    }

    /// A DataFusion table provider over `table` at its loaded version, registered with
    /// `session`'s object stores (see `provider.rs`).
    pub async fn table_provider(table: &DeltaTable, session: &dyn Session) -> Result<Arc<dyn TableProvider>> {
        provider::table_provider(table, session).await
    }
}
