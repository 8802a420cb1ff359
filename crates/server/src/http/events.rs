//! The HTTP API of the lifecycle event log, followed with a cursor.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::ErrorBody;
use crate::error::ServeError;
use crate::gate::Gate;

/// Query parameters of the event feed.
#[derive(Deserialize, IntoParams)]
pub(super) struct EventQuery {
    /// Only events after this id: the `next_cursor` of the previous page (default 0).
    after: Option<i64>,
    /// At most this many events per page (default 100, at most 1000).
    limit: Option<u32>,
    /// Only events about this product.
    product: Option<String>,
    /// Only events of this kind, e.g. `product.published`.
    kind: Option<String>,
    /// `true`: only events of the products the caller subscribed to (of the kinds each
    /// subscription asks for).
    subscribed: Option<bool>,
}

/// A page of the event log.
#[derive(Serialize, ToSchema)]
pub(super) struct EventPage {
    /// Events, oldest first: `{id, at, kind, product, payload}`.
    #[schema(value_type = Vec<Object>)]
    events: Vec<serde_json::Value>,
    /// Pass as `after` to get the next page; equal to `after` when nothing new has happened.
    next_cursor: i64,
}

/// The lifecycle event log (published, schema changed, deprecated, quality failed or warned,
/// refresh failed, SLO violated or recovered), oldest first, for consumers that follow the feed
/// with a cursor. Only events about products the caller may read are listed (administrators
/// see all).
#[utoipa::path(
    get,
    path = "/api/v1/events",
    params(EventQuery),
    responses((status = 200, description = "A page of events, oldest first", body = EventPage), (status = 400, description = "A parameter is malformed (the message names it)", body = ErrorBody), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody))
)]
pub(super) async fn list_events(State(gate): State<Arc<Gate>>, Caller(who): Caller, Query(query): Query<EventQuery>) -> Result<Json<EventPage>, ServeError> {
    let after = query.after.unwrap_or(0);
    let product = query
        .product
        .as_deref()
        .map(|p| p.parse::<ProductId>().map_err(|e| ServeError::BadRequest(format!("`product={p}`: {e}"))))
        .transpose()?;
    let kinds = match query.kind {
        Some(kind) => vec![EventKind::named(&kind).map_err(ServeError::BadRequest)?],
        None => Vec::new(),
    };
    let catalog = gate.engine().catalog();
    let governance = gate.engine().governance().await?;
    let records = catalog.products().await?;
    let visible: std::collections::HashSet<ProductId> = governance.visible(&who.principal, &records).into_iter().map(|r| r.id.clone()).collect();
    // Asking about a product the caller may not see answers exactly like asking about a missing
    // one: no events, and the cursor stays where it was.
    if let Some(product) = &product
        && !who.principal.admin
        && !visible.contains(product)
    {
        return Ok(Json(EventPage { events: Vec::new(), next_cursor: after }));
    }
    let filter = meshwork_catalog::EventFilter { after, limit: Some(query.limit.unwrap_or(100).clamp(1, 1000)), product, kinds };
    let events = catalog.events(&filter).await?;
    // Over the whole feed the cursor moves past hidden events too, so a follower never asks
    // for them again; that tells nothing about any one product.
    let next_cursor = events.last().map(|e| e.id).unwrap_or(after);
    let subscribed = match query.subscribed {
        Some(true) => Some(catalog.subscriptions(None).await?.into_iter().filter(|s| s.principal == who.principal.name).collect::<Vec<_>>()),
        _ => None,
    };
    let events = events
        .into_iter()
        .filter(|e| who.principal.admin || e.product.as_ref().is_some_and(|p| visible.contains(p)))
        .filter(|e| match &subscribed {
            None => true,
            Some(subs) => subs.iter().any(|s| e.product.as_ref() == Some(&s.product) && s.wants(e.kind)),
        })
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .collect();
    Ok(Json(EventPage { events, next_cursor }))
}
