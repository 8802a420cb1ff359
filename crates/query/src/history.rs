//! Time travel: `domain."product@N"` reads publication N of a product, and
//! `domain."product@2026-12-01T10:00:00Z"` (or `@2026-12-01`, midnight UTC) the publication
//! current at that time. An earlier version is read as the same product: the access decision
//! and the policy rewrite of *today* apply to it (the guard is looked up by product, not by
//! version), and the audit log records which publication was read. Only columns today's
//! contract still has are readable: a column removed since has no policy today to read it under.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use meshwork_catalog::{CatalogStore, VersionRecord};
use meshwork_core::id::ProductId;
use meshwork_storage::ProductStore;

use crate::guard::ProductTable;
use crate::rewrite::Journal;

/// What a session needs to open earlier publications of the products it may read.
pub(crate) struct History {
    pub(crate) catalog: Arc<dyn CatalogStore>,
    /// The session's runtime, so an opened table's object store is the session's.
    pub(crate) runtime: Arc<RuntimeEnv>,
    pub(crate) journal: Arc<Journal>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").finish_non_exhaustive()
    }
}

/// Which publication a `@…` suffix asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AsOf {
    /// Publication number `N` (`@N` or `@vN`).
    Publication(i64),
    /// The publication current at this time.
    Time(DateTime<Utc>),
}

impl AsOf {
    /// Parses what follows `@`.
    pub(crate) fn parse(text: &str) -> Option<AsOf> {
        if let Ok(n) = text.strip_prefix('v').unwrap_or(text).parse::<i64>() {
            return (n > 0).then_some(AsOf::Publication(n));
        }
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Some(AsOf::Time(at.with_timezone(&Utc)));
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|_| text.len() == 10)?;
        Some(AsOf::Time(date.and_hms_opt(0, 0, 0)?.and_utc()))
    }

    /// The publication of `versions` this asks for.
    fn pick(self, versions: &[VersionRecord]) -> Option<&VersionRecord> {
        match self {
            AsOf::Publication(seq) => versions.iter().find(|v| v.seq == seq),
            AsOf::Time(at) => versions.iter().filter(|v| v.published_at <= at).max_by_key(|v| v.seq),
        }
    }
}

impl History {
    /// Publication `as_of` of `id` (a product the session may read), as the same product.
    pub(crate) async fn open(&self, id: &ProductId, table_uri: &str, suffix: &str, today: &SchemaRef) -> Result<Arc<dyn TableProvider>> {
        let Some(as_of) = AsOf::parse(suffix) else {
            return Err(DataFusionError::Plan(format!(
                "`{id}@{suffix}` names no publication: write `{id}@N` for publication N or `{id}@2026-12-01T10:00:00Z` for the one current at a time (quote the name: {}.\"{}@N\")",
                id.domain, id.name
            )));
        };
        let external = |e: String| DataFusionError::External(e.into());
        let versions = self.catalog.versions(id).await.map_err(|e| external(e.to_string()))?;
        let Some(version) = as_of.pick(&versions) else {
            let known: Vec<String> = versions.iter().map(|v| format!("#{}", v.seq)).collect();
            return Err(DataFusionError::Plan(format!(
                "`{id}` has no publication {}; it has {} (`meshwork product versions {id}` lists them with their times)",
                match as_of {
                    AsOf::Publication(n) => format!("#{n}"),
                    AsOf::Time(at) => format!("at or before {}", meshwork_catalog::time::format(&at)),
                },
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        };
        if version.remote.is_some() {
            return Err(DataFusionError::Plan(format!(
                "`{id}` is a virtual product, read live from its database: it keeps no earlier publications to read; query `{id}` for its rows now"
            )));
        }
        let url = url::Url::parse(table_uri).map_err(|e| DataFusionError::Plan(format!("product `{id}` has a bad table location: {e}")))?;
        let table = ProductStore::open_table_at(&url, version.delta_version).await.map_err(|e| external(e.to_string()))?;
        let state = SessionStateBuilder::new().with_runtime_env(self.runtime.clone()).build();
        let inner = ProductStore::table_provider(&table, &state).await.map_err(|e| external(e.to_string()))?;
        let inner = TodaysColumns::wrap(inner, today);
        self.journal.read_publication(id, version.seq);
        Ok(Arc::new(ProductTable { id: id.clone(), inner, published_rows: u64::try_from(version.row_count).unwrap_or(0), exact_filters: false }))
    }
}

/// An earlier publication with only the columns today's contract still has.
#[derive(Debug)]
struct TodaysColumns {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    /// For each column of `schema`, its index in `inner`.
    indices: Vec<usize>,
}

impl TodaysColumns {
    fn wrap(inner: Arc<dyn TableProvider>, today: &SchemaRef) -> Arc<dyn TableProvider> {
        let then = inner.schema();
        let indices: Vec<usize> = (0..then.fields().len()).filter(|&i| today.field_with_name(then.field(i).name()).is_ok()).collect();
        if indices.len() == then.fields().len() {
            return inner;
        }
        let schema = Arc::new(Schema::new_with_metadata(indices.iter().map(|&i| then.field(i).clone()).collect::<Vec<_>>(), then.metadata().clone()));
        Arc::new(TodaysColumns { inner, schema, indices })
    }
}

#[async_trait]
impl TableProvider for TodaysColumns {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let mapped: Vec<usize> = match projection {
            Some(projection) => projection.iter().map(|&i| self.indices[i]).collect(),
            None => self.indices.clone(),
        };
        self.inner.scan(state, Some(&mapped), filters, limit).await
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}
