//! What an aggregation of an aggregate-only product may contain, checked in terms of the
//! product's own columns (projections between the aggregation and the fence are inlined).
//!
//! - Hidden columns are used nowhere; identifying columns (`pii`, primary key) are only counted
//!   (`count(DISTINCT id)`), never filtered or grouped on: a filter on one would single out a
//!   row by differencing. A projection that merely passes a column along uses nothing.
//! - Aggregate functions come from a short list of functions that summarise their rows without
//!   telling about one of them: `count(*)`, `count` of a column that cannot be NULL, `sum`,
//!   `avg`, `stddev`, `var`, correlations. Refused: `min`/`max`/`median` (one row's value),
//!   `bool_or` and `count` of a nullable column (a sub-population counted without the group-size
//!   check), `count(DISTINCT …)` of anything but a one-column primary key (it counts values
//!   standing for a single row, too: group by the column instead). Their arguments are plain columns:
//!   `sum(CASE WHEN name = 'Bob' THEN salary END)` would single out one row inside a large group.
//!   No `FILTER (WHERE …)` and no `ORDER BY` inside an aggregate.
//! - Expressions over rows (WHERE, GROUP BY, aggregate arguments, and what projections compute)
//!   cannot fail on some rows only: an error that depends on a row is a one-bit answer about it
//!   (`CASE WHEN email = 'x' THEN 1/0 END`). So no cast that can fail (use `TRY_CAST`; a cast of
//!   a constant is tried while planning), no division or remainder but by a non-zero constant,
//!   no integer or decimal arithmetic (it can overflow; cast to DOUBLE first), no pattern built
//!   from a row (`LIKE`, `SIMILAR TO`, `~`), only functions that cannot fail on their row
//!   argument (with their other arguments constant and valid), and no subquery correlated with
//!   the product's rows (its body is not held to these rules).

