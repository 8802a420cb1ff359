//! The HTTP API of the catalog: who the caller is, the products it may read, and one product in
//! full.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use meshwork_auth::Identity;
use meshwork_catalog::ProductRecord;
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::ProductId;
use meshwork_query::{FacetFilters, SearchRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::ErrorBody;
use crate::error::ServeError;
use crate::gate::Gate;

/// Who the caller is.
#[derive(Serialize, ToSchema)]
pub(super) struct WhoAmI {
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
pub(super) async fn whoami(Caller(who): Caller) -> Json<WhoAmI> {
    let p = who.principal;
    Json(WhoAmI {
        name: p.name,
        kind: p.kind.as_str().into(),
        groups: p.groups.into_iter().collect(),
        domains: p.domains.into_iter().map(|d| d.to_string()).collect(),
        attributes: p.attributes,
        admin: p.admin,
        authenticated_by: who.method,
    })
}

/// A product in listings.
#[derive(Serialize, ToSchema)]
pub(super) struct ProductSummary {
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
pub(super) struct ProductSearch {
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
pub(super) async fn list_products(State(gate): State<Arc<Gate>>, Caller(who): Caller, Query(search): Query<ProductSearch>) -> Result<Json<Vec<ProductSummary>>, ServeError> {
    let request = SearchRequest {
        text: search.q.unwrap_or_default(),
        filters: FacetFilters { domain: search.domain.into_iter().collect(), ..FacetFilters::default() },
        limit: search.limit.unwrap_or(usize::MAX),
        offset: 0,
        cards: false,
    };
    let found = gate.engine().search(&who.principal, &request).await?;
    Ok(Json(found.hits.iter().map(|hit| ProductSummary::from(&hit.record)).collect()))
}

/// One published version.
#[derive(Serialize, ToSchema)]
pub(super) struct VersionInfo {
    seq: i64,
    version: String,
    rows: i64,
    published_at: String,
}

/// One output column.
#[derive(Serialize, Deserialize, ToSchema)]
pub(super) struct ColumnInfo {
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) data_type: String,
    pub(super) nullable: bool,
}

/// Everything about one product the caller may read.
#[derive(Serialize, ToSchema)]
pub(super) struct ProductDetail {
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
    /// Active grants of approved access requests: all of them for owners and administrators,
    /// the caller's own for anyone else.
    #[schema(value_type = Vec<Object>)]
    grants: Vec<meshwork_catalog::Grant>,
}

/// A product the caller may read: its record, its published descriptor, every product the
/// caller may read, and the governance snapshot that decided it.
pub(crate) struct Readable {
    pub(crate) record: ProductRecord,
    pub(crate) descriptor: ProductDescriptor,
    pub(crate) visible: Vec<ProductRecord>,
    pub(crate) governance: Arc<meshwork_query::Governance>,
}

/// The product `product` names, if the caller may read it; otherwise exactly the answer for a
/// product that does not exist.
pub(crate) async fn readable_product(gate: &Gate, who: &Identity, product: &str) -> Result<Readable, ServeError> {
    let not_found = || ServeError::NotFound(format!("product `{product}` not found (hint: GET /api/v1/products lists the products you can read)"));
    let product_id: ProductId = product.parse().map_err(|_| not_found())?;
    let catalog = gate.engine().catalog();
    let governance = gate.engine().governance().await?;
    let records = catalog.products().await?;
    let visible: Vec<ProductRecord> = governance.visible(&who.principal, &records).into_iter().cloned().collect();
    let record = visible.iter().find(|r| r.id == product_id).cloned().ok_or_else(not_found)?;
    let descriptor = record.descriptor.clone();
    Ok(Readable { record, descriptor, visible, governance })
}

/// One product, by `domain.product`.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}",
    params(("product" = String, Path, description = "`domain.product`")),
    responses((status = 200, description = "The product, as far as the caller may see it", body = ProductDetail), (status = 401, description = "No credential, or one that is invalid, revoked or expired", body = ErrorBody), (status = 404, description = "No such product, or one the caller may not see", body = ErrorBody))
)]
pub(super) async fn product_detail(State(gate): State<Arc<Gate>>, Caller(who): Caller, Path(product): Path<String>) -> Result<Json<ProductDetail>, ServeError> {
    let Readable { record, descriptor, visible, governance } = readable_product(&gate, &who, &product).await?;
    let product_id = record.id.clone();
    let catalog = gate.engine().catalog();
    let versions = catalog.versions(&product_id).await?;
    let schema = versions
        .last()
        .map(|v| v.schema.iter().map(|c| ColumnInfo { name: c.name.clone(), data_type: c.data_type.to_string(), nullable: c.nullable }).collect())
        .unwrap_or_default();
    let is_visible = |p: &ProductId| visible.iter().any(|r| &r.id == p);
    let (upstream, downstream) = meshwork_query::visible_lineage(catalog.as_ref(), &visible.iter().collect::<Vec<_>>(), &product_id).await?;
    let (upstream, downstream) = (upstream.iter().map(ToString::to_string).collect(), downstream.iter().map(ToString::to_string).collect());
    // The descriptor names only products the caller may also see.
    let shown = descriptor.clone().without_hidden_products(is_visible);
    let descriptor_json: serde_json::Value = serde_json::to_value(&shown).map_err(|e| ServeError::Internal(e.to_string()))?;
    let quality = descriptor_json.get("quality").cloned().unwrap_or(serde_json::Value::Array(Vec::new()));
    let latest_quality_run = meshwork_query::quality_runs_for(catalog.as_ref(), &governance, &who.principal, &descriptor, 1)
        .await?
        .into_iter()
        .next()
        .map(|run| serde_json::to_value(run).unwrap_or_default());
    let slo = catalog.latest_slo_checks(&product_id).await?.iter().map(|c| serde_json::to_value(c).unwrap_or_default()).collect();
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
        grants: meshwork_query::shown_grants(catalog.as_ref(), &who.principal, &record).await?,
    }))
}
