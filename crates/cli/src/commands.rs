//! One function per command: each opens what it needs, calls the libraries, and prints.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::diagnostic::{Diagnostic, did_you_mean};
use meshwork_core::id::ProductId;
use meshwork_catalog::{AuditFilter, CatalogStore, ProductRecord};
use meshwork_core::principal::{LOCAL_ADMIN, Principal};
use meshwork_pipeline::{ApplyObserver, Finding, LoadedMesh, MeshHome, ProductOutcome};
use meshwork_query::{Cluster, Governance, QueryLimits, QuerySession};

use crate::output::{apply_json, apply_summary, diagnostics_json, findings_json, findings_text, text_table, write_results};
use crate::{EXIT_FAILED, EXIT_INVALID, ReportFormat, Reported, ResultFormat};

pub(crate) fn print_diagnostics(diagnostics: &[Diagnostic], format: ReportFormat) {
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&diagnostics_json(diagnostics)).expect("json")),
        ReportFormat::Text => {
            for d in diagnostics {
                eprintln!("error: {d}");
            }
            eprintln!("{} error{} found", diagnostics.len(), if diagnostics.len() == 1 { "" } else { "s" });
        }
    }
}

pub(crate) fn open_home(dir: &Path) -> anyhow::Result<MeshHome> {
    MeshHome::open(dir).map_err(|diagnostics| {
        print_diagnostics(&diagnostics, ReportFormat::Text);
        Reported(EXIT_INVALID).into()
    })
}

/// `meshwork init`.
pub fn init(dir: &Path, example: bool, orders: usize, seed: u64) -> anyhow::Result<()> {
    if example {
        let summary = meshwork_example::write_example(dir, &meshwork_example::ExampleOptions { orders, seed })?;
        println!(
            "created the example mesh in `{}`: 3 domains, {} products, {} customers, {} orders, {} campaigns",
            dir.display(),
            summary.products,
            summary.customers,
            summary.orders,
            summary.campaigns
        );
    } else {
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "my-mesh".into());
        meshwork_example::write_skeleton(dir, &name)?;
        println!("created a mesh repository in `{}`", dir.display());
    }
    println!("next: meshwork validate {0} && meshwork apply {0}", dir.display());
    Ok(())
}

/// Loads and checks the repository, or prints every problem and fails with the invalid exit code.
fn load_or_report(dir: &Path, format: ReportFormat) -> anyhow::Result<LoadedMesh> {
    meshwork_pipeline::validate(dir).map_err(|diagnostics| {
        print_diagnostics(&diagnostics, format);
        Reported(EXIT_INVALID).into()
    })
}

/// What a loaded mesh's catalog has published (nothing if it has no catalog yet), and the
/// governance findings of the repository against it.
struct Governed {
    catalog: Option<Arc<dyn CatalogStore>>,
    published: std::collections::BTreeMap<ProductId, ProductDescriptor>,
    findings: Vec<Finding>,
}

async fn governed(mesh: &LoadedMesh) -> anyhow::Result<Governed> {
    let catalog = mesh.home().existing_catalog().await?;
    let published = match &catalog {
        Some(catalog) => meshwork_pipeline::published_descriptors(catalog.as_ref()).await?,
        None => Default::default(),
    };
    let findings = meshwork_pipeline::check_governance(mesh, &published);
    Ok(Governed { catalog, published, findings })
}

