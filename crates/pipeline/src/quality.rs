//! Quality rules evaluated on staged data, before anything is published.
//!
//! Row-level rules (`not_null`, `accepted_values`, `range`, `regex`), `row_count` and
//! `freshness` are folded into one aggregate over `this`, so a product's data is scanned once
//! for all of them. `unique`, `referential` and SQL assertions need their own query each. A
//! failed rule fetches up to [`SAMPLE_ROWS`] failing rows. A rule that cannot be evaluated (a
//! bad regex, an assertion that does not plan) is an `error` result: it fails like a broken
//! rule of its severity, so a typo never waves bad data through.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use datafusion::common::ScalarValue;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use meshwork_catalog::{CatalogStore, RuleResult, RuleStatus, RunOutcome};
use meshwork_core::column_type::ColumnType;
use meshwork_core::descriptor::{ProductDescriptor, QualityCheck, QualityRule, Severity};
use meshwork_core::id::ProductId;

use crate::PipelineError;

/// Failing rows kept per rule.
pub const SAMPLE_ROWS: usize = 10;

/// The name the staged data has in rules and assertions.
pub const THIS: &str = "this";

/// `identifier` as a quoted SQL identifier.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A bound written in `product.yaml` as a SQL literal of the column's type.
fn bound(descriptor: &ProductDescriptor, column: &str, text: &str) -> String {
    match descriptor.contract.column(column).map(|c| c.data_type) {
        Some(ColumnType::Date) => format!("CAST({} AS DATE)", string_literal(text)),
        Some(ColumnType::Timestamp) => format!("CAST({} AS TIMESTAMP)", string_literal(text)),
        Some(ColumnType::String) => string_literal(text),
        // Numbers are spliced only when they parse as numbers: a bound is never SQL.
        _ if text.parse::<f64>().is_ok() => text.to_owned(),
        _ => string_literal(text),
    }
}

/// The condition a failing row meets, for rules that look at one row at a time.
fn row_predicate(descriptor: &ProductDescriptor, check: &QualityCheck) -> Option<String> {
    match check {
        QualityCheck::NotNull { column } => Some(format!("{} IS NULL", quote(column))),
        QualityCheck::AcceptedValues { column, values } => {
            let list = values.iter().map(|v| string_literal(v)).collect::<Vec<_>>().join(", ");
            Some(format!("{c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({list})", c = quote(column)))
        }
        QualityCheck::Range { column, min, max, min_inclusive, max_inclusive } => {
            let c = quote(column);
            let mut outside = Vec::new();
            if let Some(min) = min {
                outside.push(format!("{c} {} {}", if *min_inclusive { "<" } else { "<=" }, bound(descriptor, column, min)));
            }
            if let Some(max) = max {
                outside.push(format!("{c} {} {}", if *max_inclusive { ">" } else { ">=" }, bound(descriptor, column, max)));
            }
            Some(format!("{c} IS NOT NULL AND ({})", outside.join(" OR ")))
        }
        QualityCheck::Regex { column, pattern } => {
            Some(format!("{c} IS NOT NULL AND NOT regexp_like(CAST({c} AS VARCHAR), {})", string_literal(pattern), c = quote(column)))
        }
        _ => None,
    }
}

/// What the caller knows that the staged data does not.
#[derive(Debug, Clone, Copy)]
pub struct QualityContext {
    /// Rows staged, known from the build: no scan is needed when no rule reads rows.
    pub rows: u64,
    /// Rows of the version currently published, for `row_count.max_change_pct`.
    pub previous_rows: Option<u64>,
    /// The time freshness is measured against.
    pub now: DateTime<Utc>,
}

fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let frame = ctx.sql_with_options(sql, read_only()).await.map_err(|e| e.to_string())?;
    frame.collect().await.map_err(|e| e.to_string())
}

fn scalar(batches: &[RecordBatch], column: usize) -> Result<ScalarValue, String> {
    let batch = batches.iter().find(|b| b.num_rows() > 0).ok_or("the query returned no row")?;
    ScalarValue::try_from_array(batch.column(column), 0).map_err(|e| e.to_string())
}

