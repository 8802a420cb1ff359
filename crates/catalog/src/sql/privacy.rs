//! Statements about differential-privacy budgets: a charge is one upsert that starts, renews or
//! adds to a principal's window for a product, or writes nothing when the budget would be
//! exceeded, so concurrent charges never overspend on either backend.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::AnyConnection;

use super::SqlCatalog;
use super::rows::{product_id, timestamp, unsigned};
use crate::{CatalogError, MAX_BUDGET_MICRO, PrivacyBudgetRow, PrivacyCharge, PrivacySpend, Result, time};

/// Records the charge (`$1` principal, `$2` product, `$3` its time, `$4` its cost) unless the
/// window still running before `$5` (the charge's time minus the window's length) would go over
/// `$6`, the budget. A window that began at or before `$5` has run its length: it restarts from
/// this charge. One statement, so concurrent charges are serialised by the row (PostgreSQL's
/// `ON CONFLICT` locks it; SQLite has one writer), and nothing is written when the `WHERE` fails
/// (then no row is returned). Timestamps are fixed-width text, so text order is time order.
const CHARGE: &str = "INSERT INTO privacy_budgets (principal, product, window_start, spent) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (principal, product) DO UPDATE SET \
     spent = CASE WHEN privacy_budgets.window_start <= $5 THEN excluded.spent ELSE privacy_budgets.spent + excluded.spent END, \
     window_start = CASE WHEN privacy_budgets.window_start <= $5 THEN excluded.window_start ELSE privacy_budgets.window_start END \
     WHERE privacy_budgets.window_start <= $5 OR privacy_budgets.spent + excluded.spent <= $6 \
     RETURNING spent, window_start";

#[derive(sqlx::FromRow)]
struct PrivacyBudgetDbRow {
    principal: String,
    product: String,
    window_start: String,
    spent: i64,
}

impl TryFrom<PrivacyBudgetDbRow> for PrivacyBudgetRow {
    type Error = CatalogError;

    fn try_from(row: PrivacyBudgetDbRow) -> Result<Self> {
        let what = format!("privacy_budgets `{}` `{}`", row.principal, row.product);
        Ok(PrivacyBudgetRow {
            product: product_id(&format!("{what} product"), &row.product)?,
            window_start: timestamp(&format!("{what} window_start"), &row.window_start)?,
            spent_micro: unsigned(&format!("{what} spent"), row.spent)?,
            principal: row.principal,
        })
    }
}

impl SqlCatalog {
    pub(super) async fn charge_privacy(&self, spend: &PrivacySpend) -> Result<PrivacyCharge> {
        let budget = spend.budget_micro.min(MAX_BUDGET_MICRO);
        // Stored as it will read back: timestamps keep microseconds.
        let at = spend.at.trunc_subsecs(6);
        // A window is over once it began at or before this; a window too long to subtract
        // never ends, and the empty text is before every stored time.
        let ended_by = chrono::TimeDelta::from_std(spend.window).ok().and_then(|window| spend.at.checked_sub_signed(window)).map(|t| time::format(&t)).unwrap_or_default();
        if spend.epsilon_micro > budget {
            // More than a whole window's budget: refused whatever was spent, nothing written.
            return running_window(&mut *self.pool.acquire().await?, spend, &ended_by, at).await;
        }
        let what = format!("privacy_budgets `{}` `{}`", spend.principal, spend.product);
        let mut conn = self.write_conn().await?;
        // Both at most `MAX_BUDGET_MICRO`, so they and their sum fit a BIGINT.
        let (epsilon, budget) = (to_bigint(spend.epsilon_micro)?, to_bigint(budget)?);
        let charged: Option<(i64, String)> = sqlx::query_as(CHARGE)
            .bind(&spend.principal)
            .bind(spend.product.to_string())
            .bind(time::format(&at))
            .bind(epsilon)
            .bind(&ended_by)
            .bind(budget)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some((spent, start)) = charged {
            return Ok(PrivacyCharge::Spent { spent_micro: unsigned(&format!("{what} spent"), spent)?, window_start: timestamp(&format!("{what} window_start"), &start)? });
        }
        // The update was refused, so the row exists and its window is running: report it.
        running_window(&mut conn, spend, &ended_by, at).await
    }

    pub(super) async fn privacy_budget_rows(&self, principal: Option<&str>) -> Result<Vec<PrivacyBudgetRow>> {
        let rows: Vec<PrivacyBudgetDbRow> =
            sqlx::query_as("SELECT principal, product, window_start, spent FROM privacy_budgets WHERE ($1 IS NULL OR principal = $1) ORDER BY principal, product")
                .bind(principal)
                .fetch_all(&self.pool)
                .await?;
        super::rows::decode_all(rows)
    }
}

/// A refused charge: what the principal's window for the product stands at, or nothing spent
/// from `at` when no window is running (none stored, or the stored one ended by `ended_by`).
async fn running_window(conn: &mut AnyConnection, spend: &PrivacySpend, ended_by: &str, at: DateTime<Utc>) -> Result<PrivacyCharge> {
    let what = format!("privacy_budgets `{}` `{}`", spend.principal, spend.product);
    let current: Option<(i64, String)> = sqlx::query_as("SELECT spent, window_start FROM privacy_budgets WHERE principal = $1 AND product = $2")
        .bind(&spend.principal)
        .bind(spend.product.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match current {
        Some((spent, start)) if start.as_str() > ended_by => {
            PrivacyCharge::Exhausted { spent_micro: unsigned(&format!("{what} spent"), spent)?, window_start: timestamp(&format!("{what} window_start"), &start)? }
        }
        _ => PrivacyCharge::Exhausted { spent_micro: 0, window_start: at },
    })
}

/// An amount as stored; callers keep it at most [`MAX_BUDGET_MICRO`].
fn to_bigint(micro: u64) -> Result<i64> {
    i64::try_from(micro).map_err(|_| CatalogError::Corrupt(format!("privacy amount {micro} is beyond the ledger's range")))
}
