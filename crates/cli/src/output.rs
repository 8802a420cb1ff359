//! Rendering of diagnostics, apply summaries and query results for the terminal and for scripts.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use meshwork_core::diagnostic::Diagnostic;
use meshwork_pipeline::{ApplyReport, ProductOutcome};

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

/// The summary table printed at the end of `apply`.
pub fn apply_summary(report: &ApplyReport) -> String {
    let rows: Vec<Vec<String>> = report
        .outcomes
        .iter()
        .map(|(id, outcome)| match outcome {
            ProductOutcome::Published { version, elapsed } => vec![
                id.to_string(),
                "published".into(),
                version.version.clone(),
                format!("#{} (delta v{})", version.seq, version.delta_version),
                version.row_count.to_string(),
                seconds(*elapsed),
            ],
            ProductOutcome::Unchanged { version } => vec![
                id.to_string(),
                "unchanged".into(),
                version.version.clone(),
                format!("#{} (delta v{})", version.seq, version.delta_version),
                version.row_count.to_string(),
                "-".into(),
            ],
            ProductOutcome::Failed { elapsed, .. } => {
                vec![id.to_string(), "FAILED".into(), "-".into(), "-".into(), "-".into(), seconds(*elapsed)]
            }
            ProductOutcome::Blocked { upstream } => {
                vec![id.to_string(), format!("BLOCKED by {upstream}"), "-".into(), "-".into(), "-".into(), "-".into()]
            }
        })
        .collect();
    let mut out = text_table(&["PRODUCT", "RESULT", "VERSION", "PUBLICATION", "ROWS", "TIME"], &rows);
    let published = report.outcomes.iter().filter(|(_, o)| matches!(o, ProductOutcome::Published { .. })).count();
    let unchanged = report.outcomes.iter().filter(|(_, o)| matches!(o, ProductOutcome::Unchanged { .. })).count();
    let failed = report.outcomes.iter().filter(|(_, o)| o.is_failure()).count();
    out.push_str(&format!(
        "\n{published} published, {unchanged} unchanged, {failed} failed in {}\n",
        seconds(report.elapsed)
    ));
    for (id, outcome) in &report.outcomes {
        if let ProductOutcome::Failed { error, .. } = outcome {
            out.push_str(&format!("\nerror: {id}: {error}\n"));
        }
    }
    out
}

/// The apply report as JSON.
pub fn apply_json(report: &ApplyReport) -> serde_json::Value {
    let products: Vec<serde_json::Value> = report
        .outcomes
        .iter()
        .map(|(id, outcome)| match outcome {
            ProductOutcome::Published { version, elapsed } => serde_json::json!({
                "product": id.to_string(), "result": "published", "version": version.version, "publication": version.seq,
                "delta_version": version.delta_version, "rows": version.row_count, "seconds": elapsed.as_secs_f64(),
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
        })
        .collect();
    serde_json::json!({ "ok": !report.failed(), "seconds": report.elapsed.as_secs_f64(), "products": products })
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
