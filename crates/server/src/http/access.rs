//! The HTTP API of access requests and grants: a product's public card, asking its owners for
//! access, their answer, and ending grants. Every answer comes from `meshwork_query`'s access
//! module, shared with the CLI; hidden products are answered exactly like missing ones.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use meshwork_catalog::{AccessRequest, AccessRequestFilter, AccessRequestId, AccessRequestStatus, Grant, GrantId};
use meshwork_core::id::ProductId;
use meshwork_query::{AccessAnswer, AccessAsk, ProductCard, RevokeTarget};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::INTERFACE;
use super::caller::Caller;
use super::error::ErrorBody;
use crate::error::ServeError;
use crate::gate::Gate;

/// A product's public card: id, title, description, owner, domain, tags, status and whether the
/// caller reads it. For readers and, when the product is `discoverable`, for anyone signed in;
/// never its columns, rows, versions, quality or lineage.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/card",
    params(("product" = String, Path, description = "`domain.product`")),
    responses((status = 200, description = "`{product, title, description, owner, domain, tags, status, visibility}` (`visibility`: `readable`, `aggregate_only` or `card`)", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or a hidden one", body = ErrorBody))
)]
pub(super) async fn product_card(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
) -> Result<Json<ProductCard>, ServeError> {
    let governance = gate.engine().governance().await?;
    let card = meshwork_query::card(gate.engine().catalog().as_ref(), &governance, &who.principal, &product).await?;
    Ok(Json(card))
}

/// An access request to make.
#[derive(Deserialize, ToSchema)]
pub(super) struct AccessRequestBody {
    /// What the data is for (required).
    purpose: String,
    /// When the access should end, RFC 3339 (`2027-01-31T00:00:00Z`); must be in the future.
    until: Option<String>,
}

/// Asks the owners of a product the caller cannot read, but whose card it sees, for read
/// access. One pending request per principal and product.
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/access-requests",
    params(("product" = String, Path, description = "`domain.product`")),
    request_body = AccessRequestBody,
    responses((status = 201, description = "`{id, product, principal, purpose, until, status, created_at, decided_at, decided_by, comment}`", body = Object), (status = 400, description = "No purpose, or `until` not in the future", body = ErrorBody), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or a hidden one", body = ErrorBody), (status = 409, description = "The caller already reads the product or has a pending request for it", body = ErrorBody))
)]
pub(super) async fn create_access_request(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<AccessRequest>), ServeError> {
    let governance = gate.engine().governance().await?;
    // The product is looked up before the body is read: a hidden product answers 404 whatever
    // the body says, so malformed bodies cannot tell hidden from missing either.
    meshwork_query::seen_product(gate.engine().catalog().as_ref(), &governance, &who.principal, &product).await?;
    let body: AccessRequestBody = serde_json::from_slice(&body)
        .map_err(|e| ServeError::BadRequest(format!("the body must be JSON like {{\"purpose\": \"churn analysis\", \"until\": \"2027-01-31T00:00:00Z\"}}: {e}")))?;
    let until = match body.until.as_deref() {
        Some(text) => Some(
            meshwork_catalog::time::parse(text).map_err(|_| ServeError::BadRequest(format!("`until` `{text}` is not an RFC 3339 time like `2027-01-31T00:00:00Z`")))?,
        ),
        None => None,
    };
    let request = meshwork_query::request_access(gate.engine().catalog().as_ref(), &governance, &who.principal, INTERFACE, &product, AccessAsk { purpose: body.purpose, until })
        .await?;
    Ok((StatusCode::CREATED, Json(request)))
}

/// Filters of the access request list.
#[derive(Deserialize, IntoParams)]
pub(super) struct AccessRequestQuery {
    /// `pending`, `approved`, `denied` or `withdrawn`.
    status: Option<String>,
    /// Only requests for this product.
    product: Option<String>,
}

