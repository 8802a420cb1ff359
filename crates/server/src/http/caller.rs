//! The caller of an API request: its bearer credential authenticated once, by one extractor,
//! for every handler.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use meshwork_auth::{AuthError, Credential, Identity};

use super::INTERFACE;
use crate::error::ServeError;
use crate::gate::Gate;

/// The authenticated caller. A handler that takes it answers 401 to a missing, malformed,
/// invalid, revoked or expired credential before it runs.
pub(crate) struct Caller(pub(crate) Identity);

impl FromRequestParts<Arc<Gate>> for Caller {
    type Rejection = ServeError;

    async fn from_request_parts(parts: &mut Parts, gate: &Arc<Gate>) -> Result<Caller, ServeError> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| ServeError::Unauthenticated(AuthError::Malformed))?),
        };
        Ok(Caller(gate.authenticate(Credential::from_authorization(header), INTERFACE).await?))
    }
}
