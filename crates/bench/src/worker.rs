//! The SQL worker: one long-lived process per system, so each statement is timed without
//! process start-up, and the harness can read the process's peak memory afterwards.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use datafusion::prelude::{SessionConfig, SessionContext};
use meshwork_core::principal::Principal;
use meshwork_query::{QueryEngine, QueryLimits};
use serde_json::{Value, json};

/// What runs the statements.
pub enum Engine {
    /// DataFusion with nothing in front of it.
    DataFusion(SessionContext),
    /// Meshwork's governed query path, a new session per statement as every server interface
    /// opens one: catalog snapshot, access decisions, policy rewrite, Delta scans, audit.
    Meshwork { engine: QueryEngine, principal: Principal },
}

impl Engine {
    /// Plain DataFusion after running the statements of `setup`, in DataFusion's default
    /// configuration or (`meshwork_settings`) with the settings Meshwork's sessions use.
    pub async fn datafusion(setup: Option<&Path>, meshwork_settings: bool) -> anyhow::Result<Engine> {
        let config = SessionConfig::new();
        let ctx = SessionContext::new_with_config(if meshwork_settings { meshwork_query::tuned(config) } else { config });
        if let Some(path) = setup {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read setup file `{}`", path.display()))?;
            for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                ctx.sql(statement)
                    .await
                    .with_context(|| format!("setup statement in `{}` failed: {statement}", path.display()))?;
            }
        }
        Ok(Engine::DataFusion(ctx))
    }

    /// Meshwork over the mesh at `root` (applied beforehand), as `principal`; on the mesh's
    /// `cluster:` unless `local`.
    pub async fn meshwork(root: &Path, principal: &str, local: bool) -> anyhow::Result<Engine> {
        let mesh = meshwork_pipeline::load_mesh(root).map_err(|d| anyhow::anyhow!("cannot load the mesh at `{}`: {d:?}", root.display()))?;
        let catalog = mesh.home().open_catalog().await?;
        mesh.home().open_store()?;
        // A `cluster:` in mesh.yaml sends the statements to Ballista, as servers do.
        let cluster = mesh.repo.config.cluster.as_ref().filter(|_| !local).map(|config| std::sync::Arc::new(meshwork_query::Cluster::new(config)));
        let engine = QueryEngine::new(catalog, QueryLimits { cluster, ..QueryLimits::default() }).await?;
        let principal = engine.governance().await?.principal(principal)?;
        Ok(Engine::Meshwork { engine, principal })
    }

    /// Runs one statement to completion; returns the number of rows.
    async fn run(&self, sql: &str) -> anyhow::Result<usize> {
        let batches = match self {
            Engine::DataFusion(ctx) => ctx.sql(sql).await?.collect().await?,
            Engine::Meshwork { engine, principal } => engine.session(principal.clone(), "bench").await?.collect(sql).await?.1,
        };
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }
}

/// Answers statements from stdin until it closes.
pub async fn serve(engine: Engine) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", json!({ "ready": true }))?;
    stdout.flush()?;
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Value = serde_json::from_str(&line).with_context(|| format!("bad request line `{line}`"))?;
        let Some(sql) = request.get("sql").and_then(Value::as_str) else {
            anyhow::bail!("request `{line}` has no `sql` string");
        };
        let started = Instant::now();
        let answer = match engine.run(sql).await {
            Ok(rows) => json!({ "ms": started.elapsed().as_secs_f64() * 1e3, "rows": rows }),
            Err(err) => json!({ "error": format!("{err:#}") }),
        };
        writeln!(stdout, "{answer}")?;
        stdout.flush()?;
    }
    Ok(())
}
