//! Database inputs of a build: which rows to read (everything, or past the last publication's
//! high-water mark), the stream of them checked against the contract, and what the product
//! records of how far it read.

use arrow::array::RecordBatch;
use futures::StreamExt;
use meshwork_catalog::Watermark;
use meshwork_core::descriptor::{Contract, DatabaseSource, InputPort, LoadMode};
use meshwork_sources::schema::describe_read;
use meshwork_sources::{Range, SourceColumn, SourceConnection, SourceError};

use crate::build::BatchStream;
use crate::conform::{conform, type_like_contract};
use crate::ingest::{Provenance, infer_text_types};
use crate::{LoadedMesh, PipelineError};

/// How a build's rows join the product's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load {
    /// They are the product's whole new content.
    Full,
    /// They are added to the published rows.
    Append,
    /// They replace published rows with the same primary key; others are added.
    Merge {
        /// The contract's primary key.
        keys: Vec<String>,
    },
}

impl Load {
    /// How events and reports name it.
    pub fn keyword(&self) -> &'static str {
        match self {
            Load::Full => "full",
            Load::Append => "append",
            Load::Merge { .. } => "merge",
        }
    }
}

/// Opens the connection an input names and reads its source's columns.
async fn open(mesh: &LoadedMesh, source: &DatabaseSource) -> Result<(SourceConnection, Vec<SourceColumn>), PipelineError> {
    let connection = mesh.repo.config.connections.get(&source.connection).ok_or_else(|| SourceError::UnknownConnection(source.connection.clone()))?;
    let mut session = meshwork_sources::connect(&source.connection, connection).await?;
    let columns = session.columns(&source.read).await?;
    Ok((session, columns))
}

/// The column named `name`, exactly or else ignoring case (PostgreSQL folds unquoted names to
/// lower case, MySQL keeps them as created).
pub(crate) fn find<'c>(columns: &'c [SourceColumn], name: &str) -> Option<&'c SourceColumn> {
    columns.iter().find(|c| c.name == name).or_else(|| columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
}

/// What of a database input the fingerprint covers: for an incremental input its connection,
/// what it reads and the source's highest watermark (an unchanged one means nothing new); for a
/// full load nothing can tell without reading everything, so `None`: the product is rebuilt.
/// The source is checked against `contract` when `identity` even when nothing is new, so that
/// drift is refused by every apply, not only by the next one with new rows.
pub async fn fingerprint(mesh: &LoadedMesh, source: &DatabaseSource, contract: &Contract, identity: bool) -> Result<Option<String>, PipelineError> {
    let Some(incremental) = &source.incremental else { return Ok(None) };
    let (mut session, columns) = open(mesh, source).await?;
    session.check(&source.read, &columns, identity.then_some(contract), Some(&incremental.column))?;
    let column = find(&columns, &incremental.column).expect("checked above").clone();
    let mark = session.high_mark(&source.read, &column, None).await?;
    session.close().await;
    let url = mesh.repo.config.connections.get(&source.connection).map(|c| c.url.as_str()).unwrap_or_default();
    Ok(Some(format!("{url} {:?} {} {mark:?}", source.read, incremental.column)))
}

/// Whether a product reads a database in full: what it holds is known only once read, so its
/// build digests the rows it stages and publishes nothing when they equal the current version's.
pub fn reads_in_full(descriptor: &meshwork_core::descriptor::ProductDescriptor) -> bool {
    descriptor.inputs.iter().any(|i| i.source.database().is_some_and(|(_, s)| s.incremental.is_none()))
}

/// The digest of every row that passes through `batches`, in order, complete once the stream
/// ended: rows in Arrow's row format (one canonical byte string per row, NULLs included), so
/// equal content in the same order gives the same digest whatever the batch boundaries.
pub fn digesting(batches: BatchStream, schema: &arrow::datatypes::SchemaRef) -> (BatchStream, std::sync::Arc<std::sync::Mutex<blake3::Hasher>>) {
    let hasher = std::sync::Arc::new(std::sync::Mutex::new(blake3::Hasher::new()));
    let fields = schema.fields().iter().map(|f| arrow::row::SortField::new(f.data_type().clone())).collect();
    let converter = arrow::row::RowConverter::new(fields);
    let sink = hasher.clone();
    let stream = batches.map(move |batch| {
        let batch = batch?;
        let converter = converter.as_ref().map_err(|e| PipelineError::Internal(format!("digest of the rows: {e}")))?;
        let rows = converter.convert_columns(batch.columns()).map_err(|e| PipelineError::Internal(format!("digest of the rows: {e}")))?;
        let mut hasher = sink.lock().expect("the digest is never poisoned");
        for row in rows.iter() {
            hasher.update(&(row.as_ref().len() as u64).to_le_bytes());
            hasher.update(row.as_ref());
        }
        Ok(batch)
    });
    (Box::pin(stream), hasher)
}

