//! A query session: one principal's DataFusion session over the products it may read, with the
//! policy rewrite installed, running read-only statements with an audit event each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{ExplainFormat, LogicalPlan};
use datafusion::prelude::{DataFrame, SessionContext};
use meshwork_catalog::{AuditEvent, AuditOutcome, AuditProduct, CatalogStore};
use meshwork_core::id::ProductId;
use meshwork_core::lifecycle::Deprecation;
use meshwork_core::principal::Principal;
use meshwork_policy::AccessDecision;

use crate::engine::{self, QueryLimits, TableCache};
use crate::governance::Governance;
use crate::governed::{Governed, Scope, governed_context};
use crate::placeholders::Placeholders;
use crate::privacy::PrivacySpent;
use crate::rewrite::Journal;
use crate::stream::QueryStream;
use crate::strings::plain_strings;
use crate::{QueryError, explain, stream};

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
    placeholders: Placeholders,
    /// Deprecated products this principal may read, with what their readers are told.
    deprecated: BTreeMap<ProductId, Deprecation>,
    /// When one of the principal's grants ends: the decisions above hold until then at most.
    valid_until: Option<chrono::DateTime<chrono::Utc>>,
    /// What the last statement spent of the principal's privacy budgets.
    privacy: std::sync::Mutex<Vec<PrivacySpent>>,
}

/// What a statement will return, known before running it.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    /// Result columns.
    pub schema: SchemaRef,
    /// Types of the `$1`, `$2`, … placeholders (or the `?`, in text order), in order; `None` where
    /// SQL does not say.
    pub parameters: Vec<Option<DataType>>,
    /// The deprecated products it reads, known before it runs (for interfaces that describe a
    /// result before sending it, like Flight SQL's GetFlightInfo).
    pub deprecations: Vec<Deprecation>,
}

impl QuerySession {
    /// Opens a session for `principal` with no limits: decides access to every published
    /// product, registers the readable ones, and installs the policy rewrite.
    pub async fn open(
        catalog: Arc<dyn CatalogStore>,
        governance: &Governance,
        principal: Principal,
        interface: &str,
    ) -> Result<Self, QueryError> {
        Self::open_with(
            catalog,
            governance,
            principal,
            interface,
            &QueryLimits::default(),
            None,
        )
        .await
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
        let governed = governed_context(
            catalog.as_ref(),
            governance,
            &principal,
            limits,
            tables,
            Scope::Published(catalog.clone()),
        )
        .await?;
        let Governed {
            ctx,
            journal,
            decisions,
            locations,
            deprecated,
        } = governed;
        let valid_until = governance.valid_until(Some(&principal.name));
        Ok(QuerySession {
            valid_until,
            ctx,
            principal,
            interface: interface.to_owned(),
            catalog,
            journal,
            decisions,
            locations,
            limits: limits.clone(),
            placeholders: Placeholders::default(),
            deprecated,
            privacy: std::sync::Mutex::default(),
        })
    }

    /// The session with statements taking placeholders in `style` (Flight SQL clients write `?`).
    pub fn with_placeholders(mut self, style: Placeholders) -> Self {
        self.set_placeholders(style);
        self
    }

    /// Makes statements take placeholders in `style` from now on.
    pub fn set_placeholders(&mut self, style: Placeholders) {
        self.placeholders = style;
    }

