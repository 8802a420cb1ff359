//! `pg_catalog` for Postgres-wire clients: datafusion-pg-catalog's tables and functions, set up
//! per session from one shared copy of its static data, with what drivers' metadata queries
//! need on top: primary keys from product contracts (`pg_index`, `pg_constraint`, index rows in
//! `pg_class`, `information_schema.table_constraints`/`key_column_usage`), `information_schema.columns`
//! with PostgreSQL's type names, the connected
//! principal as the only role, `pg_settings`, and the functions and casts listed in
//! [`functions`] and [`rewrite`].
//!
//! Everything here is built from the session's catalog, which holds only the products the
//! principal may read, so a hidden product is absent from every table and function.

mod columns;
mod functions;
mod keys;
mod relations;
mod rewrite;
mod rows;
pub(crate) mod settings;
mod types;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    self as lib, PgCatalogSchemaProvider, PgCatalogStaticTables, array_bounds_udf, format_type, generate_series_arg_coercion, has_privilege_udf,
    oid_type_planner, pg_get_expr_udf, quote_ident_udf,
};
use meshwork_catalog::CatalogStore;
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::principal::Principal;
use meshwork_query::{CATALOG_NAME, QuerySession};

pub(crate) use rewrite::rewrite;

use relations::{Relations, rows_where, scan};
use rows::{Row, batch, text};

/// PostgreSQL's catalog as data (about 1.2 MB), read once for all sessions.
fn static_tables() -> Result<Arc<PgCatalogStaticTables>> {
    static TABLES: OnceLock<Arc<PgCatalogStaticTables>> = OnceLock::new();
    if let Some(tables) = TABLES.get() {
        return Ok(tables.clone());
    }
    let tables = Arc::new(PgCatalogStaticTables::try_new()?);
    Ok(TABLES.get_or_init(|| tables).clone())
}

/// The one role `pg_roles` shows: the connected principal. Passed by value: the library's
/// impl for `Arc<T>` calls itself.
#[derive(Clone, Debug)]
struct ConnectedRole {
    name: String,
    admin: bool,
}

#[async_trait]
impl PgCatalogContextProvider for ConnectedRole {
    async fn roles(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    async fn role(&self, name: &str) -> Option<Role> {
        (name == self.name).then(|| Role {
            name: name.to_owned(),
            is_superuser: self.admin,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: vec![],
            inherited_roles: vec![],
        })
    }
}

/// datafusion-pg-catalog's schema with Meshwork's tables in front: replaced ones
/// (`pg_class`, `pg_index`, …), added ones (`pg_user`) and hidden ones that only the rewrite
/// names (the `information_schema` additions).
#[derive(Debug)]
struct MeshworkPgCatalog {
    inner: Arc<dyn SchemaProvider>,
    tables: HashMap<&'static str, Arc<dyn TableProvider>>,
}

/// Tables Meshwork adds to `pg_catalog` that the library does not list.
const ADDED_TABLES: &[&str] = &["pg_user"];

#[async_trait]
impl SchemaProvider for MeshworkPgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(ADDED_TABLES.iter().map(|n| n.to_string()));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name.to_ascii_lowercase().as_str()) {
            Some(table) => Ok(Some(table.clone())),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name.to_ascii_lowercase().as_str()) || self.inner.table_exist(name)
    }
}

fn memtable((schema, data): (SchemaRef, RecordBatch)) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![data]])?))
}

/// The descriptors of the products the session may read, with the schema of the session's
/// table for each (its column order is `pg_attribute`'s).
async fn readable_products(session: &QuerySession, store: &dyn CatalogStore) -> Result<Vec<(ProductDescriptor, SchemaRef)>> {
    let external = |e: Box<dyn std::error::Error + Send + Sync>| DataFusionError::External(e);
    let records = store.products().await.map_err(|e| external(Box::new(e)))?;
    let catalog = session.context().catalog(CATALOG_NAME).ok_or_else(|| DataFusionError::Internal("the session has no catalog".to_owned()))?;
    let mut products = Vec::new();
    for record in records {
        if !session.decisions().get(&record.id).is_some_and(|d| d.allowed) {
            continue;
        }
        let descriptor = record.descriptor;
        let Some(schema) = catalog.schema(record.id.domain.as_str()) else { continue };
        // Registered tables only: a product past its sunset is allowed but not served.
        if !schema.table_exist(record.id.name.as_str()) {
            continue;
        }
        let Some(table) = schema.table(record.id.name.as_str()).await? else { continue };
        products.push((descriptor, table.schema()));
    }
    Ok(products)
}