/// The rows a build reads of one database input.
pub struct Planned {
    /// The connection, with the source's columns.
    session: SourceConnection,
    columns: Vec<SourceColumn>,
    /// The watermark range, for an incremental input.
    range: Option<Range>,
    /// The mark to record once published.
    pub watermark: Option<Watermark>,
    /// How the rows join the product.
    pub load: Load,
}

/// Plans the read of `input`: checks its source against `contract` when `identity` (the
/// product's columns come straight from it) and, for an incremental input, reads the source's
/// highest watermark and resumes after `resume` (the last publication's mark, `None` for a
/// first or full load).
pub async fn plan(mesh: &LoadedMesh, input: &InputPort, source: &DatabaseSource, contract: &Contract, identity: bool, resume: Option<&Watermark>) -> Result<Planned, PipelineError> {
    let (mut session, columns) = open(mesh, source).await?;
    let watermark_column = source.incremental.as_ref().map(|i| i.column.as_str());
    session.check(&source.read, &columns, identity.then_some(contract), watermark_column)?;
    let Some(incremental) = &source.incremental else {
        return Ok(Planned { session, columns, range: None, watermark: None, load: Load::Full });
    };
    let column = find(&columns, &incremental.column).expect("checked above").clone();
    let resume = resume.filter(|w| w.input == input.name && w.column == incremental.column).map(|w| w.value.clone());
    // The maximum at or past the mark, in the same read-only snapshot as the read below.
    let high = session.high_mark(&source.read, &column, resume.as_deref()).await?;
    let load = match (&resume, incremental.mode) {
        (None, _) => Load::Full,
        (Some(_), LoadMode::Append) => Load::Append,
        (Some(_), LoadMode::Merge) => Load::Merge { keys: contract.primary_key.clone() },
    };
    let (range, mark) = match (high, resume) {
        // No row has a watermark yet: a first load reads every row and records no mark.
        (None, None) => (None, None),
        // None any more: nothing is new.
        (None, Some(after)) => (Some(Range { column: column.clone(), after: Some(after.clone()), inclusive: false, up_to: after.clone() }), Some(after)),
        (Some(high), after) => (Some(Range { column: column.clone(), after, inclusive: incremental.mode == LoadMode::Merge, up_to: high.clone() }), Some(high)),
    };
    let watermark = mark.map(|value| Watermark { input: input.name.clone(), column: incremental.column.clone(), value });
    Ok(Planned { session, columns, range, watermark, load })
}

impl Planned {
    fn provenance(&self, source: &DatabaseSource, contract: &Contract) -> Provenance {
        Provenance::Database { connection: source.connection.clone(), what: describe_read(&source.read), key: contract.primary_key.clone() }
    }

    /// The rows of an identity product: its contract's columns read from the source and checked
    /// as they stream, a value that does not fit named by its row's primary key.
    pub fn stream(self, source: &DatabaseSource, contract: &Contract) -> BatchStream {
        let provenance = self.provenance(source, contract);
        let selected: Vec<(String, SourceColumn)> =
            contract.columns.iter().filter_map(|c| find(&self.columns, &c.name).map(|s| (c.name.clone(), s.clone()))).collect();
        let rows = meshwork_sources::read(self.session, &source.read, selected, self.range);
        let contract = contract.clone();
        let mut offset = 0usize;
        Box::pin(rows.batches.map(move |batch| {
            let batch = batch?;
            let conformed = conform(&batch, &contract, &provenance, offset);
            offset += batch.num_rows();
            conformed
        }))
    }

    /// Every row of a transform's input, in one batch: columns the contract names take its
    /// types (a bad value named by its row's key), others the narrowest type their text fits,
    /// as for a CSV input.
    pub async fn read_whole(self, source: &DatabaseSource, contract: &Contract) -> Result<RecordBatch, PipelineError> {
        let provenance = self.provenance(source, contract);
        let selected: Vec<(String, SourceColumn)> = self.columns.iter().map(|c| (c.name.clone(), c.clone())).collect();
        let rows = meshwork_sources::read(self.session, &source.read, selected, self.range);
        let schema = rows.schema.clone();
        let mut parts = Vec::new();
        let mut batches = rows.batches;
        while let Some(batch) = batches.next().await {
            parts.push(type_like_contract(&batch?, contract, &provenance)?);
        }
        let typed_schema = parts.first().map(|b| b.schema()).unwrap_or(schema);
        let batch = arrow::compute::concat_batches(&typed_schema, &parts).map_err(|e| PipelineError::Internal(e.to_string()))?;
        let keep: Vec<&str> = contract.columns.iter().map(|c| c.name.as_str()).collect();
        infer_text_types(&batch, &keep).map_err(|e| PipelineError::Internal(e.to_string()))
    }
}
