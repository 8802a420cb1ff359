//! The policy rewrite: every scan of a restricted product becomes
//! `PolicyFence(Projection(masks) ← Filter(row filter) ← TableScan)` before any other analysis.
//!
//! The fence is what keeps user expressions away from rows the filter removes: the optimizer
//! may not push predicates, limits or expressions through it (logically or physically), so a
//! user's `WHERE 1/(amount - 123.45) > 0` is only ever evaluated on rows the principal may see.
//! It also reports unknown statistics, so `count(*)`, `min` and `max` cannot be answered from
//! Parquet or Delta metadata of the unfiltered table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, Result, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder, TableScan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::execution::context::QueryPlanner;
use meshwork_core::id::ProductId;

use crate::guard::{ProductGuard, ProductTable};

/// Products a statement touched, and denied products it tried to read; reset per statement.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    touched: Mutex<BTreeSet<ProductId>>,
    denied: Mutex<BTreeSet<ProductId>>,
    /// Earlier publications read by time travel, per product.
    publications: Mutex<BTreeMap<ProductId, BTreeSet<i64>>>,
}

impl Journal {
    pub(crate) fn reset(&self) {
        self.touched.lock().expect("journal lock").clear();
        self.denied.lock().expect("journal lock").clear();
        self.publications.lock().expect("journal lock").clear();
    }

    pub(crate) fn read_publication(&self, id: &ProductId, seq: i64) {
        self.publications.lock().expect("journal lock").entry(id.clone()).or_default().insert(seq);
    }

    /// The earlier publications of `id` the statement read, oldest first.
    pub(crate) fn publications(&self, id: &ProductId) -> Vec<i64> {
        self.publications.lock().expect("journal lock").get(id).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    pub(crate) fn touch(&self, id: &ProductId) {
        self.touched.lock().expect("journal lock").insert(id.clone());
    }

    pub(crate) fn deny(&self, id: &ProductId) {
        self.denied.lock().expect("journal lock").insert(id.clone());
    }

    pub(crate) fn touched(&self) -> BTreeSet<ProductId> {
        self.touched.lock().expect("journal lock").clone()
    }

    pub(crate) fn denied(&self) -> BTreeSet<ProductId> {
        self.denied.lock().expect("journal lock").clone()
    }
}

/// The analyzer rule that enforces access decisions on every product scan, subqueries included.
/// It must run first: later rules (type coercion) then treat the injected expressions like the
/// user's own.
#[derive(Debug)]
pub(crate) struct PolicyRule {
    pub(crate) guards: Arc<HashMap<ProductId, ProductGuard>>,
    pub(crate) journal: Arc<Journal>,
}

impl AnalyzerRule for PolicyRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = node else { return Ok(Transformed::no(node)) };
            // Products are recognised by their table provider, never by name: a CTE or alias
            // named like a product is not a product, and a product under an alias still is.
            let Some(id) = product_of(&scan) else { return Ok(Transformed::no(LogicalPlan::TableScan(scan))) };
            self.journal.touch(&id);
            let Some(guard) = self.guards.get(&id) else {
                // Only allowed products are registered; reaching here is a bug, and failing
                // closed is the only safe answer.
                return datafusion::common::plan_err!("table '{}' not found", scan.table_name);
            };
            if guard.is_open() {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            fence(scan, id, guard).map(Transformed::yes)
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meshwork_policy"
    }
}

/// The product a scan reads, if it reads one (every scan of product data is a [`ProductTable`]).
pub(crate) fn product_of(scan: &TableScan) -> Option<ProductId> {
    let provider = source_as_provider(&scan.source).ok()?;
    provider.downcast_ref::<ProductTable>().map(|t| t.id.clone())
}

/// Builds the fenced subtree for one scan.
fn fence(scan: TableScan, id: ProductId, guard: &ProductGuard) -> Result<LogicalPlan> {
    let qualifier = scan.table_name.clone();
    let wanted: Option<Vec<String>> =
        scan.projection.as_ref().map(|_| scan.projected_schema.fields().iter().map(|f| f.name().clone()).collect());
    // Scan every column: the filter and masks may read columns the user did not select. The
    // optimizer prunes what is unused afterwards.
    let full = LogicalPlanBuilder::scan(qualifier.clone(), scan.source.clone(), None)?.build()?;
    let columns: Vec<String> = full.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut builder = LogicalPlanBuilder::from(full);
    if let Some(filter) = &guard.filter {
        builder = builder.filter(qualify(filter.clone(), &qualifier)?)?;
    }
    if !guard.masks.is_empty() {
        let exprs = columns.iter().map(|name| match guard.masks.get(name) {
            Some(mask) => qualify(mask.clone(), &qualifier).map(|m| m.alias_qualified(Some(qualifier.clone()), name)),
            None => Ok(Expr::Column(Column::new(Some(qualifier.clone()), name))),
        });
        builder = builder.project(exprs.collect::<Result<Vec<_>>>()?)?;
    }
    let fenced = LogicalPlan::Extension(Extension { node: Arc::new(PolicyFence { product: id.to_string(), input: builder.build()? }) });
    match wanted {
        Some(names) => LogicalPlanBuilder::from(fenced)
            .project(names.iter().map(|n| Expr::Column(Column::new(Some(qualifier.clone()), n))))?
            .build(),
        None => Ok(fenced),
    }
}

/// Binds the unqualified column references of a guard expression to the scan's qualifier.
fn qualify(expr: Expr, qualifier: &TableReference) -> Result<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_none() => Ok(Transformed::yes(Expr::Column(Column::new(Some(qualifier.clone()), c.name)))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// The logical fence above a guarded scan. Transparent to column pruning, opaque to predicate
/// and limit pushdown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) struct PolicyFence {
    product: String,
    input: LogicalPlan,
}

impl UserDefinedLogicalNodeCore for PolicyFence {
    fn name(&self) -> &str {
        "PolicyFence"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    // The default (every column) is what makes this a fence: no predicate crosses it.

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PolicyFence: product={}", self.product)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(PolicyFence { product: self.product.clone(), input: inputs.swap_remove(0) })
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }
}

/// The physical fence: passes batches through, refuses filter pushdown and projection swaps
/// (the trait defaults), and reports unknown statistics.
#[derive(Debug)]
pub(crate) struct PolicyFenceExec {
    product: String,
    input: Arc<dyn ExecutionPlan>,
}

impl DisplayAs for PolicyFenceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PolicyFenceExec: product={}", self.product)
    }
}

impl ExecutionPlan for PolicyFenceExec {
    fn name(&self) -> &str {
        "PolicyFenceExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(PolicyFenceExec { product: self.product.clone(), input: children.swap_remove(0) }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

/// Plans [`PolicyFence`] nodes.
#[derive(Debug)]
struct FencePlanner;

#[async_trait]
impl ExtensionPlanner for FencePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        Ok(node.as_any().downcast_ref::<PolicyFence>().map(|fence| {
            Arc::new(PolicyFenceExec { product: fence.product.clone(), input: physical_inputs[0].clone() }) as Arc<dyn ExecutionPlan>
        }))
    }
}

/// DataFusion's planner with the fence planner added.
#[derive(Debug)]
pub(crate) struct MeshQueryPlanner;

#[async_trait]
impl QueryPlanner for MeshQueryPlanner {
    async fn create_physical_plan(&self, logical_plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(FencePlanner)]).create_physical_plan(logical_plan, session).await
    }
}