use std::collections::HashMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, Result};
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::{Aggregate, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use meshwork_policy::AggregateRule;

use super::facts::{constant, constant_cast, infallible_cast, inline, is_zero_or_minus_one, plain_column, reads_no_column};
use super::refuse;

/// Aggregate functions that summarise their rows without telling about one of them.
const SUMMARIES: &[&str] = &["count", "sum", "avg", "stddev", "stddev_pop", "var", "var_pop", "corr", "covar_samp", "covar_pop"];

/// Units `date_trunc` knows (exactly so written); any other fails on the first row it meets.
const TRUNC_UNITS: &[&str] = &["year", "quarter", "month", "week", "day", "hour", "minute", "second", "millisecond", "microsecond"];

/// Units `date_part` (and `EXTRACT`) knows.
const PART_UNITS: &[&str] = &["year", "quarter", "month", "week", "day", "hour", "minute", "second", "millisecond", "microsecond", "dow", "doy", "epoch"];

/// Functions that may be given a row's value, each with the argument positions that may hold
/// one (`None`: every position); the other arguments must be literals.
const ROW_FUNCTIONS: &[(&str, Option<&[usize]>)] = &[
    ("lower", None),
    ("upper", None),
    ("btrim", Some(&[0])),
    ("ltrim", Some(&[0])),
    ("rtrim", Some(&[0])),
    ("trim", Some(&[0])),
    ("length", None),
    ("char_length", None),
    ("character_length", None),
    ("octet_length", None),
    ("coalesce", None),
    ("nullif", None),
    ("concat", None),
    ("concat_ws", Some(&[1, 2, 3, 4, 5, 6, 7, 8])),
    ("left", Some(&[0])),
    ("right", Some(&[0])),
    ("starts_with", Some(&[0])),
    ("ends_with", Some(&[0])),
    ("strpos", Some(&[0])),
    ("date_trunc", Some(&[1])),
    ("date_part", Some(&[1])),
    ("substr", Some(&[0])),
    ("substring", Some(&[0])),
    ("abs", Some(&[0])),
    ("now", None),
    ("current_date", None),
    ("current_time", None),
    ("round", Some(&[0])),
    ("floor", None),
    ("ceil", None),
    ("isnan", None),
];

/// Checks one aggregation of `product` whose input reaches `fence` through `chain` (top first);
/// returns the product column each aggregate function reads (`None` for `count(*)`).
pub(super) fn check(aggregate: &Aggregate, chain: &[&LogicalPlan], fence: &LogicalPlan, product: &str, rule: &AggregateRule) -> Result<Vec<Option<String>>> {
    let base = fence.schema().as_ref().clone();
    let shape = Shape { product, rule, base: &base };
    // Each column of each level as an expression over the fence's columns, bottom up.
    let mut columns: HashMap<Column, Expr> = base.columns().into_iter().map(|c| (c.clone(), Expr::Column(c))).collect();
    for node in chain.iter().rev() {
        match node {
            LogicalPlan::Filter(filter) => shape.row_expr(&inline(&filter.predicate, &columns)?, "WHERE", Use::Read)?,
            LogicalPlan::Projection(projection) => {
                let mut next = HashMap::new();
                for (expr, column) in projection.expr.iter().zip(projection.schema.columns()) {
                    let inlined = inline(&expr.clone().unalias_nested().data, &columns)?;
                    // What a projection computes may be evaluated even when nothing uses it, so
                    // it must not fail; which columns it reads counts where it is used.
                    shape.row_expr(&inlined, "SELECT", Use::Computed)?;
                    next.insert(column, inlined);
                }
                columns = next;
            }
            LogicalPlan::SubqueryAlias(alias) => {
                let below = alias.input.schema().columns();
                columns = alias.schema.columns().into_iter().zip(below).filter_map(|(out, input)| columns.get(&input).map(|e| (out, e.clone()))).collect();
            }
            _ => {}
        }
    }
    for group in &aggregate.group_expr {
        if let Expr::GroupingSet(_) = group {
            // A total minus the groups shown is the groups left out.
            return Err(refuse(
                product,
                rule,
                "ROLLUP, CUBE and GROUPING SETS add totals that include the groups left out, and count each row in several groups",
                "group by plain columns",
            ));
        } else {
            shape.row_expr(&inline(group, &columns)?, "GROUP BY", Use::Read)?;
        }
    }
    let mut bases = Vec::new();
    for expr in &aggregate.aggr_expr {
        let Expr::AggregateFunction(function) = expr.clone().unalias_nested().data else {
            return Err(refuse(product, rule, format!("`{expr}` is not an aggregate function"), "aggregate with count, sum, avg, min or max"));
        };
        bases.push(shape.aggregate(&function, &columns)?);
    }
    Ok(bases)
}

/// How an expression over rows is used: read (its columns count) or only computed on the way.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    Computed,
}

struct Shape<'a> {
    product: &'a str,
    rule: &'a AggregateRule,
    base: &'a DFSchema,
}