    /// The principal this session acts for.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The instant the session's decisions stop holding because one of its principal's grants
    /// ends; a server keeping the session open reopens it then (`None`: no grant ends).
    pub fn valid_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.valid_until
    }

    /// The access decision on each published product.
    pub fn decisions(&self) -> &BTreeMap<ProductId, AccessDecision> {
        &self.decisions
    }

    /// The deprecated products the last statement read (known once it is planned), each with
    /// the warning every interface passes on to its client.
    pub fn deprecations(&self) -> Vec<Deprecation> {
        self.journal.touched().into_iter().filter_map(|id| self.deprecated.get(&id).cloned()).collect()
    }

    /// What the last statement spent of the principal's privacy budgets (differentially private
    /// products), each with the notice every interface passes on to its client.
    pub fn privacy_spent(&self) -> Vec<PrivacySpent> {
        self.privacy.lock().expect("privacy lock").clone()
    }

    /// Whether `plan` reads a product this principal may read only in aggregate.
    fn reads_aggregate_only(&self, plan: &LogicalPlan) -> bool {
        products_read(plan).iter().any(|id| self.decisions.get(id).is_some_and(|d| d.aggregate.is_some()))
    }

    /// The deprecated products a planned statement reads (subqueries included), before it runs.
    pub fn deprecations_of(&self, plan: &LogicalPlan) -> Vec<Deprecation> {
        products_read(plan).into_iter().filter_map(|id| self.deprecated.get(&id).cloned()).collect()
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
        Ok(plain_strings(crate::limits::plan(&self.ctx, sql, crate::governed::read_only(), &self.limits, self.placeholders).await?))
    }

    /// The result schema and placeholder types of a statement, without running it.
    pub async fn prepare(&self, sql: &str) -> Result<PreparedStatement, QueryError> {
        let frame = self.sql(sql).await?;
        Ok(PreparedStatement {
            schema: Arc::new(frame.schema().as_arrow().clone()),
            parameters: parameter_types(frame.logical_plan())?,
            deprecations: self.deprecations_of(frame.logical_plan()),
        })
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
    pub async fn execute_with(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<QueryStream, QueryError> {
        self.journal.reset();
        self.privacy.lock().expect("privacy lock").clear();
        let started = Instant::now();
        match self.start(sql, params).await {
            Ok(running) => {
                let mut event = self.audit_event(sql, Ok(None), started.elapsed());
                event.outcome = AuditOutcome::Running;
                let id = self.catalog.record_audit(&event).await?;
                Ok(QueryStream::new(
                    running,
                    self.catalog.clone(),
                    id,
                    started,
                    &self.limits,
                ))
            }
            Err(err) => {
                let event = self.audit_event(sql, Err(&err), started.elapsed());
                self.catalog.record_audit(&event).await?;
                Err(err)
            }
        }
    }

    /// Plans and starts a statement: its schema and batch stream.
    async fn start(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<stream::Running, QueryError> {
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
                return Err(QueryError::AdminOnly(
                    "`EXPLAIN VERBOSE`".into(),
                    self.principal.name.clone(),
                ));
            }
            if !matches!(format, ExplainFormat::Indent) {
                return Err(QueryError::AdminOnly(
                    format!("`EXPLAIN FORMAT {format}`"),
                    self.principal.name.clone(),
                ));
            }
        }
        if let Some(LogicalPlan::Analyze(analyze)) = explain.as_ref().map(|_| frame.logical_plan())
            && self.reads_aggregate_only(&analyze.input)
        {
            // Its metrics count the rows of every node, suppressed groups included.
            return Err(QueryError::Refused(
                "`EXPLAIN ANALYZE` is not allowed on products you read only in aggregate: its row counts would show the groups that are left out (hint: use `EXPLAIN` without ANALYZE)".into(),
            ));
        }
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        if explain.is_some() {
            // EXPLAIN output is small; it is redacted as a whole before anything is sent.
            let limit = self.limits.timeout;
            let collect = frame.collect();
            let mut batches = match limit {
                Some(limit) => tokio::time::timeout(limit, collect).await.map_err(|_| {
                    QueryError::Timeout {
                        limit: engine::human(limit),
                    }
                })??,
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
        let plan = crate::limits::physical_plan(frame, &self.limits).await?;
        // Planning checked every aggregation of aggregate-only products; private ones are
        // charged here, before anything runs, so a statement that fails later is paid for too.
        let spend: BTreeMap<ProductId, f64> = self.journal.aggregations().into_iter().filter(|(_, (_, epsilon))| *epsilon > 0.0).map(|(id, (_, epsilon))| (id, epsilon)).collect();
        if !spend.is_empty() {
            let spent = crate::privacy::budget::charge(self.catalog.as_ref(), &self.principal.name, &spend, &self.decisions).await?;
            *self.privacy.lock().expect("privacy lock") = spent;
        }
        if let Some(cluster) = &self.limits.cluster {
            match cluster.placement(&plan) {
                crate::Placement::Cluster => {
                    use futures::{StreamExt, TryStreamExt};
                    tracing::info!(principal = %self.principal.name, scheduler = cluster.scheduler(), "statement runs on the cluster");
                    // Submitted when the first batch is asked for: after the audit event is
                    // written (nothing runs unaudited), within the stream's deadline, and never
                    // if the stream is dropped before.
                    let (cluster, config) = (cluster.clone(), task.session_config().clone());
                    let batches = futures::stream::once(async move { cluster.submit(plan, config).await })
                        .map_ok(|batches| batches.map(|b| b.map_err(QueryError::from)))
                        .try_flatten();
                    return Ok(stream::Running::Cluster(schema, Box::pin(batches)));
                }
                crate::Placement::Local(reason) => tracing::debug!(%reason, "statement runs in-process"),
            }
        }
        let batches = datafusion::physical_plan::execute_stream(plan, task)?;
        Ok(stream::Running::Stream(schema, batches))
    }

    fn audit_event(
        &self,
        sql: &str,
        result: Result<Option<u64>, &QueryError>,
        elapsed: Duration,
    ) -> AuditEvent {
        let mut products = Vec::new();
        let spent = self.privacy_spent();
        for id in self.journal.touched() {
            let decision = self.decisions.get(&id);
            products.push(AuditProduct {
                as_of: self.journal.publications(&id),
                product: id.to_string(),
                decision: "allow".into(),
                policies: decision.map(|d| d.policies.clone()).unwrap_or_default(),
                row_filters: decision.map(|d| d.row_filters.len()).unwrap_or(0),
                masks: decision
                    .map(|d| {
                        d.masks
                            .iter()
                            .map(|(c, m)| format!("{c}:{}", m.kind()))
                            .collect()
                    })
                    .unwrap_or_default(),
                reasons: decision.map(|d| d.warnings.clone()).unwrap_or_default(),
                decision_us: decision.map(|d| d.elapsed.as_micros() as u64).unwrap_or(0),
                aggregate: decision.and_then(|d| d.aggregate.as_ref()).map(|a| a.describe()),
                // What was charged, not what was planned (an EXPLAIN plans a private aggregation
                // and spends nothing).
                epsilon: spent.iter().find(|s| s.product == id).and_then(|s| meshwork_core::aggregate::Finite::new(s.epsilon)),
            });
        }
        let denied = self.journal.denied();
        for id in &denied {
            let decision = self.decisions.get(id);
            products.push(AuditProduct {
                as_of: Vec::new(),
                product: id.to_string(),
                decision: "deny".into(),
                policies: decision.map(|d| d.policies.clone()).unwrap_or_default(),
                row_filters: 0,
                masks: Vec::new(),
                reasons: decision.map(|d| d.reasons.clone()).unwrap_or_default(),
                decision_us: decision.map(|d| d.elapsed.as_micros() as u64).unwrap_or(0),
                aggregate: None,
                epsilon: None,
            });
        }
        let (outcome, rows, error) = match result {
            Ok(rows) => (AuditOutcome::Ok, rows, None),
            Err(err) if !denied.is_empty() || matches!(err, QueryError::AggregateOnly(_)) => (AuditOutcome::Denied, None, Some(err.to_string())),
            Err(err) => (AuditOutcome::Error, None, Some(err.to_string())),
        };
        AuditEvent {
            id: 0,
            at: chrono::Utc::now(),
            principal: self.principal.name.clone(),
            interface: self.interface.clone(),
            action: "query".into(),
            statement: normalise(sql),
            products,
            rows,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            outcome,
            error,
        }
    }
}

/// The products a planned statement scans, subqueries included.
fn products_read(plan: &LogicalPlan) -> std::collections::BTreeSet<ProductId> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut ids = std::collections::BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(id) = crate::rewrite::product_of(scan)
        {
            ids.insert(id);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ids
}

/// The types of a plan's `$1`, `$2`, … placeholders, in order; `None` where SQL does not say.
pub fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, QueryError> {
    // DataFusion keys them by name: order them by number, so `$10` comes after `$9`.
    let mut ordered: Vec<(usize, Option<DataType>)> = plan
        .get_parameter_types()?
        .into_iter()
        .map(|(name, t)| {
            (
                name.trim_start_matches('$')
                    .parse::<usize>()
                    .unwrap_or(usize::MAX),
                t,
            )
        })
        .collect();
    ordered.sort_by_key(|(n, _)| *n);
    Ok(ordered.into_iter().map(|(_, t)| t).collect())
}

/// The statement as the SQL parser prints it back: one line, keywords and spacing uniform.
/// Text that does not parse is kept with its whitespace collapsed.
pub fn normalise(sql: &str) -> String {
    // Text too deep to parse safely on this thread is kept as written.
    match datafusion::sql::parser::DFParser::parse_sql(if crate::limits::shallow(sql) { sql } else { "" }) {
        Ok(statements) if !statements.is_empty() => statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        _ => sql.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}
