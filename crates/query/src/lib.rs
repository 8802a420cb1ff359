//! Meshwork's query layer: a DataFusion session whose catalog holds every published product.
//!
//! Products appear as tables `domain.product` in the catalog `meshwork`. The catalog is a
//! snapshot taken before planning (DataFusion's catalog API is synchronous): each table reads
//! the Delta version the metadata store names as current, never a newer uncommitted one.
//! Statements are read-only: DDL, DML and session changes are refused.

#![deny(missing_docs)]

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use meshwork_catalog::CatalogStore;
use meshwork_storage::ProductStore;

/// Name of the SQL catalog holding the products.
pub const CATALOG_NAME: &str = "meshwork";

/// Errors of the query layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The SQL is invalid, refers to something unknown, or failed while running. The message is
    /// complete: DataFusion's error chain is folded into it, not exposed as a source.
    #[error("{}", sql_message(.0))]
    Sql(DataFusionError),
    /// The metadata store failed.
    #[error(transparent)]
    Catalog(#[from] meshwork_catalog::CatalogError),
    /// A product's table could not be opened.
    #[error(transparent)]
    Storage(#[from] meshwork_storage::StorageError),
}

/// DataFusion prefixes messages with its error category; users need the message itself, and
/// the position in their SQL where DataFusion knows it.
fn sql_message(err: &DataFusionError) -> String {
    // Wrappers (optimizer rule names, contexts) say little; the innermost error says what is wrong.
    let mut text = match err.find_root() {
        DataFusionError::SQL(parser, _) => parser.to_string().trim_start_matches("sql parser error: ").to_owned(),
        DataFusionError::ArrowError(arrow, _) => arrow.to_string(),
        root => root.strip_backtrace(),
    };
    for prefix in ["Error during planning: ", "SQL error: ", "Schema error: ", "Execution error: ", "This feature is not implemented: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            text = rest.to_owned();
            break;
        }
    }
    // SQLOptions refusals name the statement kind; say why it is refused and what to do instead.
    for kind in ["DDL not supported: ", "DML not supported: ", "Statement not supported: "] {
        if let Some(statement) = text.strip_prefix(kind) {
            text = format!("`{statement}` is not allowed: queries are read-only; products are published with `meshwork apply`");
            break;
        }
    }
    if let Some(diagnostic) = err.diagnostic() {
        if let Some(span) = diagnostic.span {
            text.push_str(&format!(" (at line {}, column {})", span.start.line, span.start.column));
        }
        for help in &diagnostic.helps {
            text.push_str(&format!("; hint: {}", help.message));
        }
    }
    text
}

impl From<DataFusionError> for QueryError {
    fn from(err: DataFusionError) -> Self {
        QueryError::Sql(err)
    }
}

/// A query session over the published products of a mesh.
pub struct QuerySession {
    ctx: SessionContext,
}

impl QuerySession {
    /// Opens a session whose catalog holds the current version of every published product.
    pub async fn open(catalog: &dyn CatalogStore) -> Result<Self, QueryError> {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, "public")
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true);
        let mut config = config;
        // Spans let errors point at the position in the user's SQL.
        config.options_mut().sql_parser.collect_spans = true;
        let ctx = SessionContext::new_with_config(config);
        let mesh_catalog = ctx.catalog(CATALOG_NAME).expect("the default catalog is created");
        for product in catalog.products().await? {
            let Some(version) = catalog.current_version(&product.id).await? else { continue };
            let url = url::Url::parse(&product.table_uri)
                .map_err(|e| DataFusionError::Plan(format!("product `{}` has a bad table location: {e}", product.id)))?;
            let table = ProductStore::open_table_at(&url, version.delta_version).await?;
            let provider = ProductStore::table_provider(&table, &ctx.state()).await?;
            let domain = product.id.domain.as_str();
            let schema = match mesh_catalog.schema(domain) {
                Some(schema) => schema,
                None => {
                    let schema: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                    mesh_catalog.register_schema(domain, schema.clone())?;
                    schema
                }
            };
            schema.register_table(product.id.name.to_string(), provider)?;
        }
        Ok(QuerySession { ctx })
    }

    /// Plans a read-only SQL statement.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame, QueryError> {
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        Ok(self.ctx.sql_with_options(sql, options).await?)
    }

    /// Runs a read-only SQL statement and collects its result with its schema (which an empty
    /// result still has).
    pub async fn collect(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        let frame = self.sql(sql).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        Ok((schema, frame.collect().await?))
    }
}
