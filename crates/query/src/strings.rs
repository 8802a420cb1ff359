//! Result columns leave as plain `Utf8` strings, whatever string type the scans used.

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;

/// Products are scanned with string views, which are faster to filter, join and group; results
/// leave as plain `Utf8` strings, the type every client and wire encoder knows. Only the output
/// columns are cast, after everything else ran on views. Statements whose output cannot be
/// re-projected (EXPLAIN) are left as they are.
pub(crate) fn plain_strings(frame: DataFrame) -> DataFrame {
    use datafusion::logical_expr::{Expr, cast};
    let schema = frame.schema().clone();
    if matches!(
        frame.logical_plan(),
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
    ) || !schema
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Utf8View)
    {
        return frame;
    }
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::from((qualifier, field)));
            if field.data_type() == &DataType::Utf8View {
                cast(column, DataType::Utf8).alias_qualified(qualifier.cloned(), field.name())
            } else {
                column
            }
        })
        .collect();
    frame.clone().select(columns).unwrap_or(frame)
}