/// Installs `pg_catalog` and the PostgreSQL functions in the session. The schema holds the
/// session's catalog list, which holds the schema: the caller removes `pg_catalog` when the
/// session ends to release both.
pub(crate) async fn install(session: &QuerySession, store: &dyn CatalogStore) -> Result<()> {
    let ctx = session.context();
    let principal: &Principal = session.principal();
    let statics = static_tables()?;
    let catalog = ctx.catalog(CATALOG_NAME).ok_or_else(|| DataFusionError::Internal(format!("catalog `{CATALOG_NAME}` is missing")))?;
    let role = ConnectedRole { name: principal.name.clone(), admin: principal.admin };
    let inner: Arc<dyn SchemaProvider> = Arc::new(PgCatalogSchemaProvider::try_new(ctx.state().catalog_list().clone(), statics.clone(), role)?);
    catalog.register_schema("pg_catalog", inner.clone())?;
    register_library_functions(ctx, &statics);

    // What the session's catalog holds, with the OIDs it will keep.
    let class = scan(ctx, inner.table("pg_class").await?).await?;
    let namespace = scan(ctx, inner.table("pg_namespace").await?).await?;
    let database = scan(ctx, inner.table("pg_database").await?).await?;
    let attribute = scan(ctx, inner.table("pg_attribute").await?).await?;
    let mut relations = Relations::new(&class, &namespace)?;
    let products = readable_products(session, store).await?;
    let keys = keys::primary_keys(&relations, &products);
    for key in &keys {
        relations.add(key.index_oid, &key.schema, &key.name);
    }
    let descriptions = keys::descriptions(&relations, &products);
    let pg_class_oid = relations.oid("pg_catalog", "pg_class").unwrap_or(1259);

    let mut tables: HashMap<&'static str, Arc<dyn TableProvider>> = HashMap::new();
    tables.insert("pg_class", memtable(relations::pg_class(&class, &keys)?)?);
    tables.insert("pg_index", memtable(keys::pg_index(&keys)?)?);
    let typmods = types::type_modifiers(&relations, &products);
    tables.insert("pg_attribute", memtable(keys::pg_attribute(&attribute, &keys, &typmods)?)?);
    tables.insert("pg_constraint", memtable(keys::pg_constraint(&keys)?)?);
    tables.insert("pg_description", memtable(keys::pg_description(&descriptions, pg_class_oid)?)?);
    tables.insert("pg_settings", memtable(settings::pg_settings()?)?);
    tables.insert("pg_database", memtable((database.schema(), rows_where(&database, "datname", CATALOG_NAME)?))?);
    tables.insert("pg_user", memtable(pg_user(principal)?)?);
    tables.insert("pg_authid", memtable(pg_authid(&statics, principal)?)?);
    let views = [keys::table_constraints(&keys)?, keys::key_column_usage(&keys)?, columns::information_schema_columns(&products)?];
    for ((_, table), view) in rewrite::INFORMATION_SCHEMA_VIEWS.iter().zip(views) {
        tables.insert(table, memtable(view)?);
    }
    catalog.register_schema("pg_catalog", Arc::new(MeshworkPgCatalog { inner, tables }))?;

    let types = types::TypeNames::shared(&statics)?;
    ctx.state_ref().write().register_expr_planner(Arc::new(types::RegprocComparison { names: types.clone() }))?;
    functions::register(
        ctx,
        functions::Answers { principal: principal.name.clone(), relations: Arc::new(relations), keys, descriptions, types },
    );
    Ok(())
}

