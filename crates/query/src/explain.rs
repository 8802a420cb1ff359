//! EXPLAIN for non-admins: the plan above each policy fence is shown, the subtree below it is
//! not, since it holds row-filter literals, mask expressions, storage paths and the row counts
//! before filtering.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;

/// Redacts every text column of EXPLAIN output.
pub(crate) fn redact(batches: Vec<RecordBatch>, locations: &[String]) -> Result<Vec<RecordBatch>> {
    batches
        .into_iter()
        .map(|batch| {
            let columns = batch
                .columns()
                .iter()
                .map(|column| {
                    if !matches!(column.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) {
                        return Ok(column.clone());
                    }
                    let text = cast(column, &DataType::Utf8)?;
                    let strings = text.as_string::<i32>();
                    let redacted: StringArray = (0..strings.len())
                        .map(|i| (!strings.is_null(i)).then(|| redact_plan(strings.value(i), locations)))
                        .collect();
                    let redacted: ArrayRef = Arc::new(redacted);
                    Ok(cast(&redacted, column.data_type())?)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(RecordBatch::try_new(batch.schema(), columns)?)
        })
        .collect()
}

/// Drops the lines indented below a fence line, removes file listings, and replaces table
/// locations.
pub(crate) fn redact_plan(plan: &str, locations: &[String]) -> String {
    let mut out = Vec::new();
    let mut hidden_below: Option<usize> = None;
    for line in plan.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(fence_indent) = hidden_below {
            if indent > fence_indent && !line.trim().is_empty() {
                continue;
            }
            hidden_below = None;
        }
        if line.trim_start().starts_with("PolicyFence") {
            hidden_below = Some(indent);
            out.push(format!("{line} [restricted: details hidden]"));
            continue;
        }
        let mut line = strip_file_groups(line);
        for location in locations {
            line = line.replace(location.as_str(), "<storage>");
        }
        out.push(line);
    }
    out.join("\n")
}

fn strip_file_groups(line: &str) -> String {
    let Some(start) = line.find("file_groups={") else { return line.to_owned() };
    let mut depth = 0usize;
    let mut end = line.len();
    for (i, c) in line[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    format!("{}file_groups=<hidden>{}", &line[..start], &line[end..])
}

#[cfg(test)]
mod tests {
    use super::redact_plan;

    #[test]
    fn hides_everything_below_a_fence() {
        let plan = "Projection: a\n  Filter: x > 1\n    PolicyFence: product=sales.orders\n      Filter: region = 'EU'\n        TableScan: sales.orders\n  TableScan: other";
        assert_eq!(
            redact_plan(plan, &[]),
            "Projection: a\n  Filter: x > 1\n    PolicyFence: product=sales.orders [restricted: details hidden]\n  TableScan: other"
        );
    }

    #[test]
    fn hides_file_listings_and_locations() {
        let line = "DataSourceExec: file_groups={1 group: [[/data/sales/x/part-0.parquet]]}, projection=[a], file_type=parquet";
        assert_eq!(redact_plan(line, &[]), "DataSourceExec: file_groups=<hidden>, projection=[a], file_type=parquet");
        assert_eq!(redact_plan("scan file:///data/sales/x/", &["file:///data/sales/x/".into()]), "scan <storage>");
    }
}
