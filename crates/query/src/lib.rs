//! Meshwork's query layer: a DataFusion session, per principal, over the published products.
//!
//! Products appear as tables `domain.product` in the catalog `meshwork`. The catalog is a
//! snapshot taken before planning (DataFusion's catalog API is synchronous): each table reads
//! the Delta version the metadata store names as current, never a newer uncommitted one.
//!
//! Governance is enforced here, the same way for every interface:
//! - a product the principal may not read is not registered at all, so it is missing from
//!   `SHOW TABLES` and `information_schema` and querying it says "not found";
//! - every scan of a restricted product is rewritten by [`rewrite::PolicyRule`], the first
//!   analyzer rule, into a fenced filter-and-mask subtree;
//! - statements are read-only: DDL, DML, COPY, SET, file/URL tables and file-reading table
//!   functions are refused while planning;
//! - EXPLAIN shows non-admins the fence, never what is behind it;
//! - every statement, refused or failed ones included, writes one audit event.

#![deny(missing_docs)]

mod bounded;
mod engine;
mod explain;
mod guard;
mod limits;
mod masks;
mod rewrite;
mod schema;
mod search;
mod stream;

pub use engine::{QueryEngine, QueryLimits, TableCache};
pub use limits::{MAX_NESTING, MAX_SQL_BYTES, check_length, check_nesting, on_planner_thread, recursion_refusal};
pub use search::{ProductIndex, SearchQuery};
pub use stream::QueryStream;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{ExplainFormat, LogicalPlan};
use datafusion::optimizer::Analyzer;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use meshwork_catalog::{AuditEvent, AuditProduct, CatalogStore, ProductRecord};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::ProductId;
use meshwork_core::principal::Principal;
use meshwork_policy::{AccessDecision, Authorizer, PolicyScope, PolicySet, PolicySource, PolicyStates};
use meshwork_storage::ProductStore;

use crate::guard::{ProductGuard, ProductTable};
use crate::rewrite::{Journal, MeshQueryPlanner, PolicyRule};
use crate::schema::{DomainSchema, FILE_TABLE_FUNCTIONS, MeshCatalog, RefusedTableFunction};

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
    /// `--as` named a principal the mesh does not declare.
    #[error("unknown principal `{name}`{hint}")]
    UnknownPrincipal {
        /// The name given.
        name: String,
        /// " (hint: …)" text.
        hint: String,
    },
    /// The action is reserved for administrators.
    #[error("{0} is not allowed for `{1}`: it is reserved for administrators")]
    AdminOnly(String, String),
    /// The stored policies do not compile (the catalog was written by another version).
    #[error("stored policy does not compile: {0}")]
    Policy(String),
    /// The query ran longer than the server allows.
    #[error("query cancelled: it ran longer than the {limit} limit (hint: add filters or a LIMIT, or ask the platform team to raise `server.query_timeout`)")]
    Timeout {
        /// The limit, e.g. `30s`.
        limit: String,
    },
    /// The query needed more memory than one query may use.
    #[error("query failed: resources exhausted: {detail} (hint: add filters, aggregate before sorting, or ask the platform team to raise `server.query_memory`)")]
    ResourcesExhausted {
        /// What DataFusion could not allocate.
        detail: String,
    },
    /// The audit event could not be completed, so the result is withheld.
    #[error("the result is withheld: its audit event could not be written: {0}")]
    AuditUnavailable(String),
    /// Stored data could not be read back (a bug or a store from another version).
    #[error("internal error (this is a bug in meshwork): {0}")]
    Internal(String),
}

impl QueryError {
    /// A short stable code for wire protocols and JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Sql(err) if is_not_found(err) => "not_found",
            QueryError::Sql(_) => "invalid_query",
            QueryError::UnknownPrincipal { .. } => "unknown_principal",
            QueryError::AdminOnly(..) => "forbidden",
            QueryError::Timeout { .. } => "timeout",
            QueryError::ResourcesExhausted { .. } => "resources_exhausted",
            QueryError::Catalog(_)
            | QueryError::Storage(_)
            | QueryError::Policy(_)
            | QueryError::AuditUnavailable(_)
            | QueryError::Internal(_) => "internal",
        }
    }
}

fn is_not_found(err: &DataFusionError) -> bool {
    let text = err.find_root().to_string();
    text.contains("not found") && text.contains("table")
}