/// `meshwork validate`; `offline` skips the checks against source databases.
pub async fn validate(dir: &Path, format: ReportFormat, offline: bool) -> anyhow::Result<()> {
    let mesh = load_or_report(dir, format)?;
    if !offline {
        let problems = meshwork_pipeline::check_sources(&mesh).await;
        if !problems.is_empty() {
            print_diagnostics(&problems, format);
            return Err(Reported(EXIT_INVALID).into());
        }
    }
    let findings = governed(&mesh).await?.findings;
    let access = meshwork_pipeline::upstream::input_access(&mesh);
    let errors = findings.iter().filter(|f| f.violation.blocks()).count();
    let warnings = findings.len() - errors;
    match format {
        ReportFormat::Json => {
            let mut value = diagnostics_json(&[]);
            value["ok"] = serde_json::json!(errors == 0);
            value["violations"] = findings_json(&findings);
            value["reads"] = crate::reads::input_access_json(&access);
            println!("{}", serde_json::to_string_pretty(&value).expect("json"));
        }
        ReportFormat::Text => {
            print!("{}", crate::reads::input_access_text(&access));
            eprint!("{}", findings_text(&findings));
            let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            let summary = format!(
                "{}, {}, {}, {}",
                plural(mesh.repo.domains.len(), "domain"),
                plural(mesh.repo.products.len(), "product"),
                plural(errors, "policy violation"),
                plural(warnings, "warning")
            );
            if errors == 0 {
                println!("ok: {summary}");
            } else {
                eprintln!("invalid: {summary}");
            }
        }
    }
    if errors == 0 { Ok(()) } else { Err(Reported(EXIT_INVALID).into()) }
}

/// `meshwork plan`: what `apply` would do, without building anything.
pub async fn plan(dir: &Path, format: ReportFormat) -> anyhow::Result<()> {
    let mesh = load_or_report(dir, format)?;
    let Governed { catalog, published, findings } = governed(&mesh).await?;
    let plan = meshwork_pipeline::plan(&mesh, catalog.as_deref(), &published, &findings).await?;
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&crate::output::plan_json(&plan, &findings)).expect("json")),
        ReportFormat::Text => {
            print!("{}", crate::output::plan_text(&plan));
            if !findings.is_empty() {
                println!();
                print!("{}", findings_text(&findings));
            }
        }
    }
    if findings.iter().any(|f| f.violation.blocks()) { Err(Reported(EXIT_INVALID).into()) } else { Ok(()) }
}

/// Progress bars for `apply`: one line per product with rows and elapsed time.
pub(crate) struct ProgressBars {
    multi: MultiProgress,
    bars: Mutex<Vec<(ProductId, ProgressBar)>>,
}

impl ProgressBars {
    /// Removes the bars once the summary is about to be printed.
    pub(crate) fn clear(&self) {
        self.multi.clear().ok();
    }

    pub(crate) fn new() -> Self {
        // Hidden when standard error is not a terminal, so logs and CI output stay clean.
        let target = if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        ProgressBars { multi: MultiProgress::with_draw_target(target), bars: Mutex::new(Vec::new()) }
    }

    fn bar(&self, id: &ProductId) -> Option<ProgressBar> {
        self.bars.lock().expect("not poisoned").iter().find(|(i, _)| i == id).map(|(_, b)| b.clone())
    }
}

impl ApplyObserver for ProgressBars {
    fn started(&self, id: &ProductId) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("{spinner} {prefix:<32} {msg} [{elapsed}]").expect("valid template"));
        bar.set_prefix(id.to_string());
        bar.set_message("building");
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bars.lock().expect("not poisoned").push((id.clone(), bar));
    }

    fn built(&self, id: &ProductId, rows: u64) {
        if let Some(bar) = self.bar(id) {
            bar.set_message(format!("{rows} rows, staging and checking quality"));
        }
    }

    fn finished(&self, id: &ProductId, outcome: &ProductOutcome) {
        let message = match outcome {
            ProductOutcome::Published { version, .. } => format!("published {} rows", version.row_count),
            ProductOutcome::Unchanged { .. } => "unchanged".to_owned(),
            ProductOutcome::Failed { .. } => "FAILED".to_owned(),
            ProductOutcome::QualityFailed { .. } => "REJECTED by quality rules".to_owned(),
            ProductOutcome::Blocked { upstream } => format!("blocked by {upstream}"),
            ProductOutcome::Refused { .. } => "REFUSED by policy".to_owned(),
            ProductOutcome::Unpublished { removal, .. } => format!("unpublished ({})", removal.describe()),
            ProductOutcome::Sunset { since, .. } => format!("sunset since {since}: not built"),
        };
        if let Some(bar) = self.bar(id) {
            bar.set_style(ProgressStyle::with_template("  {prefix:<32} {msg} [{elapsed}]").expect("valid template"));
            bar.finish_with_message(message);
        }
    }
}

