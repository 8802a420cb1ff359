//! Builds one product: reads its inputs, runs its transform, and conforms the result to its
//! contract, as a stream of batches produced while the caller writes them. Nothing here writes:
//! staging and publishing are the caller's steps.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use futures::{Stream, StreamExt, TryStreamExt};
use meshwork_catalog::CatalogStore;
use meshwork_core::descriptor::{Contract, InputSource, ProductDescriptor};
use meshwork_core::id::ProductId;
use meshwork_core::lineage::ProductLineage;
use meshwork_core::mesh::ProductEntry;
use meshwork_policy::{AccessDecision, Authorizer};
use meshwork_query::{DomainReads, Governance};
use sha2::{Digest, Sha256};

use crate::conform::{conform, contract_schema, type_like_contract};
pub use crate::database::Load;
use meshwork_catalog::Watermark;
use crate::ingest::{Provenance, expand_glob, file_chunks, infer_text_types, read_whole};
use crate::upstream::domain_session;
use crate::{LoadedMesh, PipelineError};

/// Conformed batches of a build, produced as they are consumed; the first `Err` ends it.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, PipelineError>> + Send>>;

/// A product's data, conformed to its contract and ready to stage: a plan whose batches are
/// read, transformed and checked as the stage consumes them, so memory holds a few batches and
/// not the product.
pub struct BuiltProduct {
    /// The contract's Arrow schema.
    pub schema: SchemaRef,
    /// The rows, checked against the contract as they stream.
    pub batches: BatchStream,
    /// The access decision on each upstream product the build read, as its domain.
    pub reads: BTreeMap<ProductId, AccessDecision>,
    /// Which input columns each output column comes from.
    pub lineage: ProductLineage,
    /// How the rows join the product's table: all of it, or an incremental load's new rows.
    pub load: Load,
    /// How far an incremental input was read, recorded with the publication.
    pub watermark: Option<Watermark>,
}

impl BuiltProduct {
    /// Every batch, in memory (for tests and small previews; publishing streams them).
    pub async fn collect(self) -> Result<Vec<RecordBatch>, PipelineError> {
        self.batches.try_collect().await
    }
}

