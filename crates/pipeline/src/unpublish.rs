//! The end of a product's life: a product the repository no longer declares (its directory
//! deleted, or moved to another domain) is unpublished by the next full `apply`, and its data,
//! kept until then, is deleted by `meshwork product purge`.
//!
//! Unpublishing only takes the product out of service (the catalog stops listing and serving
//! it); its Delta table stays on disk, so a mistaken removal is undone by restoring the
//! directory and applying again. Purging is explicit and refuses anything the repository or
//! the catalog still serves.

use std::collections::BTreeSet;

use meshwork_catalog::{AuditEvent, AuditOutcome, AuditProduct, CatalogStore, NewEvent, ProductRecord, VersionRecord};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use meshwork_core::principal::Principal;
use meshwork_storage::ProductStore;
use serde_json::json;

use crate::apply::ApplyOptions;
use crate::report::ProductOutcome;
use crate::plan::{PlanAction, PlanItem};
use crate::{LoadedMesh, PipelineError};

/// Why a published product is absent from the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Its directory was deleted.
    Deleted,
    /// A product of the same name appeared in another domain, published under a new address;
    /// grants of the old address do not follow it.
    Moved {
        /// The new address.
        to: ProductId,
    },
}

impl Removal {
    /// `removed from the repository` or `moved to <id>`, for plans and reports.
    pub fn describe(&self) -> String {
        match self {
            Removal::Deleted => "removed from the repository".into(),
            Removal::Moved { to } => format!("moved to {to}"),
        }
    }
}

/// A published product the repository no longer declares.
#[derive(Debug, Clone)]
struct Removed {
    record: ProductRecord,
    version: Option<VersionRecord>,
    removal: Removal,
}

/// Published products absent from the repository, by address. A product is `Moved` when the
/// repository declares its name in another domain at an address that is not published yet.
async fn removed_products(mesh: &LoadedMesh, catalog: &dyn CatalogStore) -> Result<Vec<Removed>, PipelineError> {
    let published = catalog.products().await?;
    let published_ids: BTreeSet<&ProductId> = published.iter().map(|p| &p.id).collect();
    let mut out = Vec::new();
    for record in published.iter().filter(|p| !mesh.repo.products.contains_key(&p.id)) {
        let moved = mesh.repo.products.keys().find(|id| id.name == record.id.name && !published_ids.contains(id));
        let removal = match moved {
            Some(to) => Removal::Moved { to: to.clone() },
            None => Removal::Deleted,
        };
        let version = catalog.current_version(&record.id).await?;
        out.push(Removed { record: record.clone(), version, removal });
    }
    Ok(out)
}

/// The plan items of products the next apply unpublishes: `from_version` and `to_version` are
/// both the version that stops being served.
pub(crate) async fn unpublish_plan(mesh: &LoadedMesh, catalog: &dyn CatalogStore) -> Result<Vec<PlanItem>, PipelineError> {
    let since = chrono::Utc::now() - chrono::Duration::days(crate::plan::READERS_WINDOW_DAYS);
    let mut items = Vec::new();
    for removed in removed_products(mesh, catalog).await? {
        // Whoever still queries it is affected: it stops being served.
        let readers = catalog.readers(&removed.record.id, since).await?;
        let subscribers = catalog.subscriptions(Some(&removed.record.id)).await?.into_iter().map(|s| s.principal).collect();
        items.push(PlanItem {
            product: removed.record.id.clone(),
            action: PlanAction::Unpublish { removal: removed.removal },
            from_version: Some(removed.record.version.clone()),
            to_version: removed.record.version,
            changes: Vec::new(),
            consumers: Vec::new(),
            readers,
            subscribers,
            grants: Vec::new(),
            major: None,
            read_changes: Vec::new(),
        });
    }
    Ok(items)
}

/// What [`unpublish_removed`] will do, decided before the apply builds anything: a product
/// moved to another domain is only recognised while its new address is not yet published.
pub(crate) struct Unpublishing(Vec<Removed>);

impl Unpublishing {
    /// Finds the published products the repository no longer declares.
    pub(crate) async fn find(mesh: &LoadedMesh, catalog: &dyn CatalogStore) -> Result<Unpublishing, PipelineError> {
        Ok(Unpublishing(removed_products(mesh, catalog).await?))
    }

