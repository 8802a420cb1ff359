//! The HTTP API: products, SQL, audit; its OpenAPI document, Swagger UI, health and metrics.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use meshwork_auth::{Credential, Identity};
use meshwork_catalog::{AuditFilter, ProductRecord};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use meshwork_query::{FacetFilters, SearchRequest};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::Instrument;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ServeError;
use crate::gate::{Gate, GovernedStream};

mod consumers;
mod deprecation;
mod search;

use deprecation::{DeprecationInfo, deprecation_headers};
pub(crate) use deprecation::METADATA as DEPRECATION_METADATA;

const INTERFACE: &str = "http";
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(OpenApi)]
#[openapi(
    info(title = "Meshwork API", description = "Discover and query the data products of a Meshwork mesh. Every endpoint under `/api/v1` needs `Authorization: Bearer <token>` (an API token from `meshwork token create`, or an OIDC JWT). Products the caller may not read are answered exactly like products that do not exist."),
    paths(whoami, list_products, search::search_catalog, product_detail, product_quality, consumers::product_consumers, consumers::list_product_subscriptions, consumers::create_subscription, consumers::delete_subscription, consumers::my_subscriptions, product_slo, run_query, audit_events, list_events),
    components(schemas(WhoAmI, ProductSummary, ProductDetail, VersionInfo, ColumnInfo, DeprecationInfo, QueryRequest, QueryResultJson, AuditEventInfo, EventPage, ErrorBody, ErrorInfo)),
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
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/products", get(list_products))
        .route("/api/v1/search", get(search::search_catalog))
        .route("/api/v1/products/{product}", get(product_detail))
        .route("/api/v1/products/{product}/quality", get(product_quality))
        .route("/api/v1/products/{product}/consumers", get(consumers::product_consumers))
        .route(
            "/api/v1/products/{product}/subscriptions",
            get(consumers::list_product_subscriptions).post(consumers::create_subscription).delete(consumers::delete_subscription),
        )
        .route("/api/v1/subscriptions", get(consumers::my_subscriptions))
        .route("/api/v1/products/{product}/slo", get(product_slo))
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/query", post(run_query))
        .route("/api/v1/audit", get(audit_events))
        .route("/health", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|Extension(id): Extension<RequestId>| async move {
            ApiError { error: ServeError::NotFound("no such endpoint; see /openapi.json or /docs".into()), request_id: id.0 }
        });
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(gate.clone(), with_request_id))
        .with_state(gate)
}

/// The request id of the current request.
#[derive(Debug, Clone)]
struct RequestId(String);

/// Gives every request an id (the client's `x-request-id` if it is short and plain), a tracing
/// span carrying it, the id in the response, and a count in the metrics.
async fn with_request_id(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .map(str::to_owned)
        .unwrap_or_else(crate::request_id);
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().to_string();
    let span = tracing::info_span!("http", request_id = %id, method = %method, path = %request.uri().path());
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, "response"));
    gate.metrics().http_request(&method, status);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// An error response: `{"error": {"code", "message", "request_id"}}` with a matching status.
struct ApiError {
    error: ServeError,
    request_id: String,
}

/// Error body.
#[derive(Serialize, ToSchema)]
struct ErrorBody {
    error: ErrorInfo,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
struct ErrorInfo {
    /// Stable code: `unauthenticated`, `forbidden`, `not_found`, `bad_request`, `invalid_query`, `too_many_queries`, `timeout`, `resources_exhausted`, `internal`.
    code: String,
    /// What happened and how to fix it.
    message: String,
    /// Quote this when reporting a problem.
    request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.error.code() {
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "forbidden" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "bad_request" | "invalid_query" => StatusCode::BAD_REQUEST,
            "too_many_queries" => StatusCode::TOO_MANY_REQUESTS,
            "timeout" => StatusCode::REQUEST_TIMEOUT,
            "resources_exhausted" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(request_id = %self.request_id, error = %self.error, "request failed");
        }
        let body = ErrorBody { error: ErrorInfo { code: self.error.code().into(), message: self.error.client_message(), request_id: self.request_id } };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Authenticates the request's bearer credential.
async fn caller(gate: &Gate, headers: &HeaderMap, id: &RequestId) -> Result<Identity, ApiError> {
    let header = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| fail(ServeError::Unauthenticated(meshwork_auth::AuthError::Malformed), id))?),
    };
    gate.authenticate(Credential::from_authorization(header), INTERFACE).await.map_err(|e| fail(e, id))
}