/// Fingerprint of everything a product's data is built from: the content of its input files,
/// the published versions of its upstream products, and what its domain may see of them (the
/// domain principal and each upstream's decision for it, so a changed grant, filter, mask or
/// access policy rebuilds the product). Equal fingerprints and equal descriptors mean a rebuild
/// would produce the same data.
pub async fn input_fingerprint(mesh: &LoadedMesh, descriptor: &ProductDescriptor, catalog: &dyn CatalogStore, authorizer: &Authorizer) -> Result<String, PipelineError> {
    let mut hasher = Sha256::new();
    let principal = crate::upstream::domain_principal(mesh, descriptor)?;
    for input in &descriptor.inputs {
        hasher.update(input.name.as_bytes());
        match &input.source {
            InputSource::Product { product } => {
                let version = catalog.current_version(product).await?.ok_or_else(|| PipelineError::UpstreamMissing(product.to_string()))?;
                hasher.update(format!("{product}@{}:{}", version.seq, version.delta_version).as_bytes());
                if let Some(record) = catalog.product(product).await? {
                    let decision = authorizer.decide(&principal, &record.descriptor);
                    let seen = (&principal.groups, &principal.attributes, decision.allowed, &decision.row_filters, &decision.masks);
                    hasher.update(format!("{seen:?}").as_bytes());
                }
            }
            // Served live by a virtual product: nothing of it is copied to fingerprint.
            InputSource::FlightSql(source) => hasher.update(format!("{} {:?} live", source.connection, source.read).as_bytes()),
            InputSource::Postgres(source) | InputSource::Mysql(source) => match crate::database::fingerprint(mesh, source, &descriptor.contract, descriptor.transform.is_none()).await? {
                Some(state) => hasher.update(state.as_bytes()),
                // A full load: what the database holds is known only by reading it all; `apply`
                // adds the digest of the rows it staged (`database::digesting`).
                None => hasher.update(format!("{} {:?} in full", source.connection, source.read).as_bytes()),
            },
            source => {
                let pattern = source.path().expect("file sources have a path");
                let files = expand_glob(&mesh.root, pattern).map_err(|e| PipelineError::Read { file: pattern.into(), message: e.to_string() })?;
                // A source that vanished must not publish an empty product.
                if files.is_empty() {
                    return Err(PipelineError::Read {
                        file: pattern.into(),
                        message: "no file matches; restore the source files or change `inputs[].source.path`".into(),
                    });
                }
                let root = mesh.root.clone();
                let digest = tokio::task::spawn_blocking(move || hash_files(&root, &files))
                    .await
                    .map_err(|e| PipelineError::Internal(e.to_string()))??;
                hasher.update(digest);
            }
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The digest of the files' names and contents. BLAKE3, not SHA-256: it reads a GB of input in a
/// fraction of a second on one core, where SHA-256 took a twentieth of the whole ingest.
fn hash_files(root: &std::path::Path, files: &[PathBuf]) -> Result<[u8; 32], PipelineError> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    for file in files {
        let display = file.strip_prefix(root).unwrap_or(file).display().to_string();
        hasher.update(display.as_bytes());
        let mut reader = std::fs::File::open(file).map_err(|e| PipelineError::Read { file: display.clone(), message: e.to_string() })?;
        loop {
            let n = reader.read(&mut buffer).map_err(|e| PipelineError::Read { file: display.clone(), message: e.to_string() })?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
    }
    Ok(hasher.finalize().into())
}

/// One whole file of a transform's input, read on a blocking thread.
async fn read_file(mesh: &LoadedMesh, source: &InputSource, file: PathBuf) -> Result<(Provenance, RecordBatch), PipelineError> {
    let display = file.strip_prefix(&mesh.root).unwrap_or(&file).display().to_string();
    let source = source.clone();
    tokio::task::spawn_blocking(move || {
        let batch = read_whole(&source, &file, &display)?;
        Ok((provenance_of(&source, display), batch))
    })
    .await
    .map_err(|e| PipelineError::Internal(e.to_string()))?
}

/// Where rows of a file of `source` come from.
fn provenance_of(source: &InputSource, path: String) -> Provenance {
    let lines_before = match source {
        InputSource::Csv { header, .. } => Some(usize::from(*header)),
        _ => None,
    };
    Provenance::File { path, lines_before }
}

/// The files of an identity input as a stream of conformed blocks, in two stages on blocking
/// threads while the consumer encodes what it already received: one parses the files, the
/// other checks and casts each block against the contract (three stages keep two cores busy;
/// parsing alone is about as costly as the rest). Each channel holds two blocks: reading waits
/// for writing, so memory does not grow with the input.
fn stream_files(mesh: &LoadedMesh, source: &InputSource, files: Vec<PathBuf>, contract: &Contract) -> BatchStream {
    let (raw_sender, mut raw) = tokio::sync::mpsc::channel::<(usize, Result<RecordBatch, PipelineError>)>(2);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<RecordBatch, PipelineError>>(2);
    let displays: Vec<String> = files.iter().map(|f| f.strip_prefix(&mesh.root).unwrap_or(f).display().to_string()).collect();
    let provenances: Vec<Provenance> = displays.iter().map(|d| provenance_of(source, d.clone())).collect();
    let reader_source = source.clone();
    let reader = tokio::task::spawn_blocking(move || {
        for (index, (file, display)) in files.iter().zip(&displays).enumerate() {
            let chunks = match file_chunks(&reader_source, file, display) {
                Ok(chunks) => chunks.batches,
                Err(error) => {
                    let _ = raw_sender.blocking_send((index, Err(error)));
                    return;
                }
            };
            for chunk in chunks {
                let failed = chunk.is_err();
                // A closed channel: the checker stopped (an error); nothing more to read.
                if raw_sender.blocking_send((index, chunk)).is_err() || failed {
                    return;
                }
            }
        }
    });
    let (source, contract) = (source.clone(), contract.clone());
    let checker = tokio::task::spawn_blocking(move || {
        let (mut current, mut offset) = (usize::MAX, 0);
        while let Some((index, chunk)) = raw.blocking_recv() {
            if index != current {
                (current, offset) = (index, 0);
            }
            let provenance = &provenances[index];
            let conformed = chunk.and_then(|mut batch| {
                if matches!(source, InputSource::Csv { header: false, .. }) {
                    batch = name_like_contract(batch, &contract, provenance)?;
                }
                let conformed = conform(&batch, &contract, provenance, offset);
                offset += batch.num_rows();
                conformed
            });
            let failed = conformed.is_err();
            if sender.blocking_send(conformed).is_err() || failed {
                return;
            }
        }
    });
    // When the channel ends, the stages' outcomes decide: a panic must not pass for the end of
    // the data.
    let state = (receiver, vec![checker, reader]);
    Box::pin(futures::stream::unfold(state, |(mut receiver, mut stages)| async move {
        if let Some(item) = receiver.recv().await {
            return Some((item, (receiver, stages)));
        }
        while let Some(stage) = stages.pop() {
            if let Err(error) = stage.await {
                return Some((Err(PipelineError::Internal(format!("the input reader stopped: {error}"))), (receiver, Vec::new())));
            }
        }
        None
    }))
}

/// Names the columns of a headerless CSV file after the contract's columns, in order.
fn name_like_contract(batch: RecordBatch, contract: &meshwork_core::descriptor::Contract, provenance: &Provenance) -> Result<RecordBatch, PipelineError> {
    if batch.num_columns() != contract.columns.len() {
        return Err(PipelineError::Read {
            file: provenance.describe(),
            message: format!(
                "the file has {} columns and no header, the contract declares {}; headerless files map columns to the contract by position",
                batch.num_columns(),
                contract.columns.len()
            ),
        });
    }
    let fields: Vec<arrow::datatypes::Field> = contract
        .columns
        .iter()
        .zip(batch.schema().fields())
        .map(|(c, f)| arrow::datatypes::Field::new(&c.name, f.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), batch.columns().to_vec())
        .map_err(|e| PipelineError::Internal(e.to_string()))
}

/// Builds a product's data from its inputs and conforms it to its contract. Upstream products
/// are read as the product's domain under `governance` (what was applied): their row filters
/// and masks for that domain apply to what the transform sees, and a refused one is an error.
/// An incremental database input resumes after `resume`, the current version's mark (`None`:
/// read it whole).
pub async fn build_product(
    mesh: &LoadedMesh,
    entry: &ProductEntry,
    catalog: &dyn CatalogStore,
    governance: &Governance,
    resume: Option<&Watermark>,
) -> Result<BuiltProduct, PipelineError> {
    let descriptor = &entry.descriptor;
    let contract = &descriptor.contract;
    let schema = contract_schema(contract);
    let mut reads_made = BTreeMap::new();
    let (mut load, mut watermark) = (Load::Full, None);
    let (batches, lineage) = match (&descriptor.transform, descriptor.inputs.as_slice()) {
        // Identity over one database input: the contract's columns, checked as they stream.
        (None, [input]) if input.source.database().is_some() => {
            let (_, source) = input.source.database().expect("database source");
            let planned = crate::database::plan(mesh, input, source, contract, true, resume).await?;
            (load, watermark) = (planned.load.clone(), planned.watermark.clone());
            (planned.stream(source, contract), ProductLineage::identity(descriptor))
        }
        // Identity over one file input: check every file against the contract so that a bad
        // cell is reported with its file and row.
        (None, [input]) if input.source.path().is_some() => {
            let pattern = input.source.path().expect("file source");
            let files = expand_glob(&mesh.root, pattern).map_err(|e| PipelineError::Read { file: pattern.into(), message: e.to_string() })?;
            (stream_files(mesh, &input.source, files, contract), ProductLineage::identity(descriptor))
        }
        _ => {
            // Product inputs are read as the consuming domain, through the same access decision
            // and policy rewrite as a query of that domain; file inputs are the domain's own.
            let mut reads = DomainReads::default();
            for input in &descriptor.inputs {
                match &input.source {
                    InputSource::Product { product } => reads.ports.push((input.name.to_string(), product.clone())),
                    InputSource::FlightSql(_) => {
                        return Err(PipelineError::Internal(format!("input `{}` reads a Flight SQL endpoint, which only a virtual product serves", input.name)));
                    }
                    InputSource::Postgres(source) | InputSource::Mysql(source) => {
                        let planned = crate::database::plan(mesh, input, source, contract, false, resume).await?;
                        if source.incremental.is_some() {
                            (load, watermark) = (planned.load.clone(), planned.watermark.clone());
                        }
                        let batch = planned.read_whole(source, contract).await?;
                        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| PipelineError::Internal(e.to_string()))?;
                        reads.tables.push((input.name.to_string(), Arc::new(table)));
                    }
                    source => {
                        let pattern = source.path().expect("file source");
                        let files = expand_glob(&mesh.root, pattern)
                            .map_err(|e| PipelineError::Read { file: pattern.into(), message: e.to_string() })?;
                        let mut parts: Vec<RecordBatch> = Vec::new();
                        for file in files {
                            let (provenance, batch) = read_file(mesh, source, file).await?;
                            // Files of one glob are stacked by column name: they must agree.
                            if let Some(first) = parts.first() {
                                let names = |b: &RecordBatch| b.schema().fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
                                if names(first) != names(&batch) {
                                    return Err(PipelineError::Read {
                                        file: provenance.describe(),
                                        message: format!(
                                            "columns {} differ from {} in the first file matching `{pattern}`; files of one input must have the same columns in the same order",
                                            names(&batch).join(", "),
                                            names(first).join(", ")
                                        ),
                                    });
                                }
                            }
                            let batch = match source {
                                InputSource::Csv { .. } => type_like_contract(&batch, contract, &provenance)?,
                                _ => batch,
                            };
                            parts.push(batch);
                        }
                        let part_schema = parts.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
                        let mut batch = arrow::compute::concat_batches(&part_schema, &parts).map_err(|e| PipelineError::Read {
                            file: pattern.into(),
                            message: format!("the files matching the pattern do not share one set of columns: {e}"),
                        })?;
                        if matches!(source, InputSource::Csv { .. }) {
                            let keep: Vec<&str> = contract.columns.iter().map(|c| c.name.as_str()).collect();
                            batch = infer_text_types(&batch, &keep).map_err(|e| PipelineError::Read { file: pattern.into(), message: e.to_string() })?;
                        }
                        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| PipelineError::Internal(e.to_string()))?;
                        reads.tables.push((input.name.to_string(), Arc::new(table)));
                    }
                }
            }
            let session = domain_session(mesh, descriptor, catalog, governance, &reads).await?;
            reads_made = session.decisions().clone();
            let origin = match (&descriptor.transform, entry.transform_file()) {
                (Some(t), Some(file)) if t.file.is_some() => file,
                (Some(_), _) => format!("{}: transform", entry.file),
                (None, _) => format!("{}: identity over input `{}`", entry.file, descriptor.inputs[0].name),
            };
            let sql = match &descriptor.transform {
                Some(t) => t.sql.clone(),
                None => format!("SELECT * FROM \"{}\"", descriptor.inputs[0].name),
            };
            let transform_error = |message: String| PipelineError::Transform { origin: origin.clone(), message };
            // Lineage comes from the plan as written, before strings are cast for the output.
            let written = session.plan(&sql).await.map_err(|e| transform_error(e.to_string()))?;
            let lineage = crate::lineage::column_lineage(written.logical_plan(), descriptor).map_err(|e| transform_error(e.to_string()))?;
            let frame = session.sql(&sql).await.map_err(|e| transform_error(e.to_string()))?;
            let result = frame.execute_stream().await.map_err(|e| transform_error(meshwork_query::QueryError::from(e).to_string()))?;
            let provenance = match (&descriptor.transform, descriptor.inputs.as_slice()) {
                (None, [input]) => match &input.source {
                    InputSource::Product { product } => Provenance::Product(product.to_string()),
                    _ => Provenance::Transform { origin: origin.clone() },
                },
                _ => Provenance::Transform { origin: origin.clone() },
            };
            let (contract, failed_in) = (contract.clone(), origin.clone());
            let conformed = result.scan(0usize, move |offset, batch| {
                let failed = |e| PipelineError::Transform { origin: failed_in.clone(), message: meshwork_query::QueryError::from(e).to_string() };
                let conformed = batch.map_err(failed).and_then(|batch| {
                    let conformed = conform(&batch, &contract, &provenance, *offset);
                    *offset += batch.num_rows();
                    conformed
                });
                futures::future::ready(Some(conformed))
            });
            (Box::pin(conformed) as BatchStream, lineage)
        }
    };
    Ok(BuiltProduct { schema, batches, reads: reads_made, lineage, load, watermark })
}
