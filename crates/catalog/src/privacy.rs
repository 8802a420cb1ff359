//! Differential-privacy budgets as the catalog keeps them: each principal spends epsilon of a
//! product's budget within a fixed window that starts at its first charge and renews once it has
//! run its length; amounts are integers in millionths of epsilon, so sums never drift.

use std::time::Duration;

use chrono::{DateTime, Utc};
use meshwork_core::id::ProductId;

/// The largest budget, in millionths of epsilon, the ledger tells apart (`i64::MAX / 2`, about
/// 4.6 trillion epsilon): a larger budget counts as this much, so a stored sum never overflows.
pub const MAX_BUDGET_MICRO: u64 = (i64::MAX / 2) as u64;

/// One charge against a principal's budget for a product (what
/// [`CatalogStore::spend_privacy`](crate::CatalogStore::spend_privacy) is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacySpend {
    /// Who spends.
    pub principal: String,
    /// The product whose budget is spent.
    pub product: ProductId,
    /// What this charge costs, in millionths of epsilon.
    pub epsilon_micro: u64,
    /// The whole budget of one window, in millionths of epsilon (at most [`MAX_BUDGET_MICRO`]
    /// counts).
    pub budget_micro: u64,
    /// How long a window lasts; the budget renews this long after the window's first charge.
    pub window: Duration,
    /// When the charge is made.
    pub at: DateTime<Utc>,
}

/// How a charge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivacyCharge {
    /// The charge was recorded: the window now stands at `spent_micro`.
    Spent {
        /// What the window has spent, this charge included, in millionths of epsilon.
        spent_micro: u64,
        /// When the window began.
        window_start: DateTime<Utc>,
    },
    /// The charge would exceed the budget and nothing was written: the window stands at
    /// `spent_micro` (0 when no window is running).
    Exhausted {
        /// What the window has spent, in millionths of epsilon.
        spent_micro: u64,
        /// When the window began (the charge's time when no window is running).
        window_start: DateTime<Utc>,
    },
}

impl PrivacyCharge {
    /// What the window has spent, in millionths of epsilon.
    pub fn spent_micro(&self) -> u64 {
        match *self {
            PrivacyCharge::Spent { spent_micro, .. } | PrivacyCharge::Exhausted { spent_micro, .. } => spent_micro,
        }
    }

    /// When the window began.
    pub fn window_start(&self) -> DateTime<Utc> {
        match *self {
            PrivacyCharge::Spent { window_start, .. } | PrivacyCharge::Exhausted { window_start, .. } => window_start,
        }
    }

    /// Whether the charge was recorded.
    pub fn is_spent(&self) -> bool {
        matches!(self, PrivacyCharge::Spent { .. })
    }

    /// When the budget renews for a window of length `window`: the window's start plus its
    /// length (the latest representable time if that is beyond it).
    pub fn renews_at(&self, window: Duration) -> DateTime<Utc> {
        window_end(self.window_start(), window)
    }
}

/// What one principal has spent of one product's budget, as stored: a window that has run its
/// length shows what it spent until the next charge renews it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PrivacyBudgetRow {
    /// Who spent.
    pub principal: String,
    /// The product.
    pub product: ProductId,
    /// When the window began.
    #[serde(with = "crate::time::rfc3339")]
    pub window_start: DateTime<Utc>,
    /// What the window has spent, in millionths of epsilon.
    pub spent_micro: u64,
}

impl PrivacyBudgetRow {
    /// When the budget renews for a window of length `window` (the latest representable time
    /// if that is beyond it).
    pub fn renews_at(&self, window: Duration) -> DateTime<Utc> {
        window_end(self.window_start, window)
    }
}

/// `start + window`, saturating at the latest representable time.
fn window_end(start: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(window).ok().and_then(|window| start.checked_add_signed(window)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_renews_one_window_after_it_began() {
        let start = crate::time::parse("2026-12-03T13:45:00Z").unwrap();
        let charge = PrivacyCharge::Exhausted { spent_micro: 3, window_start: start };
        assert_eq!(crate::time::format(&charge.renews_at(Duration::from_secs(3600))), "2026-12-03T14:45:00.000000Z");
        assert_eq!(charge.renews_at(Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!((charge.spent_micro(), charge.window_start(), charge.is_spent()), (3, start, false));
    }
}
