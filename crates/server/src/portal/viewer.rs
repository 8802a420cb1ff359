//! Who is looking: the signed-in principal of a portal request, from its session cookie,
//! re-authenticated on every request, with the CSRF check of state-changing requests.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use meshwork_auth::Identity;
use sha2::{Digest, Sha256};

use super::error::PortalError;
use super::security::{SubmittedCsrf, changes_state};
use crate::gate::Gate;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "meshwork_session";

/// The signed-in viewer of a page or fragment. Taking it as an argument is what authorises a
/// handler: without a valid session the request goes to sign-in, and a state-changing request
/// without this session's CSRF token is refused with 403 before the handler runs.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The principal, as its credential says now.
    pub identity: Identity,
    /// This session's CSRF token, for forms (`layout::csrf_field`) and htmx (a meta tag).
    pub csrf: String,
    /// The hash of the session id: the session's key in the catalog.
    pub(crate) session: String,
}

impl FromRequestParts<Arc<Gate>> for Viewer {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, gate: &Arc<Gate>) -> Result<Viewer, PortalError> {
        let sign_in = || PortalError::SignIn { next: return_address(parts), htmx: parts.headers.contains_key("hx-request") };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(sign_in()) };
        let session = session_hash(&id);
        let catalog = gate.engine().catalog();
        let Some(stored) = catalog.portal_session(&session, chrono::Utc::now()).await? else { return Err(sign_in()) };
        let identity = match gate.resume(&stored).await {
            Ok(identity) => identity,
            Err(crate::error::ServeError::Unauthenticated(reason)) => {
                // The credential no longer holds (revoked, expired, principal removed): the
                // session ends here.
                tracing::info!(principal = %stored.principal, %reason, "portal session ended: its credential no longer holds");
                catalog.close_portal_session(&session).await?;
                return Err(sign_in());
            }
            Err(other) => return Err(other.into()),
        };
        let csrf = csrf_token(&id);
        if changes_state(&parts.method) {
            let submitted = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| parts.extensions.get::<SubmittedCsrf>().map(|s| s.0.clone()));
            let valid = submitted.is_some_and(|s| constant_time_eq(s.as_bytes(), csrf.as_bytes()));
            if !valid {
                return Err(PortalError::Forbidden("the form's security token is missing or out of date; reload the page and try again".into()));
            }
        }
        Ok(Viewer { identity, csrf, session })
    }
}

/// Where to come back to after signing in: this page (for a page load) or the page the
/// fragment was requested from.
fn return_address(parts: &Parts) -> String {
    if parts.method == axum::http::Method::GET && !parts.headers.contains_key("hx-request") {
        return parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    }
    // htmx names the page it runs in; only its path is kept.
    parts
        .headers
        .get("hx-current-url")
        .and_then(|v| v.to_str().ok())
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        })
        .unwrap_or_else(|| "/".into())
}

/// `next` if it is an address on this site (a path), `/` otherwise: sign-in never sends anyone
/// elsewhere.
pub(crate) fn same_site(next: &str) -> &str {
    let plain = next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") && !next.chars().any(|c| c.is_control() || c == '\\');
    if plain { next } else { "/" }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// The key of a session in the catalog: SHA-256 of its id, so the catalog never holds a usable id.
pub(crate) fn session_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// A session's CSRF token: an HMAC keyed by the session id, so only a page of the session
/// knows it, every replica computes the same, and it ends with the session.
pub(crate) fn csrf_token(id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(id.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"meshwork portal csrf v1");
    hex::encode(mac.finalize().into_bytes())
}

/// Compares without stopping at the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