impl Shape<'_> {
    fn refuse(&self, message: impl Into<String>, hint: impl Into<String>) -> datafusion::error::DataFusionError {
        refuse(self.product, self.rule, message, hint)
    }

    fn hidden(&self, column: &Column) -> Result<()> {
        if self.rule.hidden.contains(&column.name) {
            return Err(self.refuse(format!("column `{}` is hidden from aggregate-only readers", column.name), format!("leave `{}` out of the query", column.name)));
        }
        Ok(())
    }

    fn type_of(&self, expr: &Expr) -> DataType {
        expr.get_type(self.base).unwrap_or(DataType::Null)
    }

    /// Checks an expression evaluated on each row: hidden columns, and nothing that can fail on
    /// some rows only.
    fn row_expr(&self, expr: &Expr, clause: &str, usage: Use) -> Result<()> {
        let mut outcome = Ok(());
        expr.apply(|e| {
            let verdict = self.row_node(e, clause, usage);
            if verdict.is_err() {
                outcome = verdict;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        outcome
    }

    fn row_node(&self, e: &Expr, clause: &str, usage: Use) -> Result<()> {
        match e {
            Expr::Column(_) if usage == Use::Computed => Ok(()),
            Expr::Column(c) => {
                self.hidden(c)?;
                if self.rule.identifying.contains(&c.name) {
                    // `WHERE employee_id <> 7` next to the same query without it is employee 7.
                    return Err(self.refuse(
                        format!("column `{}` identifies rows (pii or primary key), so it may not be used in {clause}: two answers differing by one row would tell that row", c.name),
                        format!("leave `{}` out of {clause}; `count(DISTINCT {})` is allowed", c.name, c.name),
                    ));
                }
                Ok(())
            }
            Expr::Literal(..)
            | Expr::Alias(_)
            | Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::IsNotUnknown(_)
            | Expr::Between(_)
            | Expr::InList(_)
            | Expr::Case(_)
            | Expr::TryCast(_)
            | Expr::Placeholder(_) => Ok(()),
            Expr::Like(like) => self.pattern(&like.pattern, clause, false),
            // Its pattern is turned into a regular expression only when a row reaches it.
            Expr::SimilarTo(_) => Err(self.refuse(format!("SIMILAR TO in {clause} compiles its pattern on the rows it meets"), "use LIKE or `~` with a constant pattern")),
            Expr::BinaryExpr(binary) => self.binary(binary, clause),
            Expr::Negative(inner) => self.float_only(inner, "negation", clause),
            Expr::Cast(cast) => {
                let from = self.type_of(&cast.expr);
                if infallible_cast(&from, cast.field.data_type()) || constant_cast(&cast.expr, cast.field.data_type()) {
                    Ok(())
                } else {
                    Err(self.refuse(
                        format!("`CAST({} AS {})` in {clause} can fail on some rows, and whether it fails would tell about rows you may not see", cast.expr, cast.field.data_type()),
                        "use `TRY_CAST`, which gives NULL instead of failing",
                    ))
                }
            }
            Expr::ScalarFunction(function) => self.function(function, clause),
            Expr::ScalarSubquery(subquery) => self.uncorrelated(&subquery.outer_ref_columns, clause),
            Expr::Exists(exists) => self.uncorrelated(&exists.subquery.outer_ref_columns, clause),
            Expr::InSubquery(in_subquery) => self.uncorrelated(&in_subquery.subquery.outer_ref_columns, clause),
            Expr::SetComparison(comparison) => self.uncorrelated(&comparison.subquery.outer_ref_columns, clause),
            other => Err(self.refuse(format!("`{other}` is not allowed in {clause} of an aggregate-only query"), "use columns, literals, comparisons and plain functions")),
        }
    }

    /// A subquery may not be correlated with the product's rows: its body would read them
    /// without these rules (`EXISTS (SELECT 1 WHERE s.employee_id = 40)` is a filter on an
    /// identifier, and the body's expressions could fail on one row).
    fn uncorrelated(&self, outer: &[Expr], clause: &str) -> Result<()> {
        match outer.first() {
            None => Ok(()),
            Some(reference) => Err(self.refuse(
                format!("a subquery in {clause} is correlated with its rows (through `{reference}`)"),
                "use a subquery that does not refer to the product's columns, or aggregate the product first and join the result",
            )),
        }
    }

    /// A pattern (`LIKE`, `SIMILAR TO`, `~`) must be a constant: one built from a row can fail
    /// to compile on that row only.
    fn pattern(&self, pattern: &Expr, clause: &str, regex: bool) -> Result<()> {
        let Some(value) = constant(pattern) else {
            return Err(self.refuse(
                format!("the pattern `{pattern}` in {clause} is built from rows, and a pattern that does not compile fails on that row only"),
                "match against a constant pattern",
            ));
        };
        // A regular expression that does not compile would fail on the first row it meets.
        let text = value.to_string();
        if regex && !value.is_null() && regex::Regex::new(&text).is_err() {
            return Err(self.refuse(format!("the regular expression '{text}' in {clause} does not compile"), "fix the pattern"));
        }
        Ok(())
    }

    fn binary(&self, binary: &BinaryExpr, clause: &str) -> Result<()> {
        match binary.op {
            // Dates and times moved by a constant interval (`current_date - INTERVAL '1 year'`).
            Operator::Plus | Operator::Minus if reads_no_column(&binary.left) && reads_no_column(&binary.right) && self.temporal(&binary.left) => Ok(()),
            Operator::Plus | Operator::Minus | Operator::Multiply => self.float_only(&binary.left, "arithmetic", clause).and_then(|_| self.float_only(&binary.right, "arithmetic", clause)),
            Operator::RegexMatch | Operator::RegexIMatch | Operator::RegexNotMatch | Operator::RegexNotIMatch => self.pattern(&binary.right, clause, true),
            // By a constant other than 0 and -1, a division cannot fail (nor overflow).
            Operator::Divide | Operator::Modulo => match constant(&binary.right) {
                Some(value) if !value.is_null() && !is_zero_or_minus_one(&value) => Ok(()),
                _ => Err(self.refuse(
                    format!("`{binary}` in {clause} can fail on some rows (division by zero or overflow), which would tell about rows you may not see"),
                    "divide only a DOUBLE by a literal other than 0 and -1, or divide the aggregates instead (e.g. `sum(a) / sum(b)`)",
                )),
            },
            _ => Ok(()),
        }
    }

    fn temporal(&self, expr: &Expr) -> bool {
        self.type_of(expr).is_temporal()
    }

    fn float_or_literal(&self, expr: &Expr) -> bool {
        constant(expr).is_some() || self.type_of(expr).is_floating()
    }

    fn float_only(&self, expr: &Expr, what: &str, clause: &str) -> Result<()> {
        if self.float_or_literal(expr) {
            return Ok(());
        }
        Err(self.refuse(
            format!("{what} on `{expr}` ({}) in {clause} can overflow on some rows, which would tell about rows you may not see", self.type_of(expr)),
            format!("cast it to DOUBLE first: `CAST({expr} AS DOUBLE)`"),
        ))
    }

    fn function(&self, function: &ScalarFunction, clause: &str) -> Result<()> {
        let name = function.func.name();
        let Some((_, positions)) = ROW_FUNCTIONS.iter().find(|(n, _)| *n == name) else {
            return Err(self.refuse(
                format!("function `{name}` in {clause} is not allowed in aggregate-only queries: it could fail on some rows"),
                format!("use one of {}", ROW_FUNCTIONS.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
            ));
        };
        for (i, arg) in function.args.iter().enumerate() {
            let row_position = positions.is_none_or(|p| p.contains(&i));
            if !row_position && constant(arg).is_none() {
                return Err(self.refuse(format!("argument {} of `{name}` in {clause} must be a constant", i + 1), format!("write `{name}` with a constant there")));
            }
        }
        match name {
            // Rounding an integer or decimal is exact, but it can overflow; so can `abs`.
            "round" | "floor" | "ceil" | "abs" => self.float_only(&function.args[0], &format!("`{name}`"), clause),
            "date_trunc" | "date_part" => {
                let unit = function.args.first().and_then(constant).map(|v| v.to_string().trim_matches('\'').to_lowercase());
                let known = if name == "date_trunc" { TRUNC_UNITS } else { PART_UNITS };
                match unit {
                    Some(unit) if known.contains(&unit.as_str()) => Ok(()),
                    _ => Err(self.refuse(
                        format!("`{name}` in {clause} with the unit `{}`, which it does not know: it would fail on the first row it meets", function.args.first().map(ToString::to_string).unwrap_or_default()),
                        "use a unit such as 'year', 'month', 'day' or 'hour'",
                    )),
                }
            }
            "substr" | "substring" => {
                // A negative length fails on every row it is evaluated on.
                let negative = function.args.iter().skip(1).filter_map(constant).any(|v| v.to_string().parse::<f64>().is_ok_and(|n| n < 0.0));
                if negative {
                    return Err(self.refuse(format!("`{name}` in {clause} with a negative position or length fails on the rows it meets"), "use positive constants"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Checks one aggregate function of the aggregation; returns the column it reads.
    fn aggregate(&self, function: &AggregateFunction, columns: &HashMap<Column, Expr>) -> Result<Option<String>> {
        let name = function.func.name();
        let private = self.rule.privacy.is_some();
        let distinct = function.params.distinct;
        if private && !matches!(name, "count" | "sum" | "avg") {
            return Err(self.refuse(format!("`{name}` has no differentially private answer here"), "use count, sum or avg"));
        }
        if !SUMMARIES.contains(&name) {
            let why = match name {
                "min" | "max" | "median" | "first_value" | "last_value" | "nth_value" | "approx_median" | "approx_percentile_cont" | "percentile_cont" => {
                    format!("`{name}` returns the value of one row")
                }
                "bool_or" | "bool_and" | "bit_or" | "bit_and" | "bit_xor" => format!("`{name}` tells whether a single row meets a condition"),
                "approx_distinct" => format!("`{name}` counts values standing for a single row too"),
                _ => format!("`{name}` returns values of single rows"),
            };
            return Err(self.refuse(why, "aggregate with count, sum, avg, stddev or var"));
        }
        if private && name != "count" && distinct {
            return Err(self.refuse(format!("`{name}(DISTINCT …)` has no differentially private answer here"), format!("use `{name}` without DISTINCT")));
        }
        if function.params.filter.is_some() {
            return Err(self.refuse(
                format!("`{name}(…) FILTER (WHERE …)` selects rows outside the group-size count"),
                "move the condition to WHERE, where groups standing for too few rows are left out",
            ));
        }
        if !function.params.order_by.is_empty() {
            return Err(self.refuse(format!("`ORDER BY` inside `{name}` reads rows one by one"), format!("write `{name}` without ORDER BY")));
        }
        let mut base = None;
        for arg in &function.params.args {
            let inlined = inline(arg, columns)?;
            // Casts in an argument are evaluated on every row before any group is dropped.
            self.row_expr(&inlined, &format!("the argument of `{name}`"), Use::Computed)?;
            if inlined.exists(|e| Ok(matches!(e, Expr::TryCast(_))))? {
                // It turns some values into NULL: an aggregate of the rest is a filter whose
                // group is not counted (`count(TRY_CAST(id AS DECIMAL(1,0)))` counts ids 1 to 9).
                return Err(self.refuse(
                    format!("`TRY_CAST` inside `{name}` drops some rows from it, a part of the group whose size is not checked"),
                    "filter with WHERE instead",
                ));
            }
            match (&inlined, plain_column(&inlined)) {
                (Expr::Literal(..), _) if name == "count" && !distinct => {}
                (_, Some(column)) => {
                    self.hidden(column)?;
                    base = Some(column.name.clone());
                    let identifying = self.rule.identifying.contains(&column.name);
                    if identifying && name != "count" {
                        return Err(self.refuse(
                            format!("`{name}({})` reads an identifying column (pii or primary key), which is only counted", column.name),
                            format!("count it: `count(DISTINCT {})`", column.name),
                        ));
                    }
                    if !private && name == "count" && distinct && self.rule.key.as_deref() != Some(column.name.as_str()) {
                        return Err(self.refuse(
                            format!("`count(DISTINCT {})` counts values standing for a single row too", column.name),
                            format!("count the groups instead, where groups too small are left out: `SELECT count(*) FROM (SELECT {c} FROM {p} GROUP BY {c})`", c = column.name, p = self.product),
                        ));
                    }
                    let nullable = self.base.field_with_unqualified_name(&column.name).map_or(true, |f| f.is_nullable());
                    if !private && name == "count" && !distinct && nullable {
                        return Err(self.refuse(
                            format!("`count({})` counts the rows where `{}` is not NULL, a part of the group whose size is not checked", column.name, column.name),
                            format!("count rows with a filter instead: `count(*) … WHERE {} IS NOT NULL`", column.name),
                        ));
                    }
                    if let Some(privacy) = &self.rule.privacy
                        && name != "count"
                        && !privacy.bounds.contains_key(&column.name)
                    {
                        return Err(self.refuse(
                            format!("`{name}({})` needs declared bounds for `{}`", column.name, column.name),
                            format!("the product's owners declare them under `access.aggregate_only.privacy.bounds.{}`", column.name),
                        ));
                    }
                }
                _ => {
                    return Err(self.refuse(
                        format!("the argument of `{name}` is `{inlined}`, not a column: an expression inside an aggregate can single out one row of a group"),
                        format!("aggregate a plain column (e.g. `{name}(salary)`), filter with WHERE, and compute on the aggregates"),
                    ));
                }
            }
        }
        Ok(base)
    }
}
