//! DataFusion table providers over product tables: DataFusion's own Parquet scan for the plain
//! Delta tables Meshwork writes, delta-rs's provider for anything else.

use std::sync::Arc;

use datafusion::catalog::{Session, TableProvider};
use deltalake::{DeltaTable, DeltaTableError};

use crate::{Result, StorageError};

/// A DataFusion table provider over `table` at its loaded version, registered with
/// `session`'s object stores.
///
/// Tables Meshwork writes are plain Delta tables: reader version 1 (no deletion vectors, no
/// column mapping) and no partition columns, so their rows are exactly the Parquet files the
/// snapshot lists. Those are scanned by DataFusion's own Parquet scan over that file list
/// (footer statistics, byte-range splitting across cores, page index, filter pushdown),
/// which runs TPC-H 1.3–2x faster than delta-rs's kernel-driven scan (docs/benchmarks.md).
/// Any other table (written by another engine with features the plain scan cannot honour)
/// goes through delta-rs's provider.
pub async fn table_provider(table: &DeltaTable, session: &dyn Session) -> Result<Arc<dyn TableProvider>> {
    let delta = |source| StorageError::Delta { table: table.table_url().to_string(), source };
    table.update_datafusion_session(session).map_err(delta)?;
    if let Some(provider) = plain_parquet_provider(table, session)? {
        return Ok(provider);
    }
    table.table_provider().await.map_err(|e| StorageError::Delta {
        table: table.table_url().to_string(),
        source: DeltaTableError::Generic(e.to_string()),
    })
}

/// The plain-Parquet provider of [`table_provider`], or `None` when the table
/// uses a Delta feature that changes how its files are read (or has no files).
fn plain_parquet_provider(table: &DeltaTable, session: &dyn Session) -> Result<Option<Arc<dyn TableProvider>>> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};

    let Ok(state) = table.snapshot() else { return Ok(None) };
    let protocol = state.protocol();
    let plain_reader = match protocol.min_reader_version() {
        1 => true,
        3 => protocol.reader_features().is_none_or(|features| features.is_empty()),
        _ => false,
    };
    if !plain_reader || !state.metadata().partition_columns().is_empty() {
        return Ok(None);
    }
    let datafusion_error = |e: datafusion::error::DataFusionError| StorageError::Delta {
        table: table.table_url().to_string(),
        source: DeltaTableError::Generic(e.to_string()),
    };
    let files = table
        .get_file_uris()
        .map_err(|source| StorageError::Delta { table: table.table_url().to_string(), source })?
        .map(|uri| ListingTableUrl::parse(uri).map_err(datafusion_error))
        .collect::<Result<Vec<_>>>()?;
    if files.is_empty() {
        return Ok(None);
    }
    let format = ParquetFormat::default().with_options(session.table_options().parquet.clone());
    let options = ListingOptions::new(Arc::new(format))
        // The log names the files; whatever their names end with, they are the table.
        // Statistics and scan parallelism follow the session's configuration.
        .with_file_extension("");
    // Strings are read as views (DataFusion's own default for Parquet): filters, joins and
    // group-bys on them skip copying every value. The query layer hands results to clients as
    // plain strings again. A session that turns `schema_force_view_types` off (one whose plans
    // may run on a Ballista cluster, where views do not cross stages well) reads plain strings.
    let views = session.config_options().execution.parquet.schema_force_view_types;
    let schema = state.snapshot().arrow_schema();
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            datafusion::arrow::datatypes::DataType::Utf8 if views => Arc::new(f.as_ref().clone().with_data_type(datafusion::arrow::datatypes::DataType::Utf8View)),
            _ => f.clone(),
        })
        .collect();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(fields, schema.metadata().clone()));
    let config = ListingTableConfig::new_with_multi_paths(files).with_listing_options(options).with_schema(schema);
    Ok(Some(Arc::new(ListingTable::try_new(config).map_err(datafusion_error)?)))
}
