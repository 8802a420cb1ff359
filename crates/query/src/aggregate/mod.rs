//! Aggregate-only reads: the analyzer rule that, after the policy rewrite, proves no row-level
//! value of an aggregate-only product reaches a statement's output, and rewrites each of its
//! aggregations so that groups standing for fewer than `min_group_size` of its rows are left out
//! (and, for differentially private products, so that answers carry calibrated noise).
//!
//! The proof is structural, on the analyzed logical plan, where every scan of such a product is
//! a [`PolicyFence`](crate::rewrite) (its guard is never open). Walking down from the root, a
//! fence may only be reached through a *chain* of projections, filters and aliases that ends in
//! an `Aggregate`; the aggregate's group keys, filters and arguments are then checked in terms
//! of the product's own columns ([`shape`]). Any other way to reach a fence (the output itself, a
//! join, a window, a sort or limit, a set operation, DISTINCT, a subquery) is refused, naming
//! the node and what to write instead. The check depends on the plan only, never on the data, so
//! whether a statement is refused says nothing about the rows.

mod facts;
mod shape;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DataFusionError, Result};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Aggregate, Expr, FetchType, LogicalPlan, LogicalPlanBuilder, Projection, lit};
use datafusion::optimizer::AnalyzerRule;
use meshwork_core::id::ProductId;
use meshwork_policy::AggregateRule;

use crate::privacy::{NoiseSource, Private};
use crate::rewrite::{Journal, fenced_product};

/// The fence above the shown groups of an aggregation of `product` (see [`crate::rewrite::barrier`]).
fn barrier(product: &str, released: LogicalPlan) -> LogicalPlan {
    crate::rewrite::barrier(format!("{product} (groups shown)"), released)
}

/// The name of the row count every aggregation of an aggregate-only product gains.
pub(crate) const ROWS: &str = "__meshwork_rows";

/// A statement refused because it would reveal rows of an aggregate-only product.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) product: String,
    pub(crate) rule: String,
    pub(crate) message: String,
    pub(crate) hint: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is readable only in aggregate ({}): {} (hint: {})", self.product, self.rule, self.message, self.hint)
    }
}

impl std::error::Error for Refusal {}

/// Builds the refusal error of `product` under `rule`.
pub(crate) fn refuse(product: &str, rule: &AggregateRule, message: impl Into<String>, hint: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(Refusal { product: product.to_owned(), rule: rule.describe(), message: message.into(), hint: hint.into() }))
}

/// What a fence was reached through, for the refusal's words.
#[derive(Debug, Clone, Copy)]
enum Above {
    Output,
    Subquery,
    Join,
    Window,
    SortOrLimit,
    SetOperation,
    Distinct,
    Other(&'static str),
}

impl Above {
    fn of(plan: &LogicalPlan) -> Above {
        match plan {
            LogicalPlan::Join(_) => Above::Join,
            LogicalPlan::Window(_) => Above::Window,
            LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => Above::SortOrLimit,
            LogicalPlan::Union(_) => Above::SetOperation,
            LogicalPlan::Distinct(_) => Above::Distinct,
            LogicalPlan::Aggregate(_) => Above::Other("an aggregation over other tables"),
            LogicalPlan::Unnest(_) => Above::Other("UNNEST"),
            LogicalPlan::RecursiveQuery(_) => Above::Other("a recursive query"),
            LogicalPlan::Repartition(_) => Above::Other("a repartition"),
            _ => Above::Other("a plan node"),
        }
    }

    fn refusal(self, product: &str, rule: &AggregateRule) -> DataFusionError {
        let (message, hint) = match self {
            Above::Output => (
                "its rows would reach the result; every query must aggregate it".to_owned(),
                format!("group and count, e.g. `SELECT <column>, count(*) FROM {product} GROUP BY <column>`"),
            ),
            Above::Subquery => ("a subquery returns its rows".to_owned(), "aggregate inside the subquery".to_owned()),
            Above::Join => (
                "it is joined before it is aggregated, so each of its rows could be matched and singled out".to_owned(),
                format!("aggregate it in a subquery first and join the result, e.g. `JOIN (SELECT k, count(*) AS n FROM {product} GROUP BY k) a ON …`"),
            ),
            Above::Window => ("window functions return one value per row of it".to_owned(), "use GROUP BY instead of OVER (…)".to_owned()),
            Above::SortOrLimit => (
                "ORDER BY or LIMIT over its rows picks out single rows".to_owned(),
                "aggregate first; sort and limit the groups".to_owned(),
            ),
            Above::SetOperation => (
                "its rows are combined by UNION, INTERSECT or EXCEPT before they are aggregated".to_owned(),
                "aggregate each side on its own, then combine the results".to_owned(),
            ),
            Above::Distinct => (
                "SELECT DISTINCT lists its values without counting the rows behind them".to_owned(),
                "use GROUP BY: groups standing for too few rows are then left out".to_owned(),
            ),
            Above::Other(what) => (format!("{what} reads its rows before they are aggregated"), "aggregate it directly, in a subquery if needed".to_owned()),
        };
        refuse(product, rule, message, hint)
    }
}

/// The analyzer rule of aggregate-only reads; runs after type coercion, so every cast the
/// statement will evaluate is visible to [`shape`].
#[derive(Debug)]
pub(crate) struct AggregateOnlyRule {
    /// The aggregate-only products of this session's principal, by `domain.product`.
    pub(crate) rules: Arc<HashMap<String, (ProductId, AggregateRule)>>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) noise: Arc<NoiseSource>,
}

