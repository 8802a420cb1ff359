//! The endpoints of whoever runs the server: liveness, readiness and metrics (no token needed).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::gate::Gate;

/// Liveness: the process is up.
pub(super) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness for a load balancer: 200 when the metadata store answers and the storage root can
/// be listed, 503 saying which failed otherwise (both probed at once, each within 3 s).
/// `/health` says only that the process is up. The endpoint needs no token, so the answer names
/// the failing part only; the error itself goes to the server log.
pub(super) async fn ready(State(gate): State<Arc<Gate>>) -> impl IntoResponse {
    const PROBE: std::time::Duration = std::time::Duration::from_secs(3);
    let metadata = async {
        match tokio::time::timeout(PROBE, gate.engine().catalog().generation()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {} s", PROBE.as_secs())),
        }
    };
    let storage = async {
        match &gate.options().storage {
            None => None,
            Some(store) => store.probe().await.err().map(|e| e.to_string()),
        }
    };
    let (metadata, storage) = tokio::join!(metadata, storage);
    if let Some(error) = &metadata {
        tracing::warn!(%error, "not ready: the metadata store does not answer");
    }
    if let Some(error) = &storage {
        tracing::warn!(%error, "not ready: the storage does not answer");
    }
    let shown = |failure: &Option<String>| if failure.is_some() { "error: unreachable (see the server log)" } else { "ok" };
    let ready = metadata.is_none() && storage.is_none();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({"status": if ready { "ready" } else { "not_ready" }, "metadata": shown(&metadata), "storage": shown(&storage)})))
}

/// Prometheus/OpenMetrics text.
pub(super) async fn metrics(State(gate): State<Arc<Gate>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], gate.metrics().render())
}
