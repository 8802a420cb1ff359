//! The shared query engine of a long-running server: limits, reloaded governance, opened tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::cache::cache_manager::{CacheManager, CacheManagerConfig};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use meshwork_storage::DeltaTable;
use meshwork_catalog::CatalogStore;
use meshwork_core::principal::Principal;
use meshwork_storage::ProductStore;
use tokio::sync::Mutex;

use crate::search::{ProductHealth, ProductIndex, SearchRequest, SearchResults};
use crate::{Governance, QueryError, QuerySession};

/// Limits on each query a session runs.
#[derive(Debug, Clone, Default)]
pub struct QueryLimits {
    /// Memory one query may hold (hash tables, sorts, buffers). Spilling to disk is off, so a
    /// query needing more fails with a resource error instead of filling the disk.
    pub memory_bytes: Option<usize>,
    /// Wall time one query may take, planning and streaming included.
    pub timeout: Option<Duration>,
    /// The Ballista cluster large statements run on (`cluster:` in `mesh.yaml`); `None`: all
    /// run in-process.
    pub cluster: Option<Arc<crate::Cluster>>,
    /// Seeds the noise of differentially private answers, for tests that check answers
    /// against fixed expectations. Never set it in a deployment: whoever knows the seed can
    /// subtract the noise. `None` (the default): noise from the operating system's randomness.
    pub noise_seed: Option<u64>,
}

impl QueryLimits {
    /// The runtime of one session: its own memory pool, so one query cannot starve another,
    /// and the file caches of `tables` when sessions share them.
    pub(crate) fn runtime_env(&self, tables: Option<&TableCache>) -> Result<Arc<RuntimeEnv>, QueryError> {
        let mut builder = RuntimeEnvBuilder::new();
        if let Some(tables) = tables {
            let files = &tables.files;
            builder = builder.with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_statistics_cache(files.get_file_statistic_cache())
                    .with_list_files_cache(files.get_list_files_cache())
                    .with_file_metadata_cache(Some(files.get_file_metadata_cache())),
            );
        }
        if let Some(bytes) = self.memory_bytes {
            builder = builder
                .with_memory_pool(Arc::new(GreedyMemoryPool::new(bytes)))
                .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled));
        }
        Ok(builder.build_arc()?)
    }
}

/// `90s`, `5m`, `1h` — how a limit is named in messages.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        format!("{}ms", d.as_millis())
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Delta tables already opened at a version, shared by sessions: reading a table's log is the
/// costly part of opening a session, and a published version never changes. Sessions also
/// share DataFusion's file caches (Parquet footers, file statistics, file listings), which are
/// keyed by file path and size: a product's data files are never rewritten in place, so a new
/// version only adds entries.
pub struct TableCache {
    tables: Mutex<HashMap<String, (i64, DeltaTable)>>,
    files: Arc<CacheManager>,
}

impl Default for TableCache {
    fn default() -> Self {
        TableCache {
            tables: Mutex::default(),
            files: CacheManager::try_new(&CacheManagerConfig::default()).expect("the default cache configuration is valid"),
        }
    }
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCache").finish_non_exhaustive()
    }
}

impl TableCache {
    /// The table at `url` as of `version`, opened once. Only the newest version asked for is
    /// kept per table.
    pub async fn open(&self, url: &url::Url, version: i64) -> Result<DeltaTable, QueryError> {
        let key = url.to_string();
        if let Some((v, table)) = self.tables.lock().await.get(&key)
            && *v == version
        {
            return Ok(table.clone());
        }
        let table = ProductStore::open_table_at(url, version).await?;
        let mut tables = self.tables.lock().await;
        match tables.get(&key) {
            Some((v, _)) if *v > version => {}
            _ => {
                tables.insert(key, (version, table.clone()));
            }
        }
        Ok(table)
    }
}

/// What a server shares between requests: the catalog, governance reloaded whenever an apply
/// changes it, opened tables, and the limits every session gets.
pub struct QueryEngine {
    catalog: Arc<dyn CatalogStore>,
    limits: QueryLimits,
    tables: TableCache,
    governance: Mutex<(i64, Arc<Governance>)>,
    /// The search index of the catalog generation it was built at, the instant its remembered
    /// access decisions stop holding (a grant ends), and the quality and SLO states of its
    /// products at the operations mark they were read at.
    search: Mutex<Option<SearchState>>,
}

