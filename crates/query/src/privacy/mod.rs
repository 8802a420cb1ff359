//! Differentially private answers for aggregate-only readers: an aggregation of a product whose
//! `access.aggregate_only.privacy` is set is rewritten to add calibrated noise to `count`, `sum`
//! and `avg`, to release only groups whose *noisy* row count reaches `min_group_size`, and to
//! charge the principal's privacy budget in the catalog before anything runs.
//!
//! Mechanism (docs/governance.md, "Aggregate-only and private access", has the proof sketch):
//! one answer (one aggregation) costs the product's `epsilon`, split evenly into `k` shares
//! among the values it releases per group: the noisy row count that decides whether a group is
//! shown, one share per `count` and `sum`, two per `avg` (a noisy sum over a noisy count). Under
//! add/remove-one-row neighbouring, a row moves a count by 1 and a sum by at most the largest
//! absolute value of its column's declared bounds (each value is clamped into them first), and
//! it falls into one group only (grouping sets are refused), so by sequential composition the
//! answer is ε-DP (Laplace) or (ε, δ)-DP (Gaussian), and releasing a group only when its noisy
//! count reaches a threshold adds δ: the threshold is raised above `min_group_size` until a
//! one-row group passes with probability at most δ ([`threshold`]). Noise is sampled exactly on
//! integers ([`noise`]), never from floating-point formulas.

pub(crate) mod budget;
pub(crate) mod noise;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Column, DataFusionError, Result, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, cast, lit, when,
};
use meshwork_core::aggregate::{NoiseMechanism, Privacy};
use meshwork_policy::AggregateRule;

pub use budget::PrivacySpent;
pub(crate) use noise::NoiseSource;

use crate::aggregate::{ROWS, refuse, restore};

/// The noisy row count a group is released on.
const NOISY_ROWS: &str = "__meshwork_noisy_rows";

/// What a noisy value may be after the noise: counts are whole and never negative, the count an
/// average divides by is at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Real,
    Count,
    Divisor,
}

/// `dp_noise(value, scale)`: `value` plus noise of `scale` (Laplace scale or Gaussian σ) drawn
/// from the session's [`NoiseSource`]. Never registered by name, so a consumer cannot call it,
/// and volatile, so every group draws its own noise.
struct DpNoise {
    source: Arc<NoiseSource>,
    mechanism: NoiseMechanism,
    kind: Kind,
    signature: Signature,
}

impl DpNoise {
    fn udf(source: &Arc<NoiseSource>, mechanism: NoiseMechanism, kind: Kind) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(DpNoise {
            source: source.clone(),
            mechanism,
            kind,
            signature: Signature::exact(vec![DataType::Float64, DataType::Float64], Volatility::Volatile),
        }))
    }

    fn draw(&self, value: f64, scale: f64) -> Result<f64> {
        let noise = match (self.mechanism, self.kind) {
            (NoiseMechanism::Laplace, Kind::Real) => self.source.laplace(scale),
            (NoiseMechanism::Gaussian, Kind::Real) => self.source.gaussian(scale),
            (NoiseMechanism::Laplace, _) => self.source.count_laplace(scale).map(|n| n as f64),
            (NoiseMechanism::Gaussian, _) => self.source.count_gaussian(scale).map(|n| n as f64),
        }
        .map_err(DataFusionError::Execution)?;
        Ok(match self.kind {
            // On the noise's grid first: added to an arbitrary float, the rounding of the sum
            // would depend on the value (Mironov 2012). The grid step is at most scale/2^20, so
            // the value moves by at most half of it; `rewrite` widens the scale to cover that.
            Kind::Real => {
                let step = noise::grid_step(scale).map_err(DataFusionError::Execution)?;
                (value / step).round() * step + noise
            }
            Kind::Count => (value + noise).max(0.0),
            Kind::Divisor => (value + noise).max(1.0),
        })
    }
}

impl fmt::Debug for DpNoise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DpNoise({}, {:?})", self.mechanism, self.kind)
    }
}

impl PartialEq for DpNoise {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.source, &other.source) && self.mechanism == other.mechanism && self.kind == other.kind
    }
}