/// DataFusion prefixes messages with its error category; users need the message itself, and
/// the position in their SQL where DataFusion knows it.
pub(crate) fn sql_message(err: &DataFusionError) -> String {
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
            text = format!(
                "`{}` is not allowed: queries are read-only; products are published with `meshwork apply`",
                statement_keyword(statement.trim())
            );
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

/// The SQL a refused plan node came from, in the words the user wrote.
fn statement_keyword(plan_node: &str) -> &str {
    match plan_node {
        "CreateExternalTable" => "CREATE EXTERNAL TABLE",
        "CreateMemoryTable" => "CREATE TABLE",
        "CreateView" => "CREATE VIEW",
        "CreateCatalogSchema" => "CREATE SCHEMA",
        "CreateCatalog" => "CREATE DATABASE",
        "CreateIndex" => "CREATE INDEX",
        "CreateFunction" => "CREATE FUNCTION",
        "DropTable" => "DROP TABLE",
        "DropView" => "DROP VIEW",
        "DropCatalogSchema" => "DROP SCHEMA",
        "DropFunction" => "DROP FUNCTION",
        "Insert Into" | "InsertInto" => "INSERT",
        "Delete" => "DELETE",
        "Update" => "UPDATE",
        "Truncate" => "TRUNCATE",
        "COPY" | "CopyTo" => "COPY",
        "SetVariable" => "SET",
        "ResetVariable" => "RESET",
        "TransactionStart" => "BEGIN",
        "TransactionEnd" => "COMMIT/ROLLBACK",
        "Prepare" => "PREPARE",
        "Execute" => "EXECUTE",
        "Deallocate" => "DEALLOCATE",
        other => other,
    }
}

impl From<DataFusionError> for QueryError {
    fn from(err: DataFusionError) -> Self {
        match err.find_root() {
            DataFusionError::ResourcesExhausted(detail) => QueryError::ResourcesExhausted { detail: detail.clone() },
            _ => QueryError::Sql(err),
        }
    }
}

/// The governance a query layer enforces, as last applied: principals, compiled policies with
/// their states, and the mask salt. Load once and share between sessions.
#[derive(Debug, Clone)]
pub struct Governance {
    principals: Vec<Principal>,
    authorizer: Authorizer,
    salt: String,
}

impl Governance {
    /// Loads what the last apply stored. A mesh never applied has only the local administrator
    /// and the built-in policies.
    pub async fn load(catalog: &dyn CatalogStore) -> Result<Governance, QueryError> {
        let snapshot = catalog.governance().await?;
        let mut principals = snapshot.principals;
        if !principals.iter().any(|p| p.name == meshwork_core::principal::LOCAL_ADMIN) {
            principals.push(Principal::local_admin());
        }
        let sources = if snapshot.policies.is_empty() {
            PolicySource::builtins()
        } else {
            snapshot
                .policies
                .into_iter()
                .map(|p| PolicySource {
                    name: p.name,
                    scope: p.domain.map(PolicyScope::Domain).unwrap_or(PolicyScope::Global),
                    file: p.file,
                    text: p.source,
                })
                .collect()
        };
        let policies = PolicySet::compile(sources)
            .map_err(|errs| QueryError::Policy(errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?;
        let states = PolicyStates::from_rows(snapshot.states.into_iter().map(|s| (s.domain, s.name, s.state)));
        Ok(Governance { principals, authorizer: Authorizer::new(Arc::new(policies), states), salt: catalog.mask_salt().await? })
    }

    /// The principal called `name`; the error lists the declared ones.
    pub fn principal(&self, name: &str) -> Result<Principal, QueryError> {
        if let Some(p) = self.principals.iter().find(|p| p.name == name) {
            return Ok(p.clone());
        }
        let names: Vec<&str> = self.principals.iter().map(|p| p.name.as_str()).collect();
        let hint = match meshwork_core::diagnostic::did_you_mean(name, names.iter().copied()) {
            Some(close) => format!(" (hint: did you mean `{close}`?)"),
            None => format!(" (hint: declared principals are {}; add others to `principals.yaml` and apply)", meshwork_core::diagnostic::one_of(names.iter().copied())),
        };
        Err(QueryError::UnknownPrincipal { name: name.to_owned(), hint })
    }

    /// Every declared principal.
    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// The access decision for one principal and one product.
    pub fn decide(&self, principal: &Principal, product: &ProductDescriptor) -> AccessDecision {
        self.authorizer.decide(principal, product)
    }

    /// The products of `records` that `principal` may see, for listings.
    pub fn visible<'r>(&self, principal: &Principal, records: &'r [ProductRecord]) -> Vec<&'r ProductRecord> {
        records
            .iter()
            .filter(|r| match serde_json::from_str::<ProductDescriptor>(&r.descriptor_json) {
                Ok(descriptor) => self.decide(principal, &descriptor).allowed,
                Err(_) => false,
            })
            .collect()
    }
}

/// Whether `principal` owns `product`: an administrator, a member of its domain, or its named
/// owner. Owners see quality samples as stored; everyone else through the product's policy.
pub fn is_owner(principal: &Principal, product: &ProductDescriptor) -> bool {
    principal.admin || principal.in_domain(&product.domain) || product.owner.as_deref().is_some_and(|o| principal.matches(o))
}

/// Rows of a product kept outside its table (quality samples, as JSON objects) as `principal`
/// may see them: as stored for owners; otherwise through the same row filter and masks a query
/// of the product applies, so a sample never shows what a query would hide. `None` when the
/// principal may not read the product at all.
pub async fn govern_samples(
    governance: &Governance,
    principal: &Principal,
    product: &ProductDescriptor,
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> Result<Option<Vec<serde_json::Map<String, serde_json::Value>>>, QueryError> {
    let decision = governance.decide(principal, product);
    if !decision.allowed {
        return Ok(None);
    }
    if rows.is_empty() || is_owner(principal, product) {
        return Ok(Some(rows.to_vec()));
    }
    let schema = meshwork_storage::contract_schema(&product.contract);
    let mut ndjson = Vec::new();
    for row in rows {
        serde_json::to_writer(&mut ndjson, row).expect("json values serialize");
        ndjson.push(b'\n');
    }
    let internal = |e: &dyn std::fmt::Display| QueryError::Internal(format!("quality samples of `{}`: {e}", product.id()));
    let reader = datafusion::arrow::json::ReaderBuilder::new(schema.clone()).build(std::io::Cursor::new(ndjson)).map_err(|e| internal(&e))?;
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(|e| internal(&e))?;
    let ctx = SessionContext::new();
    // A policy that cannot be enforced on the samples hides them, as it denies a query.
    let Ok(guard) = ProductGuard::build(&ctx.state(), &schema, &decision, principal, &governance.salt) else { return Ok(None) };
    let mut frame = ctx.read_batches(batches).map_err(|e| internal(&e))?;
    if let Some(filter) = guard.filter {
        frame = frame.filter(filter).map_err(|e| internal(&e))?;
    }
    let columns: Vec<datafusion::logical_expr::Expr> = schema
        .fields()
        .iter()
        .map(|f| match guard.masks.get(f.name()) {
            Some(mask) => mask.clone().alias(f.name()),
            None => datafusion::prelude::col(datafusion::common::Column::new_unqualified(f.name())),
        })
        .collect();
    let batches = frame.select(columns).map_err(|e| internal(&e))?.collect().await.map_err(|e| internal(&e))?;
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for batch in &batches {
        writer.write(batch).map_err(|e| internal(&e))?;
    }
    writer.finish().map_err(|e| internal(&e))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Some(Vec::new()));
    }
    Ok(Some(serde_json::from_slice(&bytes).map_err(|e| internal(&e))?))
}