fn fail(error: impl Into<ServeError>, id: &RequestId) -> ApiError {
    ApiError { error: error.into(), request_id: id.0.clone() }
}

/// Who the caller is.
#[derive(Serialize, ToSchema)]
struct WhoAmI {
    name: String,
    kind: String,
    groups: Vec<String>,
    domains: Vec<String>,
    attributes: std::collections::BTreeMap<String, String>,
    admin: bool,
    /// `token:<id>` or `oidc:<issuer>`.
    authenticated_by: String,
}

/// The authenticated principal.
#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, description = "The authenticated principal", body = WhoAmI), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody)))]
async fn whoami(State(gate): State<Arc<Gate>>, Extension(id): Extension<RequestId>, headers: HeaderMap) -> Result<Json<WhoAmI>, ApiError> {
    let who = caller(&gate, &headers, &id).await?;
    let p = who.principal;
    Ok(Json(WhoAmI {
        name: p.name,
        kind: p.kind.as_str().into(),
        groups: p.groups.into_iter().collect(),
        domains: p.domains.into_iter().map(|d| d.to_string()).collect(),
        attributes: p.attributes,
        admin: p.admin,
        authenticated_by: who.method,
    }))
}

/// A product in listings.
#[derive(Serialize, ToSchema)]
struct ProductSummary {
    /// `domain.product`.
    id: String,
    domain: String,
    name: String,
    version: String,
    title: Option<String>,
    description: Option<String>,
    owner: Option<String>,
    status: String,
    tags: Vec<String>,
}

impl From<&ProductRecord> for ProductSummary {
    fn from(r: &ProductRecord) -> Self {
        ProductSummary {
            id: r.id.to_string(),
            domain: r.id.domain.to_string(),
            name: r.id.name.to_string(),
            version: r.version.clone(),
            title: r.title.clone(),
            description: r.description.clone(),
            owner: r.owner.clone(),
            status: r.status.to_string(),
            tags: r.tags.clone(),
        }
    }
}

/// Listing filters.
#[derive(Deserialize, IntoParams)]
struct ProductSearch {
    /// Words that must all match (exactly, as a prefix or with a typo) a word of the id, title,
    /// description, tags, domain, owner or columns, case-insensitively: `ord` finds
    /// `sales.orders`. `GET /api/v1/search` has the same search with facets.
    q: Option<String>,
    /// Only this domain's products.
    domain: Option<String>,
    /// At most this many products (best match first; all of them in address order without `q`).
    limit: Option<usize>,
}

/// The products the caller may read, optionally searched.
#[utoipa::path(get, path = "/api/v1/products", params(ProductSearch), responses((status = 200, description = "The products the caller may see, best match first", body = [ProductSummary]), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody)))]
async fn list_products(
    State(gate): State<Arc<Gate>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(search): Query<ProductSearch>,
) -> Result<Json<Vec<ProductSummary>>, ApiError> {
    let who = caller(&gate, &headers, &id).await?;
    let request = SearchRequest {
        text: search.q.unwrap_or_default(),
        filters: FacetFilters { domain: search.domain.into_iter().collect(), ..FacetFilters::default() },
        limit: search.limit.unwrap_or(usize::MAX),
        offset: 0,
    };
    let found = gate.engine().search(&who.principal, &request).await.map_err(|e| fail(e, &id))?;
    Ok(Json(found.hits.iter().map(|hit| ProductSummary::from(&hit.record)).collect()))
}

/// One published version.
#[derive(Serialize, ToSchema)]
struct VersionInfo {
    seq: i64,
    version: String,
    rows: i64,
    published_at: String,
}

/// One output column.
#[derive(Serialize, Deserialize, ToSchema)]
struct ColumnInfo {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
}

/// Everything about one product the caller may read.
#[derive(Serialize, ToSchema)]
struct ProductDetail {
    #[serde(flatten)]
    summary: ProductSummary,
    /// The descriptor as published (`product.yaml`, as JSON).
    #[schema(value_type = Object)]
    descriptor: serde_json::Value,
    /// Columns of the current version.
    schema: Vec<ColumnInfo>,
    /// Published versions, oldest first.
    versions: Vec<VersionInfo>,
    /// Products it reads that the caller may also read.
    upstream: Vec<String>,
    /// Products reading it that the caller may also read.
    downstream: Vec<String>,
    /// Quality checks its descriptor declares.
    #[schema(value_type = Object)]
    quality: serde_json::Value,
    /// The newest quality run (samples masked by the access policy for non-owners).
    #[schema(value_type = Object)]
    latest_quality_run: Option<serde_json::Value>,
    /// Newest evaluation of each service level objective, with error budget left.
    #[schema(value_type = Vec<Object>)]
    slo: Vec<serde_json::Value>,
    /// Where its Delta table is; administrators only.
    table_uri: Option<String>,
}

