//! An incremental load's staged rows seen together with the published ones: what its quality
//! rules check, and what the new version will hold once it is appended or merged.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;
use meshwork_catalog::VersionRecord;
use meshwork_core::id::ProductId;
use meshwork_storage::{DeltaTable, ProductStore, StagedTable};

use crate::PipelineError;
use crate::database::Load;

/// The product as it will read once `staged` is committed by `load` onto version `current`:
/// the published rows plus the staged ones, less (for a merge) the published rows whose key a
/// staged row replaces; how many rows that is; and the published table it read, whose object
/// store a session scanning the result must know. `Full` is the staged table itself.
pub async fn combined(
    store: &ProductStore,
    id: &ProductId,
    current: Option<&VersionRecord>,
    staged: &StagedTable,
    load: &Load,
) -> Result<(Arc<dyn TableProvider>, u64, Option<DeltaTable>), PipelineError> {
    let context = SessionContext::new();
    let state = context.state();
    let staged_provider = ProductStore::table_provider(&staged.table, &state).await?;
    let current = match (load, current) {
        (Load::Full, _) | (_, None) => return Ok((staged_provider, staged.rows, None)),
        (_, Some(current)) => current,
    };
    let table = ProductStore::open_table_at(&store.table_url(id), current.delta_version).await?;
    ProductStore::register_object_store(&table, &state)?;
    ProductStore::register_object_store(&staged.table, &state)?;
    let failed = |e: datafusion::error::DataFusionError| PipelineError::Internal(format!("combining the staged rows of `{id}` with its published ones: {e}"));
    context.register_table("published", ProductStore::table_provider(&table, &state).await?).map_err(failed)?;
    context.register_table("staged", staged_provider).map_err(failed)?;
    let sql = match load {
        Load::Append => "SELECT * FROM published UNION ALL SELECT * FROM staged".to_owned(),
        Load::Merge { keys } => {
            let quoted = |k: &String| format!("\"{}\"", k.replace('"', "\"\""));
            let matches = keys.iter().map(|k| format!("staged.{q} = published.{q}", q = quoted(k))).collect::<Vec<_>>().join(" AND ");
            format!("SELECT * FROM published WHERE NOT EXISTS (SELECT 1 FROM staged WHERE {matches}) UNION ALL SELECT * FROM staged")
        }
        Load::Full => unreachable!("returned above"),
    };
    let frame = context.sql(&sql).await.map_err(failed)?;
    let rows = frame.clone().count().await.map_err(failed)? as u64;
    Ok((frame.into_view(), rows, Some(table)))
}
