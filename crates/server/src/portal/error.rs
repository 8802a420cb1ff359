//! Errors of portal handlers, rendered as an error page with the status that fits.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{self, Nav};
use crate::error::ServeError;

/// Why a portal request failed. Products the viewer may not read are [`PortalError::NotFound`],
/// exactly like missing ones.
#[derive(Debug)]
pub(crate) enum PortalError {
    /// Nothing here, or nothing the viewer may see.
    NotFound,
    /// Refused: a state-changing request without a valid CSRF token or from another site, or an
    /// action reserved for someone else. The message says which.
    Forbidden(String),
    /// The request is malformed; the message names the part and the fix.
    BadRequest(String),
    /// No (valid) session: sign in first, then come back to `next`.
    SignIn {
        /// The same-site address to return to.
        next: String,
        /// An htmx request: answered with `HX-Redirect`, so the whole page goes to sign-in.
        htmx: bool,
    },
    /// Anything else from the layers below.
    Serve(ServeError),
}

impl PortalError {
    /// The one "not found" answer, for missing and hidden things alike.
    pub(crate) fn not_found() -> PortalError {
        PortalError::NotFound
    }

    fn status(&self) -> StatusCode {
        match self {
            PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::Forbidden(_) => StatusCode::FORBIDDEN,
            PortalError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PortalError::SignIn { .. } => StatusCode::UNAUTHORIZED,
            PortalError::Serve(error) => status_of(error),
        }
    }
}

/// The HTTP status of a server error: its code's row in [`crate::error::wire`].
pub(crate) fn status_of(error: &ServeError) -> StatusCode {
    error.wire().http
}

impl From<ServeError> for PortalError {
    fn from(error: ServeError) -> Self {
        match error.code() {
            // One page for missing and hidden things, whatever the layer below said.
            meshwork_query::ErrorCode::NotFound => PortalError::NotFound,
            _ => PortalError::Serve(error),
        }
    }
}

impl From<meshwork_catalog::CatalogError> for PortalError {
    fn from(error: meshwork_catalog::CatalogError) -> Self {
        PortalError::Serve(error.into())
    }
}

impl From<meshwork_query::QueryError> for PortalError {
    fn from(error: meshwork_query::QueryError) -> Self {
        ServeError::from(error).into()
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        if let PortalError::SignIn { next, htmx } = &self {
            let target = format!("/signin?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
            if *htmx {
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                if let Ok(value) = HeaderValue::from_str(&target) {
                    response.headers_mut().insert("hx-redirect", value);
                }
                return response;
            }
            return Redirect::to(&target).into_response();
        }
        let status = self.status();
        let (title, message) = match &self {
            PortalError::NotFound => ("Not found".to_owned(), "There is nothing here, or nothing you may see. Products you cannot read look exactly like products that do not exist.".to_owned()),
            PortalError::Forbidden(message) => ("Not allowed".to_owned(), message.clone()),
            PortalError::BadRequest(message) => ("Bad request".to_owned(), message.clone()),
            PortalError::SignIn { .. } => unreachable!("answered above"),
            PortalError::Serve(error) => {
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(%error, "portal request failed");
                }
                (status.canonical_reason().unwrap_or("Error").to_owned(), error.client_message())
            }
        };
        let body = html! {
            div #problem .banner.error role="alert" {
                h1 { (title) }
                p { (message) }
                p { a href="/" { "Back to search" } }
            }
        };
        let mut response = (status, layout::page(&title, None, Nav::None, body)).into_response();
        // An htmx request swaps only the problem into its target, not a whole page.
        response.headers_mut().insert("hx-reselect", HeaderValue::from_static("#problem"));
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