/// The validated repository at `dir`, or every problem printed and exit code 3. `command` is
/// the command that stops (`apply`, `refresh`).
pub(crate) fn validated(dir: &Path, format: ReportFormat, command: &str) -> anyhow::Result<LoadedMesh> {
    meshwork_pipeline::validate(dir).map_err(|diagnostics| {
        print_diagnostics(&diagnostics, format);
        eprintln!("nothing was done; fix the errors above and run `meshwork {command}` again");
        Reported(EXIT_INVALID).into()
    })
}

/// Prints an apply or refresh report; a failed product makes the command fail (exit 1).
pub(crate) fn report_outcome(report: &meshwork_pipeline::ApplyReport, format: ReportFormat) -> anyhow::Result<()> {
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&apply_json(report)).expect("json")),
        ReportFormat::Text => print!("{}", apply_summary(report)),
    }
    if report.failed() { Err(Reported(EXIT_FAILED).into()) } else { Ok(()) }
}

/// `meshwork apply`.
pub async fn apply(dir: &Path, format: ReportFormat, lock_wait: Duration) -> anyhow::Result<()> {
    let mesh = validated(dir, format, "apply")?;
    let home = mesh.home();
    let catalog = home.open_catalog().await?;
    let store = home.open_store()?;
    let progress = ProgressBars::new();
    let options = meshwork_pipeline::ApplyOptions { lock_wait, ..Default::default() };
    let report = meshwork_pipeline::apply_with(&mesh, catalog.as_ref(), &store, &progress, &options).await?;
    progress.clear();
    flush_lineage(&mesh, catalog).await;
    report_outcome(&report, format)
}

/// How long `apply` and `refresh` wait for OpenLineage sinks before leaving the rest for later.
const LINEAGE_FLUSH: Duration = Duration::from_secs(5);

/// Sends the OpenLineage events the command's builds emitted to the mesh's sinks, waiting at
/// most [`LINEAGE_FLUSH`]; what a sink cannot take now waits in the outbox for the next command
/// or for `meshwork serve`. Never fails the command: lineage observes builds, it is not part of
/// them.
pub(crate) async fn flush_lineage(mesh: &LoadedMesh, catalog: Arc<dyn CatalogStore>) {
    let Some(config) = &mesh.repo.config.openlineage else { return };
    let delivery = match meshwork_scheduler::LineageDelivery::available(config, &mesh.root, catalog, Duration::from_secs(1)) {
        Ok((delivery, left_out)) => {
            for error in left_out {
                eprintln!("warning: {error}");
            }
            delivery
        }
        Err(error) => {
            eprintln!("warning: {error}");
            return;
        }
    };
    for flushed in delivery.flush(LINEAGE_FLUSH).await {
        if let Some(reason) = flushed.pending {
            eprintln!(
                "warning: openlineage sink `{}`: events wait in the outbox ({reason}); the next `meshwork apply` or `meshwork serve` sends them",
                flushed.sink
            );
        }
    }
}

/// The catalog, its governance and the acting principal (`--as`, or the local admin).
pub(crate) async fn open_as(dir: &Path, principal: Option<&str>) -> anyhow::Result<(Arc<dyn CatalogStore>, Governance, Principal)> {
    let home = open_home(dir)?;
    let catalog = home.open_catalog().await?;
    // Queries read the tables: their storage must be open in this process.
    home.open_store()?;
    let governance = Governance::load(catalog.as_ref()).await?;
    let principal = governance.principal(principal.unwrap_or(LOCAL_ADMIN))?;
    Ok((catalog, governance, principal))
}

