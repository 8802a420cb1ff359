//! The one way into the query layer from a network interface: authenticate, admit, open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use meshwork_auth::{AuthError, Authenticator, Credential, Identity};
use meshwork_core::principal::Principal;
use meshwork_query::{QueryEngine, QuerySession};

use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::pool::{Opened, PooledSession, SessionPool};

/// Settings of the gate.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Queries one principal may run at once, over all interfaces.
    pub max_queries_per_principal: u32,
    /// Where product tables live, probed by `/ready`; `None` probes only the metadata store.
    pub storage: Option<meshwork_storage::ProductStore>,
    /// The web portal's sessions and sign-in.
    pub portal: PortalOptions,
}

/// Settings of the web portal (`mesh.yaml` `server:`).
#[derive(Debug, Clone)]
pub struct PortalOptions {
    /// How long a portal session lasts after sign-in.
    pub session_ttl: std::time::Duration,
    /// The address users reach the server at, when it is not the one it listens on (behind a
    /// proxy). An `https://` address makes session cookies `Secure` and is the base of the OIDC
    /// redirect address.
    pub public_url: Option<url::Url>,
    /// The OIDC client the portal signs users in as (authorization-code flow); `None` offers
    /// API-token sign-in only.
    pub oidc_client: Option<OidcClient>,
}

impl Default for PortalOptions {
    fn default() -> Self {
        PortalOptions { session_ttl: std::time::Duration::from_secs(8 * 3600), public_url: None, oidc_client: None }
    }
}

/// The portal's registration at the OIDC provider.
#[derive(Clone)]
pub struct OidcClient {
    /// The client id; ID tokens must name it as an audience.
    pub client_id: String,
    /// The client secret, if the provider issued one (read from the environment, never from
    /// `mesh.yaml`).
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient").field("client_id", &self.client_id).field("client_secret", &self.client_secret.as_ref().map(|_| "…")).finish()
    }
}

/// Authentication, per-principal admission and session opening, shared by every interface.
pub struct Gate {
    engine: Arc<QueryEngine>,
    auth: Authenticator,
    options: GateOptions,
    running: Arc<Mutex<HashMap<String, u32>>>,
    metrics: Arc<Metrics>,
    /// Signs Flight SQL tickets and prepared statement handles; new for each process, so a
    /// ticket does not outlive the server that issued it.
    ticket_key: [u8; 32],
    /// Where the servers listen, once bound: the portal's "how to connect" snippets name them.
    addresses: std::sync::OnceLock<crate::BoundAddresses>,
    signin_links: crate::portal::SignInLinks,
    /// Sessions idle between statements, reused while they decide as a new one would.
    pool: Arc<SessionPool>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("options", &self.options).finish_non_exhaustive()
    }
}

/// A running query's claim on its principal's concurrency limit; released on drop.
#[derive(Debug)]
pub struct QueryPermit {
    principal: String,
    running: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for QueryPermit {
    fn drop(&mut self) {
        let mut running = self.running.lock().expect("permit lock");
        if let Some(n) = running.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.principal);
            }
        }
    }
}

impl Gate {
    /// A gate over `engine`, authenticating with `auth`.
    pub fn new(engine: Arc<QueryEngine>, auth: Authenticator, options: GateOptions) -> Gate {
        use rand::RngCore;
        let mut ticket_key = [0u8; 32];
        rand::rng().fill_bytes(&mut ticket_key);
        Gate { engine, auth, options, running: Arc::default(), metrics: Arc::new(Metrics::new()), ticket_key, addresses: std::sync::OnceLock::new(), signin_links: crate::portal::SignInLinks::default(), pool: Arc::default() }
    }

    /// The settings it was made with.
    pub fn options(&self) -> &GateOptions {
        &self.options
    }

    /// The engine: catalog, governance, opened tables.
    pub fn engine(&self) -> &QueryEngine {
        &self.engine
    }

    /// Server metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where the servers listen; `None` until [`crate::serve`] runs.
    pub fn addresses(&self) -> Option<crate::BoundAddresses> {
        self.addresses.get().copied()
    }

    /// Records where the servers listen; the first call wins (one gate serves one set of
    /// listeners).
    pub(crate) fn set_addresses(&self, addresses: crate::BoundAddresses) {
        let _ = self.addresses.set(addresses);
    }

    /// The portal's one-time sign-in links (`meshwork up` prints one).
    pub fn signin_links(&self) -> &crate::portal::SignInLinks {
        &self.signin_links
    }

