//! Meshwork's output ports: the HTTP API, Arrow Flight SQL and Postgres wire servers.
//!
//! Every interface goes through one [`Gate`]: it authenticates the credential the client
//! presented (API token or OIDC JWT), admits the query under the principal's concurrency limit,
//! and opens a [`meshwork_query::QuerySession`] for that principal, so the policy rewrite, the
//! read-only checks and the audit log are the same on every port. Only this crate knows HTTP,
//! Flight and pgwire.

#![deny(missing_docs)]

mod error;
mod flight;
mod gate;
mod http;
mod metrics;
mod portal;
pub use portal::{LINK_TTL, SignInLinks};
mod pool;
mod postgres;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::ServeError;
pub use gate::{Gate, GateOptions, OidcClient, PortalOptions};
pub use metrics::Metrics;

/// Where each server listens.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// HTTP API, OpenAPI, Swagger UI, `/metrics` and the web portal.
    pub http: SocketAddr,
    /// Arrow Flight SQL (gRPC).
    pub flight_sql: SocketAddr,
    /// PostgreSQL wire protocol.
    pub postgres: SocketAddr,
}

/// The addresses actually bound (port 0 in [`Listeners`] picks a free port).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddresses {
    /// HTTP.
    pub http: SocketAddr,
    /// Flight SQL.
    pub flight_sql: SocketAddr,
    /// Postgres wire.
    pub postgres: SocketAddr,
}

/// How long in-flight queries may run after a shutdown signal before they are cancelled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Binds every listener, so a port in use is reported before anything starts serving.
pub async fn bind(listeners: &Listeners) -> Result<(BoundAddresses, [TcpListener; 3]), ServeError> {
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr).await.map_err(|error| ServeError::Bind { what, addr, error })
    };
    let http = bind(listeners.http, "HTTP").await?;
    let flight = bind(listeners.flight_sql, "Flight SQL").await?;
    let postgres = bind(listeners.postgres, "Postgres wire").await?;
    let addresses = BoundAddresses { http: http.local_addr()?, flight_sql: flight.local_addr()?, postgres: postgres.local_addr()? };
    Ok((addresses, [http, flight, postgres]))
}

/// Serves all three interfaces on the bound listeners until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish for up to [`SHUTDOWN_GRACE`], and cancels the rest.
pub async fn serve(gate: Arc<Gate>, listeners: [TcpListener; 3], shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let [http, flight, postgres] = listeners;
    gate.set_addresses(BoundAddresses { http: http.local_addr()?, flight_sql: flight.local_addr()?, postgres: postgres.local_addr()? });
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(http::serve(gate.clone(), http, stopped(stop_rx.clone())));
    tasks.spawn(flight::serve(gate.clone(), flight, stopped(stop_rx.clone())));
    tasks.spawn(postgres::serve(gate.clone(), postgres, stop_rx.clone()));
    tokio::select! {
        () = shutdown => {
            tracing::info!("shutting down: no new connections; in-flight queries have {}s to finish", SHUTDOWN_GRACE.as_secs());
        }
        Some(result) = tasks.join_next() => {
            // A server stopped on its own: that is an error; stop the others.
            let _ = stop_tx.send(true);
            tasks.abort_all();
            return match result {
                Ok(Ok(())) => Err(ServeError::Stopped),
                Ok(Err(err)) => Err(err),
                Err(join) => Err(ServeError::Internal(join.to_string())),
            };
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(result) = tasks.join_next().await {
            if let Ok(Err(err)) = result {
                tracing::warn!(error = %err, "server stopped with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("cancelling queries still running after {}s", SHUTDOWN_GRACE.as_secs());
        tasks.abort_all();
    }
    Ok(())
}

/// A fresh request id: 16 hex digits, logged with every line of the request and returned to
/// the client, so a user's report can be matched to the server log.
pub(crate) fn request_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
