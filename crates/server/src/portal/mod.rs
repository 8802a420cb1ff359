//! The web portal: server-rendered HTML pages (maud) on the HTTP port, over the same [`Gate`] and
//! policy path as every other interface, with a little progressive enhancement (htmx, vendored).
//!
//! Contract between the portal's modules (other pages build on these names):
//! - [`router`]`() -> Router<Arc<Gate>>`, merged into the HTTP router by one line in
//!   `http.rs` (before its request-id layer and `with_state`). Routes: `/` (search home), `/signin`, `/signin/oidc`, `/signin/oidc/callback`,
//!   `/signout`, `/console` (+ `/console/run`, `/console/cancel`, `/console/download`) and
//!   `/assets/{file}`. Page modules add theirs here: `/products/{id}`, `/domains`,
//!   `/domains/{d}`, `/governance`, and `access`'s `/access`, `/products/{id}/access-requests`,
//!   `/access/requests/{id}/{approve,deny,withdraw}` and `/access/grants/{id}/revoke`.
//! - `viewer::Viewer { identity, csrf, .. }`: the axum extractor every page and fragment handler
//!   takes (`FromRequestParts<Arc<Gate>>`). Without a session it redirects to
//!   `/signin?next=…`; on a state-changing request it has already checked the CSRF token (form
//!   field `csrf` or header `X-CSRF-Token`), so a handler never checks it again.
//! - `layout::page(title, Some(&viewer), Nav::…, body) -> Markup` wraps a page body in the shell
//!   (header, navigation, `<main>`, footer, stylesheets and scripts); `layout::Nav` is
//!   `Search | Domains | Governance | Console | Access | None`. `layout::csrf_field(&viewer)`
//!   is the hidden input every `<form method="post">` carries.
//! - `error::PortalError` is the error type of every handler: `PortalError::not_found()` is the
//!   one "not found" page, for a missing product and a hidden one alike; `From<ServeError>`.
//! - `assets::url("pages.css")` is the versioned address of an embedded asset. Page styles go in
//!   `assets/pages.css` (loaded on every page); no `style=` attributes or inline scripts (CSP).
//!
//! Safety (see `docs/portal.md`, "Security model"): sessions live in the catalog (only a hash of
//! their id), every request re-authenticates the session's credential, every state-changing
//! request needs the CSRF token and a same-origin `Origin`/`Sec-Fetch-Site`, and every response
//! carries a strict Content-Security-Policy and framing, sniffing and referrer headers.

mod access;
mod assets;
mod chart;
mod connect;
mod console;
mod domains;
mod error;
mod governance;
mod graph;
mod layout;
mod link;
mod oidc;
mod product;
mod search;
mod sections;
mod security;
mod session;
mod viewer;

pub use link::{LINK_TTL, SignInLinks};

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::gate::Gate;

/// The portal's routes, with its security layer (headers, same-origin check, CSRF form field).
pub(crate) fn router() -> Router<Arc<Gate>> {
    Router::new()
        .route("/", get(search::home))
        .route("/signin", get(session::signin_page).post(session::signin))
        .route("/signin/link", get(link::follow))
        .route("/signin/oidc", get(oidc::start))
        .route("/signin/oidc/callback", get(oidc::callback))
        .route("/signout", post(session::signout))
        .route("/console", get(console::page).post(console::run))
        .route("/console/run", post(console::run))
        .route("/console/cancel", post(console::cancel))
        .route("/console/download", post(console::download))
        .route("/assets/{file}", get(assets::serve))
        .merge(product::routes())
        .merge(domains::routes())
        .merge(governance::routes())
        .merge(access::routes())
        .layer(axum::Extension(Arc::new(console::Running::default())))
        .layer(axum::middleware::from_fn(security::guard))
}
