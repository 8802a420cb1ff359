//! Column lineage of a transform, read from its *unanalyzed* DataFusion logical plan (what
//! `SessionContext::sql` returns): every output column with the input columns it comes from.
//!
//! The unanalyzed plan is the right one to read: it still has the shape of the SQL (one
//! projection per `SELECT`, subqueries as expressions, `SELECT *` already expanded into
//! columns), and no optimizer rule has yet pushed filters into scans, removed columns it
//! proved unused or decorrelated subqueries into joins. Each plan node is turned into one
//! list of sources per output field, plus the sources that decide which rows exist (`rows`);
//! expressions refer to their input's fields by qualified column, so a field's sources are
//! composed with how the expression uses it (see [`Derivation::then`]).
//!
//! Which expressions carry a value (`carries_value`) is decided here, in one place; the rules
//! are documented in `docs/lineage.md`.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan, Operator, SortExpr, Subquery};
use meshwork_core::descriptor::{InputPort, InputSource, ProductDescriptor};
use meshwork_core::lineage::{ColumnLineage, ColumnSource, Derivation, ProductLineage, merge_source};

/// Scalar functions whose result tells about the size of their argument, not its value.
const SIZE_FUNCTIONS: &[&str] = &["length", "char_length", "character_length", "octet_length", "bit_length", "array_length", "cardinality"];

/// Aggregate and window functions whose result counts or ranks rows instead of returning one of
/// their argument's values (or a sum of them).
const COUNTING_FUNCTIONS: &[&str] =
    &["count", "approx_distinct", "grouping", "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile"];

/// The column lineage of a product: read from the transform's logical plan, or for a product
/// without a transform, every contract column copied from its single input.
pub fn column_lineage(plan: &LogicalPlan, descriptor: &ProductDescriptor) -> Result<ProductLineage> {
    if descriptor.transform.is_none() {
        return Ok(ProductLineage::identity(descriptor));
    }
    let walker = Walker { ports: &descriptor.inputs };
    let node = walker.plan(plan, &[])?;
    let schema = plan.schema();
    if node.columns.len() != schema.fields().len() {
        return Err(DataFusionError::Internal(format!(
            "column lineage found {} columns where the plan has {}",
            node.columns.len(),
            schema.fields().len()
        )));
    }
    let columns = schema
        .fields()
        .iter()
        .zip(node.columns)
        .map(|(field, mut sources)| {
            for condition in &node.rows {
                merge_source(&mut sources, condition.clone());
            }
            ColumnLineage { name: field.name().clone(), sources }
        })
        .collect();
    Ok(ProductLineage { columns })
}

/// The sources of one field, sorted and merged by [`merge_source`].
type Sources = Vec<ColumnSource>;

/// What a plan node's output comes from.
#[derive(Debug, Clone, Default)]
struct Node {
    /// Per output field, in schema order.
    columns: Vec<Sources>,
    /// Sources deciding which rows the node returns; all `condition`, none carrying.
    rows: Sources,
}

/// A plan node's fields, for resolving the columns an expression names.
#[derive(Clone, Copy)]
struct Scope<'a> {
    schema: &'a DFSchema,
    node: &'a Node,
}

impl Scope<'_> {
    fn sources(&self, column: &Column) -> Option<&Sources> {
        self.schema.maybe_index_of_column(column).map(|i| &self.node.columns[i])
    }
}

/// How the expression being walked uses the values below it.
#[derive(Debug, Clone, Copy)]
struct Use {
    derivation: Derivation,
    carries: bool,
}

impl Use {
    /// The top of an output expression: a bare column there is a copy.
    const OUTPUT: Use = Use { derivation: Derivation::Copied, carries: true };
    /// A condition on rows.
    const CONDITION: Use = Use { derivation: Derivation::Condition, carries: false };

    /// Below a row-level function or operator that passes its argument's value on.
    fn computed(self) -> Use {
        Use { derivation: self.derivation.then(Derivation::Computed), carries: self.carries }
    }

    /// Below a test or a size: the result depends on the argument but does not hold its value.
    fn tested(self) -> Use {
        Use { derivation: self.derivation.then(Derivation::Computed), carries: false }
    }

