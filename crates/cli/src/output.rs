//! Rendering of diagnostics, apply summaries and query results for the terminal and for scripts.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use meshwork_core::diagnostic::Diagnostic;
use meshwork_pipeline::{ApplyReport, Finding, PlanAction, PlanItem, ProductOutcome};

use crate::ResultFormat;

/// Diagnostics as JSON objects.
pub fn diagnostics_json(diagnostics: &[Diagnostic]) -> serde_json::Value {
    serde_json::json!({
        "valid": diagnostics.is_empty(),
        "errors": diagnostics.iter().map(|d| serde_json::json!({
            "code": d.code.as_str(),
            "file": d.file,
            "line": d.line,
            "column": d.column,
            "field": d.field,
            "message": d.message,
            "hint": d.hint,
        })).collect::<Vec<_>>(),
    })
}

/// Left-aligned text columns, widths from the widest cell.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn seconds(d: std::time::Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// A publication as the summary names it: its number, and the Delta version holding its data or
/// `virtual` for a product read live from its database.
fn publication(version: &meshwork_catalog::VersionRecord) -> String {
    match version.remote {
        Some(_) => format!("#{} (virtual)", version.seq),
        None => format!("#{} (delta v{})", version.seq, version.delta_version),
    }
}

/// The summary table printed at the end of `apply`.
pub fn apply_summary(report: &ApplyReport) -> String {
    let rows: Vec<Vec<String>> = report
        .outcomes
        .iter()
        .map(|(id, outcome)| match outcome {
            ProductOutcome::Published { version, elapsed, quality, .. } => vec![
                id.to_string(),
                if quality.outcome == meshwork_catalog::RunOutcome::Warned { "published (quality warnings)".into() } else { "published".into() },
                version.version.clone(),
                publication(version),
                version.row_count.to_string(),
                seconds(*elapsed),
            ],
            ProductOutcome::Unchanged { version } => vec![
                id.to_string(),
                "unchanged".into(),
                version.version.clone(),
                publication(version),
                version.row_count.to_string(),
                "-".into(),
            ],
            ProductOutcome::Failed { elapsed, .. } => {
                vec![id.to_string(), "FAILED".into(), "-".into(), "-".into(), "-".into(), seconds(*elapsed)]
            }
            ProductOutcome::QualityFailed { quality, elapsed } => {
                vec![id.to_string(), "REJECTED by quality".into(), "-".into(), "-".into(), quality.row_count.to_string(), seconds(*elapsed)]
            }
            ProductOutcome::Blocked { upstream } => {
                vec![id.to_string(), format!("BLOCKED by {upstream}"), "-".into(), "-".into(), "-".into(), "-".into()]
            }
            ProductOutcome::Refused { findings } => {
                vec![id.to_string(), format!("REFUSED by {}", policy_names(findings)), "-".into(), "-".into(), "-".into(), "-".into()]
            }
            ProductOutcome::Sunset { since, version } => vec![
                id.to_string(),
                format!("sunset since {since} (not served)"),
                version.as_ref().map(|v| v.version.clone()).unwrap_or_else(|| "-".into()),
                version.as_ref().map(publication).unwrap_or_else(|| "-".into()),
                "-".into(),
                "-".into(),
            ],
            ProductOutcome::Unpublished { removal, version } => vec![
                id.to_string(),
                format!("unpublished ({})", removal.describe()),
                version.as_ref().map(|v| v.version.clone()).unwrap_or_else(|| "-".into()),
                version.as_ref().map(publication).unwrap_or_else(|| "-".into()),
                "-".into(),
                "-".into(),
            ],
        })
        .collect();
    let mut out = text_table(&["PRODUCT", "RESULT", "VERSION", "PUBLICATION", "ROWS", "TIME"], &rows);
    let published = report.outcomes.iter().filter(|(_, o)| matches!(o, ProductOutcome::Published { .. })).count();
    let unchanged = report.outcomes.iter().filter(|(_, o)| matches!(o, ProductOutcome::Unchanged { .. })).count();
    let failed = report.outcomes.iter().filter(|(_, o)| o.is_failure()).count();
    let unpublished = report.outcomes.iter().filter(|(_, o)| matches!(o, ProductOutcome::Unpublished { .. })).count();
    let unpublished = if unpublished == 0 { String::new() } else { format!(", {unpublished} unpublished") };
    out.push_str(&format!(
        "\n{published} published, {unchanged} unchanged{unpublished}, {failed} failed in {}\n",
        seconds(report.elapsed)
    ));
    for (id, outcome) in &report.outcomes {
        match outcome {
            ProductOutcome::Failed { error, .. } => out.push_str(&format!("\nerror: {id}: {error}\n")),
            ProductOutcome::QualityFailed { quality, .. } | ProductOutcome::Published { quality, .. } => {
                for rule in quality.results.iter().filter(|r| r.status != meshwork_catalog::RuleStatus::Passed) {
                    let level = if rule.severity == meshwork_core::descriptor::Severity::Error { "error" } else { "warning" };
                    let what = if rule.status == meshwork_catalog::RuleStatus::Error { "cannot be evaluated" } else { "failed" };
                    out.push_str(&format!("\n{level}: {id}: quality rule `{}` ({}) {what}: {}\n", rule.name, rule.rule, rule.message));
                }
                if matches!(outcome, ProductOutcome::QualityFailed { .. }) {
                    out.push_str(&format!("  nothing was published; `{id}` keeps its previous version. Samples: `meshwork product quality {id}`\n"));
                }
            }
            _ => {}
        }
    }
    if !report.findings.is_empty() {
        out.push('\n');
        out.push_str(&findings_text(&report.findings));
    }
    out
}

