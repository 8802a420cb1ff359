//! Privacy budgets: what a differentially private statement costs its principal, charged in the
//! catalog before the statement runs, and refused once the window's budget is spent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use meshwork_catalog::{CatalogStore, PrivacyCharge, PrivacySpend};
use meshwork_core::id::ProductId;
use meshwork_policy::AccessDecision;

use crate::QueryError;

/// Millionths of ε: budgets are kept in whole numbers so sums never drift.
const MICRO: f64 = 1_000_000.0;

/// What one statement spent of a principal's budget on one product; every interface passes it
/// on to the client with the answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrivacySpent {
    /// The differentially private product.
    pub product: ProductId,
    /// ε this statement spent.
    pub epsilon: f64,
    /// ε spent in the current window, this statement included.
    pub spent: f64,
    /// ε the window allows.
    pub budget: f64,
    /// When the window ends and the budget is whole again.
    pub renews_at: DateTime<Utc>,
}

impl PrivacySpent {
    /// The one-line notice clients are given.
    pub fn notice(&self) -> String {
        format!(
            "differentially private answer from `{}`: ε {} spent; {} of {} used, renews at {}",
            self.product,
            round(self.epsilon),
            round(self.spent),
            round(self.budget),
            meshwork_catalog::time::format(&self.renews_at)
        )
    }
}

impl PrivacySpent {
    /// The spend as ASCII `key=value` pairs, for HTTP and gRPC headers (which cannot carry ε).
    pub fn header(&self) -> String {
        format!(
            "product={}; epsilon={}; spent={}; budget={}; renews_at={}",
            self.product,
            round(self.epsilon),
            round(self.spent),
            round(self.budget),
            meshwork_catalog::time::format(&self.renews_at)
        )
    }
}

fn round(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// Charges `principal` for the private aggregations a statement makes (ε by product) before
/// anything runs, product by product; a product whose budget would be exceeded refuses the
/// statement, saying when the budget renews (what earlier products of the same statement were
/// charged stays spent: refusing late never gives budget back).
pub(crate) async fn charge(
    catalog: &dyn CatalogStore,
    principal: &str,
    spend: &BTreeMap<ProductId, f64>,
    decisions: &BTreeMap<ProductId, AccessDecision>,
) -> Result<Vec<PrivacySpent>, QueryError> {
    let mut spent = Vec::new();
    let now = Utc::now();
    for (product, epsilon) in spend {
        let Some(privacy) = decisions.get(product).and_then(|d| d.aggregate.as_ref()).and_then(|a| a.privacy.as_ref()) else { continue };
        let window = std::time::Duration::from_secs(privacy.window.seconds);
        let request = PrivacySpend {
            principal: principal.to_owned(),
            product: product.clone(),
            epsilon_micro: (epsilon * MICRO).ceil() as u64,
            budget_micro: (privacy.budget.get() * MICRO).floor() as u64,
            window,
            at: now,
        };
        let charge = catalog.spend_privacy(&request).await?;
        match charge {
            PrivacyCharge::Spent { spent_micro, .. } => spent.push(PrivacySpent {
                product: product.clone(),
                epsilon: *epsilon,
                spent: spent_micro as f64 / MICRO,
                budget: privacy.budget.get(),
                renews_at: charge.renews_at(window),
            }),
            PrivacyCharge::Exhausted { spent_micro, .. } => {
                return Err(QueryError::AggregateOnly(format!(
                    "the privacy budget of `{principal}` on `{product}` is spent: {} of {} used, and this query needs ε {}; it renews at {} (hint: ask fewer questions per window, or ask the product's owners for a larger `privacy.budget`)",
                    round(spent_micro as f64 / MICRO),
                    round(privacy.budget.get()),
                    round(*epsilon),
                    meshwork_catalog::time::format(&charge.renews_at(window)),
                )));
            }
        }
    }
    Ok(spent)
}
