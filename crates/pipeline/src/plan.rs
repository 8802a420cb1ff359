//! `plan`: what `apply` would change, computed without building anything.

use std::collections::BTreeMap;

use meshwork_catalog::CatalogStore;
use meshwork_core::contract_diff::{self, ContractChange};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::ProductId;
use meshwork_core::mesh::descriptor_hash;

use meshwork_policy::Authorizer;
use meshwork_query::Governance;

use crate::build::input_fingerprint;
use crate::governance::{Finding, blocks};
use crate::upstream::{ReadOutcome, ReadPurpose, domain_principal, product_reads};
use crate::unpublish::{Removal, unpublish_plan};
use crate::{LoadedMesh, PipelineError};

/// What `apply` would do with one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanAction {
    /// First publish.
    Create,
    /// A new version: the descriptor, the input data or an upstream product changed.
    Update {
        /// What changed.
        reason: String,
    },
    /// Up to date.
    Unchanged,
    /// An enforced policy is violated; apply would keep the current version.
    Refused,
    /// Published but no longer in the repository: apply would stop serving it (its data is
    /// kept until `meshwork product purge`).
    Unpublish {
        /// Deleted, or moved to another domain.
        removal: Removal,
    },
}

/// The plan for one product.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    /// The product.
    pub product: ProductId,
    /// What apply would do.
    pub action: PlanAction,
    /// Published version, if any.
    pub from_version: Option<String>,
    /// Version in the repository (for [`PlanAction::Unpublish`], the version that stops being
    /// served).
    pub to_version: String,
    /// Changes against the published descriptor (`meshwork_core::contract_diff`).
    pub changes: Vec<ContractChange>,
    /// Products that read this one (directly), affected by breaking changes.
    pub consumers: Vec<ProductId>,
    /// Who queried it in the last [`READERS_WINDOW_DAYS`] days (from the audit log), looked
    /// up only when a change is breaking or deprecates the product.
    pub readers: Vec<meshwork_catalog::ProductReader>,
    /// Principals subscribed to it, looked up when [`PlanItem::readers`] are.
    pub subscribers: Vec<String>,
    /// Active grants of approved access requests, looked up when its access block changes: an
    /// owner tightening `readers` sees who still reads by grant.
    pub grants: Vec<meshwork_catalog::Grant>,
    /// A new major: from which, to which, and the product that keeps serving the old one side
    /// by side (`sales.orders_v1`) if the repository declares it.
    pub major: Option<MajorChange>,
    /// Reads of upstream products whose outcome for this product's domain changes (an access
    /// block, a policy or the domain's principal changed): the product will contain other data.
    pub read_changes: Vec<ReadChange>,
}

/// A product moving to a new major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MajorChange {
    /// The published major.
    pub from: u64,
    /// The repository's major.
    pub to: u64,
    /// The declared product keeping major `from` served (`domain.<name>_v<from>`), if any.
    pub kept_as: Option<ProductId>,
}

/// A read whose access decision for the consuming domain differs between what is applied and
/// what the repository would apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadChange {
    /// The upstream product.
    pub upstream: ProductId,
    /// Why it is read.
    pub purpose: ReadPurpose,
    /// The outcome today (the published upstream under the applied governance).
    pub before: ReadOutcome,
    /// The outcome after apply.
    pub after: ReadOutcome,
}

/// How far back `plan` looks for the readers a breaking change affects.
pub const READERS_WINDOW_DAYS: i64 = 30;

