//! Access requests and grants: who may see a product's public card, asking its owners for
//! access, their answer, and ending a grant. One answer for the CLI (`meshwork access …`), the
//! HTTP API and the portal; the grants themselves are honoured by the access decision
//! ([`meshwork_policy::Grants`], loaded with [`Governance`]).

use chrono::{DateTime, Utc};
use meshwork_catalog::{
    AccessDecisionRecord, AccessRequest, AccessRequestFilter, AccessRequestId, AccessRequestStatus, AuditEvent, AuditOutcome, AuditProduct, CatalogStore,
    Grant, GrantId, NewAccessRequest, ProductRecord,
};
use meshwork_core::descriptor::{ProductDescriptor, ProductStatus};
use meshwork_core::id::{DomainName, ProductId};
use meshwork_core::principal::Principal;

use crate::QueryError;
use crate::governance::{Governance, is_owner};

meshwork_core::keyword_enum! {
    /// What a principal may know of a product. The one answer listings, search, product pages
    /// and access requests use.
    pub enum Visibility ("visibility") {
        /// It may query the product and see everything about it.
        Readable => "readable",
        /// It may query the product only in aggregate (`access.aggregate_only`, or an access
        /// policy asking for it): it sees the product's description and columns, never a row.
        Aggregates => "aggregate_only",
        /// It may not read the product, but the product is `discoverable`: its public card is
        /// shown and access can be requested.
        Card => "card",
        /// It may not know the product exists: answered exactly like a missing product.
        Hidden => "hidden",
    }
}

/// What `principal` may know of `product` now.
pub fn visibility(governance: &Governance, principal: &Principal, product: &ProductDescriptor) -> Visibility {
    let decision = governance.decide(principal, product);
    if decision.allowed && decision.aggregate.is_some() {
        Visibility::Aggregates
    } else if decision.allowed {
        Visibility::Readable
    } else if product.access.as_ref().is_some_and(|a| a.discoverable) {
        Visibility::Card
    } else {
        Visibility::Hidden
    }
}

/// A product's public card: what a principal who cannot read a discoverable product is shown.
/// Never its columns, rows, versions, quality or lineage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProductCard {
    /// `domain.product`.
    pub product: ProductId,
    /// Its title.
    pub title: Option<String>,
    /// What it holds.
    pub description: Option<String>,
    /// Who answers for it.
    pub owner: Option<String>,
    /// The owning domain (whose owners decide access requests).
    pub domain: DomainName,
    /// Its tags.
    pub tags: Vec<String>,
    /// `draft`, `active`, `deprecated`.
    pub status: ProductStatus,
    /// Whether the caller reads it (`readable`) or only sees this card (`card`).
    pub visibility: Visibility,
}

impl ProductCard {
    /// The card of `record` as seen with `visibility`.
    pub fn of(record: &ProductRecord, visibility: Visibility) -> ProductCard {
        ProductCard {
            product: record.id.clone(),
            title: record.title.clone(),
            description: record.description.clone(),
            owner: record.owner.clone(),
            domain: record.id.domain.clone(),
            tags: record.tags.clone(),
            status: record.status,
            visibility,
        }
    }
}

/// The not-found answer for a product, the same for a missing and a hidden one.
fn no_product(product: &str) -> QueryError {
    QueryError::NotFound(format!("product `{product}` not found (hint: `meshwork product list` lists the products you can read)"))
}

/// The published product `product` and what `principal` may know of it; a missing or hidden
/// product is [`QueryError::NotFound`], indistinguishably.
pub async fn seen_product(catalog: &dyn CatalogStore, governance: &Governance, principal: &Principal, product: &str) -> Result<(ProductRecord, Visibility), QueryError> {
    let id: ProductId = product.parse().map_err(|_| no_product(product))?;
    let record = catalog.product(&id).await?.ok_or_else(|| no_product(product))?;
    match visibility(governance, principal, &record.descriptor) {
        Visibility::Hidden => Err(no_product(product)),
        seen => Ok((record, seen)),
    }
}

/// The card of `product` for `principal` (readers get it too).
pub async fn card(catalog: &dyn CatalogStore, governance: &Governance, principal: &Principal, product: &str) -> Result<ProductCard, QueryError> {
    let (record, seen) = seen_product(catalog, governance, principal, product).await?;
    Ok(ProductCard::of(&record, seen))
}

/// What a principal asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAsk {
    /// Why; required.
    pub purpose: String,
    /// When the access should end; must be in the future.
    pub until: Option<DateTime<Utc>>,
}

