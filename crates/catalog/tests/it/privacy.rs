//! Differential-privacy budgets on each backend: charges accumulate in a fixed window, the charge
//! that would exceed the budget writes nothing, the window renews after its length, budgets are
//! per principal and product, and concurrent charges never overspend.

use std::time::Duration;

use chrono::{DateTime, Utc};
use meshwork_catalog::{CatalogStore, PrivacyBudgetRow, PrivacyCharge, PrivacySpend, SqlCatalog};

use super::{Backend, id};

const HOUR: Duration = Duration::from_secs(3600);

/// One epsilon, in millionths.
const EPSILON: u64 = 1_000_000;

fn t0() -> DateTime<Utc> {
    meshwork_catalog::time::parse("2026-12-03T13:45:00Z").unwrap()
}

fn minutes(n: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(n)
}

/// `principal` spends `epsilon_micro` of a 10-epsilon hourly budget of `product` at `at`.
fn spend(principal: &str, product: &str, epsilon_micro: u64, at: DateTime<Utc>) -> PrivacySpend {
    PrivacySpend { principal: principal.into(), product: id(product), epsilon_micro, budget_micro: 10 * EPSILON, window: HOUR, at }
}

fn spent(spent_micro: u64, window_start: DateTime<Utc>) -> PrivacyCharge {
    PrivacyCharge::Spent { spent_micro, window_start }
}

fn exhausted(spent_micro: u64, window_start: DateTime<Utc>) -> PrivacyCharge {
    PrivacyCharge::Exhausted { spent_micro, window_start }
}

fn row(principal: &str, product: &str, window_start: DateTime<Utc>, spent_micro: u64) -> PrivacyBudgetRow {
    PrivacyBudgetRow { principal: principal.into(), product: id(product), window_start, spent_micro }
}

async fn charge(catalog: &SqlCatalog, spend: PrivacySpend) -> PrivacyCharge {
    catalog.spend_privacy(&spend).await.unwrap()
}

#[tokio::test]
async fn charges_accumulate_until_the_budget_is_spent_and_renew_after_the_window() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let name = backend.name;
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 3 * EPSILON, t0())).await, spent(3 * EPSILON, t0()), "{name}");
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 4 * EPSILON, minutes(10))).await, spent(7 * EPSILON, t0()), "{name}");
        // 7 + 4 > 10: refused, and nothing is written.
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 4 * EPSILON, minutes(20))).await, exhausted(7 * EPSILON, t0()), "{name}");
        assert_eq!(catalog.privacy_budgets(None).await.unwrap(), [row("ana", "sales.orders", t0(), 7 * EPSILON)], "{name}");
        // Exactly the budget is allowed; one millionth more is not.
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 3 * EPSILON, minutes(30))).await, spent(10 * EPSILON, t0()), "{name}");
        let refused = charge(&catalog, spend("ana", "sales.orders", 1, minutes(59))).await;
        assert_eq!(refused, exhausted(10 * EPSILON, t0()), "{name}");
        assert_eq!(refused.renews_at(HOUR), minutes(60), "{name}");
        // A microsecond before the window ends it still counts.
        let almost = t0() + chrono::Duration::minutes(60) - chrono::Duration::microseconds(1);
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 1, almost)).await, exhausted(10 * EPSILON, t0()), "{name}");
        // An hour after the window began it renews, starting from this charge.
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 4 * EPSILON, minutes(60))).await, spent(4 * EPSILON, minutes(60)), "{name}");
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 7 * EPSILON, minutes(119))).await, exhausted(4 * EPSILON, minutes(60)), "{name}");
        assert_eq!(catalog.privacy_budgets(Some("ana")).await.unwrap(), [row("ana", "sales.orders", minutes(60), 4 * EPSILON)], "{name}");
        // Long after, a window starts at the charge that renews it, not at a multiple of the hour.
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 2 * EPSILON, minutes(200))).await, spent(2 * EPSILON, minutes(200)), "{name}");
        // Timestamps are kept to the microsecond, as everywhere in the catalog.
        let precise = minutes(300) + chrono::Duration::nanoseconds(1_234_567);
        let renewed = charge(&catalog, spend("ana", "sales.orders", EPSILON, precise)).await;
        assert_eq!(renewed, spent(EPSILON, minutes(300) + chrono::Duration::microseconds(1_234)), "{name}");
        drop(catalog);
        // The ledger survives reopening.
        let catalog = backend.open().await;
        assert_eq!(catalog.privacy_budgets(None).await.unwrap(), [row("ana", "sales.orders", renewed.window_start(), EPSILON)], "{name}");
        drop(catalog);
        backend.finish().await;
    }
}

