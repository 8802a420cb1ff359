//! The portal's security layer: headers on every response, and for every state-changing request
//! a same-origin check and the CSRF token of a form body read out for [`super::viewer::Viewer`].

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::PortalError;

/// The Content-Security-Policy of every portal response: nothing inline, nothing from elsewhere,
/// no framing.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The largest form body read (a 1 MiB statement, percent-encoded, and the other fields).
const MAX_FORM_BYTES: usize = 4 << 20;

/// The `csrf` field of a state-changing request's form body, for the viewer extractor.
#[derive(Debug, Clone)]
pub(crate) struct SubmittedCsrf(pub(crate) String);

/// Whether a method changes state (and so needs the CSRF token).
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub(super) async fn guard(request: Request, next: Next) -> Response {
    let mut response = match checked(request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    };
    secure_headers(response.headers_mut());
    response
}

/// Refuses a cross-site state-changing request and reads the CSRF field of a form body.
async fn checked(request: Request) -> Result<Request, PortalError> {
    if !changes_state(request.method()) {
        return Ok(request);
    }
    if !same_origin(request.headers()) {
        return Err(PortalError::Forbidden("this request came from another site; the portal accepts changes only from its own pages".into()));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| PortalError::BadRequest(format!("the form is larger than {} MiB", MAX_FORM_BYTES >> 20)))?;
    if let Some((_, token)) = url::form_urlencoded::parse(&bytes).find(|(key, _)| key == "csrf") {
        parts.extensions.insert(SubmittedCsrf(token.into_owned()));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// `Sec-Fetch-Site` (sent by current browsers) must say same-origin or a user's own navigation;
/// an `Origin` must name this host. A request with neither (not from a browser) passes to the
/// CSRF token check.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let Ok(origin) = origin.to_str() else { return false };
    match url::Url::parse(origin) {
        Ok(url) => {
            let origin_host = match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                (None, _) => return false,
            };
            origin_host.eq_ignore_ascii_case(host) || origin_host.eq_ignore_ascii_case(host.trim_end_matches(":80").trim_end_matches(":443"))
        }
        // `Origin: null` (sandboxed frames, some redirects) is never this site.
        Err(_) => false,
    }
}

/// The headers of every portal response. HTML is never cached (it shows one viewer's data);
/// assets set their own long cache.
fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