/// `principal` asks the owners of `product` for read access. Only a principal that sees the
/// product's card may ask (a hidden product is not found); one pending request per principal
/// and product.
pub async fn request_access(
    catalog: &dyn CatalogStore,
    governance: &Governance,
    principal: &Principal,
    interface: &str,
    product: &str,
    ask: AccessAsk,
) -> Result<AccessRequest, QueryError> {
    let (record, seen) = seen_product(catalog, governance, principal, product).await?;
    if principal.kind == meshwork_core::principal::PrincipalKind::Domain {
        return Err(QueryError::Refused(format!(
            "`{}` is a domain's principal: what a domain's builds read is decided by the upstream product's `access.readers`, not by grants",
            principal.name
        )));
    }
    if seen == Visibility::Readable {
        return Err(QueryError::Conflict(format!("`{}` already reads `{}`; there is nothing to request", principal.name, record.id)));
    }
    let purpose = ask.purpose.trim();
    if purpose.is_empty() {
        return Err(QueryError::Invalid("an access request needs a purpose: say what the data is for (e.g. `--purpose \"churn analysis for Q1\"`)".into()));
    }
    let now = Utc::now();
    if let Some(until) = ask.until
        && until <= now
    {
        return Err(QueryError::Invalid(format!("`until` {} is not in the future; give a later date or leave it out", meshwork_catalog::time::format(&until))));
    }
    let new = NewAccessRequest { product: record.id.clone(), principal: principal.name.clone(), purpose: purpose.to_owned(), until: ask.until, created_at: now };
    let Some(request) = catalog.request_access(&new).await? else {
        let pending = catalog
            .access_requests(&AccessRequestFilter { product: Some(record.id.clone()), status: Some(AccessRequestStatus::Pending), principal: Some(principal.name.clone()) })
            .await?;
        let number = pending.first().map(|r| format!(" (#{})", r.id)).unwrap_or_default();
        return Err(QueryError::Conflict(format!(
            "`{}` already has a pending access request for `{}`{number}; wait for its owners' answer or withdraw it first",
            principal.name, record.id
        )));
    };
    audit(catalog, principal, interface, "access.request", format!("access request {} for {}", request.id, record.id), &record.id, "requested").await?;
    Ok(request)
}

/// The access requests `principal` may see among those matching `filter`: its own, and those
/// for products it owns (administrators: all).
pub async fn access_requests(catalog: &dyn CatalogStore, principal: &Principal, filter: &AccessRequestFilter) -> Result<Vec<AccessRequest>, QueryError> {
    let records = catalog.products().await?;
    let owns = |id: &ProductId| records.iter().any(|r| &r.id == id && is_owner(principal, &r.descriptor));
    Ok(catalog.access_requests(filter).await?.into_iter().filter(|r| r.principal == principal.name || owns(&r.product)).collect())
}

/// An owner's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAnswer {
    /// Approve (a grant is made) or deny.
    pub approve: bool,
    /// Why; required to deny.
    pub comment: Option<String>,
}

/// An owner of the requested product (or an administrator) approves or denies a pending
/// request. Approving makes a grant that every interface honours at once; nobody decides their
/// own request. Anyone else is told the request does not exist.
pub async fn answer_request(
    catalog: &dyn CatalogStore,
    principal: &Principal,
    interface: &str,
    id: AccessRequestId,
    answer: AccessAnswer,
) -> Result<(AccessRequest, Option<Grant>), QueryError> {
    let not_found = || QueryError::NotFound(format!("access request `{id}` not found (hint: `meshwork access list` shows the requests you may decide)"));
    let request = catalog.access_request(id).await?.ok_or_else(not_found)?;
    if request.principal == principal.name {
        return Err(QueryError::Refused(format!("`{}` may not decide their own access request `{id}`: that is for the owners of `{}`", principal.name, request.product)));
    }
    let record = catalog.product(&request.product).await?.ok_or_else(not_found)?;
    if !is_owner(principal, &record.descriptor) {
        return Err(not_found());
    }
    let comment = answer.comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    if !answer.approve && comment.is_none() {
        return Err(QueryError::Invalid("denying an access request needs a comment telling the requester why (`--comment \"…\"`)".into()));
    }
    if request.status != AccessRequestStatus::Pending {
        return Err(QueryError::Conflict(format!("access request `{id}` is already {}; only pending requests are decided", request.status)));
    }
    let decision = AccessDecisionRecord { approve: answer.approve, by: principal.name.clone(), comment, at: Utc::now() };
    let decided = catalog
        .decide_access_request(id, &decision)
        .await?
        .ok_or_else(|| QueryError::Conflict(format!("access request `{id}` was decided or withdrawn meanwhile")))?;
    let (action, outcome) = if answer.approve { ("access.approve", "approved") } else { ("access.deny", "denied") };
    audit(catalog, principal, interface, action, format!("access {outcome} request {id} of {} for {}", request.principal, request.product), &request.product, outcome).await?;
    Ok(decided)
}