    pub(crate) fn ticket_key(&self) -> &[u8; 32] {
        &self.ticket_key
    }

    /// Who presented `credential` on `interface`. Failures are counted and logged with their
    /// class, never with the credential.
    pub async fn authenticate(&self, credential: Credential<'_>, interface: &'static str) -> Result<Identity, ServeError> {
        let (generation, governance) = self.engine.current_governance().await?;
        match self.auth.authenticate_at(credential, governance.principals(), Some(generation)).await {
            Ok(identity) => Ok(identity),
            Err(err) => {
                let class = auth_class(&err);
                self.metrics.auth_failure(interface, class);
                tracing::info!(interface, reason = class, "authentication failed");
                Err(ServeError::Unauthenticated(err))
            }
        }
    }

    /// Who a portal session belongs to now: its credential and principal checked again, as a
    /// bearer credential is on every request.
    pub(crate) async fn resume(&self, session: &meshwork_catalog::PortalSession) -> Result<Identity, ServeError> {
        let governance = self.engine.governance().await?;
        self.auth.resume(session, governance.principals()).await.map_err(|err| {
            self.metrics.auth_failure("portal", auth_class(&err));
            ServeError::Unauthenticated(err)
        })
    }

    /// The authenticator, for the portal's OIDC sign-in.
    pub(crate) fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Claims one of `principal`'s concurrent query slots, or refuses with "too many queries".
    pub fn admit(&self, principal: &Principal) -> Result<QueryPermit, ServeError> {
        let mut running = self.running.lock().expect("permit lock");
        let n = running.entry(principal.name.clone()).or_insert(0);
        if *n >= self.options.max_queries_per_principal {
            return Err(ServeError::TooManyQueries { principal: principal.name.clone(), limit: self.options.max_queries_per_principal });
        }
        *n += 1;
        Ok(QueryPermit { principal: principal.name.clone(), running: self.running.clone() })
    }

    /// Queries running now, over all principals.
    pub fn running_queries(&self) -> u32 {
        self.running.lock().expect("permit lock").values().sum()
    }

    /// A query session for `principal` on `interface`, for one statement: an idle one from the
    /// pool when one decides exactly as a new one would (see `pool.rs`), else a new one; it
    /// returns to the pool when dropped (or, given to [`GovernedStream::holding`], when the
    /// statement's stream is).
    pub(crate) async fn session(&self, principal: &Principal, interface: &'static str) -> Result<PooledSession, ServeError> {
        let wanted = self.opened_now(principal, interface).await?;
        if let Some(session) = self.pool.take(&wanted) {
            self.metrics.session_started(interface, true);
            return Ok(session);
        }
        let session = self.engine.session_at(principal.clone(), interface, wanted.generation).await?;
        self.metrics.session_started(interface, false);
        let opened = Opened { valid_until: session.valid_until(), ..wanted };
        Ok(self.pool.lend(session, opened))
    }

    /// What a session opened now for `principal` on `interface` would be opened for (the
    /// catalog's generation read now): what anything planned earlier must still serve to be
    /// reused.
    pub(crate) async fn opened_now(&self, principal: &Principal, interface: &'static str) -> Result<Opened, ServeError> {
        let generation = self.engine.catalog().generation().await?;
        Ok(Opened::new(principal.clone(), interface, generation, None))
    }

    /// A new session of its own for `principal` on `interface`, never pooled: for a caller that
    /// changes it (the Postgres wire installs `pg_catalog`) and keeps it for a connection.
    pub async fn open_session(&self, principal: &Principal, interface: &str) -> Result<QuerySession, ServeError> {
        Ok(self.engine.session(principal.clone(), interface).await?)
    }
}

/// The failure class, for metrics and logs.
fn auth_class(err: &AuthError) -> &'static str {
    match err {
        AuthError::Missing => "missing",
        AuthError::Malformed => "malformed",
        AuthError::Invalid => "invalid",
        AuthError::Expired => "expired",
        AuthError::NotYetValid => "not_yet_valid",
        AuthError::Revoked => "revoked",
        AuthError::Jwt(_) => "jwt",
        AuthError::OidcDisabled => "oidc_disabled",
        AuthError::UnknownPrincipal => "unknown_principal",
        AuthError::Unavailable(_) => "unavailable",
        _ => "other",
    }
}

