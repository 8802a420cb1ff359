//! The quality and SLO state of every indexed product, kept beside the index because neither a
//! failed quality run nor an SLO evaluation bumps the catalog generation.

use meshwork_catalog::{LatestOperations, OperationsMark, RunOutcome, SloStatus};

use super::{ProductIndex, QualityState, SloState};

/// Quality and SLO state per product of one [`ProductIndex`], as of one [`OperationsMark`].
#[derive(Debug, Clone)]
pub struct ProductHealth {
    generation: i64,
    mark: OperationsMark,
    /// By product position in the index.
    pub(super) quality: Vec<QualityState>,
    /// By product position in the index.
    pub(super) slo: Vec<SloState>,
}

impl ProductHealth {
    /// The states of `index`'s products from `latest`, read at `mark`.
    pub fn build(index: &ProductIndex, mark: OperationsMark, latest: &LatestOperations) -> ProductHealth {
        let quality = index
            .records()
            .map(|r| match latest.quality.get(&r.id) {
                Some(RunOutcome::Passed) => QualityState::Passed,
                Some(RunOutcome::Warned) => QualityState::Warned,
                Some(RunOutcome::Failed) => QualityState::Failed,
                None => QualityState::None,
            })
            .collect();
        let slo = index.records().map(|r| slo_state(latest.slo.get(&r.id).map(Vec::as_slice).unwrap_or_default())).collect();
        ProductHealth { generation: index.generation(), mark, quality, slo }
    }

    /// Whether this is the health of `index` at `mark`.
    pub fn is_current(&self, index: &ProductIndex, mark: OperationsMark) -> bool {
        self.generation == index.generation() && self.mark == mark && self.quality.len() == index.len()
    }
}

/// One state for a product's objectives: breached if any is violated, met if every one that
/// could be measured is met (at risk still meets it), unknown when none could be.
fn slo_state(statuses: &[SloStatus]) -> SloState {
    if statuses.contains(&SloStatus::Violated) {
        SloState::Breached
    } else if statuses.iter().any(|s| matches!(s, SloStatus::Met | SloStatus::AtRisk)) {
        SloState::Met
    } else {
        SloState::Unknown
    }
}