fn policy_names(findings: &[Finding]) -> String {
    let mut names: Vec<&str> = findings.iter().map(|f| f.violation.policy.as_str()).collect();
    names.dedup();
    names.join(", ")
}

/// Governance findings, one per line: `error:` for enforced policies, `warning:` for the rest.
pub fn findings_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let level = if f.violation.blocks() { "error" } else { "warning" };
        out.push_str(&format!("{level}: {f}\n"));
    }
    out
}

/// Governance findings as JSON.
pub fn findings_json(findings: &[Finding]) -> serde_json::Value {
    serde_json::Value::Array(
        findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "policy": f.violation.policy, "state": f.violation.state.as_str(), "product": f.violation.product.to_string(),
                    "file": f.file, "line": f.line, "column": f.column, "field": f.violation.field, "message": f.violation.message,
                })
            })
            .collect(),
    )
}

/// The apply report as JSON.
pub fn apply_json(report: &ApplyReport) -> serde_json::Value {
    let products: Vec<serde_json::Value> = report
        .outcomes
        .iter()
        .map(|(id, outcome)| match outcome {
            ProductOutcome::Published { version, elapsed, quality, .. } => serde_json::json!({
                "product": id.to_string(), "result": "published", "version": version.version, "publication": version.seq,
                "delta_version": version.delta_version, "rows": version.row_count, "seconds": elapsed.as_secs_f64(),
                "quality": quality_json(quality),
            }),
            ProductOutcome::QualityFailed { quality, elapsed } => serde_json::json!({
                "product": id.to_string(), "result": "quality_failed", "rows": quality.row_count, "seconds": elapsed.as_secs_f64(),
                "quality": quality_json(quality),
            }),
            ProductOutcome::Unchanged { version } => serde_json::json!({
                "product": id.to_string(), "result": "unchanged", "version": version.version, "publication": version.seq,
                "delta_version": version.delta_version, "rows": version.row_count,
            }),
            ProductOutcome::Failed { error, elapsed } => serde_json::json!({
                "product": id.to_string(), "result": "failed", "error": error.to_string(), "seconds": elapsed.as_secs_f64(),
            }),
            ProductOutcome::Blocked { upstream } => serde_json::json!({
                "product": id.to_string(), "result": "blocked", "upstream": upstream.to_string(),
            }),
            ProductOutcome::Refused { findings } => serde_json::json!({
                "product": id.to_string(), "result": "refused", "violations": findings_json(findings),
            }),
            ProductOutcome::Sunset { since, version } => serde_json::json!({
                "product": id.to_string(), "result": "sunset", "since": since.to_string(),
                "version": version.as_ref().map(|v| &v.version), "publication": version.as_ref().map(|v| v.seq),
            }),
            ProductOutcome::Unpublished { removal, version } => serde_json::json!({
                "product": id.to_string(), "result": "unpublished", "reason": removal.describe(),
                "version": version.as_ref().map(|v| &v.version), "publication": version.as_ref().map(|v| v.seq),
            }),
        })
        .collect();
    serde_json::json!({
        "ok": !report.failed(), "seconds": report.elapsed.as_secs_f64(), "products": products,
        "violations": findings_json(&report.findings),
    })
}

