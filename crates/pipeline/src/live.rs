//! Virtual products at apply: the remote table or query is checked against the contract and the
//! quality rules run on its rows where they live; what is published is where to read them, not
//! a copy. A new version is recorded when the descriptor or the remote's columns change; every
//! apply checks again, so drift and failing rules are refused like a stored product's.

use std::sync::Arc;

use meshwork_catalog::{CatalogStore, NewEvent, ProductRecord, Publication, QualityRun, RemoteColumn, RemoteConnection, RemoteSource, RunOutcome, SchemaColumn, Trigger};
use meshwork_core::descriptor::{ProductDescriptor, Remote, Severity};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use meshwork_core::lineage::ProductLineage;
use meshwork_core::mesh::descriptor_hash;
use meshwork_query::{DomainReads, Governance, RemoteTable};
use meshwork_sources::SourceError;
use meshwork_storage::{ProductStore, contract_schema};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::apply::Publish;
use crate::quality::{self, QualityContext};
use crate::upstream::domain_session;
use crate::{LoadedMesh, PipelineError};

/// Where `descriptor` (a virtual product) is read, once its source is checked against the
/// contract: the connection as declared, and the source column of each contract column.
pub(crate) async fn remote_source(mesh: &LoadedMesh, descriptor: &ProductDescriptor) -> Result<RemoteSource, PipelineError> {
    let (_, remote) = descriptor.remote().ok_or_else(|| PipelineError::Internal(format!("`{}` is not a virtual product", descriptor.id())))?;
    let source = remote.source();
    let unknown = || SourceError::UnknownConnection(source.connection.clone());
    let (connection, columns) = match remote {
        Remote::Database(..) => {
            let connection = mesh.repo.config.connections.get(&source.connection).ok_or_else(unknown)?;
            let mut session = meshwork_sources::connect(&source.connection, connection).await?;
            let columns = session.columns(&source.read).await;
            session.close().await;
            (RemoteConnection::Database(connection.clone()), columns?)
        }
        Remote::FlightSql(_) => {
            let endpoint = mesh.repo.config.flight_endpoints.get(&source.connection).ok_or_else(unknown)?;
            let columns = meshwork_sources::connect_flight(&source.connection, endpoint).await?.columns(&source.read).await?;
            (RemoteConnection::FlightSql(endpoint.clone()), columns)
        }
    };
    meshwork_sources::schema::check(&source.connection, &source.read, &columns, Some(&descriptor.contract), None)?;
    let columns = descriptor
        .contract
        .columns
        .iter()
        .map(|c| {
            let found = crate::database::find(&columns, &c.name).expect("checked against the contract");
            RemoteColumn { name: c.name.clone(), source: found.name.clone(), type_name: found.type_name.clone() }
        })
        .collect();
    Ok(RemoteSource { connection_name: source.connection.clone(), connection, read: source.read.clone(), columns })
}

