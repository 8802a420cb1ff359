//! `meshwork serve`, the serving half of `meshwork up`, and `meshwork token`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshwork_auth::{Authenticator, OidcVerifier, issue_token, parse_expiry};
use meshwork_catalog::CatalogStore;
use meshwork_pipeline::MeshHome;
use meshwork_query::{Cluster, Governance, QueryEngine, QueryLimits};
use meshwork_core::clock::{Clock, SystemClock};
use meshwork_scheduler::{LineageDelivery, Scheduler, SloEvaluator, SubscriptionDeliveries, WebhookDispatcher};
use meshwork_server::{BoundAddresses, Gate, GateOptions, Listeners, OidcClient, PortalOptions};

use crate::output::text_table;
use crate::ReportFormat;

/// Flags that override `server:` in `mesh.yaml`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeFlags {
    /// Address to bind every server to (default: `server.bind`, 127.0.0.1).
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// HTTP API port (default: `server.http_port`, 8080; 0 picks a free port).
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Arrow Flight SQL port (default: `server.flight_sql_port`, 50051).
    #[arg(long)]
    pub flight_sql_port: Option<u16>,
    /// PostgreSQL wire port (default: `server.postgres_port`, 5433).
    #[arg(long)]
    pub postgres_port: Option<u16>,
}

/// A started server: where it listens, and the future that runs it until a signal.
pub struct Started {
    pub addresses: BoundAddresses,
    /// The gate the servers share (`up` makes a portal sign-in link with it).
    pub gate: Arc<Gate>,
    pub run: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>,
}

/// Binds the listeners and prepares the servers of the mesh at `home`.
pub async fn start(home: &MeshHome, flags: &ServeFlags) -> anyhow::Result<Started> {
    let server = &home.config.server;
    let bind: IpAddr = match flags.bind {
        Some(ip) => ip,
        None => server.bind.parse().with_context(|| format!("`server.bind: {}` in mesh.yaml is not an IP address", server.bind))?,
    };
    let addr = |port: Option<u16>, default: u16| SocketAddr::new(bind, port.unwrap_or(default));
    let listeners = Listeners {
        http: addr(flags.http_port, server.http_port),
        flight_sql: addr(flags.flight_sql_port, server.flight_sql_port),
        postgres: addr(flags.postgres_port, server.postgres_port),
    };
    anyhow::ensure!(
        listeners.postgres.port() != 5432,
        "the Postgres wire port must not be 5432, where a real PostgreSQL usually listens; the default is 5433"
    );
    let catalog = home.open_catalog().await?;
    if catalog.products().await?.is_empty() {
        tracing::warn!("the mesh has no published products yet: run `meshwork apply`");
    }
    let limits = QueryLimits {
        memory_bytes: Some(usize::try_from(server.query_memory_bytes).unwrap_or(usize::MAX)),
        timeout: Some(Duration::from_secs(server.query_timeout.seconds)),
        cluster: home.config.cluster.as_ref().map(|config| Arc::new(Cluster::new(config))),
        // Noise of private answers always comes from the operating system in a server.
        noise_seed: None,
    };
    // Opened before any table is read: it also makes the catalog's `s3://` table URLs open.
    let store = home.open_store()?;
    let engine = Arc::new(QueryEngine::new(catalog.clone(), limits).await?);
    let oidc = match &home.config.auth.oidc {
        Some(config) => Some(OidcVerifier::load(config, &home.root).await.context("auth.oidc in mesh.yaml")?),
        None => None,
    };
    let portal = portal_options(&home.config)?;
    let gate = Arc::new(Gate::new(engine, Authenticator::new(catalog.clone(), oidc), GateOptions { max_queries_per_principal: server.max_queries_per_principal, storage: Some(store), portal }));
    let background = Background::prepare(home, catalog).await?;
    let (addresses, sockets) = meshwork_server::bind(&listeners).await?;
    let shared = gate.clone();
    let run = Box::pin(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = background.spawn(stopped);
        let shutdown = async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        };
        let served = meshwork_server::serve(gate, sockets, shutdown).await.map_err(anyhow::Error::from);
        for task in tasks {
            task.abort();
        }
        served
    });
    Ok(Started { addresses, gate: shared, run })
}