/// The product `product` names and its published descriptor, if the caller may read it;
/// otherwise exactly the answer for a product that does not exist.
async fn readable_product(gate: &Gate, who: &Identity, product: &str, id: &RequestId) -> Result<(ProductRecord, ProductDescriptor, Vec<ProductRecord>, Arc<meshwork_query::Governance>), ApiError> {
    let not_found = || fail(ServeError::NotFound(format!("product `{product}` not found (hint: GET /api/v1/products lists the products you can read)")), id);
    let product_id: ProductId = product.parse().map_err(|_| not_found())?;
    let catalog = gate.engine().catalog();
    let governance = gate.engine().governance().await.map_err(|e| fail(e, id))?;
    let records = catalog.products().await.map_err(|e| fail(e, id))?;
    let visible: Vec<ProductRecord> = governance.visible(&who.principal, &records).into_iter().cloned().collect();
    let record = visible.iter().find(|r| r.id == product_id).cloned().ok_or_else(not_found)?;
    let descriptor = record.descriptor.clone();
    Ok((record, descriptor, visible, governance))
}

/// Query parameters of the quality history.
#[derive(Deserialize, IntoParams)]
struct QualityQuery {
    /// At most this many runs (default 10, at most 100).
    limit: Option<u32>,
}

/// A product's quality runs, newest first: outcome, timings and every rule's result, with up to
/// 10 sample failing rows per rule (masked by the product's access policy for non-owners).
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/quality",
    params(("product" = String, Path, description = "`domain.product`"), QualityQuery),
    responses((status = 200, description = "`{product, runs}`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody))
)]
async fn product_quality(
    State(gate): State<Arc<Gate>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Path(product): Path<String>,
    Query(query): Query<QualityQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&gate, &headers, &id).await?;
    let (record, descriptor, _, governance) = readable_product(&gate, &who, &product, &id).await?;
    let limit = query.limit.unwrap_or(10).clamp(1, 100);
    let runs = meshwork_query::quality_runs_for(gate.engine().catalog().as_ref(), &governance, &who.principal, &descriptor, limit)
        .await
        .map_err(|e| fail(e, &id))?;
    Ok(Json(serde_json::json!({ "product": record.id.to_string(), "runs": runs })))
}

/// Query parameters of the SLO history.
#[derive(Deserialize, IntoParams)]
struct SloQuery {
    /// Only evaluations at or after this RFC 3339 time (default: the SLO window).
    since: Option<String>,
    /// At most this many evaluations (default 500).
    limit: Option<u32>,
}

/// A product's service level objectives: the newest status of each (met, at_risk, violated)
/// with error budget left over the SLO window, and the evaluation history, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/slo",
    params(("product" = String, Path, description = "`domain.product`"), SloQuery),
    responses((status = 200, description = "`{product, declared, objectives, history}`", body = Object), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody))
)]
async fn product_slo(
    State(gate): State<Arc<Gate>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Path(product): Path<String>,
    Query(query): Query<SloQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&gate, &headers, &id).await?;
    let (record, descriptor, _, _) = readable_product(&gate, &who, &product, &id).await?;
    let catalog = gate.engine().catalog();
    let window = descriptor.slo.as_ref().map(|s| s.window.seconds).unwrap_or(meshwork_core::descriptor::DEFAULT_SLO_WINDOW.seconds);
    let since = match query.since {
        Some(since) => meshwork_catalog::time::parse(&since)
            .map_err(|_| fail(ServeError::BadRequest(format!("`since={since}` is not an RFC 3339 time like `2026-11-01T00:00:00Z`")), &id))?,
        None => chrono::Utc::now() - chrono::Duration::seconds(window as i64),
    };
    let latest = catalog.latest_slo_checks(&record.id).await.map_err(|e| fail(e, &id))?;
    let history = catalog.slo_checks(&record.id, since, query.limit.unwrap_or(500).clamp(1, 10_000)).await.map_err(|e| fail(e, &id))?;
    Ok(Json(serde_json::json!({
        "product": record.id.to_string(),
        "declared": descriptor.slo,
        "objectives": latest,
        "history": history,
    })))
}