/// A product's quality runs, newest first, as `principal` may see them: samples pass through
/// [`govern_samples`].
pub async fn quality_runs_for(
    catalog: &dyn CatalogStore,
    governance: &Governance,
    principal: &Principal,
    product: &ProductDescriptor,
    limit: u32,
) -> Result<Vec<meshwork_catalog::QualityRun>, QueryError> {
    let mut runs = catalog.quality_runs(&product.id(), limit).await?;
    for run in &mut runs {
        for rule in &mut run.results {
            rule.samples = govern_samples(governance, principal, product, &rule.samples).await?.unwrap_or_default();
        }
    }
    Ok(runs)
}

/// Products are scanned with string views, which are faster to filter, join and group; results
/// leave as plain `Utf8` strings, the type every client and wire encoder knows. Only the output
/// columns are cast, after everything else ran on views. Statements whose output cannot be
/// re-projected (EXPLAIN) are left as they are.
fn plain_strings(frame: DataFrame) -> DataFrame {
    use datafusion::logical_expr::{Expr, cast};
    let schema = frame.schema().clone();
    if matches!(frame.logical_plan(), LogicalPlan::Explain(_) | LogicalPlan::Analyze(_))
        || !schema.fields().iter().any(|f| f.data_type() == &DataType::Utf8View)
    {
        return frame;
    }
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::from((qualifier, field)));
            if field.data_type() == &DataType::Utf8View {
                cast(column, DataType::Utf8).alias_qualified(qualifier.cloned(), field.name())
            } else {
                column
            }
        })
        .collect();
    frame.clone().select(columns).unwrap_or(frame)
}

