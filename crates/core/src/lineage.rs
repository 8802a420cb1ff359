//! Column lineage: which input columns each output column of a product comes from, and how.
//!
//! Lineage is kept *per output column*: every input column that decides a column's values is
//! listed under it, including the columns that only decide which rows exist (a `WHERE`, a join
//! key, a `GROUP BY` key, a window's `PARTITION BY`). Keeping conditions on each column rather
//! than once per product makes a column's entry self-contained: "what does `revenue` depend
//! on" is answered by reading one list, and a window's partition keys, which matter to one
//! column only, fit the same shape.
//!
//! The plan walk that computes it lives in `meshwork-pipeline` (it needs DataFusion); this
//! module holds only the model, so the catalog, the policies and the CLI share one type.

use crate::descriptor::{Classification, ProductDescriptor};
use crate::id::ProductId;

/// How an output column relates to one of its source columns. Ordered from the most direct to
/// the least: when one source reaches a column in several ways, the most direct one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Derivation {
    /// The value is the source value, unchanged (a column reference, a rename, `SELECT *`, a
    /// branch of a `UNION`).
    Copied,
    /// The value is computed by a row-level expression over the source (`lower(email)`,
    /// `a + b`, a `CAST`, a `CASE`).
    Computed,
    /// The value is computed by an aggregate or window function over the source (`sum(amount)`,
    /// `count(email)`, `rank() OVER (ORDER BY amount)` takes `amount` as a condition instead).
    Aggregated,
    /// The source never enters the value: it decides which rows exist or how they are grouped
    /// and ordered (`WHERE`, `JOIN … ON`, `GROUP BY`, `HAVING`, `PARTITION BY`, a window's
    /// `ORDER BY`, `IN`/`EXISTS` subqueries, `ORDER BY` under a `LIMIT`).
    Condition,
}

impl Derivation {
    /// The keyword used in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Derivation::Copied => "copied",
            Derivation::Computed => "computed",
            Derivation::Aggregated => "aggregated",
            Derivation::Condition => "condition",
        }
    }

    /// The derivation of a value that reaches an output through two steps, `self` then `outer`:
    /// the less direct of the two (a copy of a sum is aggregated; anything of a condition is a
    /// condition).
    pub fn then(self, outer: Derivation) -> Derivation {
        self.max(outer)
    }
}

/// One input column an output column is derived from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnSource {
    /// The input port, as named in `inputs[].name` (the table name inside the transform).
    pub input: String,
    /// The upstream product the port reads; `None` for a file input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductId>,
    /// The column of the input.
    pub column: String,
    /// How the output column is derived from it.
    pub derivation: Derivation,
    /// Whether the output value carries the source value (see `docs/lineage.md`): copies,
    /// casts, string functions, hashes, `CASE` branches, `min`/`max`/`sum`/`avg`/`array_agg`
    /// do; counts, lengths, comparisons and `IS NULL` tests, and every condition, do not.
    pub carries_value: bool,
}

impl ColumnSource {
    /// The sort key: input, then column, so lists are stable.
    fn key(&self) -> (&str, &str) {
        (&self.input, &self.column)
    }
}

/// The sources of one output column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnLineage {
    /// The output column.
    pub name: String,
    /// Its sources, sorted by input and column; each input column at most once.
    pub sources: Vec<ColumnSource>,
}

/// The column lineage of one product version: one entry per output column, in output order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProductLineage {
    /// Output columns in the order the transform returns them.
    pub columns: Vec<ColumnLineage>,
}

impl ProductLineage {
    /// The lineage of a product without a transform: every contract column copied from the
    /// column of the same name of its single input.
    pub fn identity(descriptor: &ProductDescriptor) -> ProductLineage {
        let Some(input) = descriptor.inputs.first() else { return ProductLineage::default() };
        let product = match &input.source {
            crate::descriptor::InputSource::Product { product } => Some(product.clone()),
            _ => None,
        };
        ProductLineage {
            columns: descriptor
                .contract
                .columns
                .iter()
                .map(|c| ColumnLineage {
                    name: c.name.clone(),
                    sources: vec![ColumnSource {
                        input: input.name.clone(),
                        product: product.clone(),
                        column: c.name.clone(),
                        derivation: Derivation::Copied,
                        carries_value: true,
                    }],
                })
                .collect(),
        }
    }

    /// The lineage of the output column `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnLineage> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Adds `source` to a list kept sorted by input and column, merging it with an entry for the
/// same input column: the more direct derivation wins, and the value is carried if either path
/// carries it.
pub fn merge_source(sources: &mut Vec<ColumnSource>, source: ColumnSource) {
    match sources.binary_search_by(|s| s.key().cmp(&source.key())) {
        Ok(at) => {
            let existing = &mut sources[at];
            existing.derivation = existing.derivation.min(source.derivation);
            existing.carries_value |= source.carries_value;
        }
        Err(at) => sources.insert(at, source),
    }
}

/// How sensitive a classification is, for "at least that classification": `public` <
/// `internal` < `confidential` < `pii`. Personal data ranks above business secrets because it
/// carries legal duties (masking outside the owning domain, `pii_masked`) that `confidential`
/// does not.
pub fn sensitivity(classification: Classification) -> u8 {
    match classification {
        Classification::Public => 0,
        Classification::Internal => 1,
        Classification::Confidential => 2,
        Classification::Pii => 3,
    }
}

