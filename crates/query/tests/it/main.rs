//! The query layer's governance, end to end: a fixture mesh is applied, then the policy suite
//! (`tests/policy/*.slt`, one file per principal) runs through sqllogictest, and the leaks that
//! cannot be written as result tables (EXPLAIN, audit) are checked here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::array_value_to_string;
use meshwork_catalog::{AuditFilter, CatalogStore};
use meshwork_pipeline::{SilentObserver, apply, load_mesh};
use meshwork_query::{Governance, QuerySession};

mod aggregate;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The fixture mesh, applied in a temporary directory.
struct Mesh {
    _dir: tempfile::TempDir,
    root: PathBuf,
    catalog: Arc<dyn CatalogStore>,
}

impl Mesh {
    async fn new() -> Mesh {
        Mesh::edited(|_| {}).await
    }

    /// The fixture mesh with `edit` applied to its files before it is applied.
    async fn edited(edit: impl FnOnce(&Path)) -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mesh");
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mesh"), &root);
        // The aggregate-only products (domain `hr`), kept apart so the other crates' tests of
        // this fixture see the mesh they were written for.
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aggregate"), &root);
        edit(&root);
        let mesh = load_mesh(&root).unwrap_or_else(|d| panic!("{d:#?}"));
        let home = mesh.home();
        let catalog = home.open_catalog().await.unwrap();
        let report = apply(&mesh, catalog.as_ref(), &home.open_store().unwrap(), &SilentObserver).await.unwrap();
        assert!(!report.failed(), "{report:#?}");
        Mesh { _dir: dir, root, catalog }
    }

    async fn session(&self, principal: &str) -> QuerySession {
        let governance = Governance::load(self.catalog.as_ref()).await.unwrap();
        QuerySession::open(self.catalog.clone(), &governance, governance.principal(principal).unwrap(), "test").await.unwrap()
    }

    /// The query's result as text, one line per row.
    async fn rows(&self, principal: &str, sql: &str) -> Result<String, String> {
        let session = self.session(principal).await;
        let (_, batches) = session.collect(sql).await.map_err(|e| e.to_string())?;
        Ok(batches_text(&batches).join("\n"))
    }
}

fn batches_text(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Vec<String> {
    let mut lines = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| if c.is_null(row) { "NULL".to_owned() } else { array_value_to_string(c, row).unwrap() })
                .collect();
            lines.push(values.join(" "));
        }
    }
    lines
}