/// Query parameters of the event feed.
#[derive(Deserialize, IntoParams)]
struct EventQuery {
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
struct EventPage {
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
async fn list_events(
    State(gate): State<Arc<Gate>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(query): Query<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let who = caller(&gate, &headers, &id).await?;
    let after = query.after.unwrap_or(0);
    let product = query
        .product
        .as_deref()
        .map(|p| p.parse::<ProductId>().map_err(|e| fail(ServeError::BadRequest(format!("`product={p}`: {e}")), &id)))
        .transpose()?;
    let kinds = match query.kind {
        Some(kind) => vec![EventKind::named(&kind).map_err(|m| fail(ServeError::BadRequest(m), &id))?],
        None => Vec::new(),
    };
    let catalog = gate.engine().catalog();
    let governance = gate.engine().governance().await.map_err(|e| fail(e, &id))?;
    let records = catalog.products().await.map_err(|e| fail(e, &id))?;
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
    let events = catalog.events(&filter).await.map_err(|e| fail(e, &id))?;
    // Over the whole feed the cursor moves past hidden events too, so a follower never asks
    // for them again; that tells nothing about any one product.
    let next_cursor = events.last().map(|e| e.id).unwrap_or(after);
    let subscribed = match query.subscribed {
        Some(true) => Some(catalog.subscriptions(None).await.map_err(|e| fail(e, &id))?.into_iter().filter(|s| s.principal == who.principal.name).collect::<Vec<_>>()),
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

/// One product, by `domain.product`.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}",
    params(("product" = String, Path, description = "`domain.product`")),
    responses((status = 200, description = "The product, as far as the caller may see it", body = ProductDetail), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody))
)]
async fn product_detail(
    State(gate): State<Arc<Gate>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Path(product): Path<String>,
) -> Result<Json<ProductDetail>, ApiError> {
    let who = caller(&gate, &headers, &id).await?;
    let (record, descriptor, visible, governance) = readable_product(&gate, &who, &product, &id).await?;
    let product_id = record.id.clone();
    let catalog = gate.engine().catalog();
    let versions = catalog.versions(&product_id).await.map_err(|e| fail(e, &id))?;
    let schema = versions
        .last()
        .map(|v| v.schema.iter().map(|c| ColumnInfo { name: c.name.clone(), data_type: c.data_type.to_string(), nullable: c.nullable }).collect())
        .unwrap_or_default();
    let is_visible = |p: &ProductId| visible.iter().any(|r| &r.id == p);
    let (upstream, downstream) = meshwork_query::visible_lineage(catalog.as_ref(), &visible.iter().collect::<Vec<_>>(), &product_id).await.map_err(|e| fail(e, &id))?;
    let (upstream, downstream) = (upstream.iter().map(ToString::to_string).collect(), downstream.iter().map(ToString::to_string).collect());
    // The descriptor names only products the caller may also see.
    let shown = descriptor.clone().without_hidden_products(is_visible);
    let descriptor_json: serde_json::Value = serde_json::to_value(&shown).map_err(|e| fail(ServeError::Internal(e.to_string()), &id))?;
    let quality = descriptor_json.get("quality").cloned().unwrap_or(serde_json::Value::Array(Vec::new()));
    let latest_quality_run = meshwork_query::quality_runs_for(catalog.as_ref(), &governance, &who.principal, &descriptor, 1)
        .await
        .map_err(|e| fail(e, &id))?
        .into_iter()
        .next()
        .map(|run| serde_json::to_value(run).unwrap_or_default());
    let slo = catalog.latest_slo_checks(&product_id).await.map_err(|e| fail(e, &id))?.iter().map(|c| serde_json::to_value(c).unwrap_or_default()).collect();
    Ok(Json(ProductDetail {
        summary: ProductSummary::from(&record),
        descriptor: descriptor_json,
        schema,
        versions: versions.iter().map(|v| VersionInfo { seq: v.seq, version: v.version.clone(), rows: v.row_count, published_at: meshwork_catalog::time::format(&v.published_at) }).collect(),
        upstream,
        downstream,
        quality,
        latest_quality_run,
        slo,
        table_uri: who.principal.admin.then(|| record.table_uri.clone()),
    }))
}

/// A SQL statement to run.
#[derive(Deserialize, ToSchema)]
struct QueryRequest {
    /// One read-only SQL statement over `domain.product` tables.
    sql: String,
}

/// A JSON query result.
#[derive(Serialize, ToSchema)]
struct QueryResultJson {
    /// Result columns with their Arrow types.
    columns: Vec<ColumnInfo>,
    /// Present when the statement read deprecated products: what their readers are told (the
    /// same warnings are in the `Meshwork-Deprecation` headers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deprecations: Vec<DeprecationInfo>,
    /// One object per row, column name → value.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<serde_json::Value>,
}

/// Runs SQL as the caller. The result format follows `Accept`: `application/json` (default),
/// `text/csv`, or `application/vnd.apache.arrow.stream`. Results stream as they are computed.
#[utoipa::path(
    post,
    path = "/api/v1/query",
    request_body = QueryRequest,
    responses(
        (status = 200, description = "The rows, in the format the `Accept` header asks for", content(
            (QueryResultJson = "application/json"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.apache.arrow.stream")
        )),
        (status = 400, description = "The statement cannot be parsed or is not allowed, or the body or `Accept` header is malformed", body = ErrorBody), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody),
        (status = 408, description = "The query ran past the server's time limit", body = ErrorBody), (status = 422, description = "The query needed more memory than the server allows a query", body = ErrorBody), (status = 429, description = "The caller already runs as many queries as it may at once", body = ErrorBody)
    )
)]
async fn run_query(
    State(gate): State<Arc<Gate>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = caller(&gate, &headers, &id).await?;
    let request: QueryRequest = serde_json::from_slice(&body)
        .map_err(|e| fail(ServeError::BadRequest(format!("the body must be JSON like {{\"sql\": \"SELECT 1\"}}: {e}")), &id))?;
    let format = ResultFormat::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())).map_err(|e| fail(e, &id))?;
    let session = gate.session(&who.principal, INTERFACE).await.map_err(|e| fail(e, &id))?;
    let mut stream = gate.run(&session, INTERFACE, &request.sql, None).await.map_err(|e| fail(e, &id))?;
    stream.prime().await.map_err(|e| fail(e, &id))?;
    let content_type = format.content_type();
    let deprecations: Vec<DeprecationInfo> = stream.deprecations().iter().map(DeprecationInfo::from).collect();
    let mut response = Body::from_stream(encode(stream, format, deprecations.clone())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    deprecation_headers(headers, &deprecations);
    Ok(response)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultFormat {
    Json,
    Csv,
    Arrow,
}

impl ResultFormat {
    fn from_accept(accept: Option<&str>) -> Result<ResultFormat, ServeError> {
        let Some(accept) = accept else { return Ok(ResultFormat::Json) };
        for item in accept.split(',') {
            let media = item.split(';').next().unwrap_or_default().trim();
            match media {
                "application/json" | "*/*" | "application/*" | "" => return Ok(ResultFormat::Json),
                "text/csv" | "text/*" => return Ok(ResultFormat::Csv),
                ARROW_STREAM => return Ok(ResultFormat::Arrow),
                _ => {}
            }
        }
        Err(ServeError::BadRequest(format!("cannot answer `Accept: {accept}`; ask for `application/json`, `text/csv` or `{ARROW_STREAM}`")))
    }

    fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Json => "application/json",
            ResultFormat::Csv => "text/csv; charset=utf-8",
            ResultFormat::Arrow => ARROW_STREAM,
        }
    }
}

