//! How the HTTP API answers a failure: `{"error": {"code", "message", "request_id"}}` with the
//! status of the code's row in [`crate::error::wire`].
//!
//! Handlers and extractors return [`ServeError`] directly (`?` converts query and catalog
//! errors). The response they make carries the code and message as an extension; the request-id
//! middleware writes the body, because only it knows the request id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ServeError;

/// Error body.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorInfo,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorInfo {
    /// Stable code: `unauthenticated`, `unknown_principal`, `forbidden`, `not_found`, `bad_request`, `invalid_query`, `too_many_queries`, `timeout`, `resources_exhausted`, `internal`.
    code: String,
    /// What happened and how to fix it.
    message: String,
    /// Quote this when reporting a problem.
    request_id: String,
}

/// A failure answered but not yet written: the middleware adds the request id.
#[derive(Debug, Clone)]
pub(crate) struct PendingError {
    code: meshwork_query::ErrorCode,
    message: String,
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = self.wire().http;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Inside the request's span, so the log line carries the request id.
            tracing::error!(error = %self, "request failed");
        }
        let mut response = status.into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(PendingError { code: self.code(), message: self.client_message() });
        response
    }
}

/// `response` with the JSON error body written, when a handler answered with a [`ServeError`].
pub(super) fn with_error_body(response: Response, request_id: &str) -> Response {
    let Some(pending) = response.extensions().get::<PendingError>().cloned() else { return response };
    let (mut parts, _) = response.into_parts();
    let body = ErrorBody { error: ErrorInfo { code: pending.code.as_str().into(), message: pending.message, request_id: request_id.into() } };
    let json = Json(body).into_response();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, json.into_body())
}
