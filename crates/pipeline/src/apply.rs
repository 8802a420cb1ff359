//! `apply` and `refresh`: build and publish products of a mesh in dependency order, skipping
//! the ones whose descriptor and input data did not change, with write-audit-publish: each new
//! version is staged, checked against its quality rules, and only then committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshwork_catalog::{
    CatalogStore, DomainRecord, NewEvent, ProductRecord, Publication, QualityRun, RunOutcome,
    SchemaColumn, Trigger, VersionRecord,
};
use meshwork_core::clock::{Clock, SystemClock};
use meshwork_core::descriptor::{ProductStatus, Severity};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use meshwork_core::mesh::descriptor_hash;
use meshwork_policy::AccessDecision;
use meshwork_query::{DomainReads, Governance};
use meshwork_storage::{Commit, ProductStore};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::build::{BuiltProduct, Load, build_product, input_fingerprint};
use crate::governance::{Finding, blocks, check_governance, governance_snapshot, published_descriptors};
use crate::openlineage::{Emitter, quality_failure};
use crate::quality::{self, QualityContext};
use crate::recovery::{PENDING_FILE, failpoint, recover};
use crate::upstream::domain_session;
use crate::unpublish::Unpublishing;
use crate::report::{ApplyObserver, ApplyReport, ProductOutcome, apply_audit_event};
use crate::{LoadedMesh, PipelineError};

/// How an apply or refresh runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Only these products are built (with the rest of the mesh read as published); `None`
    /// builds every product.
    pub only: Option<BTreeSet<ProductId>>,
    /// What started it, recorded with quality runs and events.
    pub trigger: Trigger,
    /// Where "now" comes from, for freshness rules.
    pub clock: Arc<dyn Clock>,
    /// How long to wait for another process building the same product.
    pub lock_wait: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions { only: None, trigger: Trigger::Apply, clock: Arc::new(SystemClock), lock_wait: Duration::from_secs(60) }
    }
}

/// Builds and publishes every product of `mesh` whose descriptor or input data changed since its
/// current version, in dependency order. A failed product, or one that violates an enforced
/// governance policy, keeps its previous version and blocks only the products downstream of it.
/// Then every published product the repository no longer declares is unpublished (its data is
/// kept until `meshwork product purge`).
///
/// The mesh's principals, policies and policy states are stored first, in one transaction, so
/// queries enforce what was applied. The apply writes one audit event.
pub async fn apply(
    mesh: &LoadedMesh,
    catalog: &dyn CatalogStore,
    store: &ProductStore,
    observer: &dyn ApplyObserver,
) -> Result<ApplyReport, PipelineError> {
    apply_with(mesh, catalog, store, observer, &ApplyOptions::default()).await
}

/// Rebuilds `targets` (and with `downstream`, every product that reads them, directly or not)
/// from the repository, in dependency order, like an apply restricted to those products.
/// Governance is not replaced: a refresh republishes data, an apply republishes rules.
pub async fn refresh(
    mesh: &LoadedMesh,
    catalog: &dyn CatalogStore,
    store: &ProductStore,
    observer: &dyn ApplyObserver,
    targets: &[ProductId],
    downstream: bool,
    options: ApplyOptions,
) -> Result<ApplyReport, PipelineError> {
    let mut selected: BTreeSet<ProductId> = BTreeSet::new();
    for target in targets {
        if !mesh.repo.products.contains_key(target) {
            return Err(PipelineError::UnknownProduct(target.to_string()));
        }
        selected.insert(target.clone());
        if downstream {
            selected.extend(mesh.repo.downstream_of(target));
        }
    }
    apply_with(mesh, catalog, store, observer, &ApplyOptions { only: Some(selected), ..options }).await
}

