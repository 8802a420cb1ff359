//! The policy rewrite: every scan of a restricted product becomes
//! `PolicyFence(Projection(masks) ← Filter(row filter) ← TableScan)` before any other analysis.
//!
//! The fence is what keeps user expressions away from rows the filter removes: the optimizer
//! may not push predicates, limits or expressions through it (logically or physically), so a
//! user's `WHERE 1/(amount - 123.45) > 0` is only ever evaluated on rows the principal may see.
//! Above it the only statistic is an estimate of its size, the product's published row count
//! (which the catalog shows to everyone who may see the product), so joins are still ordered
//! by size; nothing exact and nothing per column passes, so `count(*)`, `min` and `max` cannot
//! be answered from Parquet or Delta metadata of the unfiltered table.

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
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs};
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
    /// Aggregations of aggregate-only products, per product, and the privacy loss (ε) of the
    /// differentially private ones.
    aggregations: Mutex<BTreeMap<ProductId, (u32, f64)>>,
}

impl Journal {
    pub(crate) fn reset(&self) {
        self.touched.lock().expect("journal lock").clear();
        self.denied.lock().expect("journal lock").clear();
        self.publications.lock().expect("journal lock").clear();
        self.aggregations.lock().expect("journal lock").clear();
    }

    /// One aggregation of the aggregate-only product `id` was checked and suppressed.
    pub(crate) fn aggregate(&self, id: &ProductId) {
        self.aggregations.lock().expect("journal lock").entry(id.clone()).or_default().0 += 1;
    }

    /// One differentially private aggregation of `id`, costing `epsilon`.
    pub(crate) fn spend_privacy(&self, id: &ProductId, epsilon: f64) {
        let mut map = self.aggregations.lock().expect("journal lock");
        let entry = map.entry(id.clone()).or_default();
        entry.0 += 1;
        entry.1 += epsilon;
    }

    /// The aggregations of aggregate-only products the statement makes: count and ε, by product.
    pub(crate) fn aggregations(&self) -> BTreeMap<ProductId, (u32, f64)> {
        self.aggregations.lock().expect("journal lock").clone()
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
            let Some((id, published_rows)) = product_table_of(&scan) else { return Ok(Transformed::no(LogicalPlan::TableScan(scan))) };
            self.journal.touch(&id);
            let Some(guard) = self.guards.get(&id) else {
                // Only allowed products are registered; reaching here is a bug, and failing
                // closed is the only safe answer.
                return datafusion::common::plan_err!("table '{}' not found", scan.table_name);
            };
            if guard.is_open() {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            fence(scan, id, published_rows, guard).map(Transformed::yes)
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meshwork_policy"
    }
}

/// Whether `node` is a policy fence (what lies below it is the policy's, not the user's).
pub(crate) fn is_fence(node: &LogicalPlan) -> bool {
    matches!(node, LogicalPlan::Extension(e) if e.node.as_any().downcast_ref::<PolicyFence>().is_some())
}

/// A fence above the released groups of an aggregate-only product's aggregation, labelled
/// `label`: nothing above (a HAVING, an outer WHERE) is merged into the suppression filter or
/// pushed below it, so what it computes only ever sees groups that are shown.
pub(crate) fn barrier(label: String, input: LogicalPlan) -> LogicalPlan {
    LogicalPlan::Extension(Extension { node: Arc::new(PolicyFence { product: label, published_rows: 0, input }) })
}

/// The product `node` fences, when it is a policy fence.
pub(crate) fn fenced_product(node: &LogicalPlan) -> Option<&str> {
    match node {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<PolicyFence>().map(|f| f.product.as_str()),
        _ => None,
    }
}

/// The product a scan reads, if it reads one (every scan of product data is a [`ProductTable`]).
pub(crate) fn product_of(scan: &TableScan) -> Option<ProductId> {
    product_table_of(scan).map(|(id, _)| id)
}

/// The product a scan reads and the row count of the publication it reads.
fn product_table_of(scan: &TableScan) -> Option<(ProductId, u64)> {
    let provider = source_as_provider(&scan.source).ok()?;
    provider.downcast_ref::<ProductTable>().map(|t| (t.id.clone(), t.published_rows))
}

/// Builds the fenced subtree for one scan.
fn fence(scan: TableScan, id: ProductId, published_rows: u64, guard: &ProductGuard) -> Result<LogicalPlan> {
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
    let fenced = LogicalPlan::Extension(Extension { node: Arc::new(PolicyFence { product: id.to_string(), published_rows, input: builder.build()? }) });
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
    published_rows: u64,
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
        Ok(PolicyFence { product: self.product.clone(), published_rows: self.published_rows, input: inputs.swap_remove(0) })
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }
}

