//! The portal's static files, embedded in the binary and served from `/assets/` with a year of
//! caching: their addresses carry a hash of their content, so a new build is fetched at once.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::PortalError;

/// One embedded file.
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
    /// The first 12 hex digits of the content's SHA-256.
    version: String,
}

const FILES: [(&str, &str, &[u8]); 5] = [
    ("portal.css", "text/css; charset=utf-8", include_bytes!("assets/portal.css")),
    ("pages.css", "text/css; charset=utf-8", include_bytes!("assets/pages.css")),
    ("portal.js", "text/javascript; charset=utf-8", include_bytes!("assets/portal.js")),
    ("htmx.min.js", "text/javascript; charset=utf-8", include_bytes!("assets/htmx.min.js")),
    ("htmx-LICENSE", "text/plain; charset=utf-8", include_bytes!("assets/htmx-LICENSE")),
];

static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, content_type, bytes)| (*name, Asset { content_type, bytes, version: hex::encode(&Sha256::digest(bytes)[..6]) }))
        .collect()
});

/// The address of the embedded file `name`, with its content version, e.g.
/// `/assets/portal.css?v=1a2b3c4d5e6f`. Panics for a name that is not embedded (a bug caught by
/// every page test).
pub(crate) fn url(name: &str) -> String {
    let asset = ASSETS.get(name).unwrap_or_else(|| panic!("no embedded asset `{name}`"));
    format!("/assets/{name}?v={}", asset.version)
}

/// `GET /assets/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Result<Response, PortalError> {
    let asset = ASSETS.get(file.as_str()).ok_or_else(PortalError::not_found)?;
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Safe to cache for long: pages name each file with its content version.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", asset.version)) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}
