//! Aggregate-only and differentially private reads that a result table cannot show: noise within
//! its stated error bounds over many answers (fixed seed), budgets spent and renewed, the
//! differencing attack against private counts, audit events, and the built-in `pii` policy.

use std::path::Path;
use std::time::Duration;

use meshwork_catalog::{AuditFilter, AuditOutcome};
use meshwork_query::{Governance, QueryLimits, QuerySession, Visibility};

use super::{Mesh, batches_text};

/// `hr.survey` with `from` replaced by `to` in its descriptor.
fn survey(root: &Path, from: &str, to: &str) {
    let path = root.join("domains/hr/products/survey/product.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in the survey descriptor");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

impl Mesh {
    async fn seeded(&self, principal: &str, seed: u64) -> QuerySession {
        let governance = Governance::load(self.catalog.as_ref()).await.unwrap();
        let limits = QueryLimits { noise_seed: Some(seed), ..QueryLimits::default() };
        QuerySession::open_with(self.catalog.clone(), &governance, governance.principal(principal).unwrap(), "test", &limits, None).await.unwrap()
    }
}

/// Rows of a result as text cells.
async fn cells(session: &QuerySession, sql: &str) -> Vec<Vec<String>> {
    let (_, batches) = session.collect(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches_text(&batches).into_iter().map(|line| line.split(' ').map(str::to_owned).collect()).collect()
}

fn mean_and_deviation(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, variance.sqrt())
}

/// Checks Laplace errors of scale `b`: centred (4 standard errors), the right spread (±15%),
/// and at least 93% within the 95% bound `b·ln(20)`.
fn laplace_errors(what: &str, errors: &[f64], b: f64) {
    let (mean, deviation) = mean_and_deviation(errors);
    let expected = std::f64::consts::SQRT_2 * b;
    let standard_error = expected / (errors.len() as f64).sqrt();
    assert!(mean.abs() < 4.0 * standard_error, "{what}: mean error {mean} (standard error {standard_error})");
    assert!((deviation / expected - 1.0).abs() < 0.15, "{what}: deviation {deviation}, expected {expected}");
    let within = errors.iter().filter(|e| e.abs() <= b * 20f64.ln()).count() as f64 / errors.len() as f64;
    assert!(within >= 0.93, "{what}: only {within} of the errors within the 95% bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_answers_stay_within_their_stated_error_bounds() {
    let mesh = Mesh::edited(|root| survey(root, "budget: 1.5", "budget: 1000")).await;
    let session = mesh.seeded("ana", 20261207).await;
    // ε 0.5 per answer in 5 shares (release count, count, sum, and avg's sum and count): each
    // count has Laplace noise of scale 1/0.1 = 10, each sum 10/0.1 = 100 (scores clamped into
    // [0, 10]); a group is released once its noisy count reaches 1 + 10·ln(1/2δ) ≈ 133.
    let sql = "SELECT team, count(*) AS n, sum(score) AS s, avg(score) AS a FROM hr.survey GROUP BY team ORDER BY team";
    let (mut counts, mut sums, mut averages) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..300 {
        let rows = cells(&session, sql).await;
        let teams: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(teams, ["a", "b", "c"], "team d (3 rows) is never released; the others always are");
        let a = &rows[0];
        counts.push(a[1].parse::<f64>().unwrap() - 400.0);
        // 2006: respondent 17's score of 100 counts as 10.
        sums.push(a[2].parse::<f64>().unwrap() - 2006.0);
        averages.push(a[3].parse::<f64>().unwrap());
        let spent = session.privacy_spent();
        assert_eq!(spent.len(), 1);
        assert_eq!((spent[0].product.to_string().as_str(), spent[0].epsilon), ("hr.survey", 0.5));
    }
    laplace_errors("count", &counts, 10.0);
    laplace_errors("sum", &sums, 100.0);
    let (mean, _) = mean_and_deviation(&averages);
    assert!((mean - 2006.0 / 400.0).abs() < 0.1, "average of the noisy averages {mean}");
    assert!(counts.iter().all(|c| c.fract() == 0.0), "counts stay whole numbers");

    // The same seed gives the same answers; another seed other ones.
    let again = mesh.seeded("ana", 20261207).await;
    let first = cells(&again, sql).await;
    let replay = mesh.seeded("ana", 20261207).await;
    assert_eq!(cells(&replay, sql).await, first);
    let other = mesh.seeded("ana", 1).await;
    assert_ne!(cells(&other, sql).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_spent_answer_by_answer_and_renews_with_its_window() {
    let mesh = Mesh::edited(|root| survey(root, "window: 1d", "window: 3s")).await;
    let ana = mesh.session("ana").await;
    // A refused statement costs nothing.
    assert!(ana.collect("SELECT min(score) FROM hr.survey").await.is_err());
    for used in ["0.5", "1", "1.5"] {
        ana.collect("SELECT count(*) FROM hr.survey").await.unwrap();
        let notice = ana.privacy_spent()[0].notice();
        assert!(notice.contains(&format!("ε 0.5 spent; {used} of 1.5 used, renews at ")), "{notice}");
    }
    let err = ana.collect("SELECT team, count(*) FROM hr.survey GROUP BY team").await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("the privacy budget of `ana` on `hr.survey` is spent: 1.5 of 1.5 used, and this query needs ε 0.5; it renews at "), "{text}");
    assert_eq!(err.code().as_str(), "forbidden");
    // Budgets are per principal: gina has her own.
    let gina = mesh.session("gina").await;
    gina.collect("SELECT count(*) FROM hr.survey").await.unwrap();
    // Exact aggregate-only products have no budget.
    for _ in 0..5 {
        ana.collect("SELECT count(*) FROM hr.salaries").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(3200)).await;
    ana.collect("SELECT count(*) FROM hr.survey").await.unwrap();
    assert!(ana.privacy_spent()[0].notice().contains("0.5 of 1.5 used"));

    // Audit: answers carry the rule and ε; the refusal is `denied` with its reason.
    let events = mesh.catalog.audit(&AuditFilter { principal: Some("ana".into()), ..Default::default() }).await.unwrap();
    let survey: Vec<_> = events.iter().filter(|e| e.products.iter().any(|p| p.product == "hr.survey")).collect();
    let refused = survey.iter().find(|e| e.error.as_deref().is_some_and(|t| t.contains("privacy budget"))).expect("the refusal is audited");
    assert_eq!(refused.outcome, AuditOutcome::Denied);
    let answered = survey.iter().find(|e| e.outcome == AuditOutcome::Ok).expect("answers are audited");
    let product = &answered.products[0];
    assert_eq!(product.epsilon.map(|e| e.get()), Some(0.5));
    let rule = product.aggregate.as_deref().unwrap();
    assert!(rule.contains("groups of at least 5 rows") && rule.contains("laplace noise, ε 0.5 per answer") && rule.contains("by descriptor"), "{rule}");
    let shape = events.iter().find(|e| e.statement.contains("min(score)")).unwrap();
    assert_eq!(shape.outcome, AuditOutcome::Denied);
    assert!(shape.error.as_deref().unwrap().contains("has no differentially private answer"));
}

/// Two counts whose groups differ by one row: exact, their difference is that row; private,
/// the difference drowns in noise of deviation 8 (and the budget allows three answers a day).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differencing_private_counts_tells_nothing_about_one_row() {
    let mesh = Mesh::edited(|root| survey(root, "budget: 1.5", "budget: 1000")).await;
    let session = mesh.seeded("ana", 99).await;
    let mut differences = Vec::new();
    for _ in 0..200 {
        let all = cells(&session, "SELECT count(*) FROM hr.survey WHERE team = 'b'").await;
        let but_one = cells(&session, "SELECT count(*) FROM hr.survey WHERE team = 'b' AND score <> 7").await;
        differences.push(all[0][0].parse::<f64>().unwrap() - but_one[0][0].parse::<f64>().unwrap());
    }
    // 27 rows of team b score 7; ε 0.5 in two shares gives each count a scale of 4.
    let (mean, deviation) = mean_and_deviation(&differences);
    assert!(deviation > 6.0 && deviation < 10.0, "deviation of a difference {deviation}");
    assert!((mean - 27.0).abs() < 4.0 * 8.0 / (200f64).sqrt(), "mean {mean}");
    let exact = differences.iter().filter(|d| **d == 27.0).count();
    assert!(exact < 30, "{exact} of 200 differences were exact");
    // Rows cannot be singled out by their identifier at all.
    let err = session.collect("SELECT count(*) FROM hr.survey WHERE respondent_id <> 17").await.unwrap_err();
    assert!(err.to_string().contains("column `respondent_id` identifies rows"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_pii_policy_makes_outside_readers_aggregate_only() {
    let mesh = Mesh::edited(|root| {
        let path = root.join("mesh.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("policies:\n", "policies:\n  pii_aggregate_only: enforce\n")).unwrap();
    })
    .await;
    let governance = Governance::load(mesh.catalog.as_ref()).await.unwrap();
    let records = mesh.catalog.products().await.unwrap();
    let customers = records.iter().find(|r| r.id.to_string() == "sales.customers").unwrap();
    let orders = records.iter().find(|r| r.id.to_string() == "sales.orders").unwrap();
    let visibility = |name: &str, record: &meshwork_catalog::ProductRecord| meshwork_query::visibility(&governance, &governance.principal(name).unwrap(), &record.descriptor);
    assert_eq!(visibility("ana", customers), Visibility::Aggregates);
    assert_eq!(visibility("ana", orders), Visibility::Readable, "no pii column");
    assert_eq!(visibility("sam", customers), Visibility::Readable, "inside the domain");
    assert_eq!(visibility("admin", customers), Visibility::Readable);
    assert_eq!(visibility("olga", customers), Visibility::Hidden);

    let err = mesh.rows("ana", "SELECT customer_id, region FROM sales.customers").await.unwrap_err();
    assert!(err.contains("`sales.customers` is readable only in aggregate") && !err.contains("by descriptor") && err.contains("pii_aggregate_only"), "{err}");
    let err = mesh.rows("ana", "SELECT count(*) FROM sales.customers WHERE email = 'bob@example.com'").await.unwrap_err();
    assert!(err.contains("column `email` is hidden"), "{err}");
    // Ana sees 2 EU customers: a group of 2 is below the policy's 10.
    assert_eq!(mesh.rows("ana", "SELECT region, count(*) FROM sales.customers GROUP BY region").await.unwrap(), "");
    assert_eq!(mesh.rows("sam", "SELECT count(*) FROM sales.customers").await.unwrap(), "5");
}