/// Access requests the caller may see, oldest first: its own, and those for products it owns
/// (administrators: all). Owners find the requests waiting for them with `status=pending`.
#[utoipa::path(
    get,
    path = "/api/v1/access-requests",
    params(AccessRequestQuery),
    responses((status = 200, description = "`[{id, product, principal, purpose, until, status, created_at, decided_at, decided_by, comment}]`", body = Object), (status = 400, description = "An unknown status", body = ErrorBody), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody))
)]
pub(super) async fn list_access_requests(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Query(query): Query<AccessRequestQuery>,
) -> Result<Json<Vec<AccessRequest>>, ServeError> {
    let status = match query.status.as_deref() {
        Some(text) => Some(text.parse::<AccessRequestStatus>().map_err(|e| ServeError::BadRequest(format!("`status`: {e}")))?),
        None => None,
    };
    let product = match query.product.as_deref() {
        // A malformed address matches nothing, like an unknown one.
        Some(text) => match text.parse::<ProductId>() {
            Ok(product) => Some(product),
            Err(_) => return Ok(Json(Vec::new())),
        },
        None => None,
    };
    let filter = AccessRequestFilter { product, status, principal: None };
    let requests = meshwork_query::access_requests(gate.engine().catalog().as_ref(), &who.principal, &filter).await?;
    Ok(Json(requests))
}

/// An owner's answer.
#[derive(Deserialize, ToSchema, Default)]
pub(super) struct AnswerBody {
    /// Why (required to deny).
    comment: Option<String>,
}

/// Approves a pending request: a grant makes the requester a reader of the product at once on
/// every interface, until the request's `until`. For the product's owners and administrators;
/// never the requester.
#[utoipa::path(
    post,
    path = "/api/v1/access-requests/{id}/approve",
    params(("id" = i64, Path, description = "The request's number")),
    request_body = AnswerBody,
    responses((status = 200, description = "`{request, grant}`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 403, description = "The caller's own request", body = ErrorBody), (status = 404, description = "No such request, or one the caller may not decide", body = ErrorBody), (status = 409, description = "The request is not pending", body = ErrorBody))
)]
pub(super) async fn approve_access_request(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(request): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ServeError> {
    answer(gate, who, request, body, true).await
}

/// Denies a pending request with a comment. For the product's owners and administrators.
#[utoipa::path(
    post,
    path = "/api/v1/access-requests/{id}/deny",
    params(("id" = i64, Path, description = "The request's number")),
    request_body = AnswerBody,
    responses((status = 200, description = "`{request, grant: null}`", body = Object), (status = 400, description = "No comment", body = ErrorBody), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 403, description = "The caller's own request", body = ErrorBody), (status = 404, description = "No such request, or one the caller may not decide", body = ErrorBody), (status = 409, description = "The request is not pending", body = ErrorBody))
)]
pub(super) async fn deny_access_request(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(request): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ServeError> {
    answer(gate, who, request, body, false).await
}

async fn answer(gate: Arc<Gate>, who: meshwork_auth::Identity, request: String, body: axum::body::Bytes, approve: bool) -> Result<Json<serde_json::Value>, ServeError> {
    let request_id: AccessRequestId = request.parse().map_err(|_| ServeError::NotFound(format!("access request `{request}` not found")))?;
    let body: AnswerBody = match body.is_empty() {
        true => AnswerBody::default(),
        false => serde_json::from_slice(&body).map_err(|e| ServeError::BadRequest(format!("the body must be JSON like {{\"comment\": \"…\"}}: {e}")))?,
    };
    let (request, grant) = meshwork_query::answer_request(gate.engine().catalog().as_ref(), &who.principal, INTERFACE, request_id, AccessAnswer { approve, comment: body.comment })
        .await?;
    Ok(Json(serde_json::json!({ "request": request, "grant": grant })))
}

/// Withdraws the caller's own pending request.
#[utoipa::path(
    post,
    path = "/api/v1/access-requests/{id}/withdraw",
    params(("id" = i64, Path, description = "The request's number")),
    responses((status = 200, description = "The withdrawn request", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such request of the caller's", body = ErrorBody), (status = 409, description = "The request is not pending", body = ErrorBody))
)]
pub(super) async fn withdraw_access_request(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(request): Path<String>,
) -> Result<Json<AccessRequest>, ServeError> {
    let request_id: AccessRequestId = request.parse().map_err(|_| ServeError::NotFound(format!("access request `{request}` not found")))?;
    let withdrawn = meshwork_query::withdraw_request(gate.engine().catalog().as_ref(), &who.principal, INTERFACE, request_id).await?;
    Ok(Json(withdrawn))
}

/// Filters of the grant lists.
#[derive(Deserialize, IntoParams)]
pub(super) struct GrantQuery {
    /// `true`: revoked and expired grants too.
    all: Option<bool>,
}

/// A product's grants: every grant for its owners, the caller's own for anyone else.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/grants",
    params(("product" = String, Path, description = "`domain.product`"), GrantQuery),
    responses((status = 200, description = "`[{id, product, principal, request, granted_by, purpose, created_at, expires_at, revoked_at, revoked_by}]`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or a hidden one", body = ErrorBody))
)]
pub(super) async fn product_grants(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
    Query(query): Query<GrantQuery>,
) -> Result<Json<Vec<Grant>>, ServeError> {
    let governance = gate.engine().governance().await?;
    let (record, _) = meshwork_query::seen_product(gate.engine().catalog().as_ref(), &governance, &who.principal, &product).await?;
    let grants = meshwork_query::grants(gate.engine().catalog().as_ref(), &who.principal, Some(&record.id), query.all.unwrap_or(false)).await?;
    Ok(Json(grants))
}

