//! The `meshwork` binary: parses the command line and hands each command to the libraries.

mod access;
mod catalog;
mod cluster;
mod commands;
mod consumers;
mod lineage;
mod output;
mod reads;
mod purge;
mod search;
mod serve;
mod standards;
mod trust;

use std::path::PathBuf;

/// mimalloc instead of glibc malloc: DataFusion's hash tables and the policy engine allocate
/// and free small objects at a high rate (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Meshwork: a self-serve data mesh platform in one binary.
#[derive(Debug, Parser)]
#[command(name = "meshwork", version, about, long_about = None)]
struct Cli {
    /// The mesh repository (the directory holding `mesh.yaml`).
    #[arg(short = 'C', long = "dir", global = true, env = "MESHWORK_DIR", default_value = ".")]
    dir: PathBuf,
    /// Act as this principal (local admin use; default: the local administrator `admin`).
    #[arg(long = "as", global = true, env = "MESHWORK_AS", value_name = "PRINCIPAL")]
    principal: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Output format of listings and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Human-readable text.
    Text,
    /// JSON for scripts.
    Json,
}

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Parquet (needs `--output`).
    Parquet,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a mesh repository: a commented skeleton, or the example mesh with `--example`.
    Init {
        /// Directory to create it in (default: `--dir`).
        path: Option<PathBuf>,
        /// Write the example mesh: domains sales, marketing and finance with generated data.
        #[arg(long)]
        example: bool,
        /// Orders to generate for the example (customers are a fifth of that).
        #[arg(long, default_value_t = 120_000, requires = "example")]
        orders: usize,
        /// Seed of the example data generator.
        #[arg(long, default_value_t = 42, requires = "example")]
        seed: u64,
    },
    /// Check every descriptor, reference, input file and transform without building anything.
    Validate {
        /// The mesh repository (default: `--dir`).
        path: Option<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Do not connect to the databases products read (their reachability and schemas are
        /// then checked by `apply`).
        #[arg(long)]
        offline: bool,
    },
    /// Show what `apply` would change: new products, new versions, contract changes and who they
    /// affect, and policy violations.
    Plan {
        /// The mesh repository (default: `--dir`).
        path: Option<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Build and publish every product whose descriptor or input data changed. New data is
    /// staged and checked against its quality rules before it is committed.
    Apply {
        /// The mesh repository (default: `--dir`).
        path: Option<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// How long to wait for another process building the same product (`30s`, `5m`).
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        lock_wait: std::time::Duration,
    },
    /// Rebuild products from the repository now (staged, checked, then published), with
    /// `--downstream` also every product reading them.
    Refresh {
        /// Products to rebuild, as `domain.product`.
        #[arg(required = true)]
        names: Vec<String>,
        /// Also rebuild every product downstream of them, in dependency order.
        #[arg(long)]
        downstream: bool,
        /// How long to wait for another process building the same product (`30s`, `5m`).
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        lock_wait: std::time::Duration,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// The lifecycle event log: publications, schema changes, quality failures, SLO violations
    /// (administrators only).
    Events {
        /// Only events after this id (the cursor of the previous page).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many events, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only events about this product.
        #[arg(long)]
        product: Option<String>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Run a read-only SQL query over the published products (`domain.product`).
    Query {
        /// The SQL statement.
        sql: String,
        /// Run in this process even when `mesh.yaml` names a `cluster:`.
        #[arg(long)]
        local: bool,
        /// Result format.
        #[arg(long, value_enum, default_value_t = ResultFormat::Table)]
        format: ResultFormat,
        /// Write the result to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Search the catalog as the acting principal: products ranked by how well their ids,
    /// titles, descriptions, tags, domains, owners and columns match the words (prefixes and
    /// typos too), with facet counts; only products it may read are shown or counted.
    Search(search::SearchArgs),
    /// Inspect published data products.
    Product {
        #[command(subcommand)]
        command: ProductCommand,
    },
    /// The audit log: every query and apply, with decisions per product (administrators only).
    Audit {
        /// Only events touching this product (`domain.product`).
        #[arg(long)]
        product: Option<String>,
        /// Only events of this principal.
        #[arg(long = "principal")]
        filter_principal: Option<String>,
        /// Only events since this time: an age (`24h`, `7d`), a date or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many events, newest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Quickstart: create the example mesh if there is none, apply it, show what it holds, issue
    /// demo tokens, and serve it (HTTP, Flight SQL, Postgres wire) until Ctrl-C.
    Up {
        /// The mesh repository (default: `--dir`).
        path: Option<PathBuf>,
        /// Orders to generate when creating the example.
        #[arg(long, default_value_t = 120_000)]
        orders: usize,
        /// Stop after the tour and the demo tokens instead of serving.
        #[arg(long)]
        no_serve: bool,
        #[command(flatten)]
        serve: serve::ServeFlags,
    },
    /// Serve the published products over HTTP (with OpenAPI and Swagger UI), Arrow Flight SQL
    /// and the PostgreSQL wire protocol, with Prometheus metrics, until SIGINT or SIGTERM.
    Serve {
        /// The mesh repository (default: `--dir`).
        path: Option<PathBuf>,
        #[command(flatten)]
        serve: serve::ServeFlags,
    },
    /// Write a product as an open standard: its Bitol ODCS v3.1.0 data contract or its ODPS
    /// v1.0.0 data product, from the catalog (as the caller may see it) or with `--repo` from the
    /// repository.
    Export {
        /// The product, as `domain.product`.
        name: String,
        /// The standard.
        #[arg(long, value_enum)]
        format: standards::StandardFormat,
        /// Read the product from the repository instead of the catalog (for unpublished products).
        #[arg(long)]
        repo: bool,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Turn ODCS v3 contracts (one product per schema object) and ODPS v1 products into
    /// `product.yaml` files of this repository, reporting every field that could not be mapped.
    Import {
        /// The contract and product files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Put the products in this domain instead of the contracts' `domain`.
        #[arg(long)]
        domain: Option<String>,
        /// Replace products that already exist in the repository.
        #[arg(long)]
        force: bool,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// API tokens for the servers: create, list, revoke. Only Argon2id hashes are stored.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Subscribe to a product: be listed among its consumers (so `plan` names you when a change
    /// affects it), see its events with `GET /api/v1/events?subscribed=true`, and have them sent
    /// to a webhook. Owners may subscribe others.
    Subscribe {
        /// The product, as `domain.product`.
        product: String,
        /// Who subscribes (default: the acting principal, `--as`).
        #[arg(long = "principal", value_name = "NAME")]
        subscriber: Option<String>,
        /// Where to POST its events (`https://…`), signed with the secret printed once.
        #[arg(long)]
        webhook: Option<String>,
        /// Only these event kinds, comma-separated (default: all), e.g.
        /// `product.deprecated,product.sunset`.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Withdraw a subscription (your own, or as an owner another principal's).
    Unsubscribe {
        /// The product, as `domain.product`.
        product: String,
        /// Whose subscription (default: the acting principal).
        #[arg(long = "principal", value_name = "NAME")]
        subscriber: Option<String>,
    },
    /// List subscriptions: yours, or with `--product` and as its owner, all of the product's.
    Subscriptions {
        /// Only subscriptions to this product (`domain.product`).
        #[arg(long)]
        product: Option<String>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Access requests and grants: ask a product's owners for access, decide requests, list
    /// and revoke grants.
    Access {
        #[command(subcommand)]
        command: access::AccessCommand,
    },
    /// The metadata store: its schema version, its upgrade, and backups of the embedded file.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// The processes of an Apache Ballista cluster that large queries run on (`cluster:` in
    /// mesh.yaml): a scheduler and executors, with Meshwork's policy fence and masks.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Where the catalog is and whether its schema is this meshwork's.
    Status,
    /// Upgrade the catalog's schema to this meshwork's (servers on PostgreSQL never do it by
    /// themselves).
    Migrate,
    /// Copy the embedded SQLite catalog to a new file, consistently, while servers run.
    Backup {
        /// The file to write; it must not exist.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue a token for a declared principal; it is printed once.
    Create {
        /// The principal the token authenticates as.
        #[arg(long = "principal", value_name = "NAME")]
        token_principal: String,
        /// Lifetime: `30d`, `12h`, `90m`, or `never`.
        #[arg(long, default_value = "30d")]
        expires: String,
        /// What the token is for.
        #[arg(long)]
        description: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// List tokens (never their secrets).
    List {
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke {
        /// The token id (or the whole token).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProductCommand {
    /// List published products.
    List {
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Show a product: descriptor, schema, versions, upstream and downstream, SLO status and
    /// the latest quality run.
    Show {
        /// The product, as `domain.product`.
        name: String,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Product and column lineage across the mesh: the products a product is built from and
    /// those built from it, and with `--columns` which input columns each column comes from.
    /// Shows only products the caller may see.
    Lineage {
        /// The product, as `domain.product`.
        name: String,
        /// Also show column lineage.
        #[arg(long)]
        columns: bool,
        /// Only the products it is built from.
        #[arg(long, conflicts_with = "downstream")]
        upstream: bool,
        /// Only the products built from it.
        #[arg(long)]
        downstream: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = lineage::LineageFormat::Text)]
        format: lineage::LineageFormat,
    },
    /// The history of a product's quality runs, newest first, with sample failing rows (masked
    /// by the product's access policy for non-owners).
    Quality {
        /// The product, as `domain.product`.
        name: String,
        /// At most this many runs.
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// A product's publications, newest first, each readable in SQL by time travel as
    /// `domain."product@N"` (under today's access policy).
    Versions {
        /// The product, as `domain.product`.
        name: String,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Who depends on a product: the products built from it, who queried it (or its kept
    /// majors) over which interface from the audit log, and its subscribers (owner, domain
    /// members and administrators).
    Consumers {
        /// The product, as `domain.product`.
        name: String,
        /// How far back the audit log is read (`30d`, `12h`).
        #[arg(long, default_value = "30d", value_parser = parse_wait)]
        window: std::time::Duration,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Delete an unpublished or sunset product for good: its Delta table and catalog rows (its
    /// audit and event history stay). Only for products `apply` unpublished after they left the
    /// repository, or past their sunset date; administrators only.
    Purge {
        /// The product, as `domain.product`.
        name: String,
        /// How long to wait for another process building the same product (`30s`, `5m`).
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        lock_wait: std::time::Duration,
    },
}

fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    meshwork_core::parse::parse_duration(text).map(|d| std::time::Duration::from_secs(d.seconds)).map_err(|(message, hint)| match hint {
        Some(hint) => format!("{message} ({hint})"),
        None => message,
    })
}

/// Exit code of a failed command (build, data or SQL errors).
pub const EXIT_FAILED: u8 = 1;
/// Exit code of an invalid mesh repository (`validate` found problems).
pub const EXIT_INVALID: u8 = 3;

/// An error that has already been reported and only sets the exit code.
#[derive(Debug)]
pub struct Reported(pub u8);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed with exit code {}", self.0)
    }
}

impl std::error::Error for Reported {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log what they do; other commands only warnings. `MESHWORK_LOG` overrides,
    // `MESHWORK_LOG_FORMAT=json` writes one JSON object per line.
    let default_level = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESHWORK_LOG").unwrap_or_else(|_| default_level.into());
    // Colour only on a terminal: a log redirected to a file must not carry escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if std::env::var("MESHWORK_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<Reported>() {
            Some(Reported(code)) => ExitCode::from(*code),
            None => {
                eprintln!("error: {err:#}");
                ExitCode::from(EXIT_FAILED)
            }
        },
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.dir;
    let principal = cli.principal.as_deref();
    let acts_as_principal = matches!(
        cli.command,
        Command::Query { .. }
            | Command::Search(_)
            | Command::Product { .. }
            | Command::Audit { .. }
            | Command::Events { .. }
            | Command::Subscribe { .. }
            | Command::Unsubscribe { .. }
            | Command::Subscriptions { .. }
            | Command::Export { .. }
            | Command::Access { .. }
    );
    if let Some(name) = principal
        && !acts_as_principal
    {
        anyhow::bail!("`--as {name}` applies to `query`, `search`, `product`, `audit`, `events`, `subscribe`, `unsubscribe`, `subscriptions`, `access` and `export`; the other commands act as the local administrator");
    }
    match cli.command {
        Command::Init { path, example, orders, seed } => commands::init(&path.unwrap_or(dir), example, orders, seed),
        Command::Validate { path, format, offline } => commands::validate(&path.unwrap_or(dir), format, offline).await,
        Command::Plan { path, format } => commands::plan(&path.unwrap_or(dir), format).await,
        Command::Apply { path, format, lock_wait } => commands::apply(&path.unwrap_or(dir), format, lock_wait).await,
        Command::Refresh { names, downstream, lock_wait, format } => trust::refresh(&dir, &names, downstream, lock_wait, format).await,
        Command::Events { after, limit, product, format } => trust::events(&dir, principal, after, limit, product.as_deref(), format).await,
        Command::Product { command: ProductCommand::Quality { name, limit, format } } => {
            trust::product_quality(&dir, principal, &name, limit, format).await
        }
        Command::Cluster { command } => cluster::run(&dir, command).await,
        Command::Query { sql, local, format, output } => commands::query(&dir, principal, &sql, local, format, output.as_deref()).await,
        Command::Search(args) => search::search(&dir, principal, args).await,
        Command::Product { command: ProductCommand::Lineage { name, columns, upstream, downstream, format } } => {
            let direction = match (upstream, downstream) {
                (true, _) => lineage::Direction::Upstream,
                (_, true) => lineage::Direction::Downstream,
                _ => lineage::Direction::Both,
            };
            lineage::product_lineage(&dir, principal, &name, columns, direction, format).await
        }
        Command::Product { command: ProductCommand::List { format } } => commands::product_list(&dir, principal, format).await,
        Command::Product { command: ProductCommand::Show { name, format } } => {
            commands::product_show(&dir, principal, &name, format).await
        }
        Command::Product { command: ProductCommand::Versions { name, format } } => commands::product_versions(&dir, principal, &name, format).await,
        Command::Product { command: ProductCommand::Consumers { name, window, format } } => consumers::product_consumers(&dir, principal, &name, window, format).await,
        Command::Product { command: ProductCommand::Purge { name, lock_wait } } => purge::product_purge(&dir, principal, &name, lock_wait).await,
        Command::Subscribe { product, subscriber, webhook, events, format } => {
            consumers::subscribe(&dir, principal, &product, subscriber, webhook, &events, format).await
        }
        Command::Unsubscribe { product, subscriber } => consumers::unsubscribe(&dir, principal, &product, subscriber.as_deref()).await,
        Command::Subscriptions { product, format } => consumers::subscriptions(&dir, principal, product.as_deref(), format).await,
        Command::Audit { product, filter_principal, since, limit, format } => {
            commands::audit(&dir, principal, product.as_deref(), filter_principal.as_deref(), since.as_deref(), limit, format).await
        }
        Command::Up { path, orders, no_serve, serve } => {
            let dir = path.unwrap_or(dir);
            commands::up(&dir, orders).await?;
            let (home, _) = serve::catalog(&dir).await?;
            serve::up(&home, &serve, !no_serve).await
        }
        Command::Serve { path, serve } => {
            let (home, _) = serve::catalog(&path.unwrap_or(dir)).await?;
            serve::serve(&home, &serve).await
        }
        Command::Export { name, format, repo, output } => standards::export(&dir, principal, &name, format, repo, output.as_deref()).await,
        Command::Import { files, domain, force, format } => standards::import_files(&dir, &files, domain.as_deref(), force, format),
        Command::Access { command } => access::run(&dir, principal, command).await,
        Command::Catalog { command } => match command {
            CatalogCommand::Status => catalog::status(&dir).await,
            CatalogCommand::Migrate => catalog::migrate(&dir).await,
            CatalogCommand::Backup { file } => catalog::backup(&dir, &file).await,
        },
        Command::Token { command } => {
            let (_, catalog) = serve::catalog(&dir).await?;
            match command {
                TokenCommand::Create { token_principal, expires, description, format } => {
                    serve::token_create(catalog.as_ref(), &token_principal, &expires, description, format).await
                }
                TokenCommand::List { format } => serve::token_list(catalog.as_ref(), format).await,
                TokenCommand::Revoke { id } => serve::token_revoke(catalog.as_ref(), &id).await,
            }
        }
    }
}
