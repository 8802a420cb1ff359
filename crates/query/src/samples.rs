//! Quality samples (rows kept outside a product's table) shown through the product's policy.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use meshwork_catalog::CatalogStore;
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::principal::Principal;

use crate::QueryError;
use crate::governance::{Governance, is_owner};
use crate::guard::ProductGuard;

/// Rows of a product kept outside its table (quality samples, as JSON objects) as `principal`
/// may see them: as stored for owners; otherwise through the same row filter and masks a query
/// of the product applies, so a sample never shows what a query would hide. `None` when the
/// principal may not read the product at all.
pub async fn govern_samples(
    governance: &Governance,
    principal: &Principal,
    product: &ProductDescriptor,
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> Result<Option<Vec<serde_json::Map<String, serde_json::Value>>>, QueryError> {
    let decision = governance.decide(principal, product);
    if !decision.allowed {
        return Ok(None);
    }
    if decision.aggregate.is_some() {
        // A sample is rows; an aggregate-only reader sees none.
        return Ok(Some(Vec::new()));
    }
    if rows.is_empty() || is_owner(principal, product) {
        return Ok(Some(rows.to_vec()));
    }
    let schema = meshwork_storage::contract_schema(&product.contract);
    let mut ndjson = Vec::new();
    for row in rows {
        serde_json::to_writer(&mut ndjson, row).expect("json values serialize");
        ndjson.push(b'\n');
    }
    let internal = |e: &dyn std::fmt::Display| {
        QueryError::Internal(format!("quality samples of `{}`: {e}", product.id()))
    };
    let reader = datafusion::arrow::json::ReaderBuilder::new(schema.clone())
        .build(std::io::Cursor::new(ndjson))
        .map_err(|e| internal(&e))?;
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(|e| internal(&e))?;
    let ctx = SessionContext::new();
    // A policy that cannot be enforced on the samples hides them, as it denies a query.
    let Ok(guard) = ProductGuard::build(
        &ctx.state(),
        &schema,
        &decision,
        principal,
        &governance.salt,
    ) else {
        return Ok(None);
    };
    let mut frame = ctx.read_batches(batches).map_err(|e| internal(&e))?;
    if let Some(filter) = guard.filter {
        frame = frame.filter(filter).map_err(|e| internal(&e))?;
    }
    let columns: Vec<datafusion::logical_expr::Expr> = schema
        .fields()
        .iter()
        .map(|f| match guard.masks.get(f.name()) {
            Some(mask) => mask.clone().alias(f.name()),
            None => datafusion::prelude::col(datafusion::common::Column::new_unqualified(f.name())),
        })
        .collect();
    let batches = frame
        .select(columns)
        .map_err(|e| internal(&e))?
        .collect()
        .await
        .map_err(|e| internal(&e))?;
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for batch in &batches {
        writer.write(batch).map_err(|e| internal(&e))?;
    }
    writer.finish().map_err(|e| internal(&e))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Some(Vec::new()));
    }
    Ok(Some(
        serde_json::from_slice(&bytes).map_err(|e| internal(&e))?,
    ))
}

/// A product's quality runs, newest first, as `principal` may see them: samples pass through
/// [`govern_samples`].
pub async fn quality_runs_for(
    catalog: &dyn CatalogStore,
    governance: &Governance,
    principal: &Principal,
    product: &ProductDescriptor,
    limit: u32,
) -> Result<Vec<meshwork_catalog::QualityRun>, QueryError> {
    let mut runs = catalog.quality_runs(&product.id(), limit).await?;
    for run in &mut runs {
        for rule in &mut run.results {
            rule.samples = govern_samples(governance, principal, product, &rule.samples)
                .await?
                .unwrap_or_default();
        }
    }
    Ok(runs)
}