/// A quality run as JSON (samples as stored: the CLI acts as the local administrator or an
/// owner when it shows an apply's report).
pub fn quality_json(run: &meshwork_catalog::QualityRun) -> serde_json::Value {
    serde_json::json!({
        "outcome": run.outcome, "trigger": run.trigger, "rows": run.row_count, "build_ms": run.build_ms,
        "stage_ms": run.stage_ms, "quality_ms": run.quality_ms, "rules": run.results,
    })
}

/// Writes query results in `format` to `output` or standard output. A file is written under a
/// temporary name and renamed when complete, so a failed query never leaves a truncated file.
pub fn write_results(schema: &SchemaRef, batches: &[RecordBatch], format: ResultFormat, output: Option<&Path>) -> anyhow::Result<()> {
    anyhow::ensure!(
        format != ResultFormat::Parquet || output.is_some(),
        "`--format parquet` writes binary data; add `--output FILE.parquet`"
    );
    // An empty result still has columns: write them as a header or schema.
    let empty = [RecordBatch::new_empty(schema.clone())];
    let batches = if batches.is_empty() { &empty[..] } else { batches };
    match output {
        None => {
            let mut sink = std::io::BufWriter::new(std::io::stdout());
            encode(schema, batches, format, &mut sink)?;
            sink.flush()?;
        }
        Some(path) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let partial = path.with_file_name(format!(".{name}.partial"));
            let result = std::fs::File::create(&partial)
                .with_context(|| format!("cannot create `{}`", partial.display()))
                .and_then(|file| {
                    let mut sink = std::io::BufWriter::new(file);
                    encode(schema, batches, format, &mut sink)?;
                    sink.flush()?;
                    Ok(())
                });
            if let Err(err) = result {
                let _ = std::fs::remove_file(&partial);
                return Err(err);
            }
            std::fs::rename(&partial, path).with_context(|| format!("cannot write `{}`", path.display()))?;
        }
    }
    Ok(())
}

fn encode<W: Write + Send>(schema: &SchemaRef, batches: &[RecordBatch], format: ResultFormat, sink: &mut W) -> anyhow::Result<()> {
    match format {
        ResultFormat::Table => {
            let table = datafusion::arrow::util::pretty::pretty_format_batches(batches)?;
            writeln!(sink, "{table}")?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(sink, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
        }
        ResultFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut *sink);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        ResultFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *sink);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            drop(writer);
            writeln!(sink)?;
        }
        ResultFormat::Parquet => {
            let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(&mut *sink, schema.clone(), None)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
        }
    }
    Ok(())
}

fn plan_action(action: &PlanAction) -> String {
    match action {
        PlanAction::Create => "create".into(),
        PlanAction::Update { reason } => format!("update ({reason})"),
        PlanAction::Unchanged => "unchanged".into(),
        PlanAction::Refused => "REFUSED by policy".into(),
        PlanAction::Unpublish { removal } => format!("unpublish ({})", removal.describe()),
    }
}