impl Eq for DpNoise {}

impl Hash for DpNoise {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.mechanism.hash(state);
        self.kind.hash(state);
    }
}

impl ScalarUDFImpl for DpNoise {
    fn name(&self) -> &str {
        match self.mechanism {
            NoiseMechanism::Laplace => "dp_laplace",
            NoiseMechanism::Gaussian => "dp_gaussian",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scale = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Float64(Some(scale))) => *scale,
            _ => return Err(DataFusionError::Internal("dp_noise needs a constant scale".into())),
        };
        let values = args.args[0].to_array(args.number_rows)?;
        let values = values.as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(values.len());
        for i in 0..values.len() {
            out.push(if values.is_null(i) { None } else { Some(self.draw(values.value(i), scale)?) });
        }
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out))))
    }
}

/// Whether `udf` draws privacy noise (such plans stay in-process: the noise source is the
/// session's).
pub(crate) fn is_noise(udf: &ScalarUDF) -> bool {
    (udf.inner().as_ref() as &dyn std::any::Any).is::<DpNoise>()
}

/// One released value of a private aggregation, and where its parts sit in the rewritten
/// aggregation's output.
enum Released {
    /// A count at this output position.
    Count(usize),
    /// A clamped sum at this position, and its sensitivity.
    Sum(usize, f64),
    /// A clamped sum and a count to divide it by.
    Avg(usize, usize, f64),
}

/// The rewrite of one private aggregation.
pub(crate) struct Private;

impl Private {
    /// `aggregate` (already checked: count, sum and avg of bounded columns only) answered with
    /// noise, groups released on their noisy row count.
    pub(crate) fn rewrite(
        aggregate: Aggregate,
        bases: &[Option<String>],
        product: &str,
        rule: &AggregateRule,
        privacy: &Privacy,
        noise: &Arc<NoiseSource>,
    ) -> Result<LogicalPlan> {
        let original = aggregate.schema.clone();
        let groups = original.fields().len() - aggregate.aggr_expr.len();
        let mut aggr_expr: Vec<Expr> = Vec::new();
        let mut released = Vec::new();
        let mut shares = 1u32;
        for (expr, base) in aggregate.aggr_expr.iter().zip(bases) {
            let Expr::AggregateFunction(function) = expr.clone().unalias_nested().data else {
                return Err(DataFusionError::Internal(format!("`{expr}` is not an aggregate function")));
            };
            let name = function.func.name().to_owned();
            let at = groups + aggr_expr.len();
            match name.as_str() {
                "count" => {
                    aggr_expr.push(Expr::AggregateFunction(function).alias(format!("__meshwork_{at}")));
                    released.push(Released::Count(at));
                    shares += 1;
                }
                "sum" | "avg" => {
                    let bounds = base.as_ref().and_then(|b| privacy.bounds.get(b)).ok_or_else(|| {
                        refuse(product, rule, format!("`{name}` needs declared bounds for its column"), "declare them under `access.aggregate_only.privacy.bounds`")
                    })?;
                    let arg = function.params.args[0].clone();
                    aggr_expr.push(sum(clamped(&arg, bounds.lower.get(), bounds.upper.get())).alias(format!("__meshwork_{at}")));
                    if name == "sum" {
                        released.push(Released::Sum(at, bounds.sensitivity()));
                        shares += 1;
                    } else {
                        aggr_expr.push(count(arg).alias(format!("__meshwork_{}", at + 1)));
                        released.push(Released::Avg(at, at + 1, bounds.sensitivity()));
                        shares += 2;
                    }
                }
                other => return Err(refuse(product, rule, format!("`{other}` has no differentially private answer here"), "use count, sum or avg")),
            }
        }
        let rows_at = groups + aggr_expr.len();
        aggr_expr.push(count(lit(1i64)).alias(ROWS));
        let counted = Aggregate::try_new(aggregate.input.clone(), aggregate.group_expr.clone(), aggr_expr)?;
        let schema = counted.schema.clone();
        let column = |i: usize| {
            let (qualifier, field) = schema.qualified_field(i);
            cast(Expr::Column(Column::new(qualifier.cloned(), field.name())), DataType::Float64)
        };

        let epsilon = privacy.epsilon.get() / f64::from(shares);
        let scale = |sensitivity: f64| -> f64 {
            match (privacy.mechanism, privacy.delta) {
                (NoiseMechanism::Gaussian, Some(delta)) => {
                    let delta = delta.get() / f64::from(shares);
                    sensitivity * (2.0 * (1.25 / delta).ln()).sqrt() / epsilon
                }
                _ => sensitivity / epsilon,
            }
        };
        let noisy = |kind: Kind, value: Expr, sensitivity: f64| {
            // A real value is rounded onto the noise's grid (step ≤ scale/2^20) before the noise
            // is added, which can move it by half a step more than Δ: the scale is widened so
            // that (Δ + step)/scale stays within the share of ε.
            let widened = match kind {
                Kind::Real => scale(sensitivity) * (1.0 + 2.0 / (epsilon * 1_048_576.0)),
                Kind::Count | Kind::Divisor => scale(sensitivity),
            };
            DpNoise::udf(noise, privacy.mechanism, kind).call(vec![value, lit(widened)])
        };

        let mut exprs: Vec<Expr> = (0..groups)
            .map(|i| {
                let (qualifier, field) = schema.qualified_field(i);
                Expr::Column(Column::new(qualifier.cloned(), field.name()))
            })
            .collect();
        for (i, value) in released.iter().enumerate() {
            let (qualifier, field) = original.qualified_field(groups + i);
            let expr = match value {
                Released::Count(at) => noisy(Kind::Count, column(*at), 1.0),
                Released::Sum(at, sensitivity) => noisy(Kind::Real, column(*at), *sensitivity),
                Released::Avg(sum_at, count_at, sensitivity) => noisy(Kind::Real, column(*sum_at), *sensitivity) / noisy(Kind::Divisor, column(*count_at), 1.0),
            };
            exprs.push(cast(expr, field.data_type().clone()).alias_qualified(qualifier.cloned(), field.name()));
        }
        exprs.push(noisy(Kind::Count, column(rows_at), 1.0).alias(NOISY_ROWS));
        let min = threshold(privacy, shares, scale(1.0)).max(rule.min_group_size as f64);
        let released = LogicalPlanBuilder::from(LogicalPlan::Aggregate(counted))
            .project(exprs)?
            .filter(Expr::Column(Column::from_name(NOISY_ROWS)).gt_eq(lit(min)))?
            .build()?;
        restore(released, &original, original.fields().len())
    }
}