/// Encodes batches as they arrive. An error after the first bytes ends the body early: the
/// client sees a truncated (invalid) document, never a silently partial one that parses.
fn encode(stream: GovernedStream, format: ResultFormat, deprecations: Vec<DeprecationInfo>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let schema = stream.schema();
    let mut encoder = Encoder::new(format, schema);
    encoder.deprecations = deprecations;
    let head = futures::stream::once(futures::future::ready(encoder.head()));
    let mut encoder_tail = encoder.clone_for_tail();
    let body = stream.map(move |batch| match batch {
        Ok(batch) => encoder.batch(&batch),
        Err(err) => {
            tracing::warn!(error = %err, "query failed while streaming its result");
            Err(std::io::Error::other(err.to_string()))
        }
    });
    let tail = futures::stream::once(async move { encoder_tail.tail() });
    head.chain(body).chain(tail).filter(|chunk| futures::future::ready(!matches!(chunk, Ok(b) if b.is_empty())))
}

/// Writes one result format incrementally.
struct Encoder {
    format: ResultFormat,
    schema: datafusion::arrow::datatypes::SchemaRef,
    rows_written: bool,
    arrow: Option<datafusion::arrow::ipc::writer::StreamWriter<Vec<u8>>>,
    /// Put in the JSON document (and the Arrow schema's metadata) before the rows.
    deprecations: Vec<DeprecationInfo>,
}