/// A query session over the published products of a mesh, for one principal on one interface.
pub struct QuerySession {
    ctx: SessionContext,
    principal: Principal,
    interface: String,
    catalog: Arc<dyn CatalogStore>,
    journal: Arc<Journal>,
    decisions: BTreeMap<ProductId, AccessDecision>,
    /// Table locations, scrubbed from EXPLAIN output shown to non-admins.
    locations: Vec<String>,
    limits: QueryLimits,
}

/// What a statement will return, known before running it.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    /// Result columns.
    pub schema: SchemaRef,
    /// Types of the `$1`, `$2`, … placeholders, in order; `None` where SQL does not say.
    pub parameters: Vec<Option<DataType>>,
}

impl QuerySession {
    /// Opens a session for `principal` with no limits: decides access to every published
    /// product, registers the readable ones, and installs the policy rewrite.
    pub async fn open(catalog: Arc<dyn CatalogStore>, governance: &Governance, principal: Principal, interface: &str) -> Result<Self, QueryError> {
        Self::open_with(catalog, governance, principal, interface, &QueryLimits::default(), None).await
    }

    /// Opens a session with per-query `limits`, reusing opened tables from `tables`.
    pub async fn open_with(
        catalog: Arc<dyn CatalogStore>,
        governance: &Governance,
        principal: Principal,
        interface: &str,
        limits: &QueryLimits,
        tables: Option<&TableCache>,
    ) -> Result<Self, QueryError> {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, schema::DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        // Spans let errors point at the position in the user's SQL.
        config.options_mut().sql_parser.collect_spans = true;
        let runtime = limits.runtime_env(tables)?;
        let journal = Arc::new(Journal::default());
        // A plain session (same configuration and runtime) to open tables and plan guard
        // expressions in.
        let probe = SessionStateBuilder::new().with_config(config.clone()).with_runtime_env(runtime.clone()).with_default_features().build();

        let mut decisions = BTreeMap::new();
        let mut domains: BTreeMap<String, DomainSchema> = BTreeMap::new();
        let mut locations = Vec::new();
        let mut guard_map = HashMap::new();
        for product in catalog.products().await? {
            let Some(version) = catalog.current_version(&product.id).await? else { continue };
            let domain = domains.entry(product.id.domain.to_string()).or_insert_with(|| DomainSchema {
                domain: product.id.domain.clone(),
                visible: BTreeMap::new(),
                denied: Vec::new(),
                journal: journal.clone(),
            });
            let mut decision = match serde_json::from_str::<ProductDescriptor>(&product.descriptor_json) {
                Ok(descriptor) => governance.decide(&principal, &descriptor),
                Err(err) => AccessDecision {
                    product: product.id.clone(),
                    allowed: false,
                    reasons: vec![format!("stored descriptor is unreadable: {err}")],
                    row_filters: Vec::new(),
                    masks: BTreeMap::new(),
                    policies: Vec::new(),
                    warnings: Vec::new(),
                    elapsed: Duration::ZERO,
                    failure: None,
                },
            };
            if decision.allowed {
                let url = url::Url::parse(&product.table_uri)
                    .map_err(|e| DataFusionError::Plan(format!("product `{}` has a bad table location: {e}", product.id)))?;
                let table = match tables {
                    Some(cache) => cache.open(&url, version.delta_version).await?,
                    None => ProductStore::open_table_at(&url, version.delta_version).await?,
                };
                let inner = ProductStore::table_provider(&table, &probe).await?;
                match ProductGuard::build(&probe, &inner.schema(), &decision, &principal, &governance.salt) {
                    Ok(guard) => {
                        guard_map.insert(product.id.clone(), guard);
                        locations.push(product.table_uri.clone());
                        if let Ok(path) = url.to_file_path() {
                            locations.push(path.display().to_string());
                        }
                        let table: Arc<dyn TableProvider> = Arc::new(ProductTable { id: product.id.clone(), inner });
                        domain.visible.insert(product.id.name.to_string(), table);
                    }
                    // Failure to build what the policy asks for means deny.
                    Err(reason) => {
                        decision.allowed = false;
                        decision.reasons.push(reason);
                    }
                }
            }
            if !decision.allowed {
                domain.denied.push(product.id.name.to_string());
            }
            decisions.insert(product.id.clone(), decision);
        }
        let guards = Arc::new(guard_map);

        let policy_rule = Arc::new(PolicyRule { guards, journal: journal.clone() });
        let mut analyzer_rules: Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> = vec![policy_rule];
        analyzer_rules.extend(Analyzer::new().rules);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_analyzer_rules(analyzer_rules)
            .with_query_planner(Arc::new(MeshQueryPlanner))
            .build();
        for name in FILE_TABLE_FUNCTIONS {
            state.register_udtf(name, Arc::new(RefusedTableFunction(name)));
        }
        bounded::install(&mut state, limits)?;
        let ctx = SessionContext::new_with_state(state);
        let mesh_catalog = MeshCatalog::new(domains.into_iter().map(|(name, schema)| (name, Arc::new(schema))).collect());
        ctx.register_catalog(CATALOG_NAME, Arc::new(mesh_catalog));
        Ok(QuerySession { ctx, principal, interface: interface.to_owned(), catalog, journal, decisions, locations, limits: limits.clone() })
    }

