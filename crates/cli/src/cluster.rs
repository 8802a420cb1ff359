//! `meshwork cluster scheduler|executor`: the processes of a mesh's Apache Ballista cluster,
//! built with Meshwork's plan codec so that the policy fence and the masks of a plan survive
//! the trip (Ballista's own binaries would refuse such plans).
//!
//! Both bind 127.0.0.1 unless told otherwise: Ballista has no authentication, so its ports
//! must only be reachable from Meshwork's servers and the other cluster processes.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use meshwork_query::MeshCodec;
use meshwork_storage::ProductStore;

use crate::commands::open_home;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Run a Ballista scheduler that accepts the plans of this mesh's servers and commands and
    /// hands their tasks to executors. It reads mesh.yaml for the storage product files are
    /// in; it never opens the catalog and never has the mask salt.
    Scheduler {
        /// The mesh repository (default: `--dir`).
        path: Option<PathBuf>,
        /// Address of its gRPC port (the `cluster.scheduler` of mesh.yaml).
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
        /// How long an executor may go without a heartbeat before its tasks run elsewhere.
        #[arg(long, default_value = "180s", value_parser = crate::parse_wait)]
        executor_timeout: Duration,
    },
    /// Run a Ballista executor for this mesh: it reads product files from the mesh's storage
    /// and the mask salt from its catalog, and runs the tasks its scheduler gives it.
    Executor {
        /// The mesh repository (default: `--dir`).
        path: Option<PathBuf>,
        /// The scheduler's `HOST:PORT`.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        /// Address its ports listen on, and the one it gives other processes to reach it.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Its Arrow Flight port, which serves task results to other executors and to Meshwork.
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Its gRPC port.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks it runs at once (default: the machine's cores).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Memory all its tasks may hold together, split among them, e.g. `8GiB` (default:
        /// `server.query_memory` of mesh.yaml per task). Tasks spill to `--work-dir` beyond it.
        #[arg(long)]
        memory: Option<String>,
        /// Where shuffle files and spills go (default: a temporary directory removed at exit).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// How often it tells the scheduler it is alive.
        #[arg(long, default_value = "60s", value_parser = crate::parse_wait)]
        heartbeat: Duration,
    },
}

pub async fn run(dir: &Path, command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Scheduler { path, bind, executor_timeout } => scheduler(&path.unwrap_or_else(|| dir.to_path_buf()), bind, executor_timeout).await,
        ClusterCommand::Executor { path, scheduler, bind, port, grpc_port, concurrency, memory, work_dir, heartbeat } => {
            let options = ExecutorOptions { scheduler, bind, port, grpc_port, concurrency, memory, work_dir, heartbeat };
            executor(&path.unwrap_or_else(|| dir.to_path_buf()), options).await
        }
    }
}

async fn scheduler(dir: &Path, bind: SocketAddr, executor_timeout: Duration) -> anyhow::Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    // Decoding a plan resolves the object store of every file it scans: the mesh's bucket, if
    // any, must be known here too (no request is made to it).
    let home = open_home(dir)?;
    home.open_store()?;
    // A finished job's results stay on the executors until clients have read them: at least
    // twice the longest a statement may take.
    let keep_results = (2 * home.config.server.query_timeout.seconds).max(300);
    let sessions: ballista_scheduler::scheduler_server::SessionBuilder = Arc::new(|config| {
        let state = ballista_core::utils::default_session_builder(config)?;
        ProductStore::register_buckets(state.runtime_env());
        Ok(state)
    });
    let timeout = executor_timeout.as_secs().max(2);
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: bind.ip().to_string(),
        executor_timeout_seconds: timeout,
        // Dead executors are looked for a few times per timeout, and jobs wait as long for
        // executors to come back before failing.
        expire_dead_executor_interval_seconds: (timeout / 3).max(1),
        no_executors_grace_period_seconds: timeout,
        // The scheduler relays plans: it decodes hash masks without the salt.
        override_physical_codec: Some(Arc::new(MeshCodec::relay())),
        override_session_builder: Some(sessions),
        finished_job_data_clean_up_interval_seconds: keep_results,
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await.context("cannot set up the scheduler's state")?;
    eprintln!("meshwork cluster scheduler listening on {bind}");
    ballista_scheduler::scheduler_process::start_server(cluster, bind, Arc::new(config))
        .await
        .with_context(|| format!("the scheduler on {bind} stopped"))
}

struct ExecutorOptions {
    scheduler: String,
    bind: IpAddr,
    port: u16,
    grpc_port: u16,
    concurrency: Option<usize>,
    memory: Option<String>,
    work_dir: Option<PathBuf>,
    heartbeat: Duration,
}

async fn executor(dir: &Path, options: ExecutorOptions) -> anyhow::Result<()> {
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    let home = open_home(dir)?;
    let catalog = home.open_catalog().await?;
    // The salt stays in this process: plans carry masks by kind only.
    let salt = catalog.mask_salt().await?;
    // Registers the mesh's bucket, if any, so tasks read `s3://` product files.
    home.open_store()?;
    let (scheduler_host, scheduler_port) = options
        .scheduler
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
        .with_context(|| format!("`--scheduler {}` is not `HOST:PORT`", options.scheduler))?;
    let vcores = options.concurrency.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let memory_pool_size = match &options.memory {
        Some(text) => meshwork_core::parse::parse_bytes(text).map_err(|(message, hint)| anyhow::anyhow!("`--memory`: {message}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default()))?,
        None => home.config.server.query_memory_bytes.saturating_mul(vcores as u64),
    };
    // Kept for the life of the process: Ballista removes nothing it did not create.
    let scratch;
    let work_dir = match options.work_dir {
        Some(dir) => dir,
        None => {
            scratch = tempfile::Builder::new().prefix("meshwork-executor-").tempdir().context("cannot create the executor's work directory")?;
            scratch.path().to_path_buf()
        }
    };
    let spill_dir = work_dir.clone();
    let runtime: ballista_core::RuntimeProducer = Arc::new(move |_config| {
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new().with_temp_file_path(spill_dir.clone()).build()?;
        ProductStore::register_buckets(&runtime);
        Ok(Arc::new(runtime))
    });
    let config = ExecutorProcessConfig {
        bind_host: options.bind.to_string(),
        external_host: Some(options.bind.to_string()),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host,
        scheduler_port,
        vcores,
        work_dir: Some(work_dir.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: options.heartbeat.as_secs().max(1),
        memory_pool_size: Some(memory_pool_size),
        override_physical_codec: Some(Arc::new(MeshCodec::with_salt(salt))),
        override_runtime_producer: Some(runtime),
        print_thread_info: false,
        ..ExecutorProcessConfig::default()
    };
    eprintln!("meshwork cluster executor on {}:{} (scheduler {})", options.bind, options.port, options.scheduler);
    start_executor_process(Arc::new(config)).await.context("the executor stopped")
}