/// What the search of one catalog generation keeps between requests.
struct SearchState {
    index: Arc<ProductIndex>,
    /// When the index's remembered decisions stop holding: the earliest end of a grant.
    until: Option<chrono::DateTime<chrono::Utc>>,
    health: Arc<ProductHealth>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl QueryEngine {
    /// An engine over `catalog`, loading its governance now.
    pub async fn new(catalog: Arc<dyn CatalogStore>, limits: QueryLimits) -> Result<QueryEngine, QueryError> {
        let generation = catalog.generation().await?;
        let governance = Arc::new(Governance::load(catalog.as_ref()).await?);
        Ok(QueryEngine { catalog, limits, tables: TableCache::default(), governance: Mutex::new((generation, governance)), search: Mutex::new(None) })
    }

    /// The metadata store.
    pub fn catalog(&self) -> &Arc<dyn CatalogStore> {
        &self.catalog
    }

    /// The limits each session gets.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Governance as last applied, reloaded if an apply happened since the last call.
    pub async fn governance(&self) -> Result<Arc<Governance>, QueryError> {
        Ok(self.current_governance().await?.1)
    }

    /// The catalog's generation, read now, and its governance.
    pub async fn current_governance(&self) -> Result<(i64, Arc<Governance>), QueryError> {
        let generation = self.catalog.generation().await?;
        Ok((generation, self.governance_at(generation).await?))
    }

    /// Governance of catalog generation `generation` (read just before).
    async fn governance_at(&self, generation: i64) -> Result<Arc<Governance>, QueryError> {
        let mut current = self.governance.lock().await;
        if current.0 != generation {
            *current = (generation, Arc::new(Governance::load(self.catalog.as_ref()).await?));
        }
        Ok(current.1.clone())
    }

    /// The searchable catalog, rebuilt only when something was published or governance
    /// changed since it was last built, or a grant ended (the index remembers decisions).
    pub async fn product_index(&self) -> Result<Arc<ProductIndex>, QueryError> {
        let generation = self.catalog.generation().await?;
        Ok(self.search_index(generation).await?.0)
    }

    /// Catalog search as `principal`: the products it may read that match `request`, and the
    /// cards of those it may only discover (unless `request.cards` is false), best first, with
    /// facet counts over exactly those.
    pub async fn search(&self, principal: &Principal, request: &SearchRequest) -> Result<SearchResults, QueryError> {
        // One generation for both, so the index remembers decisions of its own governance.
        let generation = self.catalog.generation().await?;
        let governance = self.governance_at(generation).await?;
        let (index, health) = self.search_index(generation).await?;
        Ok(index.search(&governance, principal, &health, request, chrono::Utc::now().date_naive()))
    }

    /// The index of `generation` and its products' health at the catalog's current operations
    /// mark: the index is rebuilt when the generation moved (a publication or governance
    /// change) or a grant ended since it was built (it remembers access decisions), the health
    /// alone when only a quality run or an SLO evaluation was recorded.
    async fn search_index(&self, generation: i64) -> Result<(Arc<ProductIndex>, Arc<ProductHealth>), QueryError> {
        let mark = self.catalog.operations_mark().await?;
        let now = chrono::Utc::now();
        let mut state = self.search.lock().await;
        let current = state.as_ref().filter(|s| s.index.generation() == generation && s.until.is_none_or(|u| now < u));
        let (index, until) = match current {
            Some(s) => (s.index.clone(), s.until),
            None => {
                let until = self.governance_at(generation).await?.valid_until(None);
                let (records, domains) = (self.catalog.products().await?, self.catalog.domains().await?);
                // Seconds of CPU at 100k products: off the async workers.
                let built = tokio::task::spawn_blocking(move || ProductIndex::build(generation, records, &domains)).await;
                (Arc::new(built.map_err(|e| QueryError::Internal(format!("building the search index failed: {e}")))?), until)
            }
        };
        let health = match state.as_ref().filter(|s| s.health.is_current(&index, mark)) {
            Some(s) => s.health.clone(),
            None => Arc::new(ProductHealth::build(&index, mark, &self.catalog.latest_operations().await?)),
        };
        *state = Some(SearchState { index: index.clone(), until, health: health.clone() });
        Ok((index, health))
    }

    /// A session for `principal` on `interface` over the currently published versions.
    pub async fn session(&self, principal: Principal, interface: &str) -> Result<QuerySession, QueryError> {
        let generation = self.catalog.generation().await?;
        self.session_at(principal, interface, generation).await
    }

    /// [`QueryEngine::session`] with the catalog generation the caller read just before (it
    /// labels the session with it, to tell when the session stops deciding as a new one would).
    pub async fn session_at(&self, principal: Principal, interface: &str, generation: i64) -> Result<QuerySession, QueryError> {
        let governance = self.governance_at(generation).await?;
        QuerySession::open_with(self.catalog.clone(), &governance, principal, interface, &self.limits, Some(&self.tables)).await
    }
}

/// `64 MiB`, `1 GiB`, `512 KiB` or bytes — how a memory limit is named in messages.
pub(crate) fn human_bytes(bytes: usize) -> String {
    for (unit, size) in [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}