/// The functions of datafusion-pg-catalog's `setup_pg_catalog`, some of which
/// [`functions::register`] then replaces, and its type planner for `regclass`, `oid`, ….
fn register_library_functions(ctx: &SessionContext, statics: &PgCatalogStaticTables) {
    ctx.register_udf(lib::create_current_database_udf(CATALOG_NAME));
    ctx.register_udf(lib::create_current_schema_udf());
    ctx.register_udf(lib::create_current_schemas_udf());
    for name in ["has_table_privilege", "has_schema_privilege", "has_database_privilege", "has_any_column_privilege"] {
        ctx.register_udf(has_privilege_udf::create_has_privilege_udf(name));
    }
    ctx.register_udf(format_type::create_format_type_udf());
    ctx.register_udtf("pg_get_keywords", statics.pg_get_keywords.clone());
    ctx.register_udf(pg_get_expr_udf::create_pg_get_expr_udf());
    ctx.register_udf(lib::create_pg_get_partkeydef_udf());
    ctx.register_udf(lib::create_pg_relation_is_publishable_udf());
    ctx.register_udf(lib::create_pg_get_statisticsobjdef_columns_udf());
    ctx.register_udf(lib::create_pg_encoding_to_char_udf());
    ctx.register_udf(lib::create_pg_backend_pid_udf());
    ctx.register_udf(lib::create_pg_relation_size_udf());
    ctx.register_udf(lib::create_pg_total_relation_size_udf());
    ctx.register_udf(lib::create_pg_stat_get_numscans());
    ctx.register_udf(lib::create_pg_get_partition_ancestors_udf());
    ctx.register_udf(quote_ident_udf::create_quote_ident_udf());
    ctx.register_udf(quote_ident_udf::create_parse_ident_udf());
    ctx.register_udf(array_bounds_udf::create_array_upper_udf());
    ctx.register_udf(array_bounds_udf::create_array_lower_udf());
    let state = ctx.state_ref();
    let existing = state.read().clone();
    *state.write() = SessionStateBuilder::new_from_existing(existing).with_type_planner(Arc::new(oid_type_planner::PgOidTypePlanner)).build();
    generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(ctx);
}

/// `pg_user`: the connected principal.
fn pg_user(principal: &Principal) -> Result<(SchemaRef, RecordBatch)> {
    use datafusion::arrow::datatypes::{DataType, Field};
    let schema = rows::schema(vec![
        Field::new("usename", DataType::Utf8, false),
        rows::oid_field("usesysid", false),
        Field::new("usecreatedb", DataType::Boolean, false),
        Field::new("usesuper", DataType::Boolean, false),
        Field::new("userepl", DataType::Boolean, false),
        Field::new("usebypassrls", DataType::Boolean, false),
        Field::new("passwd", DataType::Utf8, true),
        Field::new("valuntil", DataType::Utf8, true),
        Field::new("useconfig", DataType::new_list(DataType::Utf8, true), true),
    ]);
    let row = Row::from([
        ("usename", text(&principal.name)),
        ("usesysid", ScalarValue::Int32(Some(10))),
        ("usesuper", ScalarValue::Boolean(Some(principal.admin))),
        ("passwd", text("********")),
    ]);
    Ok((schema.clone(), batch(&schema, &[row])?))
}

/// `pg_authid` with PostgreSQL's columns: the connected principal only.
fn pg_authid(statics: &PgCatalogStaticTables, principal: &Principal) -> Result<(SchemaRef, RecordBatch)> {
    let schema = statics.pg_authid.schema();
    let row = Row::from([
        ("oid", ScalarValue::Int32(Some(10))),
        ("rolname", text(&principal.name)),
        ("rolsuper", ScalarValue::Boolean(Some(principal.admin))),
        ("rolinherit", ScalarValue::Boolean(Some(true))),
        ("rolcanlogin", ScalarValue::Boolean(Some(true))),
        ("rolconnlimit", ScalarValue::Int32(Some(-1))),
    ]);
    Ok((schema.clone(), batch(&schema, &[row])?))
}