impl Encoder {
    fn new(format: ResultFormat, schema: datafusion::arrow::datatypes::SchemaRef) -> Encoder {
        Encoder { format, schema, rows_written: false, arrow: None, deprecations: Vec::new() }
    }

    fn clone_for_tail(&self) -> Encoder {
        Encoder { format: self.format, schema: self.schema.clone(), rows_written: false, arrow: None, deprecations: Vec::new() }
    }

    fn head(&mut self) -> Result<Bytes, std::io::Error> {
        match self.format {
            ResultFormat::Json => {
                let columns: Vec<ColumnInfo> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| ColumnInfo { name: f.name().clone(), data_type: f.data_type().to_string(), nullable: f.is_nullable() })
                    .collect();
                let deprecations = match self.deprecations.is_empty() {
                    true => String::new(),
                    false => format!("\"deprecations\":{},", serde_json::to_string(&self.deprecations)?),
                };
                Ok(Bytes::from(format!("{{\"columns\":{},{deprecations}\"rows\":[", serde_json::to_string(&columns)?)))
            }
            ResultFormat::Csv => {
                let header: Vec<String> = self.schema.fields().iter().map(|f| csv_field(f.name())).collect();
                Ok(Bytes::from(format!("{}\n", header.join(","))))
            }
            ResultFormat::Arrow => {
                // View types (`Utf8View`, `BinaryView`) are what DataFusion computes with, but
                // many Arrow readers cannot read them yet: send the classic types.
                self.schema = classic_schema(&self.schema);
                if !self.deprecations.is_empty() {
                    let mut metadata = self.schema.metadata().clone();
                    let warnings: Vec<&str> = self.deprecations.iter().map(|d| d.message.as_str()).collect();
                    metadata.insert(deprecation::METADATA.into(), warnings.join("\n"));
                    self.schema = Arc::new(self.schema.as_ref().clone().with_metadata(metadata));
                }
                let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &self.schema).map_err(std::io::Error::other)?;
                let bytes = std::mem::take(writer.get_mut());
                self.arrow = Some(writer);
                Ok(Bytes::from(bytes))
            }
        }
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Bytes, std::io::Error> {
        if batch.num_rows() == 0 {
            return Ok(Bytes::new());
        }
        match self.format {
            ResultFormat::Json => {
                let mut writer = datafusion::arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
                writer.write(batch).map_err(std::io::Error::other)?;
                writer.finish().map_err(std::io::Error::other)?;
                let text = writer.into_inner();
                // `[{…},{…}]` → `{…},{…}`, joined to earlier batches with a comma.
                let inner = &text[1..text.len() - 1];
                let mut out = Vec::with_capacity(inner.len() + 1);
                if self.rows_written {
                    out.push(b',');
                }
                out.extend_from_slice(inner);
                self.rows_written = true;
                Ok(Bytes::from(out))
            }
            ResultFormat::Csv => {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(false).build(Vec::new());
                writer.write(batch).map_err(std::io::Error::other)?;
                Ok(Bytes::from(writer.into_inner()))
            }
            ResultFormat::Arrow => {
                let columns = batch
                    .columns()
                    .iter()
                    .zip(self.schema.fields())
                    .map(|(column, field)| datafusion::arrow::compute::cast(column, field.data_type()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(std::io::Error::other)?;
                let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(std::io::Error::other)?;
                let writer = self.arrow.as_mut().expect("head written first");
                writer.write(&batch).map_err(std::io::Error::other)?;
                Ok(Bytes::from(std::mem::take(writer.get_mut())))
            }
        }
    }

    fn tail(&mut self) -> Result<Bytes, std::io::Error> {
        match self.format {
            ResultFormat::Json => Ok(Bytes::from_static(b"]}")),
            ResultFormat::Csv => Ok(Bytes::new()),
            ResultFormat::Arrow => {
                // The end-of-stream marker: a continuation token and a zero length.
                Ok(Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]))
            }
        }
    }
}