/// The portal's settings from `mesh.yaml`: session lifetime, public address, and the OIDC client
/// (its secret read from the environment variable `auth.oidc.client_secret_env` names).
fn portal_options(config: &meshwork_core::descriptor::MeshConfig) -> anyhow::Result<PortalOptions> {
    let public_url = match &config.server.public_url {
        Some(url) => Some(url::Url::parse(url).with_context(|| format!("`server.public_url` in mesh.yaml: `{url}`"))?),
        None => None,
    };
    let oidc_client = match config.auth.oidc.as_ref().and_then(|o| o.client_id.as_ref().map(|id| (id, o))) {
        Some((client_id, oidc)) => {
            let client_secret = match &oidc.client_secret_env {
                Some(name) => Some(std::env::var(name).with_context(|| format!("`auth.oidc.client_secret_env` names `{name}`, which is not set: set it to the portal's client secret"))?),
                None => None,
            };
            Some(OidcClient { client_id: client_id.clone(), client_secret })
        }
        None => None,
    };
    Ok(PortalOptions { session_ttl: Duration::from_secs(config.server.session_ttl.seconds), public_url, oidc_client })
}

/// The background work of a server: scheduled and cascaded refreshes, SLO evaluation,
/// webhook deliveries and OpenLineage deliveries. Prepared before binding so a missing webhook
/// secret or sink API key stops the server before it starts. Replicas sharing a catalog run it
/// one at a time: the one holding the catalog lock [`LEADER_LOCK`]; the others wait and take
/// over within [`LEADER_POLL`] when its holder stops or dies.
struct Background {
    catalog: Arc<dyn CatalogStore>,
    scheduler: Option<Arc<Scheduler>>,
    slo: SloEvaluator,
    slo_interval: Duration,
    webhooks: Vec<WebhookDispatcher>,
    subscriptions: SubscriptionDeliveries,
    lineage: Option<LineageDelivery>,
}

/// The catalog lock whose holder runs the background work.
const LEADER_LOCK: &str = "background-work";
/// The setting a holder of [`LEADER_LOCK`] sets to `false` when it takes the work and to `true`
/// when it stops cleanly; absent before any holder, which has nothing to catch up on.
const CLEAN_STOP_KEY: &str = "background-work.stopped_cleanly";
/// How often a waiting replica asks for the lock, and the holder checks it still has it.
const LEADER_POLL: Duration = Duration::from_secs(2);

