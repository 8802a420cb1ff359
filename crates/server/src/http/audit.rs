//! The HTTP API of the audit log, for administrators.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use meshwork_catalog::AuditFilter;
use meshwork_core::id::ProductId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::ErrorBody;
use crate::error::ServeError;
use crate::gate::Gate;

/// Audit filters.
#[derive(Deserialize, IntoParams)]
pub(super) struct AuditQuery {
    /// Only events touching this product (`domain.product`).
    product: Option<String>,
    /// Only events of this principal.
    principal: Option<String>,
    /// Only events at or after this RFC 3339 time.
    since: Option<String>,
    /// At most this many, newest first (default 100).
    limit: Option<u32>,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditEventInfo {
    id: i64,
    at: String,
    principal: String,
    interface: String,
    action: String,
    statement: String,
    #[schema(value_type = Vec<Object>)]
    products: serde_json::Value,
    rows: Option<u64>,
    duration_ms: f64,
    /// `ok`, `error`, `denied`, `cancelled`, `refused` (over the concurrency limit), or `running`.
    outcome: String,
    error: Option<String>,
}

/// The audit log, newest first. Administrators only.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses((status = 200, description = "Audit events, newest first", body = [AuditEventInfo]), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 403, description = "The caller is not an administrator", body = ErrorBody)))]
pub(super) async fn audit_events(State(gate): State<Arc<Gate>>, Caller(who): Caller, Query(query): Query<AuditQuery>) -> Result<Json<Vec<AuditEventInfo>>, ServeError> {
    if !who.principal.admin {
        return Err(ServeError::Forbidden(format!("the audit log is reserved for administrators; `{}` is not one", who.principal.name)));
    }
    let product = query
        .product
        .as_deref()
        .map(|p| p.parse::<ProductId>().map_err(|e| ServeError::BadRequest(format!("`product={p}`: {e}"))))
        .transpose()?;
    let since = query
        .since
        .as_deref()
        .map(|since| meshwork_catalog::time::parse(since).map_err(|_| ServeError::BadRequest(format!("`since={since}` is not an RFC 3339 time like `2026-11-01T00:00:00Z`"))))
        .transpose()?;
    let events = gate.engine().catalog().audit(&AuditFilter { product, principal: query.principal, since, limit: Some(query.limit.unwrap_or(100)) }).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| AuditEventInfo {
                id: e.id,
                at: meshwork_catalog::time::format(&e.at),
                principal: e.principal,
                interface: e.interface,
                action: e.action,
                statement: e.statement,
                products: serde_json::to_value(&e.products).unwrap_or_default(),
                rows: e.rows,
                duration_ms: e.duration_ms,
                outcome: e.outcome.to_string(),
                error: e.error,
            })
            .collect(),
    ))
}