/// `schema` with view types replaced by their classic equivalents.
fn classic_schema(schema: &datafusion::arrow::datatypes::Schema) -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::Utf8),
            DataType::BinaryView => f.as_ref().clone().with_data_type(DataType::Binary),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) { format!("\"{}\"", name.replace('"', "\"\"")) } else { name.to_owned() }
}

/// Audit filters.
#[derive(Deserialize, IntoParams)]
struct AuditQuery {
    /// Only events touching this product (`domain.product`).
    product: Option<String>,
    /// Only events of this principal.
    principal: Option<String>,
    /// Only events at or after this RFC 3339 time.
    since: Option<String>,
    /// At most this many, newest first (default 100).
    limit: Option<u32>,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
struct AuditEventInfo {
    id: i64,
    at: String,
    principal: String,
    interface: String,
    action: String,
    statement: String,
    #[schema(value_type = Vec<Object>)]
    products: serde_json::Value,
    rows: Option<u64>,
    duration_ms: f64,
    /// `ok`, `error`, `denied`, `cancelled`, `refused` (over the concurrency limit), or `running`.
    outcome: String,
    error: Option<String>,
}

/// The audit log, newest first. Administrators only.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses((status = 200, description = "Audit events, newest first", body = [AuditEventInfo]), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 403, description = "The caller is not an administrator", body = ErrorBody)))]
async fn audit_events(
    State(gate): State<Arc<Gate>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEventInfo>>, ApiError> {
    let who = caller(&gate, &headers, &id).await?;
    if !who.principal.admin {
        return Err(fail(ServeError::Forbidden(format!("the audit log is reserved for administrators; `{}` is not one", who.principal.name)), &id));
    }
    let product = query
        .product
        .as_deref()
        .map(|p| p.parse::<ProductId>().map_err(|e| fail(ServeError::BadRequest(format!("`product={p}`: {e}")), &id)))
        .transpose()?;
    let since = query
        .since
        .as_deref()
        .map(|since| {
            meshwork_catalog::time::parse(since)
                .map_err(|_| fail(ServeError::BadRequest(format!("`since={since}` is not an RFC 3339 time like `2026-11-01T00:00:00Z`")), &id))
        })
        .transpose()?;
    let events = gate
        .engine()
        .catalog()
        .audit(&AuditFilter { product, principal: query.principal, since, limit: Some(query.limit.unwrap_or(100)) })
        .await
        .map_err(|e| fail(e, &id))?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| AuditEventInfo {
                id: e.id,
                at: meshwork_catalog::time::format(&e.at),
                principal: e.principal,
                interface: e.interface,
                action: e.action,
                statement: e.statement,
                products: serde_json::to_value(&e.products).unwrap_or_default(),
                rows: e.rows,
                duration_ms: e.duration_ms,
                outcome: e.outcome.to_string(),
                error: e.error,
            })
            .collect(),
    ))
}

/// Readiness for a load balancer: 200 when the metadata store answers and the storage root can
/// be listed, 503 saying which failed otherwise (both probed at once, each within 3 s).
/// `/health` says only that the process is up. The endpoint needs no token, so the answer names
/// the failing part only; the error itself goes to the server log.
async fn ready(State(gate): State<Arc<Gate>>) -> impl IntoResponse {
    const PROBE: std::time::Duration = std::time::Duration::from_secs(3);
    let metadata = async {
        match tokio::time::timeout(PROBE, gate.engine().catalog().generation()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {} s", PROBE.as_secs())),
        }
    };
    let storage = async {
        match &gate.options().storage {
            None => None,
            Some(store) => store.probe().await.err().map(|e| e.to_string()),
        }
    };
    let (metadata, storage) = tokio::join!(metadata, storage);
    if let Some(error) = &metadata {
        tracing::warn!(%error, "not ready: the metadata store does not answer");
    }
    if let Some(error) = &storage {
        tracing::warn!(%error, "not ready: the storage does not answer");
    }
    let shown = |failure: &Option<String>| if failure.is_some() { "error: unreachable (see the server log)" } else { "ok" };
    let ready = metadata.is_none() && storage.is_none();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({"status": if ready { "ready" } else { "not_ready" }, "metadata": shown(&metadata), "storage": shown(&storage)})))
}

async fn metrics(State(gate): State<Arc<Gate>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], gate.metrics().render())
}
