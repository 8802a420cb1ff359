//! The HTTP API: its router, OpenAPI document and Swagger UI, and the request-id middleware.
//! One module per resource; handlers take the caller through [`caller::Caller`] and answer
//! failures as [`ServeError`], written as JSON by [`error`].

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ServeError;
use crate::gate::Gate;

mod access;
mod audit;
mod caller;
mod consumers;
mod deprecation;
mod encode;
mod error;
mod events;
mod ops;
mod products;
mod query;
mod search;
mod trust;

pub(crate) use deprecation::METADATA as DEPRECATION_METADATA;
pub(crate) use encode::classic_schema;

const INTERFACE: &str = "http";
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(OpenApi)]
#[openapi(
    info(title = "Meshwork API", description = "Discover and query the data products of a Meshwork mesh. Every endpoint under `/api/v1` needs `Authorization: Bearer <token>` (an API token from `meshwork token create`, or an OIDC JWT). Products the caller may not read are answered exactly like products that do not exist."),
    paths(products::whoami, products::list_products, search::search_catalog, products::product_detail, trust::product_quality, consumers::product_consumers, consumers::list_product_subscriptions, consumers::create_subscription, consumers::delete_subscription, consumers::my_subscriptions, access::product_card, access::create_access_request, access::list_access_requests, access::approve_access_request, access::deny_access_request, access::withdraw_access_request, access::product_grants, access::list_grants, access::revoke_grant, access::revoke_product_grants, trust::product_slo, query::run_query, audit::audit_events, events::list_events),
    components(schemas(products::WhoAmI, products::ProductSummary, products::ProductDetail, products::VersionInfo, products::ColumnInfo, deprecation::DeprecationInfo, query::QueryRequest, query::QueryResultJson, audit::AuditEventInfo, events::EventPage, error::ErrorBody, error::ErrorInfo)),
    tags(
        (name = "products", description = "The caller, the products it may read, one product in full, its quality runs and SLOs"),
        (name = "search", description = "Ranked, typo-tolerant catalog search with facets"),
        (name = "query", description = "SQL as the caller, streamed as JSON, CSV or Arrow"),
        (name = "access", description = "Public cards, access requests, owners' decisions and grants"),
        (name = "consumers", description = "Who reads a product, and subscriptions to its events"),
        (name = "events", description = "The lifecycle event log"),
        (name = "audit", description = "The audit log (administrators)"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

pub(crate) async fn serve(gate: Arc<Gate>, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    tracing::info!(address = %listener.local_addr()?, "HTTP API listening");
    axum::serve(listener, router(gate)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

fn router(gate: Arc<Gate>) -> Router {
    let api = Router::new()
        .route("/api/v1/whoami", get(products::whoami))
        .route("/api/v1/products", get(products::list_products))
        .route("/api/v1/search", get(search::search_catalog))
        .route("/api/v1/products/{product}", get(products::product_detail))
        .route("/api/v1/products/{product}/quality", get(trust::product_quality))
        .route("/api/v1/products/{product}/consumers", get(consumers::product_consumers))
        .route(
            "/api/v1/products/{product}/subscriptions",
            get(consumers::list_product_subscriptions).post(consumers::create_subscription).delete(consumers::delete_subscription),
        )
        .route("/api/v1/subscriptions", get(consumers::my_subscriptions))
        .route("/api/v1/products/{product}/card", get(access::product_card))
        .route("/api/v1/products/{product}/access-requests", post(access::create_access_request))
        .route("/api/v1/access-requests", get(access::list_access_requests))
        .route("/api/v1/access-requests/{id}/approve", post(access::approve_access_request))
        .route("/api/v1/access-requests/{id}/deny", post(access::deny_access_request))
        .route("/api/v1/access-requests/{id}/withdraw", post(access::withdraw_access_request))
        .route("/api/v1/products/{product}/grants", get(access::product_grants))
        .route("/api/v1/products/{product}/grants/{principal}", axum::routing::delete(access::revoke_product_grants))
        .route("/api/v1/grants", get(access::list_grants))
        .route("/api/v1/grants/{id}/revoke", post(access::revoke_grant))
        .route("/api/v1/products/{product}/slo", get(trust::product_slo))
        .route("/api/v1/events", get(events::list_events))
        .route("/api/v1/query", post(query::run_query))
        .route("/api/v1/audit", get(audit::audit_events))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ServeError::NotFound("no such endpoint; see /openapi.json or /docs".into()) });
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .merge(api)
        .merge(crate::portal::router())
        .layer(axum::middleware::from_fn_with_state(gate.clone(), with_request_id))
        .with_state(gate)
}

/// Gives every request an id (the client's `x-request-id` if it is short and plain), a tracing
/// span carrying it, the id in the response (and in the body of an error), and a count in the
/// metrics.
async fn with_request_id(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .map(str::to_owned)
        .unwrap_or_else(crate::request_id);
    let method = request.method().to_string();
    let span = tracing::info_span!("http", request_id = %id, method = %method, path = %request.uri().path());
    let response = next.run(request).instrument(span.clone()).await;
    let mut response = error::with_error_body(response, &id);
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, "response"));
    gate.metrics().http_request(&method, status);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