/// `meshwork query`.
pub async fn query(dir: &Path, principal: Option<&str>, sql: &str, local: bool, format: ResultFormat, output: Option<&Path>) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let cluster = if local { None } else { open_home(dir)?.config.cluster };
    let limits = QueryLimits { cluster: cluster.as_ref().map(|config| Arc::new(Cluster::new(config))), ..QueryLimits::default() };
    let session = QuerySession::open_with(catalog, &governance, principal, "cli", &limits, None).await?;
    let (schema, batches) = session.collect(sql).await?;
    for deprecation in session.deprecations() {
        eprintln!("warning: {}", deprecation.warning());
    }
    for spent in session.privacy_spent() {
        eprintln!("notice: {}", spent.notice());
    }
    write_results(&schema, &batches, format, output)
}

fn parse_product_id(name: &str, known: &[ProductId]) -> anyhow::Result<ProductId> {
    let not_found = || {
        let names: Vec<String> = known.iter().map(ProductId::to_string).collect();
        match did_you_mean(name, names.iter().map(String::as_str)) {
            Some(close) => anyhow::anyhow!("product `{name}` not found; did you mean `{close}`?"),
            None => anyhow::anyhow!("product `{name}` not found; `meshwork product list` shows the published products"),
        }
    };
    let id: ProductId = name.parse().map_err(|_| not_found())?;
    if known.contains(&id) { Ok(id) } else { Err(not_found()) }
}

/// `meshwork product list`.
pub async fn product_list(dir: &Path, principal: Option<&str>, format: ReportFormat) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let products = catalog.products().await?;
    for product in governance.visible(&principal, &products) {
        let current = catalog.current_version(&product.id).await?;
        let (rows_count, published) = current.as_ref().map(|v| (v.row_count, meshwork_catalog::time::format(&v.published_at))).unwrap_or((0, String::new()));
        json.push(serde_json::json!({
            "product": product.id.to_string(), "version": product.version, "title": product.title, "owner": product.owner,
            "status": product.status, "tags": product.tags, "rows": rows_count, "published_at": published,
        }));
        rows.push(vec![
            product.id.to_string(),
            product.version.clone(),
            product.status.to_string(),
            rows_count.to_string(),
            product.owner.clone().unwrap_or_default(),
            product.title.clone().unwrap_or_default(),
        ]);
    }
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&json).expect("json")),
        ReportFormat::Text if rows.is_empty() => println!("no published products; run `meshwork apply` first"),
        ReportFormat::Text => print!("{}", text_table(&["PRODUCT", "VERSION", "STATUS", "ROWS", "OWNER", "TITLE"], &rows)),
    }
    Ok(())
}

/// The product called `name` with its published descriptor, if `principal` may see it; a
/// product it may not read is reported exactly like one that does not exist.
pub(crate) async fn visible_product(
    catalog: &dyn CatalogStore,
    governance: &Governance,
    principal: &Principal,
    name: &str,
) -> anyhow::Result<(ProductId, ProductDescriptor)> {
    let record = visible_record(catalog, governance, principal, name).await?;
    Ok((record.id, record.descriptor))
}

/// The published product `name` if `principal` may see it; otherwise the error of a missing
/// product, with the closest name it may see.
pub(crate) async fn visible_record(catalog: &dyn CatalogStore, governance: &Governance, principal: &Principal, name: &str) -> anyhow::Result<ProductRecord> {
    let products = catalog.products().await?;
    let visible = governance.visible(principal, &products);
    let known: Vec<ProductId> = visible.iter().map(|p| p.id.clone()).collect();
    let id = parse_product_id(name, &known)?;
    Ok(visible.into_iter().find(|p| p.id == id).expect("known product").clone())
}