/// The grants the caller may see across products: all grants of products it owns, its own.
#[utoipa::path(
    get,
    path = "/api/v1/grants",
    params(GrantQuery),
    responses((status = 200, description = "`[{id, product, principal, request, granted_by, purpose, created_at, expires_at, revoked_at, revoked_by}]`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody))
)]
pub(super) async fn list_grants(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Query(query): Query<GrantQuery>,
) -> Result<Json<Vec<Grant>>, ServeError> {
    let grants = meshwork_query::grants(gate.engine().catalog().as_ref(), &who.principal, None, query.all.unwrap_or(false)).await?;
    Ok(Json(grants))
}

/// Ends a grant at once: every interface stops honouring it, including open Postgres
/// connections and Flight SQL tickets already issued. For the product's owners and
/// administrators, and for the grantee itself.
#[utoipa::path(
    post,
    path = "/api/v1/grants/{id}/revoke",
    params(("id" = i64, Path, description = "The grant's number")),
    responses((status = 200, description = "The revoked grant", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such active grant the caller may revoke", body = ErrorBody))
)]
pub(super) async fn revoke_grant(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(grant): Path<String>,
) -> Result<Json<Grant>, ServeError> {
    let grant_id: GrantId = grant.parse().map_err(|_| ServeError::NotFound(format!("grant `{grant}` not found")))?;
    let mut revoked = meshwork_query::revoke(gate.engine().catalog().as_ref(), &who.principal, INTERFACE, RevokeTarget::Grant(grant_id)).await?;
    revoked.pop().map(Json).ok_or_else(|| ServeError::NotFound(format!("grant `{grant}` not found")))
}

/// Ends every active grant of `principal` on a product (owners and administrators, or the
/// grantee itself).
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/grants/{principal}",
    params(("product" = String, Path, description = "`domain.product`"), ("principal" = String, Path, description = "The grantee")),
    responses((status = 204, description = "Revoked"), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such active grant the caller may revoke", body = ErrorBody))
)]
pub(super) async fn revoke_product_grants(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path((product, principal)): Path<(String, String)>,
) -> Result<StatusCode, ServeError> {
    let not_found = || ServeError::NotFound(format!("no active grant of `{product}` to `{principal}` you may revoke"));
    let product_id: ProductId = product.parse().map_err(|_| not_found())?;
    meshwork_query::revoke(gate.engine().catalog().as_ref(), &who.principal, INTERFACE, RevokeTarget::Holder { product: product_id, principal: principal.clone() })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
