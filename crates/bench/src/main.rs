//! `meshwork-bench`: the Rust side of the benchmark harness (`bench/run.sh`).
//!
//! The harness (Python) prepares data, starts every system and compares them; this binary
//! provides what must run in-process to be measured without a client in the way:
//! - `sql-worker`: a long-lived process that runs SQL statements read from stdin and reports
//!   each one's time, either on plain DataFusion over files (the "no Meshwork layer" peer) or
//!   through Meshwork's governed query engine over a mesh's published products;
//! - `control`: policy decision latency, and catalog search latency over a synthetic catalog;
//! - `search`: the catalog search part of `control` alone;
//! - `lineage`: the time to derive column lineage of every product of a mesh without building;
//! - `codec`: product table codecs compared on one Parquet file (size, write and scan times).

mod codec;
mod control;
mod search;
mod worker;

use std::path::PathBuf;

/// mimalloc instead of glibc malloc: DataFusion's hash tables and the policy engine allocate
/// and free small objects at a high rate (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "meshwork-bench", about = "Benchmark drivers of bench/run.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs SQL statements read from stdin, one JSON object per line (`{"sql": "…"}`), and
    /// answers each with one line `{"ms": …, "rows": …}` or `{"error": "…"}`.
    SqlWorker {
        /// Plain DataFusion: run these setup statements first (e.g. `CREATE EXTERNAL TABLE`),
        /// one per `;`-terminated statement.
        #[arg(long, conflicts_with = "mesh")]
        setup: Option<PathBuf>,
        /// Plain DataFusion with the session settings Meshwork runs with
        /// (`meshwork_query::tuned`), so a comparison differs by Meshwork's layer alone.
        #[arg(long, conflicts_with = "mesh")]
        meshwork_settings: bool,
        /// Meshwork: query the published products of the mesh at this directory.
        #[arg(long)]
        mesh: Option<PathBuf>,
        /// The principal to query as (with `--mesh`).
        #[arg(long = "as", default_value = "admin")]
        principal: String,
        /// Run in-process even when the mesh names a `cluster:` (with `--mesh`).
        #[arg(long, requires = "mesh")]
        local: bool,
    },
    /// Control-plane measurements, printed as JSON.
    Control {
        /// A mesh whose governance is used for policy decisions (every published product,
        /// decided for `--as`).
        #[arg(long)]
        mesh: PathBuf,
        /// The principal decisions are made for.
        #[arg(long = "as")]
        principal: String,
        /// Decisions to time.
        #[arg(long, default_value_t = 100_000)]
        decisions: usize,
        /// Synthetic catalog sizes to search (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        catalog_sizes: Vec<usize>,
        /// Searches to time at each size.
        #[arg(long, default_value_t = 1_000)]
        searches: usize,
    },
    /// Catalog search alone over synthetic catalogs, printed as JSON.
    Search {
        /// Synthetic catalog sizes to search (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        catalog_sizes: Vec<usize>,
        /// Searches to time at each size.
        #[arg(long, default_value_t = 1_000)]
        searches: usize,
    },
    /// One Parquet file published as a product table with each codec (none, snappy, lz4_raw,
    /// zstd1): its size, the publish time and the time of statements over it, printed as JSON.
    Codec {
        /// The Parquet file (e.g. TPC-H `lineitem.parquet`).
        #[arg(long)]
        parquet: PathBuf,
        /// Statements to time, over the published table named `t` (repeat the flag).
        #[arg(long = "sql", default_value = "SELECT * FROM t")]
        statements: Vec<String>,
        /// Measured runs of each statement (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Column lineage of every product of a mesh, planned against declared schemas (what
    /// `validate` and `plan` do), timed; printed as JSON.
    Lineage {
        /// The mesh repository.
        #[arg(long)]
        mesh: PathBuf,
        /// Measured passes over the whole mesh (after one warm-up).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::SqlWorker { setup, meshwork_settings, mesh, principal, local } => match (setup, mesh) {
                (_, Some(mesh)) => worker::serve(worker::Engine::meshwork(&mesh, &principal, local).await?).await,
                (setup, None) => worker::serve(worker::Engine::datafusion(setup.as_deref(), meshwork_settings).await?).await,
            },
            Command::Control { mesh, principal, decisions, catalog_sizes, searches } => {
                let report = control::run(&mesh, &principal, decisions, &catalog_sizes, searches).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(())
            }
            Command::Search { catalog_sizes, searches } => {
                let mut report = Vec::new();
                for size in catalog_sizes {
                    report.push(search::catalog_search(size, searches).await?);
                }
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(())
            }
            Command::Codec { parquet, statements, runs } => {
                anyhow::ensure!(runs > 0, "`--runs` must be at least 1");
                println!("{}", serde_json::to_string_pretty(&codec::compare(&parquet, &statements, runs).await?)?);
                Ok(())
            }
            Command::Lineage { mesh, runs } => {
                anyhow::ensure!(runs > 0, "`--runs` must be at least 1");
                println!("{}", serde_json::to_string_pretty(&control::column_lineage(&mesh, runs)?)?);
                Ok(())
            }
        }
    })
}
