//! Access requests in the portal: the public card of a discoverable product the viewer cannot
//! read with its "Request access" form, and `/access` — the viewer's own requests and grants and,
//! for owners, the requests waiting for them and the grants of their products. Every step goes
//! through `meshwork_query`'s access module, as the CLI and the HTTP API do, so the same rules,
//! events and audit apply; this module only draws forms and answers.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};
use maud::{Markup, html};
use meshwork_catalog::{AccessRequest, AccessRequestFilter, AccessRequestId, AccessRequestStatus, Grant, GrantId};
use meshwork_core::principal::Principal;
use meshwork_query::{AccessAnswer, AccessAsk, ProductCard, QueryError, RevokeTarget, Visibility};

use super::error::PortalError;
use super::layout::{Nav, csrf_field, page};
use super::sections::when;
use super::viewer::{Viewer, same_site};
use crate::gate::Gate;

/// The interface name in the audit log.
const INTERFACE: &str = "portal";

/// The routes of access requests and grants.
pub(super) fn routes() -> Router<Arc<Gate>> {
    Router::new()
        .route("/access", get(access_page))
        .route("/products/{product}/access-requests", post(request))
        .route("/access/requests/{id}/approve", post(approve))
        .route("/access/requests/{id}/deny", post(deny))
        .route("/access/requests/{id}/withdraw", post(withdraw))
        .route("/access/grants/{id}/revoke", post(revoke))
}

/// The fields of a submitted form, by name (the first value of each).
fn fields(body: &[u8]) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| url::form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// What the request form was filled with, to show it again with an error.
#[derive(Default)]
pub(super) struct Filled {
    purpose: String,
    until: String,
}

/// The card page of `product` for the viewer: `Ok(None)` when they read it (the full page is
/// theirs), not found when it is hidden or missing.
pub(super) async fn card_page(gate: &Gate, viewer: &Viewer, product: &str, error: Option<&str>, filled: &Filled) -> Result<Option<Markup>, PortalError> {
    let principal = &viewer.identity.principal;
    let governance = gate.engine().governance().await?;
    let catalog = gate.engine().catalog();
    let card = meshwork_query::card(catalog.as_ref(), &governance, principal, product).await?;
    if matches!(card.visibility, Visibility::Readable | Visibility::Aggregates) && error.is_none() {
        return Ok(None);
    }
    let mine = AccessRequestFilter { product: Some(card.product.clone()), status: None, principal: Some(principal.name.clone()) };
    let requests = meshwork_query::access_requests(catalog.as_ref(), principal, &mine).await?;
    let body = card_body(viewer, &card, &requests, error, filled);
    let title = card.title.clone().unwrap_or_else(|| card.product.to_string());
    Ok(Some(page(&title, Some(viewer), Nav::Search, body)))
}

/// The card: the public facts only, then the viewer's pending request or the form.
fn card_body(viewer: &Viewer, card: &ProductCard, requests: &[AccessRequest], error: Option<&str>, filled: &Filled) -> Markup {
    let id = &card.product;
    let pending = requests.iter().rev().find(|r| r.status == AccessRequestStatus::Pending);
    let last = requests.iter().rev().find(|r| r.status != AccessRequestStatus::Pending);
    let today = Utc::now().date_naive();
    html! {
        header.product-header {
            p.breadcrumb { a href=(format!("/domains/{}", card.domain)) { (card.domain) } " / " (id.name) }
            h1 { (card.title.as_deref().unwrap_or(id.name.as_str())) }
            dl.facts {
                dt { "Address" } dd { code { (id) } }
                dt { "Domain" } dd { a href=(format!("/domains/{}", card.domain)) { (card.domain) } }
                dt { "Owner" } dd { (card.owner.as_deref().unwrap_or("not declared")) }
                dt { "Status" } dd { span class=(format!("badge status-{}", card.status)) { (card.status) } }
                @if !card.tags.is_empty() {
                    dt { "Tags" } dd { ul.tags { @for tag in &card.tags { li { (tag) } } } }
                }
            }
            @if let Some(description) = &card.description { p.description { (description) } }
        }
        section #request aria-labelledby="request-h" {
            h2 #request-h { "Access" }
            @if matches!(card.visibility, Visibility::Readable | Visibility::Aggregates) {
                p { "You can read this product: " a href=(format!("/products/{id}")) { "open its page" } "." }
            } @else {
                p { "You cannot read this product. Its owners — the " (card.domain) " domain — decide requests for access." }
            }
            @if let Some(message) = error { div #problem .banner.error role="alert" { p { (message) } } }
            @if let Some(last) = last { p #last-request { "Your last request (#" (last.id) ") was " strong { (last.status) } @if let Some(c) = &last.comment { ": " q { (c) } } "." } }
            @match pending {
                Some(request) => {
                    div.banner role="status" #pending {
                        p { strong { "Request pending." } " You asked " (when(&request.created_at)) " for: " q { (request.purpose) }
                            @if let Some(until) = &request.until { " (until " (when(until)) ")" } "." }
                        p { "See " a href="/access" { "your requests" } " for the owners' answer." }
                        form method="post" action=(format!("/access/requests/{}/withdraw", request.id)) {
                            (csrf_field(viewer))
                            input type="hidden" name="next" value=(format!("/products/{id}"));
                            button.secondary type="submit" { "Withdraw request" }
                        }
                    }
                }
                None if card.visibility == Visibility::Card => {
                    form #request-form method="post" action=(format!("/products/{id}/access-requests")) {
                        (csrf_field(viewer))
                        div.field {
                            label for="purpose" { "Purpose" }
                            textarea #purpose name="purpose" rows="3" required aria-describedby="purpose-hint" { (filled.purpose) }
                            p #purpose-hint .hint { "What the data is for; the owners read it." }
                        }
                        div.field {
                            label for="until" { "Access until (optional)" }
                            input #until type="date" name="until" min=(today.succ_opt().unwrap_or(today)) value=(filled.until) aria-describedby="until-hint";
                            p #until-hint .hint { "Access ends when that day ends (UTC). Leave it empty for no end date." }
                        }
                        button type="submit" { "Request access" }
                    }
                }
                None => {}
            }
        }
    }
}

