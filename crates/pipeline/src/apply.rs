//! `apply`: builds and publishes every product of a mesh in dependency order, skipping the ones
//! whose descriptor and input data did not change.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use meshwork_catalog::{AuditEvent, AuditProduct, CatalogStore, DomainRecord, ProductRecord, Publication, VersionRecord};
use meshwork_core::id::ProductId;
use meshwork_core::mesh::descriptor_hash;
use meshwork_storage::ProductStore;

use crate::build::{build_product, input_fingerprint};
use crate::governance::{Finding, blocks, check_governance, governance_snapshot, published_descriptors};
use crate::{LoadedMesh, PipelineError};

/// What happened to one product during an apply.
#[derive(Debug)]
pub enum ProductOutcome {
    /// A new version was published.
    Published {
        /// The recorded version.
        version: VersionRecord,
        /// Time spent building and publishing.
        elapsed: Duration,
    },
    /// Descriptor and inputs are unchanged since the current version; nothing was written.
    Unchanged {
        /// The current version.
        version: VersionRecord,
    },
    /// The build or publish failed; the previous version stays current.
    Failed {
        /// Why.
        error: PipelineError,
        /// Time spent before failing.
        elapsed: Duration,
    },
    /// Not attempted because an upstream product failed.
    Blocked {
        /// The failed upstream product.
        upstream: ProductId,
    },
    /// Not attempted because an enforced governance policy is violated; the previous version
    /// stays current.
    Refused {
        /// The blocking violations.
        findings: Vec<Finding>,
    },
}

impl ProductOutcome {
    /// Whether this outcome makes the apply fail.
    pub fn is_failure(&self) -> bool {
        matches!(self, ProductOutcome::Failed { .. } | ProductOutcome::Blocked { .. } | ProductOutcome::Refused { .. })
    }

    /// One word for summaries and the audit log.
    pub fn keyword(&self) -> &'static str {
        match self {
            ProductOutcome::Published { .. } => "published",
            ProductOutcome::Unchanged { .. } => "unchanged",
            ProductOutcome::Failed { .. } => "failed",
            ProductOutcome::Blocked { .. } => "blocked",
            ProductOutcome::Refused { .. } => "refused",
        }
    }
}

/// The outcome of every product, in build order.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Outcomes in build order.
    pub outcomes: Vec<(ProductId, ProductOutcome)>,
    /// Wall time of the whole apply.
    pub elapsed: Duration,
    /// Every governance violation found, warnings included.
    pub findings: Vec<Finding>,
}

impl ApplyReport {
    /// Whether any product failed or was blocked.
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|(_, o)| o.is_failure())
    }
}