/// sqllogictest's view of a session.
struct SltDb {
    session: QuerySession,
}

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for SltDb {
    type Error = SltError;
    type ColumnType = sqllogictest::DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<sqllogictest::DBOutput<Self::ColumnType>, Self::Error> {
        let (schema, batches) = self.session.collect(sql).await.map_err(|e| SltError(e.to_string()))?;
        let rows = batches_text(&batches).into_iter().map(|line| line.split(' ').map(str::to_owned).collect()).collect();
        Ok(sqllogictest::DBOutput::Rows { types: vec![sqllogictest::DefaultColumnType::Any; schema.fields().len()], rows })
    }

    fn engine_name(&self) -> &str {
        "meshwork"
    }

    async fn shutdown(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_suite() {
    let mesh = Mesh::new().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "slt")).collect();
    files.sort();
    assert!(files.len() >= 7, "the policy suite is missing files: {files:?}");
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        // `<principal>.<topic>.slt` runs as `<principal>`; `read_only` as `ana`.
        let principal = if stem == "read_only" { "ana".to_owned() } else { stem.split('.').next().unwrap_or_default().to_owned() };
        let session = mesh.session(&principal).await;
        // One session per file: the runner asks for its connection once and keeps it.
        let mut runner = sqllogictest::Runner::new({
            let mut slot = Some(SltDb { session });
            move || {
                let db = slot.take().ok_or_else(|| SltError("one connection per file".into()));
                async move { db }
            }
        });
        runner.run_file_async(&file).await.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[tokio::test]
async fn explain_shows_non_admins_the_fence_and_nothing_behind_it() {
    let mesh = Mesh::new().await;
    let data_dir = mesh.root.join(".meshwork/data").canonicalize().unwrap().display().to_string();
    for sql in [
        "EXPLAIN SELECT * FROM sales.customers WHERE customer_id > 0",
        "EXPLAIN ANALYZE SELECT count(*) FROM sales.orders",
        "EXPLAIN SELECT o.order_id FROM sales.orders o JOIN sales.customers c ON c.customer_id = o.customer_id",
    ] {
        let plan = mesh.rows("ana", sql).await.unwrap();
        assert!(plan.contains("PolicyFence"), "{plan}");
        for secret in ["principal", "'EU'", "EU", "global-analysts", "mask_", "file_groups={", ".parquet", &data_dir, "output_rows=6"] {
            assert!(!plan.contains(secret), "`{secret}` leaked through `{sql}`:\n{plan}");
        }
        let admin = mesh.rows("admin", sql).await.unwrap();
        assert!(!admin.contains("[restricted"), "admins see the whole plan:\n{admin}");
    }
    for (sql, refused) in [
        ("EXPLAIN VERBOSE SELECT * FROM sales.orders", "`EXPLAIN VERBOSE` is not allowed for `ana`"),
        ("EXPLAIN FORMAT TREE SELECT * FROM sales.orders", "`EXPLAIN FORMAT tree` is not allowed for `ana`"),
    ] {
        let err = mesh.rows("ana", sql).await.unwrap_err();
        assert!(err.starts_with(refused), "{err}");
    }
}

/// The product whose fence a plan's first hash join builds its table from.
fn build_side(plan: &str) -> String {
    let mut lines = plan.lines().skip_while(|l| !l.contains("HashJoinExec"));
    lines.next().unwrap_or_else(|| panic!("no hash join in:\n{plan}"));
    let fence = lines.find(|l| l.contains("PolicyFenceExec")).unwrap_or_else(|| panic!("no fence below the join in:\n{plan}"));
    fence.split("product=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn joins_over_restricted_products_build_on_the_smaller_published_product() {
    // The fence passes on the published row count the catalog shows (customers 5, orders 6),
    // so the optimizer builds on customers however the join is written; with no estimate it
    // kept the written order and built on orders in the first statement.
    let mesh = Mesh::new().await;
    let published = |id: &str| {
        let catalog = mesh.catalog.clone();
        let id: meshwork_core::id::ProductId = id.parse().unwrap();
        async move { catalog.current_version(&id).await.unwrap().unwrap().row_count }
    };
    assert_eq!((published("sales.customers").await, published("sales.orders").await), (5, 6));
    for sql in [
        "EXPLAIN SELECT o.order_id, c.customer_id FROM sales.orders o JOIN sales.customers c ON c.customer_id = o.customer_id",
        "EXPLAIN SELECT o.order_id, c.customer_id FROM sales.customers c JOIN sales.orders o ON c.customer_id = o.customer_id",
    ] {
        let plan = mesh.rows("ana", sql).await.unwrap();
        assert_eq!(build_side(&plan), "sales.customers", "{sql}:\n{plan}");
    }
    // The estimate never answers a query: ana's EU orders 101, 102, 104 with customers 1, 3.
    for sql in [
        "SELECT count(*) FROM sales.orders o JOIN sales.customers c ON c.customer_id = o.customer_id",
        "SELECT count(*) FROM sales.customers c JOIN sales.orders o ON c.customer_id = o.customer_id",
    ] {
        assert_eq!(mesh.rows("ana", sql).await.unwrap(), "3", "{sql}");
    }
}

#[tokio::test]
async fn every_query_writes_one_audit_event_including_denials() {
    let mesh = Mesh::new().await;
    let session = mesh.session("ana").await;
    session.collect("SELECT count(*) FROM sales.orders").await.unwrap();
    session.collect("SELECT * FROM finance.ledger").await.unwrap_err();
    session.collect("SELECT nonsense FROM sales.customers").await.unwrap_err();
    session.collect("SELECT   *\n FROM marketing.campaigns").await.unwrap();

    let events = mesh.catalog.audit(&AuditFilter { principal: Some("ana".into()), ..Default::default() }).await.unwrap();
    let summary: Vec<String> = events
        .iter()
        .rev()
        .map(|e| {
            let products: Vec<String> = e.products.iter().map(|p| format!("{}={}({};{})", p.product, p.decision, p.row_filters, p.masks.join(","))).collect();
            format!("{} {} {} {:?} [{}] {}", e.interface, e.action, e.outcome, e.rows, products.join(" "), e.statement)
        })
        .collect();
    expect_test::expect![[r#"
        test query ok Some(1) [sales.orders=allow(1;)] SELECT count(*) FROM sales.orders
        test query denied None [finance.ledger=deny(0;)] SELECT * FROM finance.ledger
        test query error None [] SELECT nonsense FROM sales.customers
        test query ok Some(2) [marketing.campaigns=allow(0;)] SELECT * FROM marketing.campaigns"#]]
    .assert_eq(&summary.join("\n"));
    let denied = &events[2];
    assert_eq!(denied.products[0].reasons, ["`ana` is not a reader of `finance.ledger`"]);
    assert_eq!(denied.error.as_deref(), Some("table 'meshwork.finance.ledger' not found (at line 1, column 15)"));

    // Masks are recorded by column and kind; filters by count.
    session.collect("SELECT email FROM sales.customers").await.unwrap();
    let last = &mesh.catalog.audit(&AuditFilter { limit: Some(1), ..Default::default() }).await.unwrap()[0];
    assert_eq!(last.products[0].masks, ["card:partial", "email:hash", "name:partial"]);
    assert_eq!(last.products[0].policies, ["descriptor"]);

    // Filters on product and time.
    let by_product = mesh.catalog.audit(&AuditFilter { product: Some("finance.ledger".parse().unwrap()), ..Default::default() }).await.unwrap();
    assert!(by_product.iter().all(|e| e.products.iter().any(|p| p.product == "finance.ledger")));
    assert_eq!(by_product.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["query", "apply"]);
    let future = mesh.catalog.audit(&AuditFilter { since: Some(meshwork_catalog::time::parse("2999-01-01T00:00:00Z").unwrap()), ..Default::default() }).await.unwrap();
    assert!(future.is_empty());
}

impl Mesh {
    /// Gives `marketing.campaigns` (readable by everyone) `row_filter`, applies, and returns
    /// olga's decision reasons on it after checking she is told it does not exist.
    async fn campaigns_denied_with(&self, row_filter: &str) -> Vec<String> {
        let path = self.root.join("domains/marketing/products/campaigns/product.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("readers: [\"*\"]", &format!("readers: [\"*\"]\n  row_filter: \"{row_filter}\""))).unwrap();
        let loaded = load_mesh(&self.root).unwrap();
        apply(&loaded, self.catalog.as_ref(), &loaded.home().open_store().unwrap(), &SilentObserver).await.unwrap();
        for sql in ["SELECT * FROM marketing.campaigns", "SELECT count(*) FROM marketing.campaigns WHERE code = 'x'"] {
            let err = self.rows("olga", sql).await.unwrap_err();
            assert!(err.starts_with("table 'meshwork.marketing.campaigns' not found (at line 1, column"), "{err}");
        }
        let session = self.session("olga").await;
        session.decisions()[&"marketing.campaigns".parse().unwrap()].reasons.clone()
    }
}

#[tokio::test]
async fn a_row_filter_that_cannot_be_built_denies_the_product() {
    let reasons = Mesh::new().await.campaigns_denied_with("code = principal.clearance()").await;
    assert!(reasons.iter().any(|r| r.contains("unknown helper `principal.clearance`")), "{reasons:?}");
}

#[tokio::test]
async fn a_policy_that_cannot_be_evaluated_denies_the_product_without_printing_it() {
    // `campaign_id` is a bigint: comparing it with text that is no number can never run, and
    // before, every statement failed with an error quoting the policy's value (the denial
    // answers as a missing table, which names nothing of the policy).
    let reasons = Mesh::new().await.campaigns_denied_with("campaign_id <> 'SECRET-7'").await;
    assert!(reasons.iter().any(|r| r.contains("row filter `campaign_id <> 'SECRET-7'` cannot be evaluated")), "{reasons:?}");
}

#[tokio::test]
async fn explain_does_not_show_what_a_row_filter_pins() {
    // ana's filter makes `region` one value below the fence; had the fence passed that on, the
    // sort above it would be left out, and EXPLAIN would show it. gina's filter pins nothing.
    let mesh = Mesh::new().await;
    let sql = "EXPLAIN SELECT region, count(*) FROM sales.orders GROUP BY region ORDER BY region";
    let (ana, gina) = (mesh.rows("ana", sql).await.unwrap(), mesh.rows("gina", sql).await.unwrap());
    for plan in [&ana, &gina] {
        assert!(plan.contains("SortExec: expr=[region@0 ASC NULLS LAST]") && !plan.contains("ordering_mode"), "{plan}");
    }
    // The operators above the fence are the same (a filter below it may add a round-robin
    // repartition, which tells only that there is a filter: the descriptor says so anyway).
    let operators = |plan: &str| plan.lines().filter(|l| l.contains("SortExec") || l.contains("AggregateExec")).map(str::trim).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(operators(&ana), operators(&gina));
}

#[tokio::test]
async fn unknown_principals_are_named_with_a_hint() {
    let mesh = Mesh::new().await;
    let governance = Governance::load(mesh.catalog.as_ref()).await.unwrap();
    assert_eq!(governance.principal("anna").unwrap_err().to_string(), "unknown principal `anna` (hint: did you mean `ana`?)");
}

#[tokio::test]
async fn hashes_are_stable_within_a_mesh_and_differ_between_meshes() {
    let a = Mesh::new().await;
    let b = Mesh::new().await;
    let sql = "SELECT email FROM sales.customers ORDER BY customer_id";
    assert_eq!(a.rows("gina", sql).await.unwrap(), a.rows("gina", sql).await.unwrap());
    assert_ne!(a.rows("gina", sql).await.unwrap(), b.rows("gina", sql).await.unwrap());
}

/// Quality samples are rows of a product kept outside its table: owners see them as stored,
/// readers through the same row filter and masks as a query, others not at all.
#[tokio::test]
async fn quality_samples_are_shown_through_the_products_access_policy() {
    let mesh = Mesh::new().await;
    let id: meshwork_core::id::ProductId = "sales.customers".parse().unwrap();
    let text = std::fs::read_to_string(mesh.root.join("data/customers.csv")).unwrap();
    let samples: Vec<serde_json::Map<String, serde_json::Value>> = text
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            serde_json::json!({ "customer_id": f[0].parse::<i64>().unwrap(), "name": f[1], "email": f[2], "region": f[3], "card": f[4] })
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    let run = meshwork_catalog::QualityRun {
        id: 0,
        product: None,
        at: std::time::SystemTime::now().into(),
        trigger: "apply".parse().unwrap(),
        outcome: "failed".parse().unwrap(),
        published_seq: None,
        row_count: 4,
        build_ms: 1.0,
        stage_ms: 1.0,
        quality_ms: 1.0,
        results: vec![meshwork_catalog::RuleResult {
            name: "bad_rows".into(),
            rule: "sql".into(),
            severity: "error".parse().unwrap(),
            status: "failed".parse().unwrap(),
            failing: 4,
            checked: 4,
            message: "test".into(),
            samples: samples.clone(),
        }],
    };
    mesh.catalog.record_quality_run(&id, &run).await.unwrap();
    let governance = Governance::load(mesh.catalog.as_ref()).await.unwrap();
    let record = mesh.catalog.product(&id).await.unwrap().unwrap();
    let descriptor = record.descriptor.clone();
    let catalog = mesh.catalog.clone();
    let seen = |name: &str| {
        let principal = governance.principal(name).unwrap();
        let (governance, descriptor, catalog) = (&governance, &descriptor, catalog.clone());
        async move { meshwork_query::quality_runs_for(catalog.as_ref(), governance, &principal, descriptor, 10).await.unwrap()[0].results[0].samples.clone() }
    };
    // The owning domain's member and the administrator see what was stored.
    assert_eq!(seen("sam").await, samples);
    assert_eq!(seen("admin").await, samples);
    // The EU analyst sees EU rows only, masked exactly as her queries are.
    let ana = seen("ana").await;
    assert_eq!(ana.iter().map(|r| r["customer_id"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 3]);
    let queried = mesh.rows("ana", "SELECT name, email, card FROM sales.customers WHERE customer_id = 1").await.unwrap();
    let first = &ana[0];
    assert_eq!(queried, format!("{} {} {}", first["name"].as_str().unwrap(), first["email"].as_str().unwrap(), first["card"].as_str().unwrap()));
    assert_ne!(first["email"], samples[0]["email"]);
    assert!(first["card"].as_str().unwrap().ends_with("1111") && !first["card"].as_str().unwrap().starts_with("4111"));
    // Someone who may not read the product sees nothing.
    let olga = governance.principal("olga").unwrap();
    assert_eq!(meshwork_query::govern_samples(&governance, &olga, &descriptor, &samples).await.unwrap(), None);
}

/// Catalog search returns exactly what the principal may read (the same set the authorizer
/// allows product by product), narrowed by words, domain and limit; the shared index is reused
/// until the catalog's generation changes, and its quality and SLO states follow runs and
/// evaluations that do not change the generation.
#[tokio::test]
async fn search_finds_only_readable_products_and_follows_the_catalog() {
    use meshwork_catalog::{Objective, QualityRun, RunOutcome, SloCheck, SloStatus, Trigger};
    use meshwork_query::{FacetFilters, QualityState, QueryEngine, QueryLimits, SearchRequest, SearchResults, SloState};

    let mesh = Mesh::new().await;
    let engine = QueryEngine::new(mesh.catalog.clone(), QueryLimits::default()).await.unwrap();
    let governance = engine.governance().await.unwrap();
    let index = engine.product_index().await.unwrap();
    let records = mesh.catalog.products().await.unwrap();
    let ids = |found: SearchResults| found.hits.iter().map(|h| h.record.id.to_string()).collect::<Vec<_>>();
    let all = |text: &str| SearchRequest { limit: usize::MAX, ..SearchRequest::text(text) };
    for name in ["ana", "olga", "sam", "carl", "admin"] {
        let principal = governance.principal(name).unwrap();
        let expected: Vec<String> = governance.visible(&principal, &records).iter().map(|r| r.id.to_string()).collect();
        let found = engine.search(&principal, &all("")).await.unwrap();
        assert_eq!(found.total, expected.len());
        assert_eq!(ids(found), expected, "everything {name} may read");
    }
    let sam = governance.principal("sam").unwrap();
    let olga = governance.principal("olga").unwrap();
    let admin = governance.principal("admin").unwrap();
    assert_eq!(ids(engine.search(&admin, &all("SALES.ORD")).await.unwrap()), ["sales.orders"], "words match case-insensitively");
    assert_eq!(ids(engine.search(&admin, &all("sales nothing-like-this")).await.unwrap()), Vec::<String>::new(), "every word must match");
    let in_sales = SearchRequest { filters: FacetFilters { domain: vec!["sales".into()], ..FacetFilters::default() }, ..all("") };
    assert_eq!(ids(engine.search(&sam, &in_sales).await.unwrap()), ["sales.customers", "sales.orders"]);
    assert_eq!(ids(engine.search(&sam, &SearchRequest { limit: 1, ..in_sales.clone() }).await.unwrap()), ["sales.customers"]);
    assert!(engine.search(&olga, &in_sales).await.unwrap().total < 2, "olga is not a sales member and is not shown every sales product");

    // A failed run and an SLO violation change no generation: the same index, new states.
    let orders: meshwork_core::id::ProductId = "sales.orders".parse().unwrap();
    let failed = |filters: FacetFilters| SearchRequest { filters, ..all("") };
    let quality_failed = failed(FacetFilters { quality: vec![QualityState::Failed], ..FacetFilters::default() });
    let slo_breached = failed(FacetFilters { slo: vec![SloState::Breached], ..FacetFilters::default() });
    assert_eq!(ids(engine.search(&admin, &quality_failed).await.unwrap()), Vec::<String>::new());
    let run = QualityRun {
        id: 0,
        product: Some(orders.clone()),
        at: chrono::Utc::now(),
        trigger: Trigger::Upstream,
        outcome: RunOutcome::Failed,
        published_seq: None,
        row_count: 0,
        build_ms: 0.0,
        stage_ms: 0.0,
        quality_ms: 0.0,
        results: Vec::new(),
    };
    mesh.catalog.record_quality_run(&orders, &run).await.unwrap();
    let check = SloCheck {
        product: orders.clone(),
        objective: Objective::Freshness,
        at: chrono::Utc::now(),
        status: SloStatus::Violated,
        value: Some(7200.0),
        threshold: 3600.0,
        budget_remaining: None,
        message: "2h old".into(),
    };
    mesh.catalog.record_slo_checks(&[check]).await.unwrap();
    assert_eq!(ids(engine.search(&admin, &quality_failed).await.unwrap()), ["sales.orders"]);
    assert_eq!(ids(engine.search(&admin, &slo_breached).await.unwrap()), ["sales.orders"]);

    // Same generation, same index; a publication makes the next call rebuild it.
    assert!(Arc::ptr_eq(&index, &engine.product_index().await.unwrap()));
    let campaigns = mesh.root.join("domains/marketing/products/campaigns/product.yaml");
    let text = std::fs::read_to_string(&campaigns).unwrap();
    std::fs::write(&campaigns, text.replacen("name: campaigns", "name: campaigns\ntitle: Spring launch", 1).replacen("version: 1.0.0", "version: 1.1.0", 1)).unwrap();
    let loaded = load_mesh(&mesh.root).unwrap_or_else(|d| panic!("{d:#?}"));
    let report = apply(&loaded, mesh.catalog.as_ref(), &loaded.home().open_store().unwrap(), &SilentObserver).await.unwrap();
    assert!(!report.failed(), "{report:#?}");
    let rebuilt = engine.product_index().await.unwrap();
    assert!(!Arc::ptr_eq(&index, &rebuilt));
    assert_eq!(ids(engine.search(&admin, &all("spring LAUNCH")).await.unwrap()), ["marketing.campaigns"]);
}

/// Time travel: an earlier publication is read as the same product, under today's access
/// decision, row filter and masks; a product the principal may not read has no history either;
/// the audit log records the publication read.
#[tokio::test]
async fn earlier_publications_are_read_under_todays_policy_and_audited() {
    let mesh = Mesh::new().await;
    let path = mesh.root.join("data/customers.csv");
    let first = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{first}7,Fay Lin,fay@example.com,EU,4777777777777777\n")).unwrap();
    let loaded = load_mesh(&mesh.root).unwrap();
    let report = apply(&loaded, mesh.catalog.as_ref(), &loaded.home().open_store().unwrap(), &SilentObserver).await.unwrap();
    assert!(!report.failed(), "{report:#?}");
    let versions = mesh.catalog.versions(&"sales.customers".parse().unwrap()).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.seq).collect::<Vec<_>>(), [1, 2]);

    // The owner's domain sees every row of each publication.
    let count = |name: &str| format!("SELECT count(*) FROM sales.\"{name}\"");
    assert_eq!(mesh.rows("sam", &count("customers")).await.unwrap(), "6");
    assert_eq!(mesh.rows("sam", &count("customers@1")).await.unwrap(), "5");
    assert_eq!(mesh.rows("sam", &count("customers@v2")).await.unwrap(), "6");
    // ana (EU analyst) reads publication 1 with today's row filter and masks.
    assert_eq!(
        mesh.rows("ana", "SELECT customer_id, name, card FROM sales.\"customers@1\" ORDER BY customer_id").await.unwrap(),
        mesh.rows("ana", "SELECT customer_id, name, card FROM sales.customers WHERE customer_id <> 7 ORDER BY customer_id").await.unwrap()
    );
    let masked = mesh.rows("ana", "SELECT card FROM sales.\"customers@1\" WHERE customer_id = 1").await.unwrap();
    assert_eq!(masked, "************1111");
    // By time: far in the future is the newest; before the first publication there is none.
    assert_eq!(mesh.rows("sam", &count("customers@2999-01-01")).await.unwrap(), "6");
    let at_first = meshwork_catalog::time::format(&versions[0].published_at);
    assert_eq!(mesh.rows("sam", &count(&format!("customers@{at_first}"))).await.unwrap(), "5");
    let none = mesh.rows("sam", &count("customers@2000-01-01")).await.unwrap_err();
    assert!(none.contains("`sales.customers` has no publication at or before 2000-01-01T00:00:00.000000Z; it has #1, #2"), "{none}");
    let bad = mesh.rows("sam", &count("customers@yesterday")).await.unwrap_err();
    assert!(bad.contains("names no publication"), "{bad}");
    // A principal who may not read the product gets exactly what a missing product gives.
    let denied = mesh.rows("olga", &count("customers@1")).await.unwrap_err();
    let missing = mesh.rows("olga", &count("nothing@1")).await.unwrap_err();
    assert_eq!(denied.replace("customers@1", "X"), missing.replace("nothing@1", "X"));

    // The audit log says which publication was read.
    let audit = mesh.catalog.audit(&AuditFilter { principal: Some("ana".into()), ..Default::default() }).await.unwrap();
    let travelled = audit.iter().find(|e| e.statement.contains("customers@1")).expect("audited");
    assert_eq!(travelled.products[0].as_of, [1]);
    let today = audit.iter().find(|e| e.statement.contains("FROM sales.customers")).expect("audited");
    assert!(today.products[0].as_of.is_empty());
}

/// A column today's contract no longer has is not readable from an earlier publication: no
/// policy of today governs it (it may have been masked then).
#[tokio::test]
async fn a_column_removed_since_is_not_readable_from_an_earlier_publication() {
    let mesh = Mesh::new().await;
    let path = mesh.root.join("domains/sales/products/customers/product.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let without_card = yaml
        .replace("version: 1.0.0", "version: 2.0.0")
        .replace("    - { name: card, type: string, classification: pii }\n", "")
        .replace("    card: { kind: partial, keep_first: 0, keep_last: 4 }\n", "");
    std::fs::write(&path, without_card).unwrap();
    // The source still has the column; the new contract drops it.
    std::fs::write(mesh.root.join("domains/sales/products/customers/transform.sql"), "SELECT customer_id, name, email, region FROM raw\n").unwrap();
    let loaded = load_mesh(&mesh.root).unwrap();
    let report = apply(&loaded, mesh.catalog.as_ref(), &loaded.home().open_store().unwrap(), &SilentObserver).await.unwrap();
    assert!(!report.failed(), "{report:#?}");
    // Even the owning domain, unmasked today, cannot read the old `card` values.
    let err = mesh.rows("sam", "SELECT card FROM sales.\"customers@1\"").await.unwrap_err();
    assert!(err.contains("card"), "{err}");
    assert_eq!(mesh.rows("sam", "SELECT count(*) FROM sales.\"customers@1\"").await.unwrap(), "5");
    let star = mesh.rows("sam", "SELECT * FROM sales.\"customers@1\" WHERE customer_id = 1").await.unwrap();
    assert!(!star.contains("4111111111111111"), "{star}");
}


/// What a principal may know of a product: readable, the card of a discoverable product, or
/// nothing; a grant makes a reader until its end, and the search index, which remembers
/// decisions, is rebuilt at that instant.
#[tokio::test]
async fn visibility_follows_discoverability_and_grants_until_they_end() {
    use meshwork_query::{AccessAnswer, AccessAsk, QueryEngine, QueryLimits, SearchRequest, Visibility, visibility};

    let mesh = Mesh::new().await;
    let ledger = mesh.root.join("domains/finance/products/ledger/product.yaml");
    let text = std::fs::read_to_string(&ledger).unwrap();
    std::fs::write(&ledger, format!("{text}access:\n  discoverable: true\n")).unwrap();
    let loaded = load_mesh(&mesh.root).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(!apply(&loaded, mesh.catalog.as_ref(), &loaded.home().open_store().unwrap(), &SilentObserver).await.unwrap().failed());

    let engine = QueryEngine::new(mesh.catalog.clone(), QueryLimits::default()).await.unwrap();
    let governance = engine.governance().await.unwrap();
    let record = |name: &str| {
        let catalog = mesh.catalog.clone();
        let id: meshwork_core::id::ProductId = name.parse().unwrap();
        async move { catalog.product(&id).await.unwrap().unwrap() }
    };
    let olga = governance.principal("olga").unwrap();
    let ana = governance.principal("ana").unwrap();
    let admin = governance.principal("admin").unwrap();
    assert_eq!(visibility(&governance, &olga, &record("finance.ledger").await.descriptor), Visibility::Card);
    assert_eq!(visibility(&governance, &olga, &record("sales.orders").await.descriptor), Visibility::Hidden);
    assert_eq!(visibility(&governance, &ana, &record("sales.orders").await.descriptor), Visibility::Readable);

    let until = chrono::Utc::now() + chrono::Duration::seconds(3);
    let ask = AccessAsk { purpose: "year end".into(), until: Some(until) };
    let request = meshwork_query::request_access(mesh.catalog.as_ref(), &governance, &olga, "test", "finance.ledger", ask).await.unwrap();
    meshwork_query::answer_request(mesh.catalog.as_ref(), &admin, "test", request.id, AccessAnswer { approve: true, comment: None }).await.unwrap();

    let granted = engine.governance().await.unwrap();
    assert_eq!(visibility(&granted, &olga, &record("finance.ledger").await.descriptor), Visibility::Readable);
    assert_eq!(granted.valid_until(Some("olga")).map(|t| t.timestamp_micros()), Some(until.timestamp_micros()));
    let index = engine.product_index().await.unwrap();
    // Search lists the ledger as readable while the grant lasts, then as its card (it is
    // discoverable), never gone and never readable after the end.
    let ledger = || async {
        let found = engine.search(&olga, &SearchRequest::default()).await.unwrap();
        found.hits.iter().find(|h| h.record.id.to_string() == "finance.ledger").map(|h| (h.visibility, h.quality.is_some()))
    };
    assert_eq!(ledger().await, Some((Visibility::Readable, true)));

    tokio::time::sleep((until - chrono::Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_millis(200)).await;
    // The same governance answers by the clock; the index is rebuilt without a catalog write.
    assert_eq!(visibility(&granted, &olga, &record("finance.ledger").await.descriptor), Visibility::Card);
    let rebuilt = engine.product_index().await.unwrap();
    assert!(!Arc::ptr_eq(&index, &rebuilt), "the index does not outlive the grant's end");
    assert_eq!(ledger().await, Some((Visibility::Card, false)));
}