/// Plans every product in build order, then the published products apply would unpublish.
pub async fn plan(
    mesh: &LoadedMesh,
    catalog: Option<&dyn CatalogStore>,
    published: &BTreeMap<ProductId, ProductDescriptor>,
    findings: &[Finding],
) -> Result<Vec<PlanItem>, PipelineError> {
    let order = mesh.repo.build_order().map_err(|cycle| PipelineError::Internal(format!("cycle passed validation: {cycle:?}")))?;
    // Decisions as applied (fingerprints compare with what apply recorded) and as the
    // repository would apply them (what the next builds will read).
    let applied = match catalog {
        Some(catalog) => Some(
            Governance::load(catalog)
                .await
                .map_err(PipelineError::Query)?,
        ),
        None => None,
    };
    // Grants outlive applies: the repository's decisions keep honouring them.
    let next = Authorizer::new(mesh.policies.clone(), mesh.states.clone())
        .with_grants(applied.as_ref().map(|a| a.authorizer().grants().clone()).unwrap_or_default());
    let mut items: Vec<PlanItem> = Vec::new();
    for id in order {
        let descriptor = &mesh.repo.products[&id].descriptor;
        let read_changes = match &applied {
            Some(applied) => {
                read_changes(mesh, descriptor, published, applied.authorizer(), &next)?
            }
            None => Vec::new(),
        };
        let previous = published.get(&id);
        let current = match catalog {
            Some(c) => c.current_version(&id).await?,
            None => None,
        };
        let upstream_changes = descriptor
            .upstream()
            .any(|u| items.iter().any(|i| &i.product == u && matches!(i.action, PlanAction::Create | PlanAction::Update { .. })));
        let action = if blocks(findings, &id) {
            PlanAction::Refused
        } else {
            match (&current, catalog, &applied) {
                (Some(current), Some(catalog), Some(applied)) => {
                    if current.descriptor_hash != descriptor_hash(descriptor) {
                        PlanAction::Update { reason: "descriptor changed".into() }
                    } else if upstream_changes {
                        PlanAction::Update { reason: "upstream changes".into() }
                    } else if !read_changes.is_empty() {
                        PlanAction::Update { reason: "access to upstream changes".into() }
                    } else if current.input_fingerprint != input_fingerprint(mesh, descriptor, catalog, applied.authorizer()).await? {
                        PlanAction::Update { reason: "input data changed".into() }
                    } else {
                        PlanAction::Unchanged
                    }
                }
                _ => PlanAction::Create,
            }
        };
        let changes = previous.map(|p| contract_diff::diff(p, descriptor)).unwrap_or_default();
        let (readers, subscribers) = match catalog {
            Some(catalog) if changes.iter().any(|c| c.breaking || c.kind == contract_diff::ChangeKind::Deprecated) || bumps_major(previous, descriptor) => (
                catalog.readers(&id, chrono::Utc::now() - chrono::Duration::days(READERS_WINDOW_DAYS)).await?,
                catalog.subscriptions(Some(&id)).await?.into_iter().map(|s| s.principal).collect(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        let grants = match catalog {
            Some(catalog) if changes.iter().any(|c| c.kind.category() == contract_diff::ChangeCategory::Access) => {
                let now = chrono::Utc::now();
                catalog.grants(Some(&id)).await?.into_iter().filter(|g| g.active_at(now)).collect()
            }
            _ => Vec::new(),
        };
        let major = match (previous.and_then(|p| p.major()), descriptor.major()) {
            (Some(from), Some(to)) if to > from => {
                // A name too long to be a product name cannot be declared, so it is not kept.
                let kept = meshwork_core::id::ProductName::new(meshwork_core::lifecycle::kept_major_name(&id.name, from))
                    .ok()
                    .map(|name| ProductId::new(id.domain.clone(), name))
                    .filter(|kept| mesh.repo.products.contains_key(kept));
                Some(MajorChange { from, to, kept_as: kept })
            }
            _ => None,
        };
        items.push(PlanItem {
            product: id.clone(),
            action,
            from_version: previous.map(|p| p.version.clone()),
            to_version: descriptor.version.clone(),
            changes,
            consumers: mesh.repo.downstream(&id),
            readers,
            subscribers,
            grants,
            major,
            read_changes,
        });
    }
    if let Some(catalog) = catalog {
        items.extend(unpublish_plan(mesh, catalog).await?);
    }
    Ok(items)
}

/// Whether `next` is a newer major than the published `previous`.
fn bumps_major(previous: Option<&ProductDescriptor>, next: &ProductDescriptor) -> bool {
    matches!((previous.and_then(|p| p.major()), next.major()), (Some(from), Some(to)) if to > from)
}

/// The reads of `descriptor` whose outcome for its domain changes with this apply.
fn read_changes(
    mesh: &LoadedMesh,
    descriptor: &ProductDescriptor,
    published: &BTreeMap<ProductId, ProductDescriptor>,
    applied: &Authorizer,
    next: &Authorizer,
) -> Result<Vec<ReadChange>, PipelineError> {
    let principal = domain_principal(mesh, descriptor)?;
    let mut out = Vec::new();
    for (purpose, upstream) in product_reads(descriptor) {
        let (Some(before), Some(after)) =
            (published.get(&upstream), mesh.repo.products.get(&upstream))
        else {
            continue;
        };
        let before = ReadOutcome::of(&applied.decide(&principal, before));
        let after = ReadOutcome::of(&next.decide(&principal, &after.descriptor));
        if before != after {
            out.push(ReadChange {
                upstream,
                purpose,
                before,
                after,
            });
        }
    }
    Ok(out)
}