/// Receives progress of an apply, e.g. to draw progress bars. Called from the apply's task.
pub trait ApplyObserver: Sync {
    /// A product's build starts.
    fn started(&self, _id: &ProductId) {}
    /// A product's rows are built and about to be committed.
    fn built(&self, _id: &ProductId, _rows: u64) {}
    /// A product is done.
    fn finished(&self, _id: &ProductId, _outcome: &ProductOutcome) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct SilentObserver;

impl ApplyObserver for SilentObserver {}

/// Builds and publishes every product of `mesh` whose descriptor or input data changed since its
/// current version, in dependency order. A failed product, or one that violates an enforced
/// governance policy, keeps its previous version and blocks only the products downstream of it.
///
/// The mesh's principals, policies and policy states are stored first, in one transaction, so
/// queries enforce what was applied. The apply writes one audit event.
pub async fn apply(
    mesh: &LoadedMesh,
    catalog: &dyn CatalogStore,
    store: &ProductStore,
    observer: &dyn ApplyObserver,
) -> Result<ApplyReport, PipelineError> {
    let started = Instant::now();
    catalog.replace_governance(&governance_snapshot(mesh)).await?;
    let published = published_descriptors(catalog).await?;
    let findings = check_governance(mesh, &published);
    for domain in mesh.repo.domains.values() {
        let d = &domain.descriptor;
        catalog
            .upsert_domain(&DomainRecord { name: d.name.clone(), title: d.title.clone(), description: d.description.clone(), owners: d.owners.clone() })
            .await?;
    }
    let order = mesh.repo.build_order().map_err(|cycle| PipelineError::Internal(format!("cycle passed validation: {cycle:?}")))?;
    let mut report = ApplyReport { findings, ..ApplyReport::default() };
    let mut failed: BTreeSet<ProductId> = BTreeSet::new();
    for id in order {
        let entry = &mesh.repo.products[&id];
        let descriptor = &entry.descriptor;
        if let Some(upstream) = descriptor.upstream().find(|u| failed.contains(*u)) {
            let outcome = ProductOutcome::Blocked { upstream: upstream.clone() };
            observer.finished(&id, &outcome);
            failed.insert(id.clone());
            report.outcomes.push((id, outcome));
            continue;
        }
        if blocks(&report.findings, &id) {
            let refused: Vec<Finding> =
                report.findings.iter().filter(|f| f.violation.product == id && f.violation.blocks()).cloned().collect();
            let outcome = ProductOutcome::Refused { findings: refused };
            observer.finished(&id, &outcome);
            failed.insert(id.clone());
            report.outcomes.push((id, outcome));
            continue;
        }
        observer.started(&id);
        let product_started = Instant::now();
        let outcome = match publish_product(mesh, &id, catalog, store, observer).await {
            Ok(Publish::New(version)) => ProductOutcome::Published { version, elapsed: product_started.elapsed() },
            Ok(Publish::Unchanged(version)) => ProductOutcome::Unchanged { version },
            Err(error) => ProductOutcome::Failed { error, elapsed: product_started.elapsed() },
        };
        if outcome.is_failure() {
            failed.insert(id.clone());
        }
        observer.finished(&id, &outcome);
        report.outcomes.push((id, outcome));
    }
    report.elapsed = started.elapsed();
    catalog.record_audit(&apply_audit_event(mesh, &report)).await?;
    Ok(report)
}

fn apply_audit_event(mesh: &LoadedMesh, report: &ApplyReport) -> AuditEvent {
    let products = report
        .outcomes
        .iter()
        .map(|(id, outcome)| AuditProduct {
            product: id.to_string(),
            decision: outcome.keyword().into(),
            policies: report.findings.iter().filter(|f| &f.violation.product == id).map(|f| f.violation.policy.clone()).collect(),
            row_filters: 0,
            masks: Vec::new(),
            reasons: match outcome {
                ProductOutcome::Failed { error, .. } => vec![error.to_string()],
                ProductOutcome::Blocked { upstream } => vec![format!("upstream `{upstream}` failed")],
                ProductOutcome::Refused { findings } => findings.iter().map(|f| format!("{}: {}", f.violation.policy, f.violation.message)).collect(),
                _ => Vec::new(),
            },
            decision_us: 0,
        })
        .collect();
    let published = report.outcomes.iter().filter(|(_, o)| matches!(o, ProductOutcome::Published { .. })).count();
    AuditEvent {
        id: 0,
        at: String::new(),
        principal: meshwork_core::principal::LOCAL_ADMIN.into(),
        interface: "cli".into(),
        action: "apply".into(),
        statement: format!("apply {}", mesh.root.display()),
        products,
        rows: Some(published as u64),
        duration_ms: report.elapsed.as_secs_f64() * 1000.0,
        outcome: if report.failed() { "error".into() } else { "ok".into() },
        error: None,
    }
}

/// What [`publish_product`] did.
enum Publish {
    /// Recorded this new version.
    New(VersionRecord),
    /// Found the current version up to date.
    Unchanged(VersionRecord),
}

/// Builds and publishes one product, unless its current version is up to date.
async fn publish_product(
    mesh: &LoadedMesh,
    id: &ProductId,
    catalog: &dyn CatalogStore,
    store: &ProductStore,
    observer: &dyn ApplyObserver,
) -> Result<Publish, PipelineError> {
    let entry = &mesh.repo.products[id];
    let descriptor = &entry.descriptor;
    let hash = descriptor_hash(descriptor);
    let fingerprint = input_fingerprint(mesh, descriptor, catalog).await?;
    if let Some(current) = catalog.current_version(id).await?
        && current.descriptor_hash == hash
        && current.input_fingerprint == fingerprint
    {
        return Ok(Publish::Unchanged(current));
    }
    let built = build_product(mesh, entry, catalog).await?;
    observer.built(id, built.row_count);
    let schema_json = serde_json::to_string(
        &descriptor
            .contract
            .columns
            .iter()
            .map(|c| serde_json::json!({ "name": c.name, "type": c.data_type.to_string(), "nullable": c.nullable }))
            .collect::<Vec<_>>(),
    )
    .expect("json values serialize");
    let metadata = vec![
        ("meshwork.product".to_owned(), id.to_string()),
        ("meshwork.version".to_owned(), descriptor.version.to_string()),
        ("meshwork.descriptor_hash".to_owned(), hash.clone()),
        ("meshwork.input_fingerprint".to_owned(), fingerprint.clone()),
    ];
    let committed = store.publish(id, built.schema.clone(), built.batches, metadata).await?;
    let publication = Publication {
        product: ProductRecord {
            id: id.clone(),
            version: descriptor.version.to_string(),
            title: descriptor.title.clone(),
            description: descriptor.description.clone(),
            owner: descriptor.owner.clone(),
            status: descriptor.status.as_str().to_owned(),
            tags: descriptor.tags.clone(),
            descriptor_json: serde_json::to_string(descriptor).expect("descriptors serialize"),
            descriptor_hash: hash,
            table_uri: store.table_url(id).to_string(),
            updated_at: String::new(),
        },
        delta_version: committed.delta_version,
        schema_json,
        row_count: built.row_count as i64,
        input_fingerprint: fingerprint,
        upstream: descriptor.upstream().cloned().collect(),
    };
    Ok(Publish::New(catalog.publish(&publication).await?))
}
