//! The HTTP API of SQL: one statement run as the caller, its result streamed in the format the
//! `Accept` header asks for.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::INTERFACE;
use super::caller::Caller;
use super::deprecation::{DeprecationInfo, deprecation_headers};
use super::encode::{ResultFormat, encode};
use super::error::ErrorBody;
use super::products::ColumnInfo;
use crate::error::ServeError;
use crate::gate::Gate;

/// A SQL statement to run.
#[derive(Deserialize, ToSchema)]
pub(super) struct QueryRequest {
    /// One read-only SQL statement over `domain.product` tables.
    sql: String,
}

/// A JSON query result.
#[derive(Serialize, ToSchema)]
pub(super) struct QueryResultJson {
    /// Result columns with their Arrow types.
    columns: Vec<ColumnInfo>,
    /// Present when the statement read deprecated products: what their readers are told (the
    /// same warnings are in the `Meshwork-Deprecation` headers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deprecations: Vec<DeprecationInfo>,
    /// One object per row, column name → value.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<serde_json::Value>,
}

/// Runs SQL as the caller. The result format follows `Accept`: `application/json` (default),
/// `text/csv`, or `application/vnd.apache.arrow.stream`. Results stream as they are computed.
#[utoipa::path(
    post,
    path = "/api/v1/query",
    request_body = QueryRequest,
    responses(
        (status = 200, description = "The rows, in the format the `Accept` header asks for", content(
            (QueryResultJson = "application/json"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.apache.arrow.stream")
        )),
        (status = 400, description = "The statement cannot be parsed or is not allowed, or the body or `Accept` header is malformed", body = ErrorBody), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody),
        (status = 408, description = "The query ran past the server's time limit", body = ErrorBody), (status = 422, description = "The query needed more memory than the server allows a query", body = ErrorBody), (status = 429, description = "The caller already runs as many queries as it may at once", body = ErrorBody)
    )
)]
pub(super) async fn run_query(State(gate): State<Arc<Gate>>, Caller(who): Caller, headers: HeaderMap, body: Bytes) -> Result<Response, ServeError> {
    let request: QueryRequest = serde_json::from_slice(&body)
        .map_err(|e| ServeError::BadRequest(format!("the body must be JSON like {{\"sql\": \"SELECT 1\"}}: {e}")))?;
    let format = ResultFormat::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))?;
    let session = gate.session(&who.principal, INTERFACE).await?;
    let mut stream = gate.run(&session, INTERFACE, &request.sql, None).await?.holding(session);
    stream.prime().await?;
    let content_type = format.content_type();
    let deprecations: Vec<DeprecationInfo> = stream.deprecations().iter().map(DeprecationInfo::from).collect();
    let privacy = stream.privacy().to_vec();
    let mut response = Body::from_stream(encode(stream, format, deprecations.clone())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    deprecation_headers(headers, &deprecations);
    // Differentially private answers say what they cost, one header per product.
    for spent in &privacy {
        if let Ok(value) = HeaderValue::from_str(&spent.header()) {
            headers.append("meshwork-privacy", value);
        }
    }
    Ok(response)
}