    /// Inside an aggregate or window function's arguments.
    fn aggregated(self, carries: bool) -> Use {
        Use { derivation: self.derivation.then(Derivation::Aggregated), carries: self.carries && carries }
    }

    /// Deciding rows or order for this expression only (a window's `PARTITION BY`, a `FILTER`).
    fn condition(self) -> Use {
        Use { derivation: self.derivation.then(Derivation::Condition), carries: false }
    }

    fn apply(self, source: &ColumnSource) -> ColumnSource {
        ColumnSource {
            derivation: source.derivation.then(self.derivation),
            carries_value: source.carries_value && self.carries,
            ..source.clone()
        }
    }
}

struct Walker<'a> {
    ports: &'a [InputPort],
}

impl Walker<'_> {
    /// The lineage of a plan node. `outer` are the scopes of the queries enclosing a subquery,
    /// innermost first, for its correlated columns.
    fn plan(&self, plan: &LogicalPlan, outer: &[Scope<'_>]) -> Result<Node> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                // A scan of anything but an input port is a recursive CTE's work table: its rows
                // come from the CTE's terms, which are walked on their own.
                let port = self.ports.iter().find(|p| scan.table_name.schema().is_none() && p.name == scan.table_name.table());
                let columns = scan
                    .projected_schema
                    .fields()
                    .iter()
                    .map(|field| match port {
                        Some(port) => vec![ColumnSource {
                            input: port.name.clone(),
                            product: match &port.source {
                                InputSource::Product { product } => Some(product.clone()),
                                _ => None,
                            },
                            column: field.name().clone(),
                            derivation: Derivation::Copied,
                            carries_value: true,
                        }],
                        None => Vec::new(),
                    })
                    .collect();
                Ok(Node { columns, rows: Vec::new() })
            }
            LogicalPlan::Projection(projection) => {
                let input = self.plan(&projection.input, outer)?;
                let scope = Scope { schema: projection.input.schema(), node: &input };
                let columns = projection.expr.iter().map(|e| self.output(e, scope, outer)).collect::<Result<_>>()?;
                Ok(Node { columns, rows: input.rows.clone() })
            }
            LogicalPlan::Filter(filter) => {
                let mut input = self.plan(&filter.input, outer)?;
                let mut rows = std::mem::take(&mut input.rows);
                self.expr(&filter.predicate, Use::CONDITION, Scope { schema: filter.input.schema(), node: &input }, outer, &mut rows)?;
                input.rows = rows;
                Ok(input)
            }
            LogicalPlan::Window(window) => {
                let input = self.plan(&window.input, outer)?;
                let scope = Scope { schema: window.input.schema(), node: &input };
                let mut columns = input.columns.clone();
                for e in &window.window_expr {
                    columns.push(self.output(e, scope, outer)?);
                }
                Ok(Node { columns, rows: input.rows.clone() })
            }
            LogicalPlan::Aggregate(aggregate) => {
                let input = self.plan(&aggregate.input, outer)?;
                let scope = Scope { schema: aggregate.input.schema(), node: &input };
                let mut rows = input.rows.clone();
                let mut columns = Vec::new();
                for e in grouping_set_to_exprlist(&aggregate.group_expr)? {
                    self.expr(e, Use::CONDITION, scope, outer, &mut rows)?;
                    columns.push(self.output(e, scope, outer)?);
                }
                if matches!(aggregate.group_expr.as_slice(), [Expr::GroupingSet(_)]) {
                    // The internal grouping id says which grouping set a row belongs to.
                    columns.push(Vec::new());
                }
                for e in &aggregate.aggr_expr {
                    columns.push(self.output(e, scope, outer)?);
                }
                Ok(Node { columns, rows })
            }
            LogicalPlan::Sort(sort) => {
                let mut input = self.plan(&sort.input, outer)?;
                if sort.fetch.is_some() {
                    let mut rows = input.rows.clone();
                    self.sort_keys(&sort.expr, Scope { schema: sort.input.schema(), node: &input }, outer, &mut rows)?;
                    input.rows = rows;
                }
                Ok(input)
            }
            LogicalPlan::Limit(limit) => {
                let mut input = self.plan(&limit.input, outer)?;
                // `ORDER BY … LIMIT n`: the sort keys decide which rows are kept.
                if let LogicalPlan::Sort(sort) = limit.input.as_ref() {
                    let below = self.plan(&sort.input, outer)?;
                    self.sort_keys(&sort.expr, Scope { schema: sort.input.schema(), node: &below }, outer, &mut input.rows)?;
                }
                Ok(input)
            }
            LogicalPlan::Join(join) => {
                let left = self.plan(&join.left, outer)?;
                let right = self.plan(&join.right, outer)?;
                let both_schema = join.left.schema().join(join.right.schema())?;
                let both = Node { columns: left.columns.iter().chain(&right.columns).cloned().collect(), rows: Vec::new() };
                let scope = Scope { schema: &both_schema, node: &both };
                let mut rows = left.rows.clone();
                for source in &right.rows {
                    merge_source(&mut rows, source.clone());
                }
                for (l, r) in &join.on {
                    self.expr(l, Use::CONDITION, scope, outer, &mut rows)?;
                    self.expr(r, Use::CONDITION, scope, outer, &mut rows)?;
                }
                if let Some(filter) = &join.filter {
                    self.expr(filter, Use::CONDITION, scope, outer, &mut rows)?;
                }
                let columns = match join.join_type {
                    JoinType::LeftSemi | JoinType::LeftAnti => left.columns,
                    JoinType::RightSemi | JoinType::RightAnti => right.columns,
                    JoinType::LeftMark => left.columns.into_iter().chain([rows.clone()]).collect(),
                    JoinType::RightMark => right.columns.into_iter().chain([rows.clone()]).collect(),
                    JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => both.columns,
                };
                Ok(Node { columns, rows })
            }
            LogicalPlan::Union(union) => {
                let mut merged = Node { columns: vec![Vec::new(); union.schema.fields().len()], rows: Vec::new() };
                for input in &union.inputs {
                    let node = self.plan(input, outer)?;
                    merged.absorb(node);
                }
                Ok(merged)
            }
            LogicalPlan::RecursiveQuery(query) => {
                let mut merged = self.plan(&query.static_term, outer)?;
                merged.absorb(self.plan(&query.recursive_term, outer)?);
                Ok(merged)
            }
            LogicalPlan::Distinct(Distinct::All(input)) => self.plan(input, outer),
            LogicalPlan::Distinct(Distinct::On(on)) => {
                let input = self.plan(&on.input, outer)?;
                let scope = Scope { schema: on.input.schema(), node: &input };
                let mut rows = input.rows.clone();
                for e in &on.on_expr {
                    self.expr(e, Use::CONDITION, scope, outer, &mut rows)?;
                }
                if let Some(sort) = &on.sort_expr {
                    self.sort_keys(sort, scope, outer, &mut rows)?;
                }
                let columns = on.select_expr.iter().map(|e| self.output(e, scope, outer)).collect::<Result<_>>()?;
                Ok(Node { columns, rows })
            }
            LogicalPlan::Unnest(unnest) => {
                let input = self.plan(&unnest.input, outer)?;
                let unnested: Vec<usize> =
                    unnest.list_type_columns.iter().map(|(i, _)| *i).chain(unnest.struct_type_columns.iter().copied()).collect();
                let columns = unnest
                    .dependency_indices
                    .iter()
                    .map(|&i| {
                        let use_ = if unnested.contains(&i) { Use::OUTPUT.computed() } else { Use::OUTPUT };
                        input.columns[i].iter().map(|s| use_.apply(s)).collect()
                    })
                    .collect();
                Ok(Node { columns, rows: input.rows })
            }
            LogicalPlan::Values(values) => {
                let empty_schema = DFSchema::empty();
                let empty = Node::default();
                let scope = Scope { schema: &empty_schema, node: &empty };
                let mut columns = vec![Vec::new(); values.schema.fields().len()];
                for row in &values.values {
                    for (column, e) in columns.iter_mut().zip(row) {
                        self.expr(e, Use::OUTPUT, scope, outer, column)?;
                    }
                }
                Ok(Node { columns, rows: Vec::new() })
            }
            LogicalPlan::EmptyRelation(empty) => Ok(Node { columns: vec![Vec::new(); empty.schema.fields().len()], rows: Vec::new() }),
            LogicalPlan::Subquery(subquery) => self.plan(&subquery.subquery, outer),
            LogicalPlan::SubqueryAlias(alias) => self.plan(&alias.input, outer),
            LogicalPlan::Repartition(repartition) => self.plan(&repartition.input, outer),
            other => Err(DataFusionError::NotImplemented(format!(
                "column lineage of a `{}` plan; a transform is one SELECT query",
                other.display()
            ))),
        }
    }

    /// The sources of one output expression.
    fn output(&self, e: &Expr, scope: Scope<'_>, outer: &[Scope<'_>]) -> Result<Sources> {
        let mut sources = Vec::new();
        self.expr(e, Use::OUTPUT, scope, outer, &mut sources)?;
        Ok(sources)
    }

    fn sort_keys(&self, keys: &[SortExpr], scope: Scope<'_>, outer: &[Scope<'_>], out: &mut Sources) -> Result<()> {
        keys.iter().try_for_each(|k| self.expr(&k.expr, Use::CONDITION, scope, outer, out))
    }

    /// Adds the sources of `e`, used as `use_`, to `out`.
    fn expr(&self, e: &Expr, use_: Use, scope: Scope<'_>, outer: &[Scope<'_>], out: &mut Sources) -> Result<()> {
        macro_rules! walk {
            ($e:expr, $use:expr) => {
                self.expr($e, $use, scope, outer, out)
            };
        }
        match e {
            Expr::Alias(alias) => walk!(&alias.expr, use_),
            Expr::Column(column) => {
                let sources = scope.sources(column).ok_or_else(|| DataFusionError::Internal(format!("column lineage: `{column}` is not in its input")))?;
                for source in sources {
                    merge_source(out, use_.apply(source));
                }
                Ok(())
            }
            Expr::OuterReferenceColumn(_, column) => {
                let sources = outer
                    .iter()
                    .find_map(|s| s.sources(column))
                    .ok_or_else(|| DataFusionError::Internal(format!("column lineage: outer column `{column}` is not in an enclosing query")))?;
                for source in sources {
                    merge_source(out, use_.apply(source));
                }
                Ok(())
            }
            Expr::Literal(..) | Expr::ScalarVariable(..) | Expr::Placeholder(_) => Ok(()),
            Expr::BinaryExpr(binary) => {
                let inner = if is_test(binary.op) { use_.tested() } else { use_.computed() };
                walk!(&binary.left, inner)?;
                walk!(&binary.right, inner)
            }
            Expr::Like(like) | Expr::SimilarTo(like) => {
                walk!(&like.expr, use_.tested())?;
                walk!(&like.pattern, use_.tested())
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) | Expr::IsUnknown(inner) | Expr::IsNotUnknown(inner) => walk!(inner, use_.tested()),
            // A boolean's truth is its value.
            Expr::Not(inner) | Expr::IsTrue(inner) | Expr::IsFalse(inner) | Expr::IsNotTrue(inner) | Expr::IsNotFalse(inner) | Expr::Negative(inner) => {
                walk!(inner, use_.computed())
            }
            Expr::Between(between) => {
                walk!(&between.expr, use_.tested())?;
                walk!(&between.low, use_.tested())?;
                walk!(&between.high, use_.tested())
            }
            Expr::Case(case) => {
                if let Some(operand) = &case.expr {
                    walk!(operand, use_.tested())?;
                }
                for (when, then) in &case.when_then_expr {
                    walk!(when, use_.tested())?;
                    walk!(then, use_.computed())?;
                }
                match &case.else_expr {
                    Some(otherwise) => walk!(otherwise, use_.computed()),
                    None => Ok(()),
                }
            }
            Expr::Cast(cast) => walk!(&cast.expr, use_.computed()),
            Expr::TryCast(cast) => walk!(&cast.expr, use_.computed()),
            Expr::ScalarFunction(function) => {
                let inner = if SIZE_FUNCTIONS.contains(&function.name()) { use_.tested() } else { use_.computed() };
                function.args.iter().try_for_each(|a| walk!(a, inner))
            }
            Expr::AggregateFunction(aggregate) => {
                let carries = !COUNTING_FUNCTIONS.contains(&aggregate.func.name());
                let params = &aggregate.params;
                params.args.iter().try_for_each(|a| walk!(a, use_.aggregated(carries)))?;
                if let Some(filter) = &params.filter {
                    walk!(filter, use_.condition())?;
                }
                params.order_by.iter().try_for_each(|k| walk!(&k.expr, use_.condition()))
            }
            Expr::WindowFunction(window) => {
                let carries = !COUNTING_FUNCTIONS.contains(&window.fun.name());
                let params = &window.params;
                params.args.iter().try_for_each(|a| walk!(a, use_.aggregated(carries)))?;
                params.partition_by.iter().try_for_each(|p| walk!(p, use_.condition()))?;
                params.order_by.iter().try_for_each(|k| walk!(&k.expr, use_.condition()))?;
                match &params.filter {
                    Some(filter) => walk!(filter, use_.condition()),
                    None => Ok(()),
                }
            }
            Expr::InList(list) => {
                walk!(&list.expr, use_.tested())?;
                list.list.iter().try_for_each(|item| walk!(item, use_.tested()))
            }
            Expr::Exists(exists) => self.subquery(&exists.subquery, use_.condition(), scope, outer, out),
            Expr::InSubquery(in_subquery) => {
                walk!(&in_subquery.expr, use_.tested())?;
                self.subquery(&in_subquery.subquery, use_.condition(), scope, outer, out)
            }
            Expr::SetComparison(comparison) => {
                walk!(&comparison.expr, use_.tested())?;
                self.subquery(&comparison.subquery, use_.condition(), scope, outer, out)
            }
            Expr::ScalarSubquery(subquery) => {
                let node = self.subquery_node(subquery, scope, outer)?;
                for source in node.columns.first().into_iter().flatten() {
                    merge_source(out, use_.apply(source));
                }
                for source in &node.rows {
                    merge_source(out, use_.condition().apply(source));
                }
                Ok(())
            }
            Expr::GroupingSet(set) => set.distinct_expr().into_iter().try_for_each(|e| walk!(e, use_)),
            Expr::Unnest(unnest) => walk!(&unnest.expr, use_.computed()),
            // Anything else (higher-order functions, lambdas, newer expressions) passes its
            // arguments' values on, as far as this walk knows.
            other => {
                other.apply_children(|child| {
                    walk!(child, use_.computed())?;
                    Ok(TreeNodeRecursion::Continue)
                })?;
                Ok(())
            }
        }
    }

    /// Walks a subquery's plan with the current scope as its innermost outer scope.
    fn subquery_node(&self, subquery: &Subquery, scope: Scope<'_>, outer: &[Scope<'_>]) -> Result<Node> {
        let scopes: Vec<Scope<'_>> = std::iter::once(scope).chain(outer.iter().copied()).collect();
        self.plan(&subquery.subquery, &scopes)
    }

    /// Adds every source of an `IN`/`EXISTS`/`ANY` subquery, columns and conditions, as `use_`.
    fn subquery(&self, subquery: &Subquery, use_: Use, scope: Scope<'_>, outer: &[Scope<'_>], out: &mut Sources) -> Result<()> {
        let node = self.subquery_node(subquery, scope, outer)?;
        for source in node.columns.iter().flatten().chain(&node.rows) {
            merge_source(out, use_.apply(source));
        }
        Ok(())
    }
}

impl Node {
    /// Merges another input of a `UNION` (or a recursive CTE's term) position by position.
    fn absorb(&mut self, other: Node) {
        for (column, sources) in self.columns.iter_mut().zip(other.columns) {
            for source in sources {
                merge_source(column, source);
            }
        }
        for source in other.rows {
            merge_source(&mut self.rows, source);
        }
    }
}

/// Whether a binary operator yields a truth value about its operands rather than a value made
/// from them: comparisons and pattern matches.
fn is_test(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
            | Operator::RegexMatch
            | Operator::RegexIMatch
            | Operator::RegexNotMatch
            | Operator::RegexNotIMatch
            | Operator::LikeMatch
            | Operator::ILikeMatch
            | Operator::NotLikeMatch
            | Operator::NotILikeMatch
            | Operator::AtArrow
            | Operator::ArrowAt
            | Operator::AtAt
    )
}
