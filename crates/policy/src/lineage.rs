//! Column lineage as governance policies see it (`input.lineage`): each source with the
//! upstream column's classification and whether the consuming domain reads it masked.

use std::collections::BTreeMap;

use meshwork_core::descriptor::{Classification, DomainDescriptor, ProductDescriptor};
use meshwork_core::id::ProductId;
use meshwork_core::lineage::{ColumnSource, ProductLineage, sensitivity};
use meshwork_core::principal::Principal;
use serde_json::{Value, json};

use crate::Authorizer;

/// What governance knows of a product's column lineage.
#[derive(Debug, Clone, PartialEq)]
pub enum GovernanceLineage {
    /// Each output column with its sources.
    Columns(Vec<GovernedColumn>),
    /// The transform could not be planned against its inputs' declared schemas; the message
    /// says why. Rules that need lineage report it instead of passing silently.
    Unknown(String),
}

/// One output column and its sources.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GovernedColumn {
    /// The output column.
    pub name: String,
    /// Its sources.
    pub sources: Vec<GovernedSource>,
}

/// One source of an output column, as the product's domain reads it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GovernedSource {
    /// Where the value comes from and how.
    #[serde(flatten)]
    pub source: ColumnSource,
    /// The classification the upstream product's contract declares for the column; absent for
    /// file inputs and unclassified columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Whether the consuming domain reads the column through a mask of the upstream's access
    /// decision (its descriptor or an access policy).
    pub masked: bool,
}

impl GovernanceLineage {
    /// Joins a product's lineage with what its domain reads of each upstream product:
    /// `authorizer.decide(Principal::for_domain(domain), upstream)`, the same decision a build
    /// reads the upstream with. Sources of an upstream the domain may not read at all are left
    /// out: that refusal is reported on its own, and such a product does not build.
    pub fn resolve(
        lineage: &ProductLineage,
        domain: &DomainDescriptor,
        upstream: &BTreeMap<ProductId, &ProductDescriptor>,
        authorizer: &Authorizer,
    ) -> GovernanceLineage {
        let principal = Principal::for_domain(domain);
        let decisions: BTreeMap<&ProductId, _> = upstream.iter().map(|(id, d)| (id, authorizer.decide(&principal, d))).collect();
        let columns = lineage
            .columns
            .iter()
            .map(|column| GovernedColumn {
                name: column.name.clone(),
                sources: column
                    .sources
                    .iter()
                    .filter_map(|source| {
                        let Some(product) = &source.product else {
                            return Some(GovernedSource { source: source.clone(), classification: None, masked: false });
                        };
                        let decision = decisions.get(product)?;
                        if !decision.allowed {
                            return None;
                        }
                        let classification = upstream.get(product).and_then(|d| d.contract.column(&source.column)).and_then(|c| c.classification);
                        Some(GovernedSource { source: source.clone(), classification, masked: decision.masks.contains_key(&source.column) })
                    })
                    .collect(),
            })
            .collect();
        GovernanceLineage::Columns(columns)
    }

    /// The `input.lineage` document: `{"columns": […], "sensitivity": {class: rank}}`, or
    /// `{"error": "…"}`. The ranks come from [`sensitivity`], so Rego compares classifications
    /// by the one ordering the rest of Meshwork uses.
    pub(crate) fn document(&self) -> Value {
        match self {
            GovernanceLineage::Columns(columns) => {
                let ranks: serde_json::Map<String, Value> = [Classification::Public, Classification::Internal, Classification::Confidential, Classification::Pii]
                    .into_iter()
                    .map(|c| (c.as_str().to_owned(), json!(sensitivity(c))))
                    .collect();
                json!({ "columns": columns, "sensitivity": ranks })
            }
            GovernanceLineage::Unknown(error) => json!({ "error": error }),
        }
    }
}
