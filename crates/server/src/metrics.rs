//! Prometheus metrics of the servers, served at `/metrics`. Labels never carry product names,
//! principals or SQL, so the endpoint reveals nothing a principal could not see.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    interface: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InterfaceLabels {
    interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    interface: String,
    /// `opened` (built for the query) or `reused` (taken from the idle pool).
    how: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    interface: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    status: u16,
}

/// The servers' counters, gauges and histograms.
pub struct Metrics {
    registry: Registry,
    queries: Family<QueryLabels, Counter>,
    durations: Family<InterfaceLabels, Histogram>,
    rows: Family<InterfaceLabels, Counter>,
    active: Family<InterfaceLabels, Gauge>,
    auth_failures: Family<AuthLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    connections: Family<InterfaceLabels, Gauge>,
    sessions: Family<InterfaceLabels, Gauge>,
    session_starts: Family<SessionLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("meshwork");
        let queries = Family::<QueryLabels, Counter>::default();
        let durations = Family::<InterfaceLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 18)));
        let rows = Family::<InterfaceLabels, Counter>::default();
        let active = Family::<InterfaceLabels, Gauge>::default();
        let auth_failures = Family::<AuthLabels, Counter>::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let connections = Family::<InterfaceLabels, Gauge>::default();
        let sessions = Family::<InterfaceLabels, Gauge>::default();
        let session_starts = Family::<SessionLabels, Counter>::default();
        registry.register("queries", "Queries run, by interface and outcome", queries.clone());
        registry.register("query_duration_seconds", "Query wall time until the last row was sent", durations.clone());
        registry.register("rows_returned", "Rows sent to clients", rows.clone());
        registry.register("active_queries", "Queries running now", active.clone());
        registry.register("auth_failures", "Refused credentials, by interface and reason", auth_failures.clone());
        registry.register("http_requests", "HTTP requests, by method and status", http_requests.clone());
        registry.register("connections", "Authenticated connections open, by interface (Postgres wire)", connections.clone());
        registry.register("sessions", "Query sessions held by open connections, by interface (Postgres wire)", sessions.clone());
        registry.register("query_sessions", "Query sessions a statement ran in, by interface and whether it was opened for it or reused from the idle pool", session_starts.clone());
        Metrics { registry, queries, durations, rows, active, auth_failures, http_requests, connections, sessions, session_starts }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub(crate) fn auth_failure(&self, interface: &str, reason: &str) {
        self.auth_failures.get_or_create(&AuthLabels { interface: interface.into(), reason: reason.into() }).inc();
    }

    pub(crate) fn http_request(&self, method: &str, status: u16) {
        self.http_requests.get_or_create(&HttpLabels { method: method.into(), status }).inc();
    }

    /// Counts a query the concurrency limit refused before it ran.
    pub(crate) fn query_refused(&self, interface: &str) {
        self.queries.get_or_create(&QueryLabels { interface: interface.into(), outcome: "refused".into() }).inc();
    }

    /// Counts an open connection on `interface` until the returned guard is dropped.
    pub(crate) fn connection_opened(&self, interface: &'static str) -> GaugeGuard {
        GaugeGuard::new(self.connections.get_or_create(&InterfaceLabels { interface: interface.into() }).clone())
    }

    /// Counts a query session held by a connection on `interface` until the guard is dropped.
    pub(crate) fn session_opened(&self, interface: &'static str) -> GaugeGuard {
        GaugeGuard::new(self.sessions.get_or_create(&InterfaceLabels { interface: interface.into() }).clone())
    }

    /// Counts a session handed to a statement: `reused` from the idle pool, or `opened`.
    pub(crate) fn session_started(&self, interface: &str, reused: bool) {
        let how = if reused { "reused" } else { "opened" };
        self.session_starts.get_or_create(&SessionLabels { interface: interface.into(), how: how.into() }).inc();
    }

    /// Marks a query as running until the returned guard is dropped.
    pub(crate) fn query_started(self: &std::sync::Arc<Self>, interface: &'static str) -> QueryTimer {
        self.active.get_or_create(&InterfaceLabels { interface: interface.into() }).inc();
        QueryTimer { metrics: self.clone(), interface, started: std::time::Instant::now(), rows: 0, outcome: "cancelled" }
    }
}

/// Records one query's duration, rows and outcome when dropped.
pub(crate) struct QueryTimer {
    metrics: std::sync::Arc<Metrics>,
    interface: &'static str,
    started: std::time::Instant,
    rows: u64,
    outcome: &'static str,
}

impl QueryTimer {
    pub(crate) fn rows(&mut self, n: u64) {
        self.rows += n;
    }

    pub(crate) fn finish(&mut self, outcome: &'static str) {
        self.outcome = outcome;
    }
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        let interface = InterfaceLabels { interface: self.interface.into() };
        self.metrics.active.get_or_create(&interface).dec();
        self.metrics.durations.get_or_create(&interface).observe(self.started.elapsed().as_secs_f64());
        self.metrics.rows.get_or_create(&interface).inc_by(self.rows);
        self.metrics.queries.get_or_create(&QueryLabels { interface: self.interface.into(), outcome: self.outcome.into() }).inc();
    }
}

/// One unit of a gauge, given back when dropped, so the gauge follows the lifetime of what it
/// counts (a connection, a session) whichever way that ends.
pub(crate) struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: Gauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
