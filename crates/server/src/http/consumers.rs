//! The HTTP API of consumers and subscriptions: who depends on a product (for its owners), and
//! declaring, listing and withdrawing interest in a product.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use meshwork_catalog::Subscription;
use meshwork_core::event::EventKind;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::ErrorBody;
use super::products::{Readable, readable_product};
use crate::error::ServeError;
use crate::gate::Gate;

/// Query parameters of a product's consumers.
#[derive(Deserialize, IntoParams)]
pub(super) struct ConsumersQuery {
    /// How many days of the audit log to read (default 30, at most 400).
    window_days: Option<u32>,
}

/// Who depends on a product: the products built from it, the principals whose queries read it
/// (or one of its kept majors, `…_v1`) over each interface in the window, most recent first,
/// and its subscribers. For the product's owner, members of its domain and administrators;
/// anyone else gets 404.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/consumers",
    params(("product" = String, Path, description = "`domain.product`"), ConsumersQuery),
    responses((status = 200, description = "`{product, window_days, products, readers: [{product, major, principal, interface, queries, last_read}], subscribers: [{product, principal, webhook, events, created_at, created_by}]}`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one whose consumers the caller may not see", body = ErrorBody))
)]
pub(super) async fn product_consumers(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
    Query(query): Query<ConsumersQuery>,
) -> Result<Json<meshwork_query::Consumers>, ServeError> {
    let Readable { record, descriptor, governance, .. } = readable_product(&gate, &who, &product).await?;
    if !meshwork_query::is_owner(&who.principal, &descriptor) {
        return Err(ServeError::NotFound(format!("no consumers of `{product}` to show: they are for its owner, members of domain `{}` and administrators", record.id.domain)));
    }
    let days = query.window_days.unwrap_or(30).clamp(1, 400);
    let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let consumers = meshwork_query::consumers(gate.engine().catalog().as_ref(), &governance, &who.principal, &record, since).await?;
    Ok(Json(consumers))
}

/// A subscription to create.
#[derive(Deserialize, ToSchema, Default)]
pub(super) struct SubscribeBody {
    /// Who subscribes (default: the caller). Subscribing someone else is for the product's
    /// owners and administrators.
    principal: Option<String>,
    /// Where to POST the product's events, signed with the secret in the answer.
    webhook: Option<String>,
    /// Only these event kinds (default: all), e.g. `["product.deprecated", "product.sunset"]`.
    #[serde(default)]
    events: Vec<String>,
}

/// Subscribes the caller (or, for owners, another principal) to a product: it is listed among
/// the product's consumers, `plan` names it when a change affects the product, `GET
/// /api/v1/events?subscribed=true` lists the product's events, and a webhook is sent them. The
/// answer carries the webhook's signing secret, shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/subscriptions",
    params(("product" = String, Path, description = "`domain.product`")),
    request_body = SubscribeBody,
    responses((status = 201, description = "`{product, principal, webhook, events, created_at, created_by, secret}`", body = Object), (status = 400, description = "The body is malformed (the message names the field)", body = ErrorBody), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 403, description = "Subscribing someone else without owning the product, or a principal that may not read it", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody))
)]
pub(super) async fn create_subscription(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ServeError> {
    let Readable { record, governance, .. } = readable_product(&gate, &who, &product).await?;
    let body: SubscribeBody = match body.is_empty() {
        true => SubscribeBody::default(),
        false => serde_json::from_slice(&body).map_err(|e| {
            ServeError::BadRequest(format!("the body must be JSON like {{\"webhook\": \"https://…\", \"events\": [\"product.deprecated\"]}}: {e}"))
        })?,
    };
    let events = event_kinds(&body.events)?;
    let request = meshwork_query::SubscribeRequest { principal: body.principal, webhook: body.webhook, events };
    let subscription = meshwork_query::subscribe(gate.engine().catalog().as_ref(), &governance, &who.principal, &record, request).await?;
    let mut json = serde_json::to_value(&subscription).unwrap_or_default();
    json["secret"] = serde_json::json!(subscription.secret);
    Ok((StatusCode::CREATED, Json(json)))
}

/// Event kinds by keyword, or the error naming the unknown one and the known ones.
fn event_kinds(names: &[String]) -> Result<Vec<EventKind>, ServeError> {
    names
        .iter()
        .map(|name| EventKind::named(name).map_err(|m| ServeError::BadRequest(format!("`events`: {m}"))))
        .collect()
}

/// Query parameters naming a subscriber.
#[derive(Deserialize, IntoParams)]
pub(super) struct SubscriberQuery {
    /// The subscriber (default: the caller). Others' subscriptions are for the product's owners.
    principal: Option<String>,
}

/// Withdraws a subscription: the caller's own (also from a product it can no longer see), or,
/// for the owners of a product, another principal's.
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/subscriptions",
    params(("product" = String, Path, description = "`domain.product`"), SubscriberQuery),
    responses((status = 204, description = "Withdrawn"), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 403, description = "Another principal's subscription, without owning the product", body = ErrorBody), (status = 404, description = "No such product or subscription", body = ErrorBody))
)]
pub(super) async fn delete_subscription(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
    Query(query): Query<SubscriberQuery>,
) -> Result<StatusCode, ServeError> {
    let not_found = || ServeError::NotFound(format!("`{}` has no subscription to `{product}`", query.principal.as_deref().unwrap_or(&who.principal.name)));
    let product_id: meshwork_core::id::ProductId = product.parse().map_err(|_| not_found())?;
    let governance = gate.engine().governance().await?;
    let principal = query.principal.as_deref();
    match meshwork_query::unsubscribe(gate.engine().catalog().as_ref(), &governance, &who.principal, &product_id, principal).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(not_found()),
    }
}

/// A product's subscriptions: all of them for its owners, the caller's own for anyone else.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/subscriptions",
    params(("product" = String, Path, description = "`domain.product`")),
    responses((status = 200, description = "`[{product, principal, webhook, events, created_at, created_by}]`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody))
)]
pub(super) async fn list_product_subscriptions(
    State(gate): State<Arc<Gate>>,
    Caller(who): Caller,
    Path(product): Path<String>,
) -> Result<Json<Vec<Subscription>>, ServeError> {
    let Readable { record, descriptor, .. } = readable_product(&gate, &who, &product).await?;
    let owner = meshwork_query::is_owner(&who.principal, &descriptor);
    let all = gate.engine().catalog().subscriptions(Some(&record.id)).await?;
    Ok(Json(all.into_iter().filter(|s| owner || s.principal == who.principal.name).collect()))
}

/// The caller's subscriptions, to products it may still see.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions",
    responses((status = 200, description = "`[{product, principal, webhook, events, created_at, created_by}]`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody))
)]
pub(super) async fn my_subscriptions(State(gate): State<Arc<Gate>>, Caller(who): Caller) -> Result<Json<Vec<Subscription>>, ServeError> {
    let catalog = gate.engine().catalog();
    let governance = gate.engine().governance().await?;
    let records = catalog.products().await?;
    let visible = governance.visible(&who.principal, &records);
    let mine = catalog.subscriptions(None).await?;
    Ok(Json(mine.into_iter().filter(|s| s.principal == who.principal.name && visible.iter().any(|r| r.id == s.product)).collect()))
}