/// The `plan` report as text: one line per product, then its contract changes.
pub fn plan_text(plan: &[PlanItem]) -> String {
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|item| {
            let version = match &item.from_version {
                Some(from) if from != &item.to_version => format!("{from} -> {}", item.to_version),
                _ => item.to_version.clone(),
            };
            let breaking = item.changes.iter().filter(|c| c.breaking).count();
            let changes = match (item.changes.len(), breaking) {
                (0, _) => "-".into(),
                (n, 0) => format!("{n} compatible"),
                (n, b) => format!("{n} ({b} BREAKING)"),
            };
            vec![item.product.to_string(), plan_action(&item.action), version, changes]
        })
        .collect();
    let mut out = text_table(&["PRODUCT", "ACTION", "VERSION", "CONTRACT CHANGES"], &rows);
    for item in plan.iter().filter(|i| !i.changes.is_empty() || i.major.is_some()) {
        out.push_str(&format!("\n{}:\n", item.product));
        if let Some(major) = &item.major {
            match &major.kept_as {
                Some(kept) => out.push_str(&format!("  major {} -> {}: major {} stays served side by side as `{kept}`\n", major.from, major.to, major.from)),
                None => out.push_str(&format!(
                    "  major {} -> {}: `{}` serves major {} from now on; to keep major {} served side by side, declare it as `{}` (docs/evolution.md)\n",
                    major.from,
                    major.to,
                    item.product,
                    major.to,
                    major.from,
                    meshwork_core::lifecycle::kept_major_name(&item.product.name, major.from)
                )),
            }
        }
        for change in &item.changes {
            let tag = if change.breaking { "breaking  " } else { "compatible" };
            out.push_str(&format!("  {tag}  {}\n", change.detail));
        }
        if item.changes.iter().any(|c| c.breaking) && !item.consumers.is_empty() {
            let names: Vec<String> = item.consumers.iter().map(ToString::to_string).collect();
            out.push_str(&format!("  affects: {}\n", names.join(", ")));
        }
        if !item.readers.is_empty() {
            let readers: Vec<String> = item.readers.iter().map(|r| format!("{} ({}, {} queries)", r.principal, r.interface, r.queries)).collect();
            out.push_str(&format!("  read in the last {} days by: {}\n", meshwork_pipeline::READERS_WINDOW_DAYS, readers.join(", ")));
        }
        if !item.subscribers.is_empty() {
            out.push_str(&format!("  subscribed: {}\n", item.subscribers.join(", ")));
        }
        if !item.grants.is_empty() {
            let grants: Vec<String> = item
                .grants
                .iter()
                .map(|g| match g.expires_at {
                    Some(end) => format!("{} (grant {}, until {})", g.principal, g.id, meshwork_catalog::time::format(&end)),
                    None => format!("{} (grant {})", g.principal, g.id),
                })
                .collect();
            out.push_str(&format!("  still reads by grant: {} (`meshwork access revoke` ends a grant)\n", grants.join(", ")));
        }
    }
    out.push_str(&crate::reads::read_changes_text(plan));
    let count = |f: &dyn Fn(&PlanAction) -> bool| plan.iter().filter(|i| f(&i.action)).count();
    let unpublish = match count(&|a| matches!(a, PlanAction::Unpublish { .. })) {
        0 => String::new(),
        n => format!(", {n} to unpublish"),
    };
    out.push_str(&format!(
        "\n{} to create, {} to update, {} unchanged, {} refused{unpublish}\n",
        count(&|a| matches!(a, PlanAction::Create)),
        count(&|a| matches!(a, PlanAction::Update { .. })),
        count(&|a| matches!(a, PlanAction::Unchanged)),
        count(&|a| matches!(a, PlanAction::Refused)),
    ));
    out
}

/// The `plan` report as JSON.
pub fn plan_json(plan: &[PlanItem], findings: &[Finding]) -> serde_json::Value {
    let products: Vec<serde_json::Value> = plan
        .iter()
        .map(|item| {
            serde_json::json!({
                "product": item.product.to_string(),
                "action": match &item.action {
                    PlanAction::Create => "create",
                    PlanAction::Update { .. } => "update",
                    PlanAction::Unchanged => "unchanged",
                    PlanAction::Refused => "refused",
                    PlanAction::Unpublish { .. } => "unpublish",
                },
                "reason": match &item.action {
                    PlanAction::Update { reason } => Some(reason.clone()),
                    PlanAction::Unpublish { removal } => Some(removal.describe()),
                    _ => None,
                },
                "from_version": item.from_version, "to_version": item.to_version,
                "changes": &item.changes,
                "consumers": item.consumers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "readers": &item.readers,
                "subscribers": &item.subscribers,
                "grants": &item.grants,
                "major": item.major.as_ref().map(|m| serde_json::json!({ "from": m.from, "to": m.to, "kept_as": m.kept_as.as_ref().map(ToString::to_string) })),
                "read_changes": crate::reads::read_changes_json(&item.read_changes),
            })
        })
        .collect();
    serde_json::json!({ "products": products, "violations": findings_json(findings) })
}
