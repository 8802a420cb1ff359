//! Commands about trusting products: `refresh`, `product quality`, `events`, and the SLO and
//! quality sections of `product show`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use meshwork_catalog::{CatalogStore, EventFilter};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::ProductId;
use meshwork_pipeline::ApplyOptions;
use meshwork_query::quality_runs_for;

use crate::commands::{ProgressBars, flush_lineage, open_as, report_outcome, validated, visible_product};
use crate::output::text_table;
use crate::ReportFormat;

/// `meshwork refresh NAME… [--downstream]`.
pub async fn refresh(dir: &Path, names: &[String], downstream: bool, lock_wait: Duration, format: ReportFormat) -> anyhow::Result<()> {
    let mesh = validated(dir, format, "refresh")?;
    let mut targets = Vec::new();
    for name in names {
        let known: Vec<String> = mesh.repo.products.keys().map(ToString::to_string).collect();
        let id: Option<ProductId> = name.parse().ok().filter(|id| mesh.repo.products.contains_key(id));
        match id {
            Some(id) => targets.push(id),
            None => {
                let hint = match meshwork_core::diagnostic::did_you_mean(name, known.iter().map(String::as_str)) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("the repository declares {}", meshwork_core::diagnostic::one_of(known.iter().map(String::as_str))),
                };
                anyhow::bail!("product `{name}` is not in the mesh repository; {hint}");
            }
        }
    }
    let home = mesh.home();
    let catalog = home.open_catalog().await?;
    let store = home.open_store()?;
    let progress = ProgressBars::new();
    let options = ApplyOptions { trigger: meshwork_catalog::Trigger::Refresh, lock_wait, ..ApplyOptions::default() };
    let report = meshwork_pipeline::refresh(&mesh, catalog.as_ref(), &store, &progress, &targets, downstream, options).await?;
    progress.clear();
    flush_lineage(&mesh, catalog).await;
    report_outcome(&report, format)
}

/// `meshwork product quality NAME`: the history of quality runs, newest first.
pub async fn product_quality(dir: &Path, principal: Option<&str>, name: &str, limit: u32, format: ReportFormat) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let (id, descriptor) = visible_product(catalog.as_ref(), &governance, &principal, name).await?;
    let runs = quality_runs_for(catalog.as_ref(), &governance, &principal, &descriptor, limit).await?;
    if format == ReportFormat::Json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "product": id.to_string(), "runs": runs })).expect("json"));
        return Ok(());
    }
    if runs.is_empty() {
        println!("{id} has no quality runs yet; they are recorded by `meshwork apply` and `meshwork refresh`");
        return Ok(());
    }
    for run in &runs {
        let published = run.published_seq.map(|s| format!("published as #{s}")).unwrap_or_else(|| "nothing published".into());
        println!(
            "{}  {}  {}  {} rows  ({published}; build {:.0} ms, staging {:.0} ms, rules {:.0} ms)",
            meshwork_catalog::time::format(&run.at),
            run.trigger,
            run.outcome.as_str().to_uppercase(),
            run.row_count,
            run.build_ms,
            run.stage_ms,
            run.quality_ms,
        );
        let rows: Vec<Vec<String>> = run
            .results
            .iter()
            .map(|r| vec![format!("  {}", r.name), r.rule.clone(), r.severity.as_str().to_owned(), r.status.to_string(), r.failing.to_string(), r.message.clone()])
            .collect();
        print!("{}", text_table(&["  RULE", "KIND", "SEVERITY", "STATUS", "FAILING", "DETAIL"], &rows));
        for rule in run.results.iter().filter(|r| !r.samples.is_empty()) {
            println!("  sample failing rows of `{}`:", rule.name);
            for sample in &rule.samples {
                println!("    {}", serde_json::Value::Object(sample.clone()));
            }
        }
        println!();
    }
    Ok(())
}

/// Prints the SLO and latest quality sections of `product show`.
pub async fn print_trust(catalog: &dyn CatalogStore, id: &ProductId, descriptor: &ProductDescriptor) -> anyhow::Result<()> {
    if let Some(slo) = &descriptor.slo {
        println!();
        println!("service level objectives (error budget over {}):", meshwork_pipeline::quality::human_age(slo.window.seconds));
        let checks = catalog.latest_slo_checks(id).await?;
        if checks.is_empty() {
            println!("  not evaluated yet: `meshwork serve` evaluates them continuously");
        }
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    format!("  {}", c.objective),
                    c.status.as_str().to_uppercase(),
                    c.budget_remaining.map(|b| format!("{:.0} %", b * 100.0)).unwrap_or_else(|| "-".into()),
                    c.message.clone(),
                    meshwork_catalog::time::format(&c.at),
                ]
            })
            .collect();
        if !rows.is_empty() {
            print!("{}", text_table(&["  OBJECTIVE", "STATUS", "BUDGET LEFT", "MEASURED", "AT"], &rows));
        }
    }
    if let Some(run) = catalog.quality_runs(id, 1).await?.first() {
        println!();
        let failing: Vec<String> = run.results.iter().filter(|r| r.status != meshwork_catalog::RuleStatus::Passed).map(|r| format!("{} ({})", r.name, r.status)).collect();
        println!(
            "latest quality run: {} at {} ({} rules{})",
            run.outcome.as_str().to_uppercase(),
            meshwork_catalog::time::format(&run.at),
            run.results.len(),
            if failing.is_empty() { String::new() } else { format!("; not passing: {}", failing.join(", ")) }
        );
    }
    Ok(())
}

/// `meshwork events`: the lifecycle event log (administrators only).
pub async fn events(dir: &Path, principal: Option<&str>, after: i64, limit: u32, product: Option<&str>, format: ReportFormat) -> anyhow::Result<()> {
    let (catalog, _, principal) = open_as(dir, principal).await?;
    anyhow::ensure!(principal.admin, "the event log is for administrators; `{}` is not one (consumers follow it over HTTP: GET /api/v1/events)", principal.name);
    let product = product.map(|p| p.parse::<ProductId>().with_context(|| format!("`{p}` is not a product name like `sales.orders`"))).transpose()?;
    let events = catalog.events(&EventFilter { after, limit: Some(limit), product, kinds: Vec::new() }).await?;
    match format {
        ReportFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&events).expect("events serialize"));
        }
        ReportFormat::Text => {
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| vec![e.id.to_string(), meshwork_catalog::time::format(&e.at), e.kind.to_string(), e.product.as_ref().map(ToString::to_string).unwrap_or_default(), e.payload.to_string()])
                .collect();
            print!("{}", text_table(&["ID", "AT", "KIND", "PRODUCT", "DETAILS"], &rows));
        }
    }
    Ok(())
}
