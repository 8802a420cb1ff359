//! Write-audit-publish on storage, writing the data once: a run streams its batches into the
//! Parquet files of a staged Delta table (bounded memory, whatever the input size), quality
//! rules read that table, and publishing *moves* its files into the product's table and commits
//! them there (their statistics carried over), instead of rewriting the rows.
//!
//! A local move is a rename; on object storage it is the store's server-side copy, so no data
//! passes through Meshwork twice either way. Crash safety: the staged table's log still lists
//! the files after they moved, so a run that moved files but never committed is undone by
//! [`ProductStore::abandon_run`], which deletes exactly those files from the product table
//! (nothing committed refers to them).

use std::num::NonZeroU64;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt as _, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::DeltaTableError;
use futures::{Stream, StreamExt};
use meshwork_core::id::ProductId;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use crate::layout::{SAMPLE_ROWS, writer_properties_for};
use crate::{CommittedVersion, DeltaTable, ProductStore, Result, StorageError};

/// Size at which a data file is closed and the next one started: large enough for scans to
/// skip little and plan few files, small enough that a product of many GB has several files
/// to read in parallel.
const TARGET_FILE_SIZE: NonZeroU64 = NonZeroU64::new(256 * 1024 * 1024).expect("non-zero");

/// How a staged run's files join the product's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// They replace the table's files: the run is the product's whole new content.
    Overwrite,
    /// They are added to the table's files (an incremental `append`).
    Append,
}

/// A staged run: new data written as its own Delta table, not visible to queries.
#[derive(Debug)]
pub struct StagedTable {
    /// The run's name (its staging directory under the product's).
    pub run: String,
    /// The staged Delta table.
    pub table: DeltaTable,
    /// How many rows were staged.
    pub rows: u64,
    /// The staged data files, paths relative to the staged table (and, once published, to
    /// the product table), with their statistics.
    files: Vec<Add>,
}