fn count(value: &ScalarValue) -> u64 {
    match value {
        ScalarValue::Int64(Some(n)) => *n as u64,
        ScalarValue::UInt64(Some(n)) => *n,
        _ => 0,
    }
}

/// Failing rows as JSON objects, column → value.
fn samples(batches: &[RecordBatch]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        // View types are not JSON-writable in every arrow version: go through classic types.
        let _ = writer.write(&classic(batch));
    }
    if writer.finish().is_err() {
        return Vec::new();
    }
    let bytes = writer.into_inner();
    serde_json::from_slice::<Vec<serde_json::Map<String, serde_json::Value>>>(&bytes).unwrap_or_default()
}

fn classic(batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let target = match field.data_type() {
            DataType::Utf8View => Some(DataType::Utf8),
            DataType::BinaryView => Some(DataType::Binary),
            _ => None,
        };
        match target.and_then(|t| arrow::compute::cast(column, &t).ok()) {
            Some(cast) => {
                fields.push(field.as_ref().clone().with_data_type(cast.data_type().clone()));
                columns.push(cast);
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns).unwrap_or_else(|_| batch.clone())
}

fn result(rule: &QualityRule, status: RuleStatus, failing: u64, checked: u64, message: String) -> RuleResult {
    RuleResult {
        name: rule.name.clone(),
        rule: rule.check.keyword().to_owned(),
        severity: rule.severity,
        status,
        failing,
        checked,
        message,
        samples: Vec::new(),
    }
}

fn verdict(rule: &QualityRule, failing: u64, checked: u64, message: String) -> RuleResult {
    result(rule, if failing == 0 { RuleStatus::Passed } else { RuleStatus::Failed }, failing, checked, message)
}

/// The published products that `referential` rules and SQL assertions of `descriptor` read
/// as `domain.product`. One that is not published is left out: its rule then fails with "table
/// not found", naming it.
pub async fn referenced_products(descriptor: &ProductDescriptor, catalog: &dyn CatalogStore) -> Result<Vec<ProductId>, PipelineError> {
    let mut wanted: Vec<ProductId> = Vec::new();
    for (purpose, id) in crate::upstream::product_reads(descriptor) {
        if matches!(purpose, crate::upstream::ReadPurpose::QualityRule { .. }) && !wanted.contains(&id) && catalog.current_version(&id).await?.is_some() {
            wanted.push(id);
        }
    }
    Ok(wanted)
}

/// Evaluates every quality rule of `descriptor` against the table `this` registered in `ctx`
/// (with the products its rules name registered, see [`referenced_products`]). Results come in
/// declaration order.
pub async fn evaluate(ctx: &SessionContext, descriptor: &ProductDescriptor, context: QualityContext) -> Vec<RuleResult> {
    let rules = &descriptor.quality;
    let mut results: Vec<Option<RuleResult>> = vec![None; rules.len()];

    // One scan: count(*) first, then one aggregate per row rule or freshness rule.
    let mut aggregates = vec!["count(*)".to_owned()];
    let mut folded: Vec<(usize, usize)> = Vec::new(); // (rule index, aggregate column)
    for (index, rule) in rules.iter().enumerate() {
        let aggregate = match &rule.check {
            QualityCheck::Freshness { column, .. } => Some(format!("max({})", quote(column))),
            check => row_predicate(descriptor, check).map(|p| format!("sum(CASE WHEN {p} THEN 1 ELSE 0 END)")),
        };
        if let Some(aggregate) = aggregate {
            folded.push((index, aggregates.len()));
            aggregates.push(aggregate);
        }
    }
    let scan = format!("SELECT {} FROM {THIS}", aggregates.join(", "));
    let (rows, values) = if folded.is_empty() {
        // No rule reads rows one at a time: the build already counted them, skip the scan.
        (context.rows, Some(Vec::new()))
    } else {
        match run(ctx, &scan).await {
            Ok(batches) => {
                let rows = scalar(&batches, 0).map(|v| count(&v)).unwrap_or(0);
                let values: Vec<Result<ScalarValue, String>> = (0..aggregates.len()).map(|i| scalar(&batches, i)).collect();
                (rows, Some(values))
            }
            Err(_) => {
                // One rule broke the shared scan: evaluate each rule by itself so the error
                // lands on the rule that caused it.
                (context.rows, None)
            }
        }
    };
    for (index, column) in folded {
        let rule = &rules[index];
        let value = match &values {
            Some(values) => values[column].clone(),
            None => {
                let aggregate = &aggregates[column];
                run(ctx, &format!("SELECT {aggregate} FROM {THIS}")).await.and_then(|b| scalar(&b, 0))
            }
        };
        let value = match value {
            Ok(value) => value,
            Err(error) => {
                results[index] = Some(result(rule, RuleStatus::Error, 0, rows, format!("the rule could not be evaluated: {error}")));
                continue;
            }
        };
        results[index] = Some(match &rule.check {
            QualityCheck::Freshness { column, max_age } => freshness(rule, column, max_age.seconds, &value, rows, context.now),
            check => {
                let failing = match &value {
                    ScalarValue::Int64(Some(n)) => *n as u64,
                    _ => 0,
                };
                let what = match check {
                    QualityCheck::NotNull { column } => format!("{failing} of {rows} rows have NULL in `{column}`"),
                    QualityCheck::AcceptedValues { column, values } => {
                        format!("{failing} of {rows} rows have a `{column}` outside [{}]", values.join(", "))
                    }
                    QualityCheck::Range { column, min, max, .. } => format!(
                        "{failing} of {rows} rows have `{column}` outside {}..{}",
                        min.as_deref().unwrap_or(""),
                        max.as_deref().unwrap_or("")
                    ),
                    QualityCheck::Regex { column, pattern } => format!("{failing} of {rows} rows have a `{column}` not matching `{pattern}`"),
                    _ => String::new(),
                };
                verdict(rule, failing, rows, what)
            }
        });
    }

    for (index, rule) in rules.iter().enumerate() {
        if results[index].is_some() {
            continue;
        }
        results[index] = Some(match &rule.check {
            QualityCheck::RowCount { min, max, max_change_pct } => row_count(rule, rows, *min, *max, *max_change_pct, context.previous_rows),
            QualityCheck::Unique { columns } => unique(ctx, rule, columns, rows).await,
            QualityCheck::Referential { column, references, references_column } => {
                referential(ctx, rule, column, references, references_column, rows).await
            }
            QualityCheck::Sql { assert } => assertion(ctx, rule, assert, rows).await,
            _ => result(rule, RuleStatus::Error, 0, rows, "internal: rule was not evaluated".into()),
        });
    }

    // Samples of failing rows for the rules that select rows, in a stable order.
    let all_columns: Vec<String> = descriptor.contract.columns.iter().map(|c| quote(&c.name)).collect();
    let order = |prefix: &str, first: &[String]| {
        let mut keys: Vec<String> = first.iter().map(|k| format!("{prefix}{k}")).collect();
        keys.extend(all_columns.iter().filter(|c| !first.contains(c)).map(|c| format!("{prefix}{c}")));
        keys.join(", ")
    };
    let mut results: Vec<RuleResult> = results.into_iter().map(|r| r.expect("every rule has a result")).collect();
    for (rule, outcome) in rules.iter().zip(results.iter_mut()) {
        if outcome.status != RuleStatus::Failed {
            continue;
        }
        let query = match &rule.check {
            QualityCheck::Unique { columns } => {
                let keys = columns.iter().map(|c| quote(c)).collect::<Vec<_>>();
                let present = keys.iter().map(|k| format!("{k} IS NOT NULL")).collect::<Vec<_>>().join(" AND ");
                let on = keys.iter().map(|k| format!("t.{k} = d.{k}")).collect::<Vec<_>>().join(" AND ");
                Some(format!(
                    "SELECT t.* FROM {THIS} t JOIN (SELECT {k} FROM {THIS} WHERE {present} GROUP BY {k} HAVING count(*) > 1) d ON {on} ORDER BY {o} LIMIT {SAMPLE_ROWS}",
                    k = keys.join(", "),
                    o = order("t.", &keys)
                ))
            }
            QualityCheck::Referential { column, references, references_column } => Some(format!(
                "SELECT t.* FROM {THIS} t WHERE t.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {r} x WHERE x.{rc} = t.{c}) ORDER BY {o} LIMIT {SAMPLE_ROWS}",
                c = quote(column),
                r = format!("{}.{}", quote(references.domain.as_str()), quote(references.name.as_str())),
                rc = quote(references_column),
                o = order("t.", &[])
            )),
            QualityCheck::Freshness { column, .. } => Some(format!("SELECT * FROM {THIS} ORDER BY {} DESC NULLS LAST LIMIT 1", quote(column))),
            check => row_predicate(descriptor, check).map(|p| format!("SELECT * FROM {THIS} WHERE {p} ORDER BY {} LIMIT {SAMPLE_ROWS}", order("", &[]))),
        };
        if let Some(query) = query
            && let Ok(batches) = run(ctx, &query).await
        {
            outcome.samples = samples(&batches);
        }
    }
    results
}

fn freshness(rule: &QualityRule, column: &str, max_age: u64, newest: &ScalarValue, rows: u64, now: DateTime<Utc>) -> RuleResult {
    let micros = match newest {
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(v * 1000),
        ScalarValue::TimestampSecond(Some(v), _) => Some(v * 1_000_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v / 1000),
        ScalarValue::Date32(Some(days)) => Some(i64::from(*days) * 86_400_000_000),
        _ => None,
    };
    let Some(micros) = micros else {
        return result(rule, RuleStatus::Failed, 1, rows, format!("`{column}` has no value, so the data has no age"));
    };
    let newest = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default();
    let age = (now - newest).num_seconds().max(0) as u64;
    let stale = age > max_age;
    result(
        rule,
        if stale { RuleStatus::Failed } else { RuleStatus::Passed },
        u64::from(stale),
        rows,
        format!("newest `{column}` is {} old (at most {} allowed)", human_age(age), human_age(max_age)),
    )
}

/// A duration in the largest whole unit, like `3d 4h` or `12m`.
pub fn human_age(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn row_count(rule: &QualityRule, rows: u64, min: Option<u64>, max: Option<u64>, max_change_pct: Option<f64>, previous: Option<u64>) -> RuleResult {
    let mut problems = Vec::new();
    if let Some(min) = min
        && rows < min
    {
        problems.push(format!("{rows} rows, fewer than the minimum {min}"));
    }
    if let Some(max) = max
        && rows > max
    {
        problems.push(format!("{rows} rows, more than the maximum {max}"));
    }
    let mut notes = Vec::new();
    if let Some(pct) = max_change_pct {
        match previous {
            Some(previous) => {
                let change = if previous == 0 {
                    if rows == 0 { 0.0 } else { f64::INFINITY }
                } else {
                    (rows as f64 - previous as f64) / previous as f64 * 100.0
                };
                let text = format!("{rows} rows against {previous} in the published version ({change:+.1} %, at most ±{pct} % allowed)");
                if change.abs() > pct {
                    problems.push(text);
                } else {
                    notes.push(text);
                }
            }
            None => notes.push(format!("{rows} rows; no published version to compare with yet")),
        }
    }
    if problems.is_empty() {
        let message = if notes.is_empty() { format!("{rows} rows") } else { notes.join("; ") };
        result(rule, RuleStatus::Passed, 0, rows, message)
    } else {
        result(rule, RuleStatus::Failed, 1, rows, problems.join("; "))
    }
}

async fn unique(ctx: &SessionContext, rule: &QualityRule, columns: &[String], rows: u64) -> RuleResult {
    let keys = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let present = columns.iter().map(|c| format!("{} IS NOT NULL", quote(c))).collect::<Vec<_>>().join(" AND ");
    let sql = format!(
        "SELECT count(*), COALESCE(sum(n), 0) FROM (SELECT count(*) AS n FROM {THIS} WHERE {present} GROUP BY {keys} HAVING count(*) > 1)"
    );
    match run(ctx, &sql).await {
        Ok(batches) => {
            let groups = scalar(&batches, 0).map(|v| count(&v)).unwrap_or(0);
            let involved = scalar(&batches, 1).map(|v| count(&v)).unwrap_or(0);
            let what = columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
            verdict(rule, involved, rows, format!("{groups} values of {what} occur more than once ({involved} rows)"))
        }
        Err(error) => result(rule, RuleStatus::Error, 0, rows, format!("the rule could not be evaluated: {error}")),
    }
}

async fn referential(ctx: &SessionContext, rule: &QualityRule, column: &str, references: &ProductId, references_column: &str, rows: u64) -> RuleResult {
    let sql = format!(
        "SELECT count(*), count(DISTINCT t.{c}) FROM {THIS} t WHERE t.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {r} x WHERE x.{rc} = t.{c})",
        c = quote(column),
        r = format!("{}.{}", quote(references.domain.as_str()), quote(references.name.as_str())),
        rc = quote(references_column)
    );
    match run(ctx, &sql).await {
        Ok(batches) => {
            let failing = scalar(&batches, 0).map(|v| count(&v)).unwrap_or(0);
            let distinct = scalar(&batches, 1).map(|v| count(&v)).unwrap_or(0);
            verdict(rule, failing, rows, format!("{failing} rows ({distinct} distinct values) of `{column}` are not in `{references}.{references_column}`"))
        }
        Err(error) if error.contains("not found") => {
            result(rule, RuleStatus::Error, 0, rows, format!("`{references}` is not published: {error}; apply it first"))
        }
        Err(error) => result(rule, RuleStatus::Error, 0, rows, format!("the rule could not be evaluated: {error}")),
    }
}

async fn assertion(ctx: &SessionContext, rule: &QualityRule, assert: &str, rows: u64) -> RuleResult {
    let batches = match run(ctx, assert).await {
        Ok(batches) => batches,
        Err(error) => return result(rule, RuleStatus::Error, 0, rows, format!("the assertion could not be evaluated: {error}")),
    };
    let returned: usize = batches.iter().map(|b| b.num_rows()).sum();
    let shape = "an assertion must return one boolean value, e.g. `SELECT count(*) = 0 FROM this WHERE …`";
    if returned != 1 || batches.iter().find(|b| b.num_rows() > 0).map(|b| b.num_columns()) != Some(1) {
        return result(rule, RuleStatus::Error, 0, rows, format!("the assertion returned {returned} rows; {shape}"));
    }
    match scalar(&batches, 0) {
        Ok(ScalarValue::Boolean(Some(true))) => result(rule, RuleStatus::Passed, 0, rows, "the assertion holds".into()),
        Ok(ScalarValue::Boolean(_)) => result(rule, RuleStatus::Failed, 1, rows, "the assertion returned false".into()),
        Ok(other) => result(rule, RuleStatus::Error, 0, rows, format!("the assertion returned {} `{other}`; {shape}", other.data_type())),
        Err(error) => result(rule, RuleStatus::Error, 0, rows, error),
    }
}

/// The outcome of a run: `failed` when an `error`-severity rule failed or could not be
/// evaluated, `warned` when only `warn` rules did, `passed` otherwise.
pub fn outcome(results: &[RuleResult]) -> RunOutcome {
    let broken = |r: &&RuleResult| r.status != RuleStatus::Passed;
    if results.iter().filter(broken).any(|r| r.severity == Severity::Error) {
        RunOutcome::Failed
    } else if results.iter().any(|r| r.status != RuleStatus::Passed) {
        RunOutcome::Warned
    } else {
        RunOutcome::Passed
    }
}


/// The rules of `run` of `severity` that did not pass, as lifecycle events list them.
pub fn failing_rules(run: &meshwork_catalog::QualityRun, severity: meshwork_core::descriptor::Severity) -> Vec<serde_json::Value> {
    run.results
        .iter()
        .filter(|r| r.status != meshwork_catalog::RuleStatus::Passed && r.severity == severity)
        .map(|r| serde_json::json!({ "rule": r.name, "kind": r.rule, "status": r.status, "failing": r.failing, "message": r.message }))
        .collect()
}
