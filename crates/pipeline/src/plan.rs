//! `plan`: what `apply` would change, computed without building anything.

use std::collections::BTreeMap;

use meshwork_catalog::CatalogStore;
use meshwork_core::column_type::ColumnType;
use meshwork_core::descriptor::{Contract, ProductDescriptor};
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

/// One change to a contract column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractChange {
    /// The column.
    pub column: String,
    /// What happened to it.
    pub change: String,
    /// Whether existing consumers' queries may break.
    pub breaking: bool,
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
    /// Contract changes against the published descriptor.
    pub changes: Vec<ContractChange>,
    /// Products that read this one (directly), affected by breaking changes.
    pub consumers: Vec<ProductId>,
    /// Reads of upstream products whose outcome for this product's domain changes (an access
    /// block, a policy or the domain's principal changed): the product will contain other data.
    pub read_changes: Vec<ReadChange>,
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
    let next = Authorizer::new(mesh.policies.clone(), mesh.states.clone());
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
        items.push(PlanItem {
            product: id.clone(),
            action,
            from_version: previous.map(|p| p.version.clone()),
            to_version: descriptor.version.clone(),
            changes: previous.map(|p| contract_changes(&p.contract, &descriptor.contract)).unwrap_or_default(),
            consumers: mesh.repo.downstream(&id),
            read_changes,
        });
    }
    if let Some(catalog) = catalog {
        items.extend(unpublish_plan(mesh, catalog).await?);
    }
    Ok(items)
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

/// Column-level differences between two contracts, each classified breaking or compatible.
pub fn contract_changes(old: &Contract, new: &Contract) -> Vec<ContractChange> {
    let mut out = Vec::new();
    for column in &old.columns {
        match new.column(&column.name) {
            None => out.push(ContractChange { column: column.name.clone(), change: "removed".into(), breaking: true }),
            Some(now) => {
                if now.data_type != column.data_type {
                    let breaking = !widens(column.data_type, now.data_type);
                    let kind = if breaking { "narrowed or changed" } else { "widened" };
                    out.push(ContractChange {
                        column: column.name.clone(),
                        change: format!("type {kind}: {} -> {}", column.data_type, now.data_type),
                        breaking,
                    });
                }
                if column.nullable && !now.nullable {
                    out.push(ContractChange { column: column.name.clone(), change: "became non-nullable".into(), breaking: true });
                }
                if !column.nullable && now.nullable {
                    out.push(ContractChange { column: column.name.clone(), change: "became nullable".into(), breaking: false });
                }
            }
        }
    }
    for column in &new.columns {
        if old.column(&column.name).is_none() {
            out.push(ContractChange { column: column.name.clone(), change: format!("added ({})", column.data_type), breaking: false });
        }
    }
    out
}

/// Whether every value of `old` is representable in `new` (mirrors the built-in
/// `breaking_change_major_bump` policy).
fn widens(old: ColumnType, new: ColumnType) -> bool {
    use ColumnType::*;
    let int_bits = |t: ColumnType| match t {
        TinyInt => Some(8),
        SmallInt => Some(16),
        Int => Some(32),
        BigInt => Some(64),
        _ => None,
    };
    match (old, new) {
        (Float, Double) | (Date, Timestamp) => true,
        (Decimal { precision: p1, scale: s1 }, Decimal { precision: p2, scale: s2 }) => s2 >= s1 && (p2 as i16 - s2 as i16) >= (p1 as i16 - s1 as i16),
        (o, Double) if int_bits(o).is_some_and(|b| b <= 32) => true,
        (o, Decimal { precision, scale }) if int_bits(o).is_some() => {
            let digits = match int_bits(o) {
                Some(8) => 3,
                Some(16) => 5,
                Some(32) => 10,
                _ => 19,
            };
            precision as i16 - scale as i16 >= digits
        }
        (o, n) => matches!((int_bits(o), int_bits(n)), (Some(a), Some(b)) if b >= a),
    }
}