/// Checks virtual product `id` and publishes where it is read when the descriptor or its source
/// changed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn publish(
    mesh: &LoadedMesh,
    id: &ProductId,
    catalog: &dyn CatalogStore,
    governance: &Governance,
    store: &ProductStore,
    trigger: Trigger,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Publish, PipelineError> {
    let descriptor = &mesh.repo.products[id].descriptor;
    let hash = descriptor_hash(descriptor);
    let remote = remote_source(mesh, descriptor).await?;
    let fingerprint = hex::encode(Sha256::digest(serde_json::to_vec(&remote).expect("remote sources serialize")));
    let previous = catalog.current_version(id).await?;

    // Audit: the quality rules on the rows as the database has them now, read as the domain reads.
    let started = std::time::Instant::now();
    let table = Arc::new(RemoteTable::new(remote.clone(), contract_schema(&descriptor.contract)));
    let reads = DomainReads { products: quality::referenced_products(descriptor, catalog).await?, tables: vec![(quality::THIS.to_owned(), table)], ..Default::default() };
    let session = domain_session(mesh, descriptor, catalog, governance, &reads).await?;
    let rows = count(session.context()).await.map_err(|e| PipelineError::Remote { product: id.clone(), message: e.find_root().strip_backtrace() })?;
    let context = QualityContext { rows, previous_rows: previous.as_ref().map(|v| v.row_count as u64), now };
    let results = quality::evaluate(session.context(), descriptor, context).await;
    let mut run = QualityRun {
        id: 0,
        product: Some(id.clone()),
        at: chrono::Utc::now(),
        trigger,
        outcome: quality::outcome(&results),
        published_seq: None,
        row_count: rows,
        build_ms: 0.0,
        stage_ms: 0.0,
        quality_ms: started.elapsed().as_secs_f64() * 1000.0,
        results,
    };
    if run.outcome == RunOutcome::Failed {
        let event = NewEvent {
            kind: EventKind::QualityFailed,
            product: Some(id.clone()),
            payload: json!({ "trigger": trigger, "rows": rows, "rules": quality::failing_rules(&run, Severity::Error), "warnings": quality::failing_rules(&run, Severity::Warn) }),
        };
        run.id = catalog.record_quality_run(id, &run).await?;
        catalog.append_events(&[event]).await?;
        return Ok(Publish::Rejected(Box::new(run)));
    }
    if let Some(current) = previous.as_ref().filter(|v| v.descriptor_hash == hash && v.input_fingerprint == fingerprint) {
        // Still served as published; the check of the live rows is on record.
        run.id = catalog.record_quality_run(id, &run).await?;
        return Ok(Publish::Unchanged(current.clone()));
    }

    let schema: Vec<SchemaColumn> = descriptor.contract.columns.iter().map(|c| SchemaColumn { name: c.name.clone(), data_type: c.data_type, nullable: c.nullable }).collect();
    let mut events = vec![NewEvent {
        kind: EventKind::Published,
        product: Some(id.clone()),
        payload: json!({ "version": descriptor.version, "rows": rows, "load": "virtual", "trigger": trigger, "quality": run.outcome }),
    }];
    if let Some(previous) = previous.as_ref().filter(|p| p.schema != schema) {
        events.push(NewEvent {
            kind: EventKind::SchemaChanged,
            product: Some(id.clone()),
            payload: json!({ "version": descriptor.version, "previous_version": previous.version, "previous_schema": previous.schema, "schema": schema }),
        });
    }
    if run.outcome == RunOutcome::Warned {
        events.push(NewEvent { kind: EventKind::QualityWarned, product: Some(id.clone()), payload: json!({ "trigger": trigger, "rules": quality::failing_rules(&run, Severity::Warn) }) });
    }
    let publication = Publication {
        product: ProductRecord::of(descriptor.clone(), hash, store.table_url(id).to_string()),
        // No Delta table holds it.
        delta_version: -1,
        schema,
        row_count: rows as i64,
        input_fingerprint: fingerprint,
        upstream: Vec::new(),
        lineage: ProductLineage::identity(descriptor),
        quality: Some(run.clone()),
        events,
        watermark: None,
        remote: Some(remote),
    };
    let version = catalog.publish(&publication).await?;
    run.published_seq = Some(version.seq);
    Ok(Publish::New(version, Box::new(run), Default::default()))
}

/// The rows of the product the session reads as `this` (sent to the database as `count(*)`).
async fn count(ctx: &datafusion::prelude::SessionContext) -> datafusion::common::Result<u64> {
    let batches = ctx.sql(&format!("SELECT count(*) FROM {}", quality::THIS)).await?.collect().await?;
    let count = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().map(|a| a.value(0)))
        .unwrap_or(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Whether `descriptor` reads a virtual product, whose rows change without a new publication: a
/// build of it is known unchanged only by a digest of the rows it stages.
pub(crate) async fn reads_virtual(descriptor: &ProductDescriptor, catalog: &dyn CatalogStore) -> Result<bool, PipelineError> {
    for upstream in descriptor.upstream() {
        if catalog.current_version(upstream).await?.is_some_and(|v| v.remote.is_some()) {
            return Ok(true);
        }
    }
    Ok(false)
}