impl AnalyzerRule for AggregateOnlyRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        if self.rules.is_empty() {
            return Ok(plan);
        }
        self.verify(&plan, Above::Output)?;
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Aggregate(aggregate) = node else { return Ok(Transformed::no(node)) };
            let Some((product, chain)) = self.covered(&aggregate.input) else { return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate))) };
            let (id, rule) = &self.rules[product];
            let bases = shape::check(&aggregate, &chain.nodes, chain.fence, product, rule)?;
            let product = product.to_owned();
            let (id, rule) = (id.clone(), rule.clone());
            self.suppress(aggregate, &product, &id, &rule, &bases).map(Transformed::yes)
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meshwork_aggregate_only"
    }
}

/// The nodes between an aggregation and the fence it aggregates, top first.
struct Chain<'a> {
    nodes: Vec<&'a LogicalPlan>,
    fence: &'a LogicalPlan,
}

impl AggregateOnlyRule {
    /// The aggregate-only product `input` reads through projections, filters and aliases only.
    fn covered<'a>(&self, input: &'a LogicalPlan) -> Option<(&str, Chain<'a>)> {
        let mut nodes = Vec::new();
        let mut node = input;
        loop {
            let next = match node {
                LogicalPlan::Projection(p) => p.input.as_ref(),
                LogicalPlan::Filter(f) => f.input.as_ref(),
                LogicalPlan::SubqueryAlias(a) => a.input.as_ref(),
                other => {
                    let product = fenced_product(other)?;
                    let (key, _) = self.rules.get_key_value(product)?;
                    return Some((key.as_str(), Chain { nodes, fence: other }));
                }
            };
            nodes.push(node);
            node = next;
        }
    }

    /// Refuses any path from the output to an aggregate-only fence that is not a checked
    /// aggregation.
    fn verify(&self, plan: &LogicalPlan, above: Above) -> Result<()> {
        plan.apply_subqueries(|subquery| self.verify(subquery, Above::Subquery).map(|_| TreeNodeRecursion::Continue))?;
        match plan {
            LogicalPlan::Aggregate(aggregate) => {
                if let Some((product, chain)) = self.covered(&aggregate.input) {
                    let (_, rule) = &self.rules[product];
                    shape::check(aggregate, &chain.nodes, chain.fence, product, rule)?;
                    for node in &chain.nodes {
                        node.apply_subqueries(|subquery| self.verify(subquery, Above::Subquery).map(|_| TreeNodeRecursion::Continue))?;
                    }
                    return Ok(());
                }
                self.verify(&aggregate.input, Above::of(plan))
            }
            // `LIMIT 0`, which BI tools send to learn a result's columns, returns no row.
            LogicalPlan::Limit(limit) if matches!(limit.get_fetch_type(), Ok(FetchType::Literal(Some(0)))) => Ok(()),
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_) => {
                plan.inputs().into_iter().try_for_each(|input| self.verify(input, above))
            }
            other => {
                if let Some(product) = fenced_product(other)
                    && let Some((_, rule)) = self.rules.get(product)
                {
                    return Err(above.refusal(product, rule));
                }
                other.inputs().into_iter().try_for_each(|input| self.verify(input, Above::of(other)))
            }
        }
    }

    /// `aggregate` with groups of fewer than `min_group_size` product rows left out, and noise
    /// added for differentially private products.
    fn suppress(&self, aggregate: Aggregate, product: &str, id: &ProductId, rule: &AggregateRule, bases: &[Option<String>]) -> Result<LogicalPlan> {
        let original = aggregate.schema.clone();
        let kept = original.fields().len();
        if let Some(privacy) = &rule.privacy {
            let private = Private::rewrite(aggregate, bases, product, rule, privacy, &self.noise)?;
            self.journal.spend_privacy(id, privacy.epsilon.get());
            return Ok(barrier(product, private));
        }
        let mut aggr_expr = aggregate.aggr_expr.clone();
        aggr_expr.push(count(lit(1i64)).alias(ROWS));
        let counted = LogicalPlan::Aggregate(Aggregate::try_new(aggregate.input.clone(), aggregate.group_expr.clone(), aggr_expr)?);
        self.journal.aggregate(id);
        let min = i64::try_from(rule.min_group_size).unwrap_or(i64::MAX);
        let filtered = LogicalPlanBuilder::from(counted).filter(Expr::Column(Column::from_name(ROWS)).gt_eq(lit(min)))?.build()?;
        Ok(barrier(product, restore(filtered, &original, kept)?))
    }
}

/// A projection of `plan` onto the first `kept` columns, which have the names, qualifiers and
/// types of `schema`: the rewritten aggregation looks exactly like the original to its parents.
pub(crate) fn restore(plan: LogicalPlan, schema: &DFSchema, kept: usize) -> Result<LogicalPlan> {
    let exprs = schema.iter().take(kept).map(|(qualifier, field)| Expr::Column(Column::new(qualifier.cloned(), field.name())));
    Ok(LogicalPlan::Projection(Projection::try_new(exprs.collect(), Arc::new(plan))?))
}