impl Gate {
    /// Records a statement refused before it ran (the concurrency limit), so the audit log
    /// holds every statement a principal sent, not only those admitted. If the event cannot be
    /// written, that failure is reported instead, as for admitted statements.
    async fn audit_refusal(&self, principal: &Principal, interface: &'static str, sql: &str, refusal: &ServeError) -> Result<(), ServeError> {
        let event = meshwork_catalog::AuditEvent {
            id: 0,
            at: chrono::Utc::now(),
            principal: principal.name.clone(),
            interface: interface.to_owned(),
            action: "query".into(),
            statement: meshwork_query::normalise(sql),
            products: Vec::new(),
            rows: None,
            duration_ms: 0.0,
            outcome: meshwork_catalog::AuditOutcome::Refused,
            error: Some(refusal.client_message()),
        };
        self.engine.catalog().record_audit(&event).await?;
        Ok(())
    }
}

/// A governed query's batches, holding its principal's permit and its metrics until the end.
pub(crate) struct GovernedStream {
    stream: meshwork_query::QueryStream,
    first: Option<datafusion::arrow::record_batch::RecordBatch>,
    timer: crate::metrics::QueryTimer,
    /// The deprecated products the statement reads, for the interface to warn about.
    deprecations: Vec<meshwork_core::lifecycle::Deprecation>,
    /// What the statement spent of privacy budgets, for the interface to tell.
    privacy: Vec<meshwork_query::PrivacySpent>,
    _permit: QueryPermit,
    /// The pooled session it runs in, kept out of the pool until the stream is dropped (its
    /// memory limit is this statement's alone).
    _session: Option<PooledSession>,
}

impl GovernedStream {
    /// The result's columns.
    pub(crate) fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.stream.schema()
    }

    /// The stream holding `session` until it is dropped.
    pub(crate) fn holding(mut self, session: PooledSession) -> Self {
        self._session = Some(session);
        self
    }

    /// The deprecated products the statement reads: every interface passes their warnings on.
    pub(crate) fn deprecations(&self) -> &[meshwork_core::lifecycle::Deprecation] {
        &self.deprecations
    }

    /// What the statement spent of the principal's privacy budgets: every interface tells it.
    pub(crate) fn privacy(&self) -> &[meshwork_query::PrivacySpent] {
        &self.privacy
    }

    /// Runs the query up to its first batch, so that errors found while computing it (most
    /// of them: timeouts, memory, division by zero…) are reported before a response starts.
    pub(crate) async fn prime(&mut self) -> Result<(), ServeError> {
        use futures::StreamExt;
        match self.stream.next().await {
            Some(Ok(batch)) => {
                self.first = Some(batch);
                Ok(())
            }
            Some(Err(err)) => {
                self.timer.finish("error");
                Err(err.into())
            }
            None => {
                self.timer.finish("ok");
                Ok(())
            }
        }
    }
}

impl futures::Stream for GovernedStream {
    type Item = Result<datafusion::arrow::record_batch::RecordBatch, meshwork_query::QueryError>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use futures::StreamExt;
        if let Some(batch) = self.first.take() {
            self.timer.rows(batch.num_rows() as u64);
            return std::task::Poll::Ready(Some(Ok(batch)));
        }
        let item = futures::ready!(self.stream.poll_next_unpin(cx));
        match &item {
            Some(Ok(batch)) => self.timer.rows(batch.num_rows() as u64),
            Some(Err(_)) => self.timer.finish("error"),
            None => self.timer.finish("ok"),
        }
        std::task::Poll::Ready(item)
    }
}

impl Gate {
    /// Runs `sql` in `session` for its principal on `interface`: admission under the
    /// concurrency limit, then the session's governed, audited execution.
    pub(crate) async fn run(
        &self,
        session: &QuerySession,
        interface: &'static str,
        sql: &str,
        params: Option<datafusion::common::ParamValues>,
    ) -> Result<GovernedStream, ServeError> {
        let permit = match self.admit(session.principal()) {
            Ok(permit) => permit,
            Err(refusal) => {
                self.metrics.query_refused(interface);
                self.audit_refusal(session.principal(), interface, sql, &refusal).await?;
                return Err(refusal);
            }
        };
        let mut timer = self.metrics.query_started(interface);
        tracing::info!(principal = %session.principal().name, interface, sql = %meshwork_query::normalise(sql), "query");
        match session.execute_with(sql, params).await {
            Ok(stream) => Ok(GovernedStream { stream, first: None, timer, deprecations: session.deprecations(), privacy: session.privacy_spent(), _permit: permit, _session: None }),
            Err(err) => {
                timer.finish("error");
                Err(err.into())
            }
        }
    }
}