    /// The principal this session acts for.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The access decision on each published product.
    pub fn decisions(&self) -> &BTreeMap<ProductId, AccessDecision> {
        &self.decisions
    }

    /// The DataFusion context, for an interface to register what its clients expect to find
    /// (the Postgres wire server's `pg_catalog`). Everything planned in it passes the policy
    /// rewrite, but statements must be run with [`QuerySession::execute`] so they are audited
    /// and checked read-only.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans a read-only SQL statement. Not audited: use [`QuerySession::execute`] to run.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame, QueryError> {
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        Ok(plain_strings(limits::plan(&self.ctx, sql, options, &self.limits).await?))
    }

    /// The result schema and placeholder types of a statement, without running it.
    pub async fn prepare(&self, sql: &str) -> Result<PreparedStatement, QueryError> {
        let frame = self.sql(sql).await?;
        Ok(PreparedStatement { schema: Arc::new(frame.schema().as_arrow().clone()), parameters: parameter_types(frame.logical_plan())? })
    }

    /// Runs a read-only SQL statement, collects its result with its schema (which an empty
    /// result still has), and records one audit event, whatever the outcome. If the audit event
    /// cannot be written, the result is withheld. A session runs one statement at a time (its
    /// journal of touched products is per statement).
    pub async fn collect(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        use futures::TryStreamExt;
        let stream = self.execute(sql).await?;
        let schema = stream.schema();
        let batches = stream.try_collect().await?;
        Ok((schema, batches))
    }

    /// Runs a read-only SQL statement as a stream of record batches, within the session's
    /// limits. The audit event is written before the first batch (no result leaves without
    /// one) and completed when the stream ends, fails, or is dropped (`cancelled`).
    pub async fn execute(&self, sql: &str) -> Result<QueryStream, QueryError> {
        self.execute_with(sql, None).await
    }

    /// [`QuerySession::execute`] with values for the statement's `$n` placeholders.
    pub async fn execute_with(&self, sql: &str, params: Option<ParamValues>) -> Result<QueryStream, QueryError> {
        self.journal.reset();
        let started = Instant::now();
        match self.start(sql, params).await {
            Ok(running) => {
                let mut event = self.audit_event(sql, Ok(None), started.elapsed());
                event.outcome = "running".into();
                let id = self.catalog.record_audit(&event).await?;
                Ok(QueryStream::new(running, self.catalog.clone(), id, started, &self.limits))
            }
            Err(err) => {
                let event = self.audit_event(sql, Err(&err), started.elapsed());
                self.catalog.record_audit(&event).await?;
                Err(err)
            }
        }
    }

    /// Plans and starts a statement: its schema and batch stream.
    async fn start(&self, sql: &str, params: Option<ParamValues>) -> Result<stream::Running, QueryError> {
        let mut frame = self.sql(sql).await?;
        if let Some(params) = params {
            frame = frame.with_param_values(params)?;
        }
        let explain = match frame.logical_plan() {
            LogicalPlan::Explain(e) => Some((e.verbose, e.explain_format.clone())),
            LogicalPlan::Analyze(a) => Some((a.verbose, a.format.clone())),
            _ => None,
        };
        if let Some((verbose, format)) = &explain
            && !self.principal.admin
        {
            if *verbose {
                return Err(QueryError::AdminOnly("`EXPLAIN VERBOSE`".into(), self.principal.name.clone()));
            }
            if !matches!(format, ExplainFormat::Indent) {
                return Err(QueryError::AdminOnly(format!("`EXPLAIN FORMAT {format}`"), self.principal.name.clone()));
            }
        }
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        if explain.is_some() {
            // EXPLAIN output is small; it is redacted as a whole before anything is sent.
            let limit = self.limits.timeout;
            let collect = frame.collect();
            let mut batches = match limit {
                Some(limit) => tokio::time::timeout(limit, collect).await.map_err(|_| QueryError::Timeout { limit: engine::human(limit) })??,
                None => collect.await?,
            };
            if !self.principal.admin {
                batches = explain::redact(batches, &self.locations)?;
            }
            return Ok(stream::Running::Batches(schema, batches));
        }
        // Physical planning runs the analyzer, so the policy journal knows every product the
        // statement reads before its audit event is written.
        let task = Arc::new(frame.task_ctx());
        let plan = limits::physical_plan(frame, &self.limits).await?;
        let batches = datafusion::physical_plan::execute_stream(plan, task)?;
        Ok(stream::Running::Stream(schema, batches))
    }

    fn audit_event(&self, sql: &str, result: Result<Option<u64>, &QueryError>, elapsed: Duration) -> AuditEvent {
        let mut products = Vec::new();
        for id in self.journal.touched() {
            let decision = self.decisions.get(&id);
            products.push(AuditProduct {
                product: id.to_string(),
                decision: "allow".into(),
                policies: decision.map(|d| d.policies.clone()).unwrap_or_default(),
                row_filters: decision.map(|d| d.row_filters.len()).unwrap_or(0),
                masks: decision.map(|d| d.masks.iter().map(|(c, m)| format!("{c}:{}", m.kind())).collect()).unwrap_or_default(),
                reasons: decision.map(|d| d.warnings.clone()).unwrap_or_default(),
                decision_us: decision.map(|d| d.elapsed.as_micros() as u64).unwrap_or(0),
            });
        }
        let denied = self.journal.denied();
        for id in &denied {
            let decision = self.decisions.get(id);
            products.push(AuditProduct {
                product: id.to_string(),
                decision: "deny".into(),
                policies: decision.map(|d| d.policies.clone()).unwrap_or_default(),
                row_filters: 0,
                masks: Vec::new(),
                reasons: decision.map(|d| d.reasons.clone()).unwrap_or_default(),
                decision_us: decision.map(|d| d.elapsed.as_micros() as u64).unwrap_or(0),
            });
        }
        let (outcome, rows, error) = match result {
            Ok(rows) => ("ok", rows, None),
            Err(err) if !denied.is_empty() => ("denied", None, Some(err.to_string())),
            Err(err) => ("error", None, Some(err.to_string())),
        };
        AuditEvent {
            id: 0,
            at: String::new(),
            principal: self.principal.name.clone(),
            interface: self.interface.clone(),
            action: "query".into(),
            statement: normalise(sql),
            products,
            rows,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            outcome: outcome.into(),
            error,
        }
    }
}

/// The types of a plan's `$1`, `$2`, … placeholders, in order; `None` where SQL does not say.
pub fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, QueryError> {
    // DataFusion keys them by name: order them by number, so `$10` comes after `$9`.
    let mut ordered: Vec<(usize, Option<DataType>)> = plan
        .get_parameter_types()?
        .into_iter()
        .map(|(name, t)| (name.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX), t))
        .collect();
    ordered.sort_by_key(|(n, _)| *n);
    Ok(ordered.into_iter().map(|(_, t)| t).collect())
}

/// The statement as the SQL parser prints it back: one line, keywords and spacing uniform.
/// Text that does not parse is kept with its whitespace collapsed.
pub fn normalise(sql: &str) -> String {
    // Text too deep to parse safely on this thread is kept as written.
    match datafusion::sql::parser::DFParser::parse_sql(if limits::shallow(sql) { sql } else { "" }) {
        Ok(statements) if !statements.is_empty() => statements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        _ => sql.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}