/// [`apply`] with options; with `options.only` set this is a refresh.
pub async fn apply_with(
    mesh: &LoadedMesh,
    catalog: &dyn CatalogStore,
    store: &ProductStore,
    observer: &dyn ApplyObserver,
    options: &ApplyOptions,
) -> Result<ApplyReport, PipelineError> {
    let started = Instant::now();
    if options.only.is_none() {
        catalog.replace_governance(&governance_snapshot(mesh)).await?;
    }
    // Upstream reads are decided by what was applied, as queries are.
    let governance = Governance::load(catalog)
        .await
        .map_err(PipelineError::Query)?;
    let published = published_descriptors(catalog).await?;
    let findings = check_governance(mesh, &published);
    for domain in mesh.repo.domains.values() {
        let d = &domain.descriptor;
        catalog
            .upsert_domain(&DomainRecord {
                name: d.name.clone(),
                title: d.title.clone(),
                description: d.description.clone(),
                owners: d.owners.clone(),
                principal: d.principal.clone(),
            })
            .await?;
    }
    let order = mesh.repo.build_order().map_err(|cycle| PipelineError::Internal(format!("cycle passed validation: {cycle:?}")))?;
    // Decided before building: a product moved to another domain is recognised by its new
    // address not being published yet.
    let unpublishing = match options.only {
        None => Some(Unpublishing::find(mesh, catalog).await?),
        Some(_) => None,
    };
    let mut report = ApplyReport { findings, ..ApplyReport::default() };
    let mut failed: BTreeSet<ProductId> = BTreeSet::new();
    let lineage_events = Emitter::new(mesh, catalog);
    for id in order {
        if options.only.as_ref().is_some_and(|only| !only.contains(&id)) {
            continue;
        }
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
        // Past its sunset: built no more. When the catalog does not know of the sunset yet, a
        // publication without a build carries it there (so it stops being served even if it
        // could no longer be built).
        let today = options.clock.now().date_naive();
        if let Some(since) = descriptor.sunset.filter(|_| descriptor.is_sunset(today)) {
            let outcome = match crate::lifecycle::carry_sunset(catalog, descriptor, options, today).await {
                Ok(version) => ProductOutcome::Sunset { since, version },
                Err(error) => {
                    failed.insert(id.clone());
                    ProductOutcome::Failed { error, elapsed: Duration::ZERO }
                }
            };
            observer.finished(&id, &outcome);
            report.outcomes.push((id, outcome));
            continue;
        }
        observer.started(&id);
        let product_started = Instant::now();
        let mut run = None;
        let outcome = match publish_product(mesh, &id, catalog, &governance, store, observer, options, &lineage_events, &mut run).await {
            Ok(Publish::New(version, quality, reads)) => ProductOutcome::Published { version, elapsed: product_started.elapsed(), quality, reads },
            Ok(Publish::Unchanged(version)) => ProductOutcome::Unchanged { version },
            Ok(Publish::Rejected(quality)) => {
                lineage_events.fail(run.take(), descriptor, &quality_failure(&quality), Some(quality.as_ref())).await;
                ProductOutcome::QualityFailed { quality, elapsed: product_started.elapsed() }
            }
            Err(error) => {
                lineage_events.fail(run.take(), descriptor, &error.to_string(), None).await;
                let event = NewEvent {
                    kind: EventKind::RefreshFailed,
                    product: Some(id.clone()),
                    payload: json!({ "trigger": options.trigger, "error": error.to_string() }),
                };
                if let Err(e) = catalog.append_events(&[event]).await {
                    tracing::warn!(product = %id, error = %e, "cannot record the refresh_failed event");
                }
                ProductOutcome::Failed { error, elapsed: product_started.elapsed() }
            }
        };
        if outcome.is_failure() {
            failed.insert(id.clone());
        }
        observer.finished(&id, &outcome);
        report.outcomes.push((id, outcome));
    }
    if let Some(unpublishing) = unpublishing {
        for (id, outcome) in unpublishing.run(catalog, options).await {
            observer.finished(&id, &outcome);
            report.outcomes.push((id, outcome));
        }
    }
    if let Err(e) = crate::lifecycle::record_sunsets(catalog, options.clock.now().date_naive()).await {
        tracing::warn!(error = %e, "cannot record sunset events");
    }
    report.elapsed = started.elapsed();
    catalog.record_audit(&apply_audit_event(mesh, &report, options)).await?;
    Ok(report)
}