#[tokio::test]
async fn a_charge_above_the_whole_budget_is_refused_without_writing() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let name = backend.name;
        // The first charge: no window is running, and none is started.
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 11 * EPSILON, t0())).await, exhausted(0, t0()), "{name}");
        assert_eq!(catalog.privacy_budgets(None).await.unwrap(), Vec::<PrivacyBudgetRow>::new(), "{name}");
        // In a running window it reports the window.
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 2 * EPSILON, minutes(1))).await, spent(2 * EPSILON, minutes(1)), "{name}");
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 11 * EPSILON, minutes(2))).await, exhausted(2 * EPSILON, minutes(1)), "{name}");
        // After the window it is still refused, and the ended window is left as it was.
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 11 * EPSILON, minutes(90))).await, exhausted(0, minutes(90)), "{name}");
        assert_eq!(catalog.privacy_budgets(None).await.unwrap(), [row("ana", "sales.orders", minutes(1), 2 * EPSILON)], "{name}");
        drop(catalog);
        backend.finish().await;
    }
}

#[tokio::test]
async fn budgets_are_per_principal_and_product_and_listed_by_principal() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let name = backend.name;
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 10 * EPSILON, t0())).await, spent(10 * EPSILON, t0()), "{name}");
        assert_eq!(charge(&catalog, spend("ana", "sales.orders", 1, minutes(1))).await, exhausted(10 * EPSILON, t0()), "{name}");
        // Ana's other product and Bob's budget for the same product are untouched.
        assert_eq!(charge(&catalog, spend("ana", "sales.refunds", 6 * EPSILON, minutes(2))).await, spent(6 * EPSILON, minutes(2)), "{name}");
        assert_eq!(charge(&catalog, spend("bob", "sales.orders", 5 * EPSILON, minutes(3))).await, spent(5 * EPSILON, minutes(3)), "{name}");
        assert_eq!(charge(&catalog, spend("bob", "sales.orders", 5 * EPSILON, minutes(4))).await, spent(10 * EPSILON, minutes(3)), "{name}");

        let ana = [row("ana", "sales.orders", t0(), 10 * EPSILON), row("ana", "sales.refunds", minutes(2), 6 * EPSILON)];
        let bob = [row("bob", "sales.orders", minutes(3), 10 * EPSILON)];
        assert_eq!(catalog.privacy_budgets(None).await.unwrap(), [ana.as_slice(), bob.as_slice()].concat(), "{name}");
        assert_eq!(catalog.privacy_budgets(Some("ana")).await.unwrap(), ana, "{name}");
        assert_eq!(catalog.privacy_budgets(Some("bob")).await.unwrap(), bob, "{name}");
        assert_eq!(catalog.privacy_budgets(Some("carl")).await.unwrap(), Vec::<PrivacyBudgetRow>::new(), "{name}");
        drop(catalog);
        backend.finish().await;
    }
}

/// Twenty charges of one epsilon at once against a budget of ten, through two separately opened
/// catalogs (as two processes would), starting with no row: exactly ten are spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_never_overspend() {
    for backend in Backend::all().await {
        let catalogs = [backend.open().await, backend.open().await];
        let name = backend.name;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..20 {
            let catalog = catalogs[n % 2].clone();
            tasks.spawn(async move { catalog.spend_privacy(&spend("ana", "sales.orders", EPSILON, t0())).await });
        }
        let mut charges = Vec::new();
        while let Some(done) = tasks.join_next().await {
            charges.push(done.unwrap().unwrap_or_else(|e| panic!("{name}: {e}")));
        }
        let spent_charges: Vec<u64> = charges.iter().filter(|c| c.is_spent()).map(PrivacyCharge::spent_micro).collect();
        assert_eq!(spent_charges.len(), 10, "{name}: {charges:?}");
        // Each accepted charge saw a different total: they were applied one after another.
        let mut totals = spent_charges.clone();
        totals.sort_unstable();
        assert_eq!(totals, (1..=10).map(|n| n * EPSILON).collect::<Vec<_>>(), "{name}");
        assert!(charges.iter().filter(|c| !c.is_spent()).all(|c| *c == exhausted(10 * EPSILON, t0())), "{name}: {charges:?}");
        assert_eq!(catalogs[0].privacy_budgets(None).await.unwrap(), [row("ana", "sales.orders", t0(), 10 * EPSILON)], "{name}");
        drop(catalogs);
        backend.finish().await;
    }
}
