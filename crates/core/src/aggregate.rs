//! Aggregate-only access: what a product's aggregate-only readers may learn of it (groups of at
//! least `min_group_size` rows, never a row) and, when asked for, differentially private answers
//! under a per-principal privacy budget.

use std::collections::BTreeMap;

use crate::descriptor::DurationSpec;

/// A finite real number (never NaN or infinite), so that descriptors holding one stay `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Finite(f64);

// NaN is the only f64 that breaks reflexivity, and `Finite` never holds it.
impl Eq for Finite {}

impl Finite {
    /// `value` when it is finite.
    pub fn new(value: f64) -> Option<Finite> {
        value.is_finite().then_some(Finite(value))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Finite {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Finite::new(value).ok_or_else(|| format!("`{value}` is not a finite number"))
    }
}

impl From<Finite> for f64 {
    fn from(value: Finite) -> f64 {
        value.0
    }
}

impl std::fmt::Display for Finite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `access.aggregate_only`: principals who may query the product only in aggregate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AggregateOnly {
    /// Principals that read in aggregate: `user:…`, `group:…`, `domain:…` or `*`. A principal
    /// that is also a row reader (`access.readers`, its own domain, an administrator, a grant)
    /// reads rows.
    pub readers: Vec<String>,
    /// Rows of the product every group of an answer must stand for; smaller groups are left out
    /// of the answer.
    pub min_group_size: u64,
    /// Columns an aggregate-only reader may not use at all (select, filter, group or aggregate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns_hidden: Vec<String>,
    /// Differentially private answers instead of exact ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<Privacy>,
}

impl AggregateOnly {
    /// Groups below this size are never shown unless a descriptor or policy says otherwise.
    pub const DEFAULT_MIN_GROUP_SIZE: u64 = 10;
}

/// `access.aggregate_only.privacy`: differentially private `count`, `sum` and `avg`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Privacy {
    /// The noise added.
    pub mechanism: NoiseMechanism,
    /// Privacy loss of one answer (one aggregation of the product), split among its values.
    pub epsilon: Finite,
    /// For `gaussian`: the probability the ε guarantee fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Finite>,
    /// Privacy loss one principal may spend on the product per window.
    pub budget: Finite,
    /// How long a budget lasts from its first answer; a new one starts after.
    pub window: DurationSpec,
    /// Declared bounds of the columns `sum` and `avg` may read: each row's value is clamped into
    /// them, which is what bounds one row's influence on the answer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bounds: BTreeMap<String, Bounds>,
}

/// The range one row's value of a column is clamped into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bounds {
    /// Smallest value counted.
    pub lower: Finite,
    /// Largest value counted.
    pub upper: Finite,
}

impl Bounds {
    /// How much one row can move a sum: its largest absolute value.
    pub fn sensitivity(&self) -> f64 {
        self.lower.get().abs().max(self.upper.get().abs())
    }
}

crate::keyword_enum! {
    /// The noise of differentially private answers.
    pub enum NoiseMechanism ("noise mechanism") {
        /// Discrete Laplace noise: pure ε-differential privacy.
        Laplace => "laplace",
        /// Discrete Gaussian noise: (ε, δ)-differential privacy, smaller tails.
        Gaussian => "gaussian",
    }
}
