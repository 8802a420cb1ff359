//! How a result that read deprecated products tells its HTTP client: the `Meshwork-Deprecation`,
//! `Sunset` and `Link` headers, the JSON `deprecations` field, and the Arrow schema metadata
//! key (the same one Flight SQL uses).

use axum::http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The result-schema metadata key carrying the warnings, one per line (HTTP Arrow results and
/// Flight SQL alike).
pub(crate) const METADATA: &str = "meshwork.deprecation";

/// A deprecated product a statement read: what its readers are told, on every interface.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct DeprecationInfo {
    /// The deprecated product, `domain.product`.
    product: String,
    /// The first day it is no longer served (`YYYY-MM-DD`), if set.
    sunset: Option<String>,
    /// The product to move to, if named.
    successor: Option<String>,
    /// The warning, as the CLI and the Postgres wire print it.
    pub(crate) message: String,
}

impl From<&meshwork_core::lifecycle::Deprecation> for DeprecationInfo {
    fn from(d: &meshwork_core::lifecycle::Deprecation) -> Self {
        DeprecationInfo {
            product: d.product.to_string(),
            sunset: d.sunset.map(|s| s.to_string()),
            successor: d.successor.as_ref().map(ToString::to_string),
            message: d.warning(),
        }
    }
}

/// The response headers of a result that read deprecated products: `Meshwork-Deprecation`
/// (the warning, one per product), `Sunset` (RFC 8594, the earliest sunset date) and a
/// `Link` to each successor with `rel="successor-version"`.
pub(crate) fn deprecation_headers(headers: &mut HeaderMap, deprecations: &[DeprecationInfo]) {
    for d in deprecations {
        if let Ok(value) = HeaderValue::from_str(&d.message) {
            headers.append("meshwork-deprecation", value);
        }
        if let Some(successor) = &d.successor
            && let Ok(value) = HeaderValue::from_str(&format!("</api/v1/products/{successor}>; rel=\"successor-version\""))
        {
            headers.append(header::LINK, value);
        }
    }
    let earliest = deprecations.iter().filter_map(|d| d.sunset.as_deref()).filter_map(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()).min();
    if let Some(day) = earliest
        && let Ok(value) = HeaderValue::from_str(&day.and_time(chrono::NaiveTime::MIN).and_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        headers.insert("sunset", value);
    }
}

