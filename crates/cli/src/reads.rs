//! Rendering of what products read of other products as their domain: the `validate` table of
//! cross-domain reads and the `plan` list of reads whose outcome changes.

use meshwork_pipeline::upstream::{InputAccess, ReadOutcome};
use meshwork_pipeline::{PlanItem, ReadChange};

use crate::output::text_table;

/// The reads of other domains' products, one row each, for `validate`.
pub fn input_access_text(access: &[InputAccess]) -> String {
    if access.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = access
        .iter()
        .map(|a| {
            vec![
                a.consumer.to_string(),
                a.upstream.to_string(),
                a.purpose.to_string(),
                a.outcome.describe(),
            ]
        })
        .collect();
    format!(
        "reads of other products, as the reading product's domain:\n{}",
        text_table(&["PRODUCT", "READS", "FOR", "GETS"], &rows)
    )
}

/// One read outcome as JSON: `{outcome, reasons?, aggregate_only?, row_filters?, masks?}`.
fn outcome_json(outcome: &ReadOutcome) -> serde_json::Value {
    match outcome {
        ReadOutcome::Refused { reasons } => {
            serde_json::json!({ "outcome": "refused", "reasons": reasons })
        }
        ReadOutcome::Full => serde_json::json!({ "outcome": "full" }),
        ReadOutcome::Restricted { row_filters, masks, aggregate } => serde_json::json!({
            "outcome": "restricted",
            "aggregate_only": aggregate,
            "row_filters": row_filters,
            "masks": masks.iter().map(|(c, m)| (c.clone(), serde_json::json!(m.kind()))).collect::<serde_json::Map<_, _>>(),
        }),
    }
}

/// The reads of other domains' products as JSON, for `validate --format json`.
pub fn input_access_json(access: &[InputAccess]) -> serde_json::Value {
    access
        .iter()
        .map(|a| {
            let mut value = outcome_json(&a.outcome);
            value["product"] = serde_json::json!(a.consumer.to_string());
            value["upstream"] = serde_json::json!(a.upstream.to_string());
            value["read"] = serde_json::json!(a.purpose.to_string());
            value["field"] = serde_json::json!(a.purpose.field());
            value
        })
        .collect()
}

/// The products whose upstream reads change with this apply, for `plan`.
pub fn read_changes_text(plan: &[PlanItem]) -> String {
    let mut out = String::new();
    for item in plan.iter().filter(|i| !i.read_changes.is_empty()) {
        out.push_str(&format!(
            "\n{} will be built from other data:\n",
            item.product
        ));
        for change in &item.read_changes {
            out.push_str(&format!(
                "  {} ({}): was {}; now {}\n",
                change.upstream,
                change.purpose,
                change.before.describe(),
                change.after.describe()
            ));
        }
    }
    out
}

/// One product's read changes as JSON.
pub fn read_changes_json(changes: &[ReadChange]) -> serde_json::Value {
    changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "upstream": c.upstream.to_string(),
                "read": c.purpose.to_string(),
                "before": outcome_json(&c.before),
                "after": outcome_json(&c.after),
            })
        })
        .collect()
}