impl ProductStore {
    /// Streams `batches` into a new staged Delta table for run `run`. Memory holds the first
    /// 65,536 rows (read ahead to choose the columns' encodings, then written first) and one
    /// row group being encoded, not the data. A failed batch (`Err` from the stream: a value that
    /// does not fit the contract) or a failed write stops the run and removes what it wrote.
    pub async fn stage<E>(&self, id: &ProductId, run: &str, schema: SchemaRef, batches: impl Stream<Item = Result<RecordBatch, E>>) -> Result<StagedTable, E>
    where
        E: From<StorageError>,
    {
        let url = self.staging_url(id, run);
        self.ensure_local_dir(&url).await?;
        let delta = |source| StorageError::Delta { table: url.to_string(), source };
        let table = deltalake::DeltaTableBuilder::from_url(url.clone()).and_then(|b| b.build()).map_err(delta)?;
        // Fused: the read-ahead below may have seen its end already.
        let mut batches = std::pin::pin!(batches.fuse());
        // The first rows decide which columns get a dictionary (see `writer_properties_for`):
        // one block's worth is read ahead, then written first.
        let mut head = Vec::new();
        let mut sampled = 0;
        while sampled < SAMPLE_ROWS
            && let Some(item) = batches.next().await
        {
            sampled = item.as_ref().map_or(SAMPLE_ROWS, |batch| sampled + batch.num_rows());
            head.push(item);
        }
        let sample: Vec<RecordBatch> = head.iter().filter_map(|item| item.as_ref().ok().cloned()).collect();
        // Statistics of the first 32 columns go into the log, Delta's default.
        let config = WriterConfig::new(schema.clone(), Vec::new(), Some(writer_properties_for(self.codec, &sample)), Some(TARGET_FILE_SIZE), None, Default::default(), None);
        drop(sample);
        let mut writer = DeltaWriter::new(table.log_store().object_store(None), config);
        let mut rows = 0u64;
        let mut batches = futures::stream::iter(head).chain(batches);
        let failure = loop {
            match batches.next().await {
                None => break None,
                Some(Err(error)) => break Some(error),
                Some(Ok(batch)) => {
                    rows += batch.num_rows() as u64;
                    if let Err(source) = writer.write(&batch).await {
                        break Some(delta(source).into());
                    }
                }
            }
        };
        if let Some(error) = failure {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(product = %id, run, error = %abort, "aborting a failed run's upload");
            }
            self.discard_after_failure(id, run).await;
            return Err(error);
        }
        let staged = async {
            let files = writer.close().await.map_err(delta)?;
            let table = CreateBuilder::new()
                .with_log_store(table.log_store())
                .with_columns(kernel_schema(&schema).map_err(delta)?.fields().cloned())
                .with_table_name(format!("{id} (staged)"))
                .with_actions(files.iter().cloned().map(Action::Add))
                .await
                .map_err(delta)?;
            Ok::<_, StorageError>((files, table))
        };
        match staged.await {
            Ok((files, table)) => Ok(StagedTable { run: run.to_owned(), table, rows, files }),
            Err(error) => {
                self.discard_after_failure(id, run).await;
                Err(error.into())
            }
        }
    }

    /// Removes what a failed stage wrote; the stage's own error is what the caller reports.
    async fn discard_after_failure(&self, id: &ProductId, run: &str) {
        if let Err(error) = self.discard_run(id, run).await {
            tracing::warn!(product = %id, run, %error, "removing a failed run's staged data");
        }
    }

    /// Publishes a staged run as the new content of the product's table (created if needed):
    /// [`ProductStore::move_staged`], then [`ProductStore::commit_staged`].
    pub async fn publish(&self, id: &ProductId, staged: &StagedTable, metadata: Vec<(String, String)>) -> Result<CommittedVersion> {
        self.move_staged(id, staged).await?;
        self.commit_staged(id, staged, metadata, Commit::Overwrite).await
    }

    /// Moves a staged run's data files into the product's table, where no commit refers to them
    /// yet (readers do not see them). Repeatable: a file an earlier attempt moved is skipped.
    pub async fn move_staged(&self, id: &ProductId, staged: &StagedTable) -> Result<()> {
        let url = self.table_url(id);
        self.ensure_local_dir(&url).await?;
        let staging = self.staging_key(id).join(staged.run.as_str());
        let target = self.table_key(id);
        for file in &staged.files {
            let (from, to) = (child(&staging, &file.path)?, child(&target, &file.path)?);
            match self.objects.rename(&from, &to).await {
                Ok(()) => {}
                // Moved by an earlier attempt of this publish whose commit failed.
                Err(object_store::Error::NotFound { .. }) if self.objects.head(&to).await.is_ok() => {}
                Err(e) => return Err(self.object_error(&from, e)),
            }
        }
        Ok(())
    }

    /// Commits a moved run as the product table's next version: with [`Commit::Overwrite`] one
    /// Delta commit replaces every current file with the run's, the schema too when the contract
    /// changed; with [`Commit::Append`] the run's files join the current ones. `metadata` is
    /// stored in the commit info for auditors and crash recovery. Returns the new Delta version.
    pub async fn commit_staged(&self, id: &ProductId, staged: &StagedTable, metadata: Vec<(String, String)>, mode: Commit) -> Result<CommittedVersion> {
        let url = self.table_url(id);
        let delta = |source| StorageError::Delta { table: url.to_string(), source };
        let commit = CommitProperties::default().with_metadata(metadata.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))));
        let adds = staged.files.iter().cloned().map(Action::Add);
        let staged_schema = staged.table.snapshot().map_err(delta)?.schema();
        let version = if self.has_table(id).await? {
            let table = DeltaTable::try_from_url(url.clone()).await.map_err(delta)?;
            let snapshot = table.snapshot().map_err(delta)?;
            let mut actions = Vec::new();
            if snapshot.schema() != staged_schema {
                actions.push(Action::Metadata(snapshot.metadata().clone().with_schema(&staged_schema).map_err(|e| delta(e.into()))?));
            }
            let save = match mode {
                Commit::Overwrite => {
                    actions.extend(snapshot.log_data().iter().map(|file| Action::Remove(file.remove_action(true))));
                    SaveMode::Overwrite
                }
                Commit::Append => SaveMode::Append,
            };
            actions.extend(adds);
            let operation = DeltaOperation::Write { mode: save, partition_by: None, predicate: None };
            let finalized = CommitBuilder::from(commit).with_actions(actions).build(Some(snapshot), table.log_store(), operation).await.map_err(delta)?;
            finalized.version()
        } else {
            let table = deltalake::DeltaTableBuilder::from_url(url.clone()).and_then(|b| b.build()).map_err(delta)?;
            let created = CreateBuilder::new()
                .with_log_store(table.log_store())
                .with_columns(staged_schema.fields().cloned())
                .with_table_name(id.to_string())
                .with_actions(adds)
                .with_commit_properties(commit)
                .await
                .map_err(delta)?;
            created.version().ok_or_else(|| StorageError::Empty(url.to_string()))?
        };
        Ok(CommittedVersion { delta_version: i64::try_from(version).expect("delta versions fit in i64") })
    }

    /// Merges a staged run into the product's table by `keys` (a Delta MERGE): a current row
    /// whose key matches a staged row is replaced by it, other staged rows are inserted, and
    /// the rest stays. The table must exist with the staged schema. Only the files holding a
    /// replaced row are rewritten; the merge writes its files with the product's layout.
    pub async fn merge_staged(&self, id: &ProductId, staged: &StagedTable, keys: &[String], metadata: Vec<(String, String)>) -> Result<CommittedVersion> {
        let url = self.table_url(id);
        let delta = |source| StorageError::Delta { table: url.to_string(), source };
        let table = DeltaTable::try_from_url(url.clone()).await.map_err(delta)?;
        let session = datafusion::prelude::SessionContext::new();
        Self::register_object_store(&staged.table, &session.state())?;
        let source = session.read_table(Self::table_provider(&staged.table, &session.state()).await?).map_err(|e| delta(e.into()))?;
        let columns: Vec<String> = staged.table.snapshot().map_err(delta)?.schema().fields().map(|f| f.name().clone()).collect();
        let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let predicate = keys.iter().map(|k| format!("target.{q} = source.{q}", q = quoted(k))).collect::<Vec<_>>().join(" AND ");
        let commit = CommitProperties::default().with_metadata(metadata.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))));
        let (merged, _) = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_writer_properties(writer_properties_for(self.codec, &[]))
            .with_commit_properties(commit)
            .when_matched_update(|update| columns.iter().fold(update, |u, c| u.update(c.as_str(), format!("source.{}", quoted(c)))))
            .map_err(delta)?
            .when_not_matched_insert(|insert| columns.iter().fold(insert, |i, c| i.set(c.as_str(), format!("source.{}", quoted(c)))))
            .map_err(delta)?
            .await
            .map_err(delta)?;
        let version = merged.version().ok_or_else(|| StorageError::Empty(url.to_string()))?;
        Ok(CommittedVersion { delta_version: i64::try_from(version).expect("delta versions fit in i64") })
    }

    /// Undoes a run that never committed: deletes the files it may already have moved into the
    /// product's table (listed by its staged log; no commit refers to them), then its staged
    /// data. For crash recovery, under the product's lock, once the run is known not to have
    /// committed.
    pub async fn abandon_run(&self, id: &ProductId, run: &str) -> Result<()> {
        let url = self.staging_url(id, run);
        let staged = match DeltaTable::try_from_url(url.clone()).await {
            Ok(table) => Some(table),
            // No staged log: the run stopped while staging, before it could move anything.
            Err(DeltaTableError::NotATable(_)) => None,
            Err(source) => return Err(StorageError::Delta { table: url.to_string(), source }),
        };
        if let Some(staged) = staged {
            let staged = staged.snapshot().map_err(|source| StorageError::Delta { table: url.to_string(), source })?;
            // Never a file a commit of the product's table refers to, whatever the caller thought.
            let committed: std::collections::HashSet<String> = match self.has_table(id).await? {
                true => {
                    let table_url = self.table_url(id);
                    let table = DeltaTable::try_from_url(table_url.clone()).await.map_err(|source| StorageError::Delta { table: table_url.to_string(), source })?;
                    let snapshot = table.snapshot().map_err(|source| StorageError::Delta { table: table_url.to_string(), source })?;
                    snapshot.log_data().iter().map(|f| f.path().to_string()).collect()
                }
                false => Default::default(),
            };
            let target = self.table_key(id);
            for file in staged.log_data().iter() {
                let path = file.path().to_string();
                if committed.contains(&path) {
                    tracing::error!(product = %id, run, file = %path, "a run to abandon names a file the product's table refers to; kept");
                    continue;
                }
                let moved = child(&target, &path)?;
                match self.objects.delete(&moved).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.object_error(&moved, e)),
                }
            }
        }
        self.discard_run(id, run).await
    }

    /// Removes a run's staged data.
    pub async fn discard_run(&self, id: &ProductId, run: &str) -> Result<()> {
        let key = self.staging_key(id).join(run);
        self.delete_all(&key).await?;
        if let Some(dir) = &self.local {
            // An empty directory a crash left behind has no object to delete.
            let path = dir.join("_staging").join(format!("{}.{}", id.domain, id.name)).join(run);
            if let Err(source) = tokio::fs::remove_dir_all(&path).await
                && source.kind() != std::io::ErrorKind::NotFound
            {
                return Err(StorageError::DataDir { path: path.display().to_string(), source });
            }
        }
        Ok(())
    }

    /// Runs of a product whose staged data still exists (left by a crash when no run holds the
    /// lock), oldest first.
    pub async fn leftover_runs(&self, id: &ProductId) -> Result<Vec<String>> {
        self.children(&self.staging_key(id)).await
    }

    /// Products with staged runs left, whatever their state.
    pub async fn products_with_staged_runs(&self) -> Result<Vec<ProductId>> {
        Ok(self.children(&self.key(["_staging"])).await?.iter().filter_map(|name| name.parse().ok()).collect())
    }

    /// Writes the publication journal of a run next to its staged data, durable on return.
    pub async fn write_journal(&self, id: &ProductId, run: &str, name: &str, bytes: Vec<u8>) -> Result<()> {
        let key = self.staging_key(id).join(run).join(name);
        self.objects.put(&key, PutPayload::from(bytes)).await.map_err(|e| self.object_error(&key, e))?;
        if let Some(dir) = &self.local {
            // A local file is durable once synced; an object store's PUT is durable on success.
            let path = dir.join("_staging").join(format!("{}.{}", id.domain, id.name)).join(run).join(name);
            let synced = match tokio::fs::File::open(&path).await {
                Ok(file) => file.sync_all().await,
                Err(e) => Err(e),
            };
            synced.map_err(|source| StorageError::DataDir { path: path.display().to_string(), source })?;
        }
        Ok(())
    }

    /// The publication journal of a run, if it wrote one.
    pub async fn read_journal(&self, id: &ProductId, run: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let key = self.staging_key(id).join(run).join(name);
        match self.objects.get(&key).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(|e| self.object_error(&key, e))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.object_error(&key, e)),
        }
    }
}

/// The Delta schema of an Arrow schema.
fn kernel_schema(schema: &SchemaRef) -> Result<StructType, DeltaTableError> {
    Ok(schema.as_ref().try_into_kernel()?)
}

/// `relative` (a data file's path in a Delta log, relative to its table) under `base`.
fn child(base: &ObjectPath, relative: &str) -> Result<ObjectPath> {
    let path = format!("{base}/{relative}");
    ObjectPath::parse(path.trim_start_matches('/')).map_err(|e| StorageError::ObjectStore { location: path.clone(), message: e.to_string() })
}
