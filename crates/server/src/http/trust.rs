//! The HTTP API of a product's trustworthiness: its quality runs and its service level
//! objectives.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::caller::Caller;
use super::error::ErrorBody;
use super::products::{Readable, readable_product};
use crate::error::ServeError;
use crate::gate::Gate;

/// Query parameters of the quality history.
#[derive(Deserialize, IntoParams)]
pub(super) struct QualityQuery {
    /// At most this many runs (default 10, at most 100).
    limit: Option<u32>,
}

/// A product's quality runs, newest first: outcome, timings and every rule's result, with up to
/// 10 sample failing rows per rule (masked by the product's access policy for non-owners).
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/quality",
    tag = "products",
    params(("product" = String, Path, description = "`domain.product`"), QualityQuery),
    responses((status = 200, description = "`{product, runs}`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody))
)]
pub(super) async fn product_quality(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
    Query(query): Query<QualityQuery>,
) -> Result<Json<serde_json::Value>, ServeError> {
    let Readable { record, descriptor, governance, .. } = readable_product(&gate, &who, &product).await?;
    let limit = query.limit.unwrap_or(10).clamp(1, 100);
    let runs = meshwork_query::quality_runs_for(gate.engine().catalog().as_ref(), &governance, &who.principal, &descriptor, limit).await?;
    Ok(Json(serde_json::json!({ "product": record.id.to_string(), "runs": runs })))
}

/// Query parameters of the SLO history.
#[derive(Deserialize, IntoParams)]
pub(super) struct SloQuery {
    /// Only evaluations at or after this RFC 3339 time (default: the SLO window).
    since: Option<String>,
    /// At most this many evaluations (default 500).
    limit: Option<u32>,
}

/// A product's service level objectives: the newest status of each (met, at_risk, violated)
/// with error budget left over the SLO window, and the evaluation history, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/slo",
    tag = "products",
    params(("product" = String, Path, description = "`domain.product`"), SloQuery),
    responses((status = 200, description = "`{product, declared, objectives, history}`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody))
)]
pub(super) async fn product_slo(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
    Query(query): Query<SloQuery>,
) -> Result<Json<serde_json::Value>, ServeError> {
    let Readable { record, descriptor, .. } = readable_product(&gate, &who, &product).await?;
    let catalog = gate.engine().catalog();
    let window = descriptor.slo.as_ref().map(|s| s.window.seconds).unwrap_or(meshwork_core::descriptor::DEFAULT_SLO_WINDOW.seconds);
    let since = match query.since {
        Some(since) => meshwork_catalog::time::parse(&since)
            .map_err(|_| ServeError::BadRequest(format!("`since={since}` is not an RFC 3339 time like `2026-11-01T00:00:00Z`")))?,
        None => chrono::Utc::now() - chrono::Duration::seconds(window as i64),
    };
    let latest = catalog.latest_slo_checks(&record.id).await?;
    let history = catalog.slo_checks(&record.id, since, query.limit.unwrap_or(500).clamp(1, 10_000)).await?;
    Ok(Json(serde_json::json!({
        "product": record.id.to_string(),
        "declared": descriptor.slo,
        "objectives": latest,
        "history": history,
    })))
}