    /// Unpublishes each product, under its lock, recording a `product.unpublished` event with
    /// it. Its Delta table is left as it is.
    pub(crate) async fn run(self, catalog: &dyn CatalogStore, options: &ApplyOptions) -> Vec<(ProductId, ProductOutcome)> {
        let mut outcomes = Vec::new();
        for removed in self.0 {
            let id = removed.record.id.clone();
            let outcome = match unpublish_one(&removed, catalog, options).await {
                Ok(()) => ProductOutcome::Unpublished { removal: removed.removal, version: removed.version },
                Err(error) => ProductOutcome::Failed { error, elapsed: std::time::Duration::ZERO },
            };
            outcomes.push((id, outcome));
        }
        outcomes
    }
}

async fn unpublish_one(removed: &Removed, catalog: &dyn CatalogStore, options: &ApplyOptions) -> Result<(), PipelineError> {
    let id = &removed.record.id;
    let _lock = catalog.lock(&meshwork_catalog::product_lock(id), options.lock_wait).await?;
    let mut payload = json!({
        "version": removed.record.version,
        "publication": removed.version.as_ref().map(|v| v.seq),
        "trigger": options.trigger,
        "reason": match &removed.removal { Removal::Deleted => "removed", Removal::Moved { .. } => "moved" },
    });
    if let Removal::Moved { to } = &removed.removal {
        payload["moved_to"] = json!(to.to_string());
    }
    let event = NewEvent { kind: EventKind::Unpublished, product: Some(id.clone()), payload };
    // `false`: another process unpublished it meanwhile, which is the outcome wanted.
    catalog.unpublish(id, &[event]).await?;
    Ok(())
}

/// What [`purge`] deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    /// The product.
    pub product: ProductId,
    /// The last version it served.
    pub version: String,
    /// Whether a table directory was found and deleted.
    pub table_deleted: bool,
}

/// Deletes an unpublished product for good: its Delta table directory (and staging runs), then
/// its catalog rows, keeping the audit log and the event log, where a `product.purged` event
/// and an audit event are added. Only administrators may purge; a product the repository still
/// declares, or the catalog still serves, is refused.
pub async fn purge(
    mesh: &LoadedMesh,
    catalog: &dyn CatalogStore,
    store: &ProductStore,
    principal: &Principal,
    id: &ProductId,
    lock_wait: std::time::Duration,
) -> Result<Purged, PipelineError> {
    if !principal.admin {
        return Err(PipelineError::NotAllowed { principal: principal.name.clone(), action: format!("purge `{id}`") });
    }
    // A product past its sunset may still be declared (apply no longer builds it) and is still
    // published (no longer served): purging it takes it out of the catalog first.
    let today = chrono::Utc::now().date_naive();
    if mesh.repo.products.get(id).is_some_and(|entry| !entry.descriptor.is_sunset(today)) {
        return Err(PipelineError::PurgeDeclared(id.to_string()));
    }
    let started = std::time::Instant::now();
    let _lock = catalog.lock(&meshwork_catalog::product_lock(id), lock_wait).await?;
    // Checked under the lock, so no apply can publish it again between the check and the delete.
    if let Some(published) = catalog.product(id).await? {
        if !published.descriptor.is_sunset(today) {
            return Err(PipelineError::PurgePublished(id.to_string()));
        }
        let event = NewEvent {
            kind: EventKind::Unpublished,
            product: Some(id.clone()),
            payload: json!({ "version": published.version, "reason": "sunset", "by": principal.name }),
        };
        catalog.unpublish(id, &[event]).await?;
    }
    let unpublished = catalog.unpublished().await?;
    let Some(record) = unpublished.into_iter().find(|u| &u.product.id == id) else {
        return Err(PipelineError::PurgeUnknown(id.to_string()));
    };
    // Only the table the catalog recorded: storage moved since would delete nothing (or another
    // mesh's table) and report success.
    if record.product.table_uri != store.table_url(id).as_str() {
        return Err(PipelineError::PurgeElsewhere { product: id.to_string(), table: record.product.table_uri.clone(), storage: store.location().to_string() });
    }
    // The table first: if deleting it fails, the catalog still knows the product and the purge
    // can be run again.
    let table_deleted = store.remove_table(id).await?;
    let event = NewEvent {
        kind: EventKind::Purged,
        product: Some(id.clone()),
        payload: json!({ "version": record.product.version, "by": principal.name, "table_deleted": table_deleted }),
    };
    catalog.purge(id, &[event]).await?;
    catalog
        .record_audit(&AuditEvent {
            id: 0,
            at: chrono::Utc::now(),
            principal: principal.name.clone(),
            interface: "cli".into(),
            action: "purge".into(),
            statement: format!("product purge {id}"),
            products: vec![AuditProduct::outcome(&id, "purged")],
            rows: None,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            outcome: AuditOutcome::Ok,
            error: None,
        })
        .await?;
    Ok(Purged { product: id.clone(), version: record.product.version, table_deleted })
}
