//! A running query's result as a stream: time limit, audit completion, cancellation on drop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};
use meshwork_catalog::{AuditOutcome, CatalogStore};

use crate::engine::{QueryLimits, human};
use crate::QueryError;

/// Batches whose errors are already told as users see them.
pub(crate) type Batches = Pin<Box<dyn Stream<Item = Result<RecordBatch, QueryError>> + Send>>;

/// A started statement: its batches still to come (from this process, or from a cluster job
/// submitted when they are first asked for), or already computed (EXPLAIN).
pub(crate) enum Running {
    Stream(SchemaRef, SendableRecordBatchStream),
    Cluster(SchemaRef, Batches),
    Batches(SchemaRef, Vec<RecordBatch>),
}

type Completion = Pin<Box<dyn Future<Output = Result<(), meshwork_catalog::CatalogError>> + Send>>;

enum State {
    /// Producing batches.
    Open,
    /// The batches ended (or failed); the audit event is being completed before the end (or
    /// the error) is reported, so a result never ends unaudited.
    Completing(Completion, Option<QueryError>),
    Done,
}

/// The record batches of a running statement. Dropping it cancels the statement (DataFusion
/// stops its tasks) and records the audit event as `cancelled`.
pub struct QueryStream {
    schema: SchemaRef,
    batches: Batches,
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    catalog: Arc<dyn CatalogStore>,
    audit_id: i64,
    started: Instant,
    rows: u64,
    state: State,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream").field("schema", &self.schema).field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl QueryStream {
    pub(crate) fn new(running: Running, catalog: Arc<dyn CatalogStore>, audit_id: i64, started: Instant, limits: &QueryLimits) -> QueryStream {
        let (schema, batches): (SchemaRef, Batches) = match running {
            Running::Stream(schema, stream) => (schema, Box::pin(stream.map(|b| b.map_err(QueryError::from)))),
            Running::Cluster(schema, batches) => (schema, batches),
            Running::Batches(schema, batches) => (schema, Box::pin(futures::stream::iter(batches.into_iter().map(Ok)))),
        };
        let deadline = limits.timeout.map(|limit| {
            let remaining = limit.saturating_sub(started.elapsed());
            (Box::pin(tokio::time::sleep(remaining)), limit)
        });
        QueryStream { schema, batches, deadline, catalog, audit_id, started, rows: 0, state: State::Open }
    }

    /// The result's columns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows produced so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn complete(&mut self, error: Option<QueryError>) {
        let catalog = self.catalog.clone();
        let (id, rows, duration) = (self.audit_id, self.rows, self.started.elapsed().as_secs_f64() * 1000.0);
        let (outcome, text) = match &error {
            None => (AuditOutcome::Ok, None),
            Some(err) => (AuditOutcome::Error, Some(err.to_string())),
        };
        let completion = Box::pin(async move { catalog.complete_audit(id, Some(rows), duration, outcome, text.as_deref()).await });
        self.state = State::Completing(completion, error);
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch, QueryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Completing(completion, error) => {
                    let written = futures::ready!(completion.as_mut().poll(cx));
                    let error = error.take();
                    this.state = State::Done;
                    return Poll::Ready(match (written, error) {
                        (_, Some(err)) => Some(Err(err)),
                        (Err(audit), None) => Some(Err(QueryError::AuditUnavailable(audit.to_string()))),
                        (Ok(()), None) => None,
                    });
                }
                State::Open => {
                    if let Some((sleep, limit)) = &mut this.deadline
                        && sleep.as_mut().poll(cx).is_ready()
                    {
                        let limit = *limit;
                        // Dropping the batch stream stops DataFusion's tasks.
                        this.batches = Box::pin(futures::stream::empty());
                        this.complete(Some(QueryError::Timeout { limit: human(limit) }));
                        continue;
                    }
                    match futures::ready!(this.batches.poll_next_unpin(cx)) {
                        Some(Ok(batch)) => {
                            this.rows += batch.num_rows() as u64;
                            return Poll::Ready(Some(Ok(batch)));
                        }
                        Some(Err(err)) => {
                            this.batches = Box::pin(futures::stream::empty());
                            this.complete(Some(err));
                        }
                        None => this.complete(None),
                    }
                }
            }
        }
    }
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        if matches!(self.state, State::Done) {
            return;
        }
        // Dropped before the end: the client went away or cancelled. Record it without
        // blocking the dropping task.
        let catalog = self.catalog.clone();
        let (id, rows, duration) = (self.audit_id, self.rows, self.started.elapsed().as_secs_f64() * 1000.0);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = catalog.complete_audit(id, Some(rows), duration, AuditOutcome::Cancelled, Some("the client cancelled or disconnected")).await {
                    tracing::warn!(audit_id = id, error = %err, "cannot record a cancelled query in the audit log");
                }
            });
        }
    }
}