/// `meshwork product show`.
pub async fn product_show(dir: &Path, principal: Option<&str>, name: &str, format: ReportFormat) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let products = catalog.products().await?;
    let visible = governance.visible(&principal, &products);
    let known: Vec<ProductId> = visible.iter().map(|p| p.id.clone()).collect();
    let (id, descriptor) = visible_product(catalog.as_ref(), &governance, &principal, name).await?;
    let versions = catalog.versions(&id).await?;
    let (upstream, downstream) = meshwork_query::visible_lineage(catalog.as_ref(), &visible, &id).await?;
    let names = |ids: Vec<ProductId>| ids.iter().map(ToString::to_string).collect::<Vec<String>>();
    let (upstream, downstream) = (names(upstream), names(downstream));
    let record = products.iter().find(|p| p.id == id).expect("visible products are published");
    let table_uri = if principal.admin { record.table_uri.clone() } else { "(hidden: read it through meshwork)".to_owned() };
    // How this principal reads it: by rows, or only in aggregate under a rule.
    let aggregate = governance.decide(&principal, &descriptor).aggregate.map(|rule| rule.describe());
    let visibility = if aggregate.is_some() { meshwork_query::Visibility::Aggregates } else { meshwork_query::Visibility::Readable };
    if format == ReportFormat::Json {
        // The descriptor names only products the principal may also see.
        let shown = descriptor.clone().without_hidden_products(|p| known.contains(p));
        let value = serde_json::json!({
            "product": id.to_string(),
            "descriptor": shown,
            "table_uri": table_uri,
            "access": { "principal": principal.name, "visibility": visibility, "aggregate": aggregate },
            "versions": versions.iter().map(|v| serde_json::json!({
                "publication": v.seq, "version": v.version, "delta_version": v.delta_version, "rows": v.row_count,
                "published_at": v.published_at, "descriptor_hash": v.descriptor_hash,
            })).collect::<Vec<_>>(),
            "upstream": upstream,
            "downstream": downstream,
            "slo": catalog.latest_slo_checks(&id).await?,
            "quality": meshwork_query::quality_runs_for(catalog.as_ref(), &governance, &principal, &descriptor, 1).await?.into_iter().next(),
            "grants": meshwork_query::shown_grants(catalog.as_ref(), &principal, record).await?,
        });
        println!("{}", serde_json::to_string_pretty(&value).expect("json"));
        return Ok(());
    }
    let d = &descriptor;
    println!("{id}  v{}  ({})", d.version, d.status.as_str());
    match d.lifecycle(chrono::Utc::now().date_naive()) {
        meshwork_core::lifecycle::Lifecycle::Served => {}
        meshwork_core::lifecycle::Lifecycle::Deprecated(deprecation) => println!("warning: {}", deprecation.warning()),
        meshwork_core::lifecycle::Lifecycle::Sunset(deprecation) => {
            println!("{}; its data is kept until `meshwork product purge {id}`", deprecation.gone())
        }
    }
    if let Some(title) = &d.title {
        println!("{title}");
    }
    if let Some(description) = &d.description {
        println!("{description}");
    }
    println!();
    println!("owner:       {}", d.owner.as_deref().unwrap_or("-"));
    match &aggregate {
        Some(rule) => println!("access:      {} reads it only in aggregate ({rule})", principal.name),
        None => println!("access:      {} reads its rows", principal.name),
    }
    println!("tags:        {}", if d.tags.is_empty() { "-".into() } else { d.tags.join(", ") });
    println!("upstream:    {}", if upstream.is_empty() { "-".into() } else { upstream.join(", ") });
    println!("downstream:  {}", if downstream.is_empty() { "-".into() } else { downstream.join(", ") });
    match versions.last().and_then(|v| v.remote.as_ref()) {
        // Where a virtual product is read is shown like its table: to administrators.
        Some(remote) if principal.admin => println!(
            "virtual: read live from connection `{}`, {}",
            remote.connection_name,
            meshwork_sources::schema::describe_read(&remote.read)
        ),
        Some(_) => println!("virtual: read live from its database"),
        None => println!("table:       {table_uri}"),
    }
    println!();
    println!("schema (primary key: {}):", if d.contract.primary_key.is_empty() { "-".into() } else { d.contract.primary_key.join(", ") });
    let columns: Vec<Vec<String>> = d
        .contract
        .columns
        .iter()
        .map(|c| {
            vec![
                format!("  {}", c.name),
                c.data_type.to_string(),
                if c.nullable { "null".into() } else { "not null".into() },
                c.classification.map(|k| k.as_str().to_owned()).unwrap_or_else(|| "-".into()),
                c.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", text_table(&["  COLUMN", "TYPE", "NULLS", "CLASS", "DESCRIPTION"], &columns));
    let grants = meshwork_query::shown_grants(catalog.as_ref(), &principal, record).await?;
    if !grants.is_empty() {
        println!();
        println!("grants (readers by approved access requests):");
        print!("{}", crate::access::grant_table(&grants));
    }
    println!();
    println!("versions:");
    print!("{}", version_table(&id, &versions));
    crate::trust::print_trust(catalog.as_ref(), &id, &descriptor).await?;
    Ok(())
}

/// A product's publications, newest first, each with the SQL name that reads it (time travel).
pub(crate) fn version_table(id: &ProductId, versions: &[meshwork_catalog::VersionRecord]) -> String {
    let rows: Vec<Vec<String>> = versions
        .iter()
        .rev()
        .map(|v| {
            vec![
                format!("  #{}", v.seq),
                v.version.clone(),
                format!("v{}", v.delta_version),
                v.row_count.to_string(),
                meshwork_catalog::time::format(&v.published_at),
                format!("{}.\"{}@{}\"", id.domain, id.name, v.seq),
            ]
        })
        .collect();
    text_table(&["  PUBLICATION", "VERSION", "DELTA", "ROWS", "PUBLISHED AT", "READ AS"], &rows)
}

/// `meshwork product versions`: what can be read by time travel.
pub async fn product_versions(dir: &Path, principal: Option<&str>, name: &str, format: ReportFormat) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let (id, _) = visible_product(catalog.as_ref(), &governance, &principal, name).await?;
    let versions = catalog.versions(&id).await?;
    if format == ReportFormat::Json {
        let rows: Vec<serde_json::Value> = versions
            .iter()
            .map(|v| {
                serde_json::json!({
                    "publication": v.seq, "version": v.version, "delta_version": v.delta_version, "rows": v.row_count,
                    "published_at": meshwork_catalog::time::format(&v.published_at),
                    "sql_name": format!("{}.\"{}@{}\"", id.domain, id.name, v.seq),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "product": id.to_string(), "versions": rows }))?);
        return Ok(());
    }
    print!("{}", version_table(&id, &versions));
    println!("(read any of them in SQL as `{}.\"{}@N\"`, or as of a time: `{}.\"{}@2026-12-01T10:00:00Z\"`)", id.domain, id.name, id.domain, id.name);
    Ok(())
}

/// `meshwork up`: the quickstart.
pub async fn up(dir: &Path, orders: usize) -> anyhow::Result<()> {
    if !dir.join(meshwork_pipeline::MESH_FILE).exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        init(dir, true, orders, 42)?;
    }
    validate(dir, ReportFormat::Text, false).await?;
    apply(dir, ReportFormat::Text, Duration::from_secs(60)).await?;
    println!();
    let (catalog, governance, principal) = open_as(dir, None).await?;
    let session = QuerySession::open(catalog, &governance, principal, "cli").await?;
    let tour = [
        ("Products in the mesh", "SELECT table_schema AS domain, table_name AS product FROM information_schema.tables WHERE table_schema NOT IN ('information_schema', 'public') ORDER BY 1, 2"),
        ("Revenue by region in 2025 (finance, built from sales)", "SELECT region, SUM(orders) AS orders, SUM(revenue) AS revenue FROM finance.revenue_by_region WHERE month >= DATE '2025-01-01' GROUP BY region ORDER BY revenue DESC"),
        ("Best campaigns (marketing, built from sales)", "SELECT code, channel, orders, revenue, round(roi, 2) AS roi FROM marketing.campaign_roi ORDER BY roi DESC LIMIT 5"),
    ];
    for (title, sql) in tour {
        println!("-- {title}\n-- meshwork query \"{sql}\"");
        let (schema, batches) = session.collect(sql).await?;
        write_results(&schema, &batches, ResultFormat::Table, None)?;
        println!();
    }
    // Governance: the same question, asked by two principals, answered by the policies.
    let sql = "SELECT customer_id, full_name, email, region FROM sales.customers ORDER BY customer_id LIMIT 3";
    for (name, why) in [("sam", "a sales member: unmasked, every region"), ("ana", "an EU analyst: her region only, masked")] {
        println!("-- As {name}, {why}\n-- meshwork query --as {name} \"{sql}\"");
        let (catalog, governance, principal) = open_as(dir, Some(name)).await?;
        let session = QuerySession::open(catalog, &governance, principal, "cli").await?;
        let (schema, batches) = session.collect(sql).await?;
        write_results(&schema, &batches, ResultFormat::Table, None)?;
        println!();
    }
    println!("Try your own: meshwork -C {} query \"SELECT * FROM sales.orders LIMIT 5\"", dir.display());
    Ok(())
}

