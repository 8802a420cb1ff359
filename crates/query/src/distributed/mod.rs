//! Distributed execution on an Apache Ballista cluster: which physical plans leave the process,
//! and how they are submitted.
//!
//! Meshwork plans every statement itself — access decided, the policy rewrite and fences in,
//! masks in place — and only then hands the *physical* plan to the scheduler
//! (`execute_physical_plan`), so the cluster runs the plan the local engine would have run, with
//! the exchanges and join modes the scheduler adds. A plan goes only when every node of it can
//! be encoded ([`MeshCodec`]): product files scanned by DataFusion's Parquet scan, the fence, the
//! masks, DataFusion's operators. Anything else — a virtual product's live scan (each executor
//! task would open its own connection and read the whole remote table), catalog tables, delta-rs
//! scans, a Meshwork function in a join or sort key — runs in-process, as do statements that scan
//! less than `cluster.min_scan` of product files.

mod codec;

use std::sync::Arc;

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::PhysicalPlanNode;
use meshwork_core::descriptor::{ClusterConfig, ClusterRun};

pub use codec::MeshCodec;

use crate::QueryError;

/// A mesh's Ballista cluster, as its servers and commands submit to it.
pub struct Cluster {
    scheduler: String,
    run: ClusterRun,
    codec: MeshCodec,
    /// One Ballista session per process: executors keep a runtime (object-store clients, the
    /// Parquet footer cache) per session, so statements of one server share them.
    session: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("scheduler", &self.scheduler).field("run", &self.run).finish_non_exhaustive()
    }
}

/// Where a statement runs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On the cluster.
    Cluster,
    /// In this process, for the reason given.
    Local(String),
}

impl Cluster {
    /// The cluster of `config`. Submitting only encodes plans, so this side needs no mask salt:
    /// executors read it from the catalog themselves and it is never sent.
    pub fn new(config: &ClusterConfig) -> Cluster {
        Cluster { scheduler: config.scheduler.clone(), run: config.run, codec: MeshCodec::relay(), session: format!("meshwork-{:016x}", rand::random::<u64>()) }
    }

    /// The scheduler's `HOST:PORT`.
    pub fn scheduler(&self) -> &str {
        &self.scheduler
    }

    /// Where `plan` runs: on the cluster when it scans product files (at least `min_scan` of
    /// them under `run: large`) and every node of it can be sent.
    pub fn placement(&self, plan: &Arc<dyn ExecutionPlan>) -> Placement {
        let Some(bytes) = scanned_bytes(plan) else {
            return Placement::Local("it reads no product files".into());
        };
        if let ClusterRun::Large { min_scan_bytes } = self.run
            && bytes < min_scan_bytes
        {
            return Placement::Local(format!("it scans {bytes} bytes, under `cluster.min_scan` ({min_scan_bytes})"));
        }
        if let Some(function) = self.codec.function_outside_projections(plan) {
            return Placement::Local(format!("`{function}` is used where the cluster would lose its size check (a join or sort key)"));
        }
        match PhysicalPlanNode::try_from_physical_plan(plan.clone(), &self.codec) {
            Ok(_) => Placement::Cluster,
            Err(err) => Placement::Local(format!("part of its plan cannot run on the cluster ({})", err.strip_backtrace())),
        }
    }

    /// Submits `plan` with the statement's `config` and waits for the job to finish; the
    /// result streams from the executors.
    pub async fn submit(&self, plan: Arc<dyn ExecutionPlan>, config: SessionConfig) -> Result<SendableRecordBatchStream, QueryError> {
        let ballista = ballista_core::extension::SessionConfigExt::ballista_config(&config);
        ballista_core::execution_plans::execute_physical_plan::<PhysicalPlanNode>(format!("http://{}", self.scheduler), &ballista, plan, &self.codec, self.session.clone(), config)
            .await
            .map_err(|err| self.failed(err))
    }

    /// A failure of the cluster as users are told it. Ballista's errors arrive as text: a job
    /// the scheduler accepted fails as `Job … failed: <the task's error>`; anything else failed
    /// before the job was accepted.
    fn failed(&self, err: datafusion::error::DataFusionError) -> QueryError {
        let detail = err.strip_backtrace();
        let job_failed = detail.find("Job ").is_some_and(|at| detail[at..].contains(" failed"));
        if job_failed {
            if detail.contains("would build a value of more than") || detail.contains("Resources exhausted") {
                return QueryError::ResourcesExhausted { detail: format!("on the cluster: {detail}") };
            }
            return QueryError::Cluster(format!("the cluster could not finish the query: {detail}"));
        }
        if detail.contains("transport error") || detail.contains("Connection refused") || detail.contains("tcp connect") {
            return QueryError::Cluster(format!(
                "the Ballista scheduler at `{}` did not answer (hint: start it with `meshwork cluster scheduler`, or remove `cluster:` from mesh.yaml to run queries in-process)",
                self.scheduler
            ));
        }
        QueryError::Cluster(format!("the cluster could not run the query: {detail}"))
    }
}

/// The session configuration of a mesh whose queries may run on a cluster, applied to every
/// statement so that a plan is the same whichever side runs it: Ballista's settings extension,
/// and off what cannot cross a stage boundary — dynamic filters (a scan in one stage would wait
/// for a join in another forever), physical scalar subqueries (their shared result does not
/// travel), view types (Arrow IPC frames of views outgrow Flight's messages) and round-robin
/// repartitioning (the scheduler refuses it). Hash joins are kept (Ballista's own default
/// prefers sort-merge joins, slower in-process); the scheduler may still turn a join that
/// collects one side into a partitioned one, since sizes above a fence are unknown to it.
pub(crate) fn for_cluster(config: SessionConfig) -> SessionConfig {
    config
        .with_option_extension(ballista_core::config::BallistaConfig::default())
        .with_round_robin_repartition(false)
        .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false)
        .set_bool("datafusion.optimizer.enable_physical_uncorrelated_scalar_subquery", false)
        .set_bool("datafusion.execution.parquet.schema_force_view_types", false)
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
}

/// The bytes of product files `plan` scans, or `None` when it scans none.
fn scanned_bytes(plan: &Arc<dyn ExecutionPlan>) -> Option<u64> {
    let mut total: Option<u64> = None;
    let mut stack = vec![plan.clone()];
    while let Some(node) = stack.pop() {
        if let Some(scan) = node.downcast_ref::<DataSourceExec>()
            && let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>()
        {
            let bytes: u64 = files.file_groups.iter().flat_map(|group| group.iter()).map(|file| file.object_meta.size).sum();
            *total.get_or_insert(0) += bytes;
        }
        stack.extend(node.children().into_iter().cloned());
    }
    total
}