/// The requester takes back its pending request; for anyone else it does not exist.
pub async fn withdraw_request(catalog: &dyn CatalogStore, principal: &Principal, interface: &str, id: AccessRequestId) -> Result<AccessRequest, QueryError> {
    let not_found = || QueryError::NotFound(format!("access request `{id}` not found among yours (hint: `meshwork access list`)"));
    let request = catalog.access_request(id).await?.filter(|r| r.principal == principal.name).ok_or_else(not_found)?;
    if request.status != AccessRequestStatus::Pending {
        return Err(QueryError::Conflict(format!("access request `{id}` is already {}; only pending requests are withdrawn", request.status)));
    }
    let withdrawn = catalog.withdraw_access_request(id, Utc::now()).await?.ok_or_else(|| QueryError::Conflict(format!("access request `{id}` was decided meanwhile")))?;
    audit(catalog, principal, interface, "access.withdraw", format!("access withdraw request {id}"), &request.product, "withdrawn").await?;
    Ok(withdrawn)
}

/// The grants `principal` may see, of `product` or of every product: all grants of products it
/// owns, its own grants everywhere. Ended grants are included (`revoked_at`, `expires_at`)
/// when `include_ended`.
pub async fn grants(catalog: &dyn CatalogStore, principal: &Principal, product: Option<&ProductId>, include_ended: bool) -> Result<Vec<Grant>, QueryError> {
    // Without a running scheduler, listing is where an ended grant's event gets written.
    catalog.record_grant_expiries(Utc::now()).await?;
    let records = catalog.products().await?;
    let owns = |id: &ProductId| records.iter().any(|r| &r.id == id && is_owner(principal, &r.descriptor));
    let now = Utc::now();
    Ok(catalog
        .grants(product)
        .await?
        .into_iter()
        .filter(|g| include_ended || g.active_at(now))
        .filter(|g| g.principal == principal.name || owns(&g.product))
        .collect())
}

/// Which grant to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// One grant by its number.
    Grant(GrantId),
    /// Every active grant of a principal on a product.
    Holder {
        /// The product.
        product: ProductId,
        /// The grantee.
        principal: String,
    },
}

/// Ends grants at once: an owner of the product (or an administrator) revokes any, a grantee
/// its own. Every interface stops honouring them at once (the catalog generation moves).
/// Grants the caller may not revoke are not found.
pub async fn revoke(catalog: &dyn CatalogStore, principal: &Principal, interface: &str, target: RevokeTarget) -> Result<Vec<Grant>, QueryError> {
    let now = Utc::now();
    let (candidates, what) = match &target {
        RevokeTarget::Grant(id) => (catalog.grants(None).await?.into_iter().filter(|g| g.id == *id).collect::<Vec<_>>(), format!("grant `{id}`")),
        RevokeTarget::Holder { product, principal: holder } => (
            catalog.grants(Some(product)).await?.into_iter().filter(|g| &g.principal == holder).collect(),
            format!("an active grant of `{product}` to `{holder}`"),
        ),
    };
    let not_found = || QueryError::NotFound(format!("{what} not found (hint: `meshwork access grants` lists the grants you may revoke)"));
    let mut allowed = Vec::new();
    for grant in candidates.into_iter().filter(|g| g.active_at(now)) {
        let owner = match catalog.product(&grant.product).await? {
            Some(record) => is_owner(principal, &record.descriptor),
            None => principal.admin,
        };
        if owner || grant.principal == principal.name {
            allowed.push(grant);
        }
    }
    if allowed.is_empty() {
        return Err(not_found());
    }
    let mut revoked = Vec::new();
    for grant in allowed {
        if let Some(done) = catalog.revoke_grant(grant.id, &principal.name, now).await? {
            audit(catalog, principal, interface, "access.revoke", format!("access revoke grant {} of {} to {}", done.id, done.product, done.principal), &done.product, "revoked").await?;
            revoked.push(done);
        }
    }
    if revoked.is_empty() {
        return Err(not_found());
    }
    Ok(revoked)
}

/// The grants of `product` to show with it: every grant still active for its owners, the
/// caller's own for anyone else.
pub async fn shown_grants(catalog: &dyn CatalogStore, principal: &Principal, record: &ProductRecord) -> Result<Vec<Grant>, QueryError> {
    let owner = is_owner(principal, &record.descriptor);
    let now = Utc::now();
    Ok(catalog.grants(Some(&record.id)).await?.into_iter().filter(|g| g.active_at(now) && (owner || g.principal == principal.name)).collect())
}

/// Writes the audit event of one access step.
async fn audit(catalog: &dyn CatalogStore, principal: &Principal, interface: &str, action: &str, statement: String, product: &ProductId, decision: &str) -> Result<(), QueryError> {
    catalog
        .record_audit(&AuditEvent {
            id: 0,
            at: Utc::now(),
            principal: principal.name.clone(),
            interface: interface.to_owned(),
            action: action.to_owned(),
            statement,
            products: vec![AuditProduct::outcome(product, decision)],
            rows: None,
            duration_ms: 0.0,
            outcome: AuditOutcome::Ok,
            error: None,
        })
        .await?;
    Ok(())
}