impl Background {
    async fn prepare(home: &MeshHome, catalog: Arc<dyn CatalogStore>) -> anyhow::Result<Background> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let config = &home.config.scheduler;
        // Runs a crash left behind are finished or discarded before anything is served.
        // A storage that does not answer yet does not stop the server: `/ready` says so, and
        // each product's next build recovers its own leftovers anyway.
        match meshwork_pipeline::recover_all(catalog.as_ref(), &home.open_store()?).await {
            Ok(recovered) => {
                for (product, outcome) in recovered {
                    tracing::warn!(%product, ?outcome, "recovered a run left by a crashed process");
                }
            }
            Err(error) => tracing::warn!(%error, "could not look for runs left by a crashed process; each product's next build will"),
        }
        let scheduler = if config.enabled {
            let store = home.open_store()?;
            Some(Arc::new(Scheduler::new(home.root.clone(), catalog.clone(), store, clock.clone(), config.clone()).await?))
        } else {
            None
        };
        let mut webhooks = Vec::new();
        let first_backoff = Duration::from_secs(config.retry_backoff.seconds.clamp(1, 60));
        for webhook in &home.config.notifications.webhooks {
            webhooks.push(WebhookDispatcher::new(webhook.clone(), catalog.clone(), clock.clone(), first_backoff).context("notifications.webhooks in mesh.yaml")?);
        }
        let lineage = match &home.config.openlineage {
            Some(lineage) => Some(LineageDelivery::new(lineage, &home.root, catalog.clone(), first_backoff).context("openlineage in mesh.yaml")?),
            None => None,
        };
        Ok(Background {
            lineage,
            catalog: catalog.clone(),
            scheduler,
            slo: SloEvaluator::new(catalog.clone(), clock.clone()),
            slo_interval: Duration::from_secs(config.slo_interval.seconds.max(1)),
            webhooks,
            subscriptions: SubscriptionDeliveries::new(catalog, clock, first_backoff),
        })
    }

    fn spawn(self, stopped: tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![tokio::spawn(self.lead(stopped))]
    }

    /// Waits for the leader lock, runs the work while holding it, and gives it up when the
    /// server stops or the lock is lost (its PostgreSQL connection gone).
    async fn lead(self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let mut announced_waiting = false;
        loop {
            if *stopped.borrow() {
                return;
            }
            let mut lock = match self.catalog.lock(LEADER_LOCK, Duration::ZERO).await {
                Ok(lock) => lock,
                Err(error) => {
                    if !matches!(error, meshwork_catalog::CatalogError::Busy { .. }) {
                        tracing::error!(%error, "cannot ask for the background-work lock");
                    } else if !announced_waiting {
                        tracing::info!(%error, "another replica runs the background work; this one serves queries and stands by");
                        announced_waiting = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(LEADER_POLL) => continue,
                        _ = stopped.changed() => return,
                    }
                }
            };
            announced_waiting = false;
            // A holder that stops cleanly says so; any other end (killed, crashed, cut off) makes
            // the next holder catch up on what it may have left unfinished.
            let clean = match self.catalog.setting(CLEAN_STOP_KEY).await {
                Ok(value) => value.as_deref() != Some("false"),
                Err(error) => {
                    tracing::warn!(%error, "cannot read how the last holder stopped; catching up");
                    false
                }
            };
            if let Err(error) = self.catalog.set_setting(CLEAN_STOP_KEY, "false").await {
                tracing::error!(%error, "cannot record the background-work holder; giving the work up");
                drop(lock);
                tokio::time::sleep(LEADER_POLL).await;
                continue;
            }
            tracing::info!(catch_up = !clean, "this replica runs the background work: scheduled refreshes, SLO evaluation, webhooks, OpenLineage");
            if let Some(scheduler) = &self.scheduler
                && let Err(error) = scheduler.resume(!clean).await
            {
                tracing::error!(%error, "cannot resume the scheduler; giving the background work up");
                drop(lock);
                tokio::time::sleep(LEADER_POLL).await;
                continue;
            }
            let (stop_work, work_stopped) = tokio::sync::watch::channel(false);
            let mut tasks = Vec::new();
            if let Some(scheduler) = &self.scheduler {
                tasks.push(tokio::spawn(scheduler.clone().run(work_stopped.clone())));
            }
            tasks.push(tokio::spawn(self.slo.clone().run(self.slo_interval, work_stopped.clone())));
            for webhook in &self.webhooks {
                tasks.push(tokio::spawn(webhook.clone().run(work_stopped.clone())));
            }
            tasks.push(tokio::spawn(self.subscriptions.clone().run(work_stopped.clone())));
            if let Some(lineage) = &self.lineage {
                tasks.push(tokio::spawn(lineage.clone().run(work_stopped.clone())));
            }
            let server_stopping = loop {
                tokio::select! {
                    _ = tokio::time::sleep(LEADER_POLL) => {
                        if !lock.still_held().await {
                            tracing::warn!("lost the background-work lock (metadata store connection gone); stopping the background work");
                            break false;
                        }
                    }
                    _ = stopped.changed() => break true,
                }
            };
            let _ = stop_work.send(true);
            for task in tasks {
                let _ = task.await;
            }
            if server_stopping {
                // Written while still holding the lock, so the next holder reads it.
                if let Err(error) = self.catalog.set_setting(CLEAN_STOP_KEY, "true").await {
                    tracing::warn!(%error, "cannot record the clean stop; the next holder will catch up");
                }
                drop(lock);
                return;
            }
            drop(lock);
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// `meshwork serve`.
pub async fn serve(home: &MeshHome, flags: &ServeFlags) -> anyhow::Result<()> {
    let started = start(home, flags).await?;
    let a = started.addresses;
    eprintln!("meshwork serving `{}`", home.root.display());
    eprintln!("  HTTP API     http://{}/api/v1  (OpenAPI: /openapi.json, Swagger UI: /docs, metrics: /metrics)", a.http);
    eprintln!("  Flight SQL   grpc://{}", a.flight_sql);
    eprintln!("  Postgres     postgresql://{}/meshwork", a.postgres);
    eprintln!("Authenticate with a token from `meshwork token create --principal NAME`. Ctrl-C stops.");
    started.run.await
}

/// Description given to the demo tokens `meshwork up` issues; earlier ones are revoked.
const DEMO_TOKEN: &str = "demo token issued by `meshwork up`";

/// Principals `up` issues demo tokens for, with what they show.
const DEMO_PRINCIPALS: &[(&str, &str)] = &[
    ("admin", "administrator: every product, audit log; still masked where descriptors say so"),
    ("sam", "sales member: sales data unmasked, every region"),
    ("ana", "EU analyst: her region only, personal data masked"),
    ("fred", "finance member: finance products"),
];

/// The serving part of `meshwork up`: demo tokens, connection one-liners, then serve.
pub async fn up(home: &MeshHome, flags: &ServeFlags, serve_after: bool) -> anyhow::Result<()> {
    let catalog = home.open_catalog().await?;
    for token in catalog.tokens().await? {
        if token.description.as_deref() == Some(DEMO_TOKEN) && token.revoked_at.is_none() {
            catalog.revoke_token(&token.id).await?;
        }
    }
    let governance = Governance::load(catalog.as_ref()).await?;
    let mut tokens = Vec::new();
    for (name, what) in DEMO_PRINCIPALS {
        if governance.principal(name).is_ok() {
            let issued = issue_token(catalog.as_ref(), name, Some(DEMO_TOKEN.to_owned()), parse_expiry("7d")?).await?;
            tokens.push((*name, *what, issued.token, issued.record.id));
        }
    }
    let started = if serve_after { Some(start(home, flags).await?) } else { None };
    let (http, flight, pg) = match &started {
        Some(s) => (s.addresses.http.to_string(), s.addresses.flight_sql.to_string(), s.addresses.postgres.to_string()),
        None => {
            let s = &home.config.server;
            (format!("{}:{}", s.bind, s.http_port), format!("{}:{}", s.bind, s.flight_sql_port), format!("{}:{}", s.bind, s.postgres_port))
        }
    };
    println!("Demo tokens (valid 7 days; `meshwork token list` shows them, `meshwork token revoke ID` ends one):");
    for (name, what, token, _) in &tokens {
        println!("  {name:<6} {token}\n         {what}");
    }
    let (example_name, _, example_token, example_token_id) = tokens.iter().find(|t| t.0 == "ana").or(tokens.first()).cloned().unwrap_or(("admin", "", String::new(), String::new()));
    let (pg_host, pg_port) = pg.rsplit_once(':').unwrap_or((&pg, "5433"));
    println!();
    println!("Connect as {example_name}:");
    // Never the token in a link (URLs end up in histories and proxy logs): a one-time code that
    // this process alone knows, good for one click within 15 minutes.
    match &started {
        Some(s) if !example_token_id.is_empty() => {
            let code = s.gate.signin_links().issue(example_name, &example_token_id);
            println!("  Portal    http://{http}/signin/link?code={code}");
            println!("            (signs you in as {example_name} once, within {} minutes; later: http://{http}/signin with a token above)", meshwork_server::LINK_TTL.as_secs() / 60);
        }
        _ => println!("  Portal    http://{http}/signin  (paste the token of {example_name} above)"),
    }
    println!("  HTTP      curl -s -H 'Authorization: Bearer {example_token}' -H 'Content-Type: application/json' \\");
    println!("                 -d '{{\"sql\": \"SELECT * FROM sales.customers LIMIT 3\"}}' http://{http}/api/v1/query");
    println!("  Swagger   http://{http}/docs");
    println!("  psql      PGPASSWORD='{example_token}' psql -h {pg_host} -p {pg_port} -U {example_name} -d meshwork -c 'SELECT * FROM sales.customers LIMIT 3'");
    println!("  Python    pip install adbc-driver-flightsql pyarrow; python3 -c \"import adbc_driver_flightsql.dbapi as f; c = f.connect('grpc://{flight}', db_kwargs={{'adbc.flight.sql.authorization_header': 'Bearer {example_token}'}}); cur = c.cursor(); cur.execute('SELECT * FROM sales.customers LIMIT 3'); print(cur.fetch_arrow_table())\"");
    match started {
        Some(started) => {
            println!();
            println!("Serving at http://{http} (HTTP), grpc://{flight} (Flight SQL), {pg} (Postgres). Ctrl-C stops.");
            started.run.await
        }
        None => Ok(()),
    }
}

/// `meshwork token create`.
pub async fn token_create(catalog: &dyn CatalogStore, principal: &str, expires: &str, description: Option<String>, format: ReportFormat) -> anyhow::Result<()> {
    let governance = Governance::load(catalog).await?;
    let principal = governance.principal(principal)?;
    let issued = issue_token(catalog, &principal.name, description, parse_expiry(expires)?).await?;
    match format {
        ReportFormat::Json => println!(
            "{}",
            serde_json::json!({"id": issued.record.id, "principal": principal.name, "token": issued.token, "expires_at": issued.record.expires_at.as_ref().map(seconds)})
        ),
        ReportFormat::Text => {
            println!("{}", issued.token);
            eprintln!(
                "token `{}` for `{}`, {}; it is shown only now: store it in a secret manager",
                issued.record.id,
                principal.name,
                issued.record.expires_at.as_ref().map(|e| format!("expires {}", seconds(e))).unwrap_or_else(|| "never expires".into())
            );
        }
    }
    Ok(())
}

/// A token time as tokens are shown: RFC 3339 to the second.
fn seconds(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `meshwork token list`.
pub async fn token_list(catalog: &dyn CatalogStore, format: ReportFormat) -> anyhow::Result<()> {
    let tokens = catalog.tokens().await?;
    let now = chrono::Utc::now();
    let status = |t: &meshwork_catalog::ApiTokenRecord| {
        if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    };
    match format {
        ReportFormat::Json => {
            let items: Vec<serde_json::Value> = tokens
                .iter()
                .map(|t| {
                    serde_json::json!({"id": t.id, "principal": t.principal, "description": t.description, "created_at": seconds(&t.created_at),
                        "expires_at": t.expires_at.as_ref().map(seconds), "revoked_at": t.revoked_at.as_ref().map(seconds), "status": status(t)})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&items).expect("json"));
        }
        ReportFormat::Text if tokens.is_empty() => println!("no tokens; create one with `meshwork token create --principal NAME`"),
        ReportFormat::Text => {
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.principal.clone(),
                        status(t).to_owned(),
                        seconds(&t.created_at),
                        t.expires_at.as_ref().map(seconds).unwrap_or_else(|| "never".into()),
                        t.description.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print!("{}", text_table(&["id", "principal", "status", "created", "expires", "description"], &rows));
        }
    }
    Ok(())
}

/// `meshwork token revoke`.
pub async fn token_revoke(catalog: &dyn CatalogStore, id: &str) -> anyhow::Result<()> {
    let id = id.strip_prefix(meshwork_auth::TOKEN_PREFIX).map(|rest| rest.split('_').next().unwrap_or(rest)).unwrap_or(id);
    match catalog.token(id).await? {
        None => anyhow::bail!("no token `{id}`; `meshwork token list` shows token ids"),
        Some(t) if t.revoked_at.is_some() => anyhow::bail!("token `{id}` was already revoked at {}", t.revoked_at.as_ref().map(seconds).unwrap_or_default()),
        Some(_) => {
            catalog.revoke_token(id).await?;
            eprintln!("token `{id}` revoked; it stops working at once on every interface");
            Ok(())
        }
    }
}

/// The catalog of the mesh at `dir`, for token commands.
pub async fn catalog(dir: &Path) -> anyhow::Result<(MeshHome, Arc<dyn CatalogStore>)> {
    let home = crate::commands::open_home(dir)?;
    let catalog = home.open_catalog().await?;
    Ok((home, catalog))
}
