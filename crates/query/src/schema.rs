//! The SQL catalog a principal sees: one schema per domain holding only the products the
//! principal may read, and a `public` schema that refuses file and URL "tables".

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableFunctionImpl, TableProvider};
use datafusion::catalog::TableFunctionArgs;
use datafusion::common::{DataFusionError, Result, plan_err};
use meshwork_core::id::{DomainName, ProductId, ProductName};

use crate::rewrite::Journal;

/// The `meshwork` catalog.
#[derive(Debug)]
pub(crate) struct MeshCatalog {
    domains: BTreeMap<String, Arc<DomainSchema>>,
    public: Arc<PublicSchema>,
    /// Schemas an interface adds for its clients (the Postgres server's `pg_catalog`).
    interface: std::sync::RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>,
}

/// Schemas an interface may add to a session; everything else is a domain or `public`.
const INTERFACE_SCHEMAS: &[&str] = &["pg_catalog"];

impl MeshCatalog {
    /// `public` holds the unqualified tables of a domain's read (input ports, `this`); it is
    /// empty in a consumer's session.
    pub(crate) fn new(domains: BTreeMap<String, Arc<DomainSchema>>, public: BTreeMap<String, Arc<dyn TableProvider>>) -> MeshCatalog {
        MeshCatalog { domains, public: Arc::new(PublicSchema { tables: public }), interface: Default::default() }
    }
}

/// The schema queries resolve unqualified names in.
pub(crate) const DEFAULT_SCHEMA: &str = "public";

impl CatalogProvider for MeshCatalog {
    fn schema_names(&self) -> Vec<String> {
        // A domain with nothing readable is not listed either.
        let mut names: Vec<String> = self.domains.iter().filter(|(_, s)| !s.visible.is_empty()).map(|(n, _)| n.clone()).collect();
        names.push(DEFAULT_SCHEMA.to_owned());
        names.extend(self.interface.read().expect("schema lock").keys().cloned());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == DEFAULT_SCHEMA {
            return Some(self.public.clone());
        }
        if let Some(schema) = self.interface.read().expect("schema lock").get(name) {
            return Some(schema.clone());
        }
        self.domains.get(name).map(|s| s.clone() as Arc<dyn SchemaProvider>)
    }

    fn register_schema(&self, name: &str, schema: Arc<dyn SchemaProvider>) -> datafusion::error::Result<Option<Arc<dyn SchemaProvider>>> {
        if !INTERFACE_SCHEMAS.contains(&name) {
            return Err(datafusion::error::DataFusionError::Plan(format!("`CREATE SCHEMA {name}` is not allowed: schemas are domains")));
        }
        Ok(self.interface.write().expect("schema lock").insert(name.to_owned(), schema))
    }

    /// Removes a schema an interface added. The Postgres server calls it when a connection
    /// ends: its `pg_catalog` holds the session's catalog list, which holds `pg_catalog`, and
    /// only removing it breaks that cycle so the session's memory is given back.
    fn deregister_schema(&self, name: &str, _cascade: bool) -> datafusion::error::Result<Option<Arc<dyn SchemaProvider>>> {
        if !INTERFACE_SCHEMAS.contains(&name) {
            return Err(datafusion::error::DataFusionError::Plan(format!("`DROP SCHEMA {name}` is not allowed: schemas are domains")));
        }
        Ok(self.interface.write().expect("schema lock").remove(name))
    }
}

/// One domain's readable products. Looking up a denied product answers exactly like a missing
/// one, and is noted in the journal for the audit log.
#[derive(Debug)]
pub(crate) struct DomainSchema {
    pub(crate) domain: DomainName,
    pub(crate) visible: BTreeMap<String, Arc<dyn TableProvider>>,
    pub(crate) denied: Vec<String>,
    /// Products past their sunset that this principal could read: looking them up fails with
    /// the hint naming the successor (for anyone else they are simply missing).
    pub(crate) sunset: BTreeMap<String, meshwork_core::lifecycle::Deprecation>,
    pub(crate) journal: Arc<Journal>,
    /// Table locations of the visible products and how to open their earlier publications
    /// (`"product@N"`); `None` where time travel is not offered (a domain's build reads).
    pub(crate) history: Option<(Arc<crate::history::History>, BTreeMap<String, String>)>,
}

#[async_trait]
impl SchemaProvider for DomainSchema {
    fn table_names(&self) -> Vec<String> {
        self.visible.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(table) = self.visible.get(name) {
            return Ok(Some(table.clone()));
        }
        if let Some(deprecation) = self.sunset.get(name.split_once('@').map_or(name, |(base, _)| base)) {
            return Err(DataFusionError::Plan(format!("table `{}` not found: {}", deprecation.product, deprecation.gone())));
        }
        // `product@N`: an earlier publication of a product this principal may read today, and
        // only then; of a denied one it answers exactly like a missing product.
        if let Some((base, suffix)) = name.split_once('@') {
            if let Some(today) = self.visible.get(base)
                && let Some((history, locations)) = &self.history
                && let (Ok(product), Some(location)) = (ProductName::new(base), locations.get(base))
            {
                return history.open(&ProductId::new(self.domain.clone(), product), location, suffix, &today.schema()).await.map(Some);
            }
            if self.denied.iter().any(|d| d == base)
                && let Ok(product) = ProductName::new(base)
            {
                self.journal.deny(&ProductId::new(self.domain.clone(), product));
            }
            return Ok(None);
        }
        if self.denied.iter().any(|d| d == name)
            && let Ok(product) = ProductName::new(name)
        {
            self.journal.deny(&ProductId::new(self.domain.clone(), product));
        }
        Ok(None)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.visible.contains_key(name)
    }
}

/// The default schema: the place DataFusion resolves `FROM '/etc/passwd'` or `FROM 'https://…'`
/// to, which it refuses by name. Empty for consumers; a domain's read registers its input
/// ports here (products as [`crate::guard::ProductTable`]s, so the policy rewrite still applies).
#[derive(Debug)]
struct PublicSchema {
    tables: BTreeMap<String, Arc<dyn TableProvider>>,
}

fn looks_like_location(name: &str) -> bool {
    name.contains('/') || name.contains('\\') || name.contains("://") || name.contains('.') || name.starts_with('~')
}

#[async_trait]
impl SchemaProvider for PublicSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(table) = self.tables.get(name) {
            return Ok(Some(table.clone()));
        }
        if looks_like_location(name) {
            return plan_err!(
                "reading `{name}` is not allowed: queries read data products (`domain.product`), never files or URLs"
            );
        }
        Ok(None)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}

/// Table functions that would read files; registered so that calling them says "not allowed"
/// rather than "not found".
pub(crate) const FILE_TABLE_FUNCTIONS: &[&str] =
    &["read_parquet", "read_csv", "read_json", "read_ndjson", "read_avro", "read_arrow", "parquet_metadata", "read_text", "read_blob"];

#[derive(Debug)]
pub(crate) struct RefusedTableFunction(pub(crate) &'static str);

impl TableFunctionImpl for RefusedTableFunction {
    fn call_with_args(&self, _args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        plan_err!("table function `{}` is not allowed: queries read data products (`domain.product`), never files", self.0)
    }
}
