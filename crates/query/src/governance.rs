//! The governance a query layer enforces, as last applied, and who owns a product.

use std::sync::Arc;

use meshwork_catalog::{CatalogStore, ProductRecord};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::ProductId;
use meshwork_core::principal::Principal;
use meshwork_policy::{
    AccessDecision, Authorizer, Grants, PolicyScope, PolicySet, PolicySource, PolicyStates,
};

use crate::QueryError;

/// The governance a query layer enforces, as last applied: principals, compiled policies with
/// their states, the grants of approved access requests, and the mask salt. Load once per
/// catalog generation and share between sessions.
#[derive(Debug, Clone)]
pub struct Governance {
    principals: Vec<Principal>,
    authorizer: Authorizer,
    pub(crate) salt: String,
}

impl Governance {
    /// Loads what the last apply stored. A mesh never applied has only the local administrator
    /// and the built-in policies.
    pub async fn load(catalog: &dyn CatalogStore) -> Result<Governance, QueryError> {
        let snapshot = catalog.governance().await?;
        let mut principals = snapshot.principals;
        if !principals
            .iter()
            .any(|p| p.name == meshwork_core::principal::LOCAL_ADMIN)
        {
            principals.push(Principal::local_admin());
        }
        let sources = if snapshot.policies.is_empty() {
            PolicySource::builtins()
        } else {
            snapshot
                .policies
                .into_iter()
                .map(|p| PolicySource {
                    name: p.name,
                    scope: p
                        .domain
                        .map(PolicyScope::Domain)
                        .unwrap_or(PolicyScope::Global),
                    file: p.file,
                    text: p.source,
                })
                .collect()
        };
        let policies = PolicySet::compile(sources).map_err(|errs| {
            QueryError::Policy(
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let states = PolicyStates::from_rows(
            snapshot
                .states
                .into_iter()
                .map(|s| (s.domain, s.name, s.state)),
        );
        let grants = Grants::new(
            catalog
                .open_grants(chrono::Utc::now())
                .await?
                .into_iter()
                .map(|g| (g.product, g.principal, g.expires_at.map(std::time::SystemTime::from))),
        );
        Ok(Governance {
            principals,
            authorizer: Authorizer::new(Arc::new(policies), states).with_grants(grants),
            salt: catalog.mask_salt().await?,
        })
    }

    /// The earliest instant after now at which one of `principal`'s grants (anyone's when
    /// `None`) ends: decisions made from this governance hold until then at most, so whatever
    /// caches them (an open Postgres session, search visibility) is rebuilt at that instant.
    pub fn valid_until(&self, principal: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
        self.authorizer.grants().next_end(principal, std::time::SystemTime::now()).map(chrono::DateTime::<chrono::Utc>::from)
    }

    /// The principal called `name`; the error lists the declared ones.
    pub fn principal(&self, name: &str) -> Result<Principal, QueryError> {
        if let Some(p) = self.principals.iter().find(|p| p.name == name) {
            return Ok(p.clone());
        }
        let names: Vec<&str> = self.principals.iter().map(|p| p.name.as_str()).collect();
        let hint = match meshwork_core::diagnostic::did_you_mean(name, names.iter().copied()) {
            Some(close) => format!(" (hint: did you mean `{close}`?)"),
            None => format!(
                " (hint: declared principals are {}; add others to `principals.yaml` and apply)",
                meshwork_core::diagnostic::one_of(names.iter().copied())
            ),
        };
        Err(QueryError::UnknownPrincipal {
            name: name.to_owned(),
            hint,
        })
    }

    /// The access decisions of this governance, for callers that decide without a session.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// Every declared principal.
    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// The access decision for one principal and one product.
    pub fn decide(&self, principal: &Principal, product: &ProductDescriptor) -> AccessDecision {
        self.authorizer.decide(principal, product)
    }

    /// The access decision on a stored product.
    pub fn decide_stored(&self, principal: &Principal, product: &ProductRecord) -> AccessDecision {
        self.decide(principal, &product.descriptor)
    }

    /// The products of `records` that `principal` may see, for listings.
    pub fn visible<'r>(
        &self,
        principal: &Principal,
        records: &'r [ProductRecord],
    ) -> Vec<&'r ProductRecord> {
        records
            .iter()
            .filter(|r| self.decide_stored(principal, r).allowed)
            .collect()
    }
}

/// The products `id` is built from and those built from it (catalog lineage), among `visible`:
/// lineage never names a product the caller may not read.
pub async fn visible_lineage(catalog: &dyn CatalogStore, visible: &[&ProductRecord], id: &ProductId) -> Result<(Vec<ProductId>, Vec<ProductId>), QueryError> {
    let shown = |p: &ProductId| visible.iter().any(|r| &r.id == p);
    let mut upstream = Vec::new();
    let mut downstream = Vec::new();
    for edge in catalog.lineage().await? {
        if &edge.downstream == id && shown(&edge.upstream) && !upstream.contains(&edge.upstream) {
            upstream.push(edge.upstream);
        } else if &edge.upstream == id && shown(&edge.downstream) && !downstream.contains(&edge.downstream) {
            downstream.push(edge.downstream);
        }
    }
    Ok((upstream, downstream))
}

/// Whether `principal` owns `product`: an administrator, a member of its domain, or its named
/// owner. Owners see quality samples as stored, and who consumes the product; everyone else
/// sees samples through the product's policy, and no consumers.
pub fn is_owner(principal: &Principal, product: &ProductDescriptor) -> bool {
    principal.admin
        || principal.in_domain(&product.domain)
        || product
            .owner
            .as_deref()
            .is_some_and(|o| principal.matches(o))
}