/// What [`publish_product`] did.
pub(crate) enum Publish {
    /// Recorded this new version.
    New(
        VersionRecord,
        Box<QualityRun>,
        BTreeMap<ProductId, AccessDecision>,
    ),
    /// Found the current version up to date.
    Unchanged(VersionRecord),
    /// Staged data failed an `error` quality rule; nothing was published.
    Rejected(Box<QualityRun>),
}

/// A run id: sortable by start time, unique across processes.
fn run_id(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("run-{}-{}-{:04x}", now.format("%Y%m%dT%H%M%S%6f"), std::process::id(), rand::random::<u16>())
}

/// Builds one product, stages it, checks it and publishes it, unless its current version is up
/// to date. Holds the product's lock throughout; first finishes or cleans up what a crashed
/// run of the product left behind. When the build starts, its OpenLineage START is emitted and
/// its run id left in `lineage_run` (for the caller's FAIL); its COMPLETE is emitted once published.
/// Fails when the product's lock was lost since it was taken.
async fn ensure_locked(lock: &mut meshwork_catalog::HeldLock, id: &ProductId) -> Result<(), PipelineError> {
    match lock.still_held().await {
        true => Ok(()),
        false => Err(PipelineError::LockLost(id.clone())),
    }
}

#[allow(clippy::too_many_arguments)]
async fn publish_product(
    mesh: &LoadedMesh,
    id: &ProductId,
    catalog: &dyn CatalogStore,
    governance: &Governance,
    store: &ProductStore,
    observer: &dyn ApplyObserver,
    options: &ApplyOptions,
    lineage_events: &Emitter<'_>,
    lineage_run: &mut Option<meshwork_core::openlineage::RunId>,
) -> Result<Publish, PipelineError> {
    let mut lock = catalog.lock(&meshwork_catalog::product_lock(id), options.lock_wait).await?;
    recover(id, catalog, store).await?;
    let entry = &mesh.repo.products[id];
    let descriptor = &entry.descriptor;
    if !descriptor.storage.is_copy() {
        return crate::live::publish(mesh, id, catalog, governance, store, options.trigger, options.clock.now()).await;
    }
    let hash = descriptor_hash(descriptor);
    let mut fingerprint = input_fingerprint(mesh, descriptor, catalog, governance.authorizer()).await?;
    let previous = catalog.current_version(id).await?;
    let unchanged = |fingerprint: &str| previous.as_ref().filter(|current| current.descriptor_hash == hash && current.input_fingerprint == fingerprint).cloned();
    // A product reading a database in full, or a virtual product, is known unchanged only once
    // its rows are read.
    let by_content = crate::database::reads_in_full(descriptor) || crate::live::reads_virtual(descriptor, catalog).await?;
    if !by_content && let Some(current) = unchanged(&fingerprint) {
        return Ok(Publish::Unchanged(current));
    }
    // A database read may turn out to change nothing (below); its OpenLineage run starts once it
    // is known to make a new version, so no run is left started and never ended.
    let reads_database = descriptor.inputs.iter().any(|i| i.source.database().is_some());
    if !reads_database {
        *lineage_run = lineage_events.start(descriptor).await;
    }
    let build_started = Instant::now();
    // An incremental input resumes where the current version stopped, unless the descriptor
    // changed: then everything is read again.
    let resume = previous.as_ref().filter(|v| v.descriptor_hash == hash).and_then(|v| v.watermark.as_ref());
    let built = build_product(mesh, entry, catalog, governance, resume).await?;
    let build_ms = build_started.elapsed().as_secs_f64() * 1000.0;
    failpoint("built");

    // Write: stream the new data into a staged Delta table, invisible to queries. Reading,
    // transforming and checking happen as it is written, so they count in `stage_ms`.
    let now = options.clock.now();
    let run = run_id(now);
    let stage_started = Instant::now();
    let BuiltProduct { schema, batches, reads: built_reads, lineage: built_lineage, load, watermark } = built;
    let (batches, digest) = match by_content {
        true => {
            let (batches, digest) = crate::database::digesting(batches, &schema);
            (batches, Some(digest))
        }
        false => (batches, None),
    };
    let staged = store.stage(id, &run, schema, batches).await?;
    // An incremental load that found nothing new (its source's newest rows were deleted, or
    // only rows before the mark changed) changes nothing.
    if load != Load::Full
        && staged.rows == 0
        && let Some(current) = previous.clone()
    {
        store.discard_run(id, &staged.run).await?;
        return Ok(Publish::Unchanged(current));
    }
    if let Some(digest) = digest {
        let rows = digest.lock().expect("the digest is never poisoned").finalize();
        fingerprint = hex::encode(Sha256::new().chain_update(fingerprint.as_bytes()).chain_update(rows.as_bytes()).finalize());
        if let Some(current) = unchanged(&fingerprint) {
            store.discard_run(id, &staged.run).await?;
            return Ok(Publish::Unchanged(current));
        }
    }
    if reads_database {
        *lineage_run = lineage_events.start(descriptor).await;
    }
    let stage_ms = stage_started.elapsed().as_secs_f64() * 1000.0;
    observer.built(id, staged.rows);
    failpoint("staged");

    // Audit: every quality rule on the staged data.
    let quality_started = Instant::now();
    // The product's own staged data is read in full (the owner's checks); the products its
    // rules name are read as its domain, like its inputs. An incremental load is checked as
    // the product will read once it is committed: its new rows with the published ones.
    let (provider, row_count, published) = crate::incremental::combined(store, id, previous.as_ref(), &staged, &load).await?;
    let reads = DomainReads { products: quality::referenced_products(descriptor, catalog).await?, tables: vec![(quality::THIS.to_owned(), provider)], ..Default::default() };
    let session = domain_session(mesh, descriptor, catalog, governance, &reads).await?;
    // The staged table's files are scanned by this session: it needs their object store.
    ProductStore::register_object_store(&staged.table, &session.context().state())?;
    if let Some(published) = &published {
        ProductStore::register_object_store(published, &session.context().state())?;
    }
    let context = QualityContext { rows: row_count, previous_rows: previous.as_ref().map(|v| v.row_count as u64), now };
    let results = quality::evaluate(session.context(), descriptor, context).await;
    let quality_ms = quality_started.elapsed().as_secs_f64() * 1000.0;
    let mut run_record = QualityRun {
        id: 0,
        product: Some(id.clone()),
        at: chrono::Utc::now(),
        trigger: options.trigger,
        outcome: quality::outcome(&results),
        published_seq: None,
        row_count,
        build_ms,
        stage_ms,
        quality_ms,
        results,
    };
    failpoint("checked");
    if run_record.outcome == RunOutcome::Failed {
        let event = NewEvent {
            kind: EventKind::QualityFailed,
            product: Some(id.clone()),
            payload: json!({ "trigger": options.trigger, "rows": row_count, "rules": quality::failing_rules(&run_record, Severity::Error), "warnings": quality::failing_rules(&run_record, Severity::Warn) }),
        };
        run_record.id = catalog.record_quality_run(id, &run_record).await?;
        catalog.append_events(&[event]).await?;
        store.discard_run(id, &staged.run).await?;
        return Ok(Publish::Rejected(Box::new(run_record)));
    }

    // Publish: journal the publication, commit the Delta version, record it in the catalog.
    let schema: Vec<SchemaColumn> =
        descriptor.contract.columns.iter().map(|c| SchemaColumn { name: c.name.clone(), data_type: c.data_type, nullable: c.nullable }).collect();
    let mut events = vec![NewEvent {
        kind: EventKind::Published,
        product: Some(id.clone()),
        payload: json!({ "version": descriptor.version, "rows": row_count, "loaded": staged.rows, "load": load.keyword(), "trigger": options.trigger, "quality": run_record.outcome }),
    }];
    if let Some(previous) = &previous
        && previous.schema != schema
    {
        events.push(NewEvent {
            kind: EventKind::SchemaChanged,
            product: Some(id.clone()),
            payload: json!({
                "version": descriptor.version,
                "previous_version": previous.version,
                "previous_schema": previous.schema,
                "schema": schema,
            }),
        });
    }
    let was_deprecated = catalog.product(id).await?.is_some_and(|p| p.status == ProductStatus::Deprecated);
    if descriptor.status == ProductStatus::Deprecated && !was_deprecated {
        events.push(NewEvent {
            kind: EventKind::Deprecated,
            product: Some(id.clone()),
            payload: json!({ "sunset": descriptor.sunset, "successor": descriptor.successor.as_ref().map(ToString::to_string) }),
        });
    }
    if run_record.outcome == RunOutcome::Warned {
        events.push(NewEvent {
            kind: EventKind::QualityWarned,
            product: Some(id.clone()),
            payload: json!({ "trigger": options.trigger, "rules": quality::failing_rules(&run_record, Severity::Warn) }),
        });
    }
    let mut publication = Publication {
        product: ProductRecord::of(descriptor.clone(), hash.clone(), store.table_url(id).to_string()),
        delta_version: -1,
        schema,
        row_count: row_count as i64,
        input_fingerprint: fingerprint.clone(),
        upstream: descriptor.upstream().cloned().collect(),
        lineage: built_lineage,
        quality: Some(run_record.clone()),
        events,
        watermark,
        remote: None,
    };
    store.write_journal(id, &staged.run, PENDING_FILE, serde_json::to_vec(&publication).expect("publications serialize")).await?;
    let metadata = vec![
        ("meshwork.product".to_owned(), id.to_string()),
        ("meshwork.version".to_owned(), descriptor.version.to_string()),
        ("meshwork.descriptor_hash".to_owned(), hash),
        ("meshwork.input_fingerprint".to_owned(), fingerprint),
        ("meshwork.run".to_owned(), run.clone()),
    ];
    // Files are moved and committed only while the product's lock is still ours: a lost lock (its
    // catalog connection dropped) lets another process recover this run, deleting moved files.
    ensure_locked(&mut lock, id).await?;
    let committed = match &load {
        // A MERGE rewrites the files holding replaced rows and commits them with the new ones.
        Load::Merge { keys } => store.merge_staged(id, &staged, keys, metadata).await?,
        Load::Full | Load::Append => {
            store.move_staged(id, &staged).await?;
            failpoint("moved");
            ensure_locked(&mut lock, id).await?;
            let mode = if load == Load::Full { Commit::Overwrite } else { Commit::Append };
            store.commit_staged(id, &staged, metadata, mode).await?
        }
    };
    failpoint("committed");
    publication.delta_version = committed.delta_version;
    let version = catalog.publish(&publication).await?;
    failpoint("published");
    run_record.published_seq = Some(version.seq);
    // Published: whatever happens next, this run completed.
    lineage_events.complete(lineage_run.take().as_ref(), descriptor, &publication.lineage, &run_record).await;
    store.discard_run(id, &staged.run).await?;
    let mut reads = built_reads;
    reads.extend(
        session
            .decisions()
            .iter()
            .map(|(id, decision)| (id.clone(), decision.clone())),
    );
    Ok(Publish::New(version, Box::new(run_record), reads))
}