/// The physical fence: passes batches through, refuses filter pushdown and projection swaps
/// (the trait defaults), and reports only an estimate of its size.
#[derive(Debug)]
pub(crate) struct PolicyFenceExec {
    product: String,
    published_rows: u64,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl PolicyFenceExec {
    pub(crate) fn new(product: String, published_rows: u64, input: Arc<dyn ExecutionPlan>) -> PolicyFenceExec {
        // The input's partitioning and execution mode, but none of what it knows about values:
        // a row filter `region = 'EU'` makes `region` a constant below the fence, and passed on
        // that would let a sort be left out above it, which EXPLAIN shows (`ordering_mode=Sorted`)
        // and which tells a principal what the hidden filter pins.
        let mut properties = PlanProperties::clone(input.properties());
        properties.set_eq_properties(EquivalenceProperties::new(input.schema()));
        PolicyFenceExec { product, published_rows, input, properties: Arc::new(properties) }
    }

    /// The product fenced and its published row count: what a distributed plan carries.
    pub(crate) fn parts(&self) -> (&str, u64) {
        (&self.product, self.published_rows)
    }
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
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// Said not to, so that no sort above the fence is pushed below it, where an ordering the
    /// row filter implies would remove it in a way EXPLAIN shows above the fence.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(PolicyFenceExec::new(self.product.clone(), self.published_rows, children.swap_remove(0))))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    /// The product's published row count as an estimate, and nothing else: no size in bytes,
    /// nothing per column, nothing exact, and nothing read from the plan below. Without a size
    /// the optimizer cannot tell a row-filtered product from a large one and keeps the join
    /// order as written (TPC-H q21 at SF10 under a row filter on `orders` built its hash table
    /// from 38M `lineitem` rows, 15 GB). The figure is the one the catalog already shows to
    /// everyone who may see the product (`versions[].rows`), never the filtered count or the
    /// estimate of the filter below, so the join order it leads to, which EXPLAIN shows,
    /// tells a principal nothing it could not read; and estimates never answer a query (no
    /// session runs the `aggregate_statistics` rule, see `tuning.rs`).
    fn statistics_from_inputs(&self, _input_stats: &[Arc<Statistics>], args: &StatisticsArgs) -> Result<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema());
        if args.partition().is_none() {
            statistics.num_rows = Precision::Inexact(usize::try_from(self.published_rows).unwrap_or(usize::MAX));
        }
        Ok(Arc::new(statistics))
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
            Arc::new(PolicyFenceExec::new(fence.product.clone(), fence.published_rows, physical_inputs[0].clone())) as Arc<dyn ExecutionPlan>
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::common::stats::Precision;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext};

    use super::PolicyFenceExec;

    #[test]
    fn the_fence_estimates_its_size_by_the_published_row_count_and_passes_nothing_else() {
        let schema = Arc::new(Schema::new(vec![Field::new("amount", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![5, 7, 9]))]).unwrap();
        let input = MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None).unwrap();
        let below = StatisticsContext::new().compute(input.as_ref(), &StatisticsArgs::new()).unwrap();
        assert_eq!(below.num_rows, Precision::Exact(3), "the input knows its size exactly");

        let fence = PolicyFenceExec::new("sales.orders".into(), 1_000, input);
        let above = StatisticsContext::new().compute(&fence as &dyn ExecutionPlan, &StatisticsArgs::new()).unwrap();
        assert_eq!(above.num_rows, Precision::Inexact(1_000), "the catalog's figure, not the input's");
        assert_eq!(above.total_byte_size, Precision::Absent);
        let column = &above.column_statistics[0];
        assert_eq!(
            (&column.min_value, &column.max_value, &column.null_count, &column.distinct_count, &column.sum_value),
            (&Precision::Absent, &Precision::Absent, &Precision::Absent, &Precision::Absent, &Precision::Absent)
        );
        let partition = StatisticsContext::new().compute(&fence as &dyn ExecutionPlan, &StatisticsArgs::new().with_partition(Some(0))).unwrap();
        assert_eq!(partition.num_rows, Precision::Absent, "no per-partition figure");
    }
}