/// The noisy row count a group needs to be released: high enough that a group of one row
/// passes with probability at most δ — the product's δ (split like ε) for Gaussian noise,
/// [`SELECTION_DELTA`] for Laplace — so which groups exist is private too.
fn threshold(privacy: &Privacy, shares: u32, count_scale: f64) -> f64 {
    let delta = privacy.delta.map(|d| d.get() / f64::from(shares)).unwrap_or(SELECTION_DELTA);
    let margin = match privacy.mechanism {
        // P(Lap(b) ≥ t) = ½·exp(−t/b).
        NoiseMechanism::Laplace => count_scale * (1.0 / (2.0 * delta)).ln(),
        // P(N(0, σ²) ≥ t) ≤ exp(−t²/2σ²).
        NoiseMechanism::Gaussian => count_scale * (2.0 * (1.0 / delta).ln()).sqrt(),
    };
    (1.0 + margin).ceil()
}

/// The chance a group of one row is released, for Laplace noise.
pub(crate) const SELECTION_DELTA: f64 = 1e-6;

/// `arg` as DOUBLE, clamped into `[lower, upper]`; NULL stays NULL (sums skip it).
fn clamped(arg: &Expr, lower: f64, upper: f64) -> Expr {
    let value = cast(arg.clone(), DataType::Float64);
    when(value.clone().lt(lit(lower)), lit(lower)).when(value.clone().gt(lit(upper)), lit(upper)).otherwise(value).unwrap_or_else(|_| lit(ScalarValue::Float64(None)))
}