/// `POST /products/{p}/access-requests`: asks as the viewer, then back to the card.
async fn request(State(gate): State<Arc<Gate>>, viewer: Viewer, Path(product): Path<String>, body: Bytes) -> Result<Response, PortalError> {
    let principal = &viewer.identity.principal;
    let governance = gate.engine().governance().await?;
    let catalog = gate.engine().catalog();
    // The product first: a hidden one is not found whatever the form says.
    let (record, _) = meshwork_query::seen_product(catalog.as_ref(), &governance, principal, &product).await?;
    let field = fields(&body);
    let filled = Filled { purpose: field("purpose").unwrap_or_default(), until: field("until").unwrap_or_default().trim().to_owned() };
    let until = match filled.until.as_str() {
        "" => None,
        text => match text.parse::<NaiveDate>() {
            // The day is included: access ends when it ends (UTC), as `--until DATE` in the CLI.
            Ok(day) => Some(day.succ_opt().unwrap_or(day).and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()),
            Err(_) => return failed(&gate, &viewer, &product, &filled, StatusCode::BAD_REQUEST, &format!("`{text}` is not a date like `2027-03-31`")).await,
        },
    };
    let ask = AccessAsk { purpose: filled.purpose.clone(), until };
    match meshwork_query::request_access(catalog.as_ref(), &governance, principal, INTERFACE, &product, ask).await {
        Ok(_) => Ok(Redirect::to(&format!("/products/{}", record.id)).into_response()),
        Err(QueryError::Invalid(message)) => failed(&gate, &viewer, &product, &filled, StatusCode::BAD_REQUEST, &message).await,
        Err(QueryError::Conflict(message)) => failed(&gate, &viewer, &product, &filled, StatusCode::CONFLICT, &message).await,
        Err(other) => Err(other.into()),
    }
}

/// The card again, with the form as it was filled and what was wrong.
async fn failed(gate: &Gate, viewer: &Viewer, product: &str, filled: &Filled, status: StatusCode, message: &str) -> Result<Response, PortalError> {
    let page = card_page(gate, viewer, product, Some(message), filled).await?.ok_or_else(PortalError::not_found)?;
    Ok((status, page).into_response())
}

/// What `/access` shows one viewer.
struct AccessView {
    /// The viewer's own requests, newest first.
    mine: Vec<AccessRequest>,
    /// The viewer's own active grants.
    my_grants: Vec<Grant>,
    /// Whether the viewer owns a product (or administers the mesh): the owners' sections show.
    owner: bool,
    /// Pending requests of others for products the viewer owns.
    to_decide: Vec<AccessRequest>,
    /// Active grants of others on products the viewer owns.
    granted: Vec<Grant>,
}

