//! The shell every portal page shares: head, header with navigation and the signed-in
//! principal, the `<main>` landmark, footer.

use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::viewer::Viewer;

/// The navigation entry a page belongs to (marked `aria-current="page"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    /// `/`: catalog search.
    Search,
    /// `/domains`.
    Domains,
    /// `/governance`.
    Governance,
    /// `/console`: the SQL console.
    Console,
    /// `/access`: access requests.
    Access,
    /// No entry (sign-in, errors).
    None,
}

const ENTRIES: [(Nav, &str, &str); 5] = [
    (Nav::Search, "/", "Search"),
    (Nav::Domains, "/domains", "Domains"),
    (Nav::Governance, "/governance", "Governance"),
    (Nav::Access, "/access", "Access"),
    (Nav::Console, "/console", "SQL console"),
];

/// htmx settings: no inline indicator styles (the CSP forbids inline styles), no `eval`, and
/// error responses swapped like others (the portal's error fragments are meant to be shown).
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"responseHandling":[{"code":"204","swap":false},{"code":"[2345]..","swap":true}]}"#;

/// A whole page: `title` in the document title and header, `body` inside `<main>`.
pub(crate) fn page(title: &str, viewer: Option<&Viewer>, nav: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                @if let Some(viewer) = viewer {
                    meta name="csrf-token" content=(viewer.csrf);
                }
                title { (title) " · Meshwork" }
                // No icon to fetch (and no 404 for `/favicon.ico` in every browser log).
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::url("portal.css"));
                link rel="stylesheet" href=(assets::url("pages.css"));
                script src=(assets::url("htmx.min.js")) defer {}
                script src=(assets::url("portal.js")) defer {}
            }
            body {
                a .skip href="#main" { "Skip to content" }
                header .site-header {
                    a .brand href="/" { "Meshwork" }
                    @if viewer.is_some() {
                        nav .site-nav aria-label="Main" {
                            ul {
                                @for (entry, href, label) in ENTRIES {
                                    li {
                                        @if entry == nav {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(viewer) = viewer {
                        div .who {
                            span { "Signed in as " strong { (viewer.identity.principal.name) } }
                            form method="post" action="/signout" {
                                (csrf_field(viewer))
                                button .secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (body)
                }
                footer .site-footer {
                    p { "Meshwork data mesh portal · " a href="/docs" { "API documentation" } }
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}