/// `meshwork audit`: the audit log, for administrators.
pub async fn audit(
    dir: &Path,
    principal: Option<&str>,
    filter_product: Option<&str>,
    filter_principal: Option<&str>,
    since: Option<&str>,
    limit: u32,
    format: ReportFormat,
) -> anyhow::Result<()> {
    let (catalog, _governance, principal) = open_as(dir, principal).await?;
    anyhow::ensure!(principal.admin, "`meshwork audit` is not allowed for `{}`: the audit log is for administrators", principal.name);
    let product = filter_product
        .map(|p| p.parse::<ProductId>().map_err(|e| anyhow::anyhow!("`--product {p}`: {e}")))
        .transpose()?;
    let since = since.map(parse_since).transpose()?;
    let events = catalog
        .audit(&AuditFilter { product, principal: filter_principal.map(str::to_owned), since, limit: Some(limit) })
        .await?;
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&events).expect("json")),
        ReportFormat::Text if events.is_empty() => println!("no audit events match"),
        ReportFormat::Text => {
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| {
                    let products = if e.action == "apply" {
                        let published = e.products.iter().filter(|p| p.decision == "published").count();
                        format!("{} products, {published} published", e.products.len())
                    } else {
                        e.products
                            .iter()
                            .map(|p| if p.decision == "allow" { p.product.clone() } else { format!("{} ({})", p.product, p.decision) })
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let clip = |text: &str, width: usize| {
                        if text.chars().count() > width { text.chars().take(width - 3).collect::<String>() + "..." } else { text.to_owned() }
                    };
                    let (products, statement) = (clip(&products, 48), clip(&e.statement, 60));
                    vec![
                        e.id.to_string(),
                        e.at.format("%Y-%m-%dT%H:%M:%S").to_string(),
                        e.principal.clone(),
                        e.interface.clone(),
                        e.action.clone(),
                        e.outcome.to_string(),
                        e.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                        format!("{:.1}", e.duration_ms),
                        products,
                        statement,
                    ]
                })
                .collect();
            print!("{}", text_table(&["ID", "AT (UTC)", "PRINCIPAL", "VIA", "ACTION", "OUTCOME", "ROWS", "MS", "PRODUCTS", "STATEMENT"], &rows));
        }
    }
    Ok(())
}

/// `--since`: an RFC 3339 time, a date, or an age like `15m`, `24h`, `7d`.
fn parse_since(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(age) = meshwork_core::parse::parse_duration(text) {
        return Ok(chrono::Utc::now() - chrono::Duration::seconds(age.seconds as i64));
    }
    if let Ok(at) = meshwork_catalog::time::parse(text) {
        return Ok(at);
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    anyhow::bail!("`--since {text}` is not a time; write an age like `24h` or `7d`, a date like `2026-11-01`, or an RFC 3339 time")
}