impl AccessView {
    async fn load(gate: &Gate, principal: &Principal) -> Result<AccessView, PortalError> {
        let catalog = gate.engine().catalog();
        // The query layer returns only the viewer's own requests and those of products it owns.
        let all = meshwork_query::access_requests(catalog.as_ref(), principal, &AccessRequestFilter::default()).await?;
        let (mut mine, others): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.principal == principal.name);
        mine.reverse();
        let to_decide = others.into_iter().filter(|r| r.status == AccessRequestStatus::Pending).collect();
        let (my_grants, granted) = meshwork_query::grants(catalog.as_ref(), principal, None, false).await?.into_iter().partition(|g| g.principal == principal.name);
        let owner = principal.admin || catalog.products().await?.iter().any(|r| meshwork_query::is_owner(principal, &r.descriptor));
        Ok(AccessView { mine, my_grants, owner, to_decide, granted })
    }

    fn render(&self, viewer: &Viewer, error: Option<&str>) -> Markup {
        html! {
            h1 { "Access" }
            @if let Some(message) = error { div #problem .banner.error role="alert" { p { (message) } } }
            @if self.owner {
                section #to-decide aria-labelledby="to-decide-h" {
                    h2 #to-decide-h { "Requests waiting for you" }
                    @if self.to_decide.is_empty() { p.muted { "No pending requests for your products." } }
                    @for r in &self.to_decide {
                        article.access-request aria-labelledby=(format!("request-{}-h", r.id)) {
                            h3 id=(format!("request-{}-h", r.id)) { "#" (r.id) " " strong { (r.principal) } " asks to read " a href=(format!("/products/{}", r.product)) { (r.product) } }
                            p { "Purpose: " q { (r.purpose) } ". Asked " (when(&r.created_at)) ", "
                                @match &r.until { Some(until) => { "until " (when(until)) }, None => "without an end date" } "." }
                            form method="post" action=(format!("/access/requests/{}/approve", r.id)) {
                                (csrf_field(viewer))
                                div.field {
                                    label for=(format!("comment-{}", r.id)) { "Comment (required to deny)" }
                                    textarea id=(format!("comment-{}", r.id)) name="comment" rows="2" {}
                                }
                                div.actions {
                                    button type="submit" { "Approve" }
                                    button.secondary type="submit" formaction=(format!("/access/requests/{}/deny", r.id)) { "Deny" }
                                }
                            }
                        }
                    }
                }
                section #granted aria-labelledby="granted-h" {
                    h2 #granted-h { "Grants of your products" }
                    @if self.granted.is_empty() { p.muted { "No active grants of your products." } }
                    @else { (grants_table(viewer, &self.granted, true, "/access")) }
                }
            }
            section #my-requests aria-labelledby="my-requests-h" {
                h2 #my-requests-h { "Your requests" }
                @if self.mine.is_empty() { p.muted { "You have not asked for access. A product you cannot read but may discover shows a Request access form on its page." } }
                @else {
                    div.table-scroll tabindex="0" role="region" aria-label="Your requests" {
                        table {
                            thead { tr { th scope="col" { "#" } th scope="col" { "Product" } th scope="col" { "Purpose" } th scope="col" { "Until" } th scope="col" { "Status" } th scope="col" { "Decided" } th scope="col" { "Comment" } th scope="col" { span.visually-hidden { "Actions" } } } }
                            tbody {
                                @for r in &self.mine {
                                    tr {
                                        td { (r.id) }
                                        th scope="row" { a href=(format!("/products/{}", r.product)) { (r.product) } }
                                        td { (r.purpose) }
                                        td { @match &r.until { Some(u) => (when(u)), None => span.muted { "no end" } } }
                                        td { span class=(format!("badge request-{}", r.status)) { (r.status) } }
                                        td { @if let Some(at) = &r.decided_at { (when(at)) @if let Some(by) = &r.decided_by { " by " (by) } } }
                                        td { (r.comment.as_deref().unwrap_or("")) }
                                        td {
                                            @if r.status == AccessRequestStatus::Pending {
                                                form method="post" action=(format!("/access/requests/{}/withdraw", r.id)) {
                                                    (csrf_field(viewer))
                                                    button.secondary type="submit" { "Withdraw" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section #my-grants aria-labelledby="my-grants-h" {
                h2 #my-grants-h { "Your grants" }
                @if self.my_grants.is_empty() { p.muted { "No active grants." } }
                @else { (grants_table(viewer, &self.my_grants, false, "/access")) }
            }
        }
    }
}

/// Active grants with a button ending each: "Revoke" for owners, "Give up" for the grantee.
pub(super) fn grants_table(viewer: &Viewer, grants: &[Grant], owner: bool, back: &str) -> Markup {
    html! {
        div.table-scroll tabindex="0" role="region" aria-label="Grants" {
            table.grants {
                thead { tr { th scope="col" { "#" } th scope="col" { "Product" } th scope="col" { "Principal" } th scope="col" { "Purpose" } th scope="col" { "Granted" } th scope="col" { "Ends" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for g in grants {
                        tr {
                            td { (g.id) }
                            th scope="row" { a href=(format!("/products/{}", g.product)) { (g.product) } }
                            td { (g.principal) }
                            td { (g.purpose) }
                            td { (when(&g.created_at)) " by " (g.granted_by) }
                            td { @match &g.expires_at { Some(at) => (when(at)), None => span.muted { "no end" } } }
                            td {
                                form method="post" action=(format!("/access/grants/{}/revoke", g.id)) {
                                    (csrf_field(viewer))
                                    input type="hidden" name="next" value=(back);
                                    button.secondary type="submit" { @if owner && g.principal != viewer.identity.principal.name { "Revoke" } @else { "Give up" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /access`.
async fn access_page(State(gate): State<Arc<Gate>>, viewer: Viewer) -> Result<Response, PortalError> {
    let view = AccessView::load(&gate, &viewer.identity.principal).await?;
    Ok(page("Access", Some(&viewer), Nav::Access, view.render(&viewer, None)).into_response())
}

/// `/access` again with what went wrong (a deny without comment, a request decided meanwhile).
async fn access_failed(gate: &Gate, viewer: &Viewer, status: StatusCode, message: &str) -> Result<Response, PortalError> {
    let view = AccessView::load(gate, &viewer.identity.principal).await?;
    Ok((status, page("Access", Some(viewer), Nav::Access, view.render(viewer, Some(message)))).into_response())
}

/// Where to go after a step: the form's `next` when it is a path on this site, else `/access`.
fn next_of(body: &[u8]) -> String {
    fields(body)("next").map(|n| same_site(&n).to_owned()).filter(|n| n != "/").unwrap_or_else(|| "/access".into())
}

/// After a step: on to `next`, or the error shown where it fits; not found stays the one 404.
async fn after<T>(gate: &Gate, viewer: &Viewer, next: String, outcome: Result<T, QueryError>) -> Result<Response, PortalError> {
    match outcome {
        Ok(_) => Ok(Redirect::to(&next).into_response()),
        Err(QueryError::Invalid(message)) => access_failed(gate, viewer, StatusCode::BAD_REQUEST, &message).await,
        Err(QueryError::Conflict(message)) => access_failed(gate, viewer, StatusCode::CONFLICT, &message).await,
        Err(other) => Err(other.into()),
    }
}

async fn approve(State(gate): State<Arc<Gate>>, viewer: Viewer, Path(id): Path<String>, body: Bytes) -> Result<Response, PortalError> {
    answer(gate, viewer, id, body, true).await
}

async fn deny(State(gate): State<Arc<Gate>>, viewer: Viewer, Path(id): Path<String>, body: Bytes) -> Result<Response, PortalError> {
    answer(gate, viewer, id, body, false).await
}

/// An owner's answer, through the same function as `meshwork access approve|deny`.
async fn answer(gate: Arc<Gate>, viewer: Viewer, id: String, body: Bytes, approve: bool) -> Result<Response, PortalError> {
    let id: AccessRequestId = id.parse().map_err(|_| PortalError::not_found())?;
    let answer = AccessAnswer { approve, comment: fields(&body)("comment") };
    let outcome = meshwork_query::answer_request(gate.engine().catalog().as_ref(), &viewer.identity.principal, INTERFACE, id, answer).await;
    after(&gate, &viewer, next_of(&body), outcome).await
}

/// The requester takes back its pending request.
async fn withdraw(State(gate): State<Arc<Gate>>, viewer: Viewer, Path(id): Path<String>, body: Bytes) -> Result<Response, PortalError> {
    let id: AccessRequestId = id.parse().map_err(|_| PortalError::not_found())?;
    let outcome = meshwork_query::withdraw_request(gate.engine().catalog().as_ref(), &viewer.identity.principal, INTERFACE, id).await;
    after(&gate, &viewer, next_of(&body), outcome).await
}

/// An owner revokes a grant of their product, or a grantee gives up its own.
async fn revoke(State(gate): State<Arc<Gate>>, viewer: Viewer, Path(id): Path<String>, body: Bytes) -> Result<Response, PortalError> {
    let id: GrantId = id.parse().map_err(|_| PortalError::not_found())?;
    let outcome = meshwork_query::revoke(gate.engine().catalog().as_ref(), &viewer.identity.principal, INTERFACE, RevokeTarget::Grant(id)).await;
    after(&gate, &viewer, next_of(&body), outcome).await
}
