//! The PostgreSQL wire protocol server (pgwire), with `pg_catalog` from datafusion-postgres.
//!
//! A connection authenticates with its password, which is an API token or a JWT (the user name
//! is not used: the credential names the principal). It then gets its own query session, so
//! `pg_catalog`, `information_schema` and `\dt` list only what the principal may read, and every
//! statement runs through the gate like on the other interfaces. `SET`/`SHOW` and transaction
//! statements that drivers send are answered by hooks (ours for the version, `SHOW` and
//! savepoints, then datafusion-postgres's), and SQL drivers send is rewritten to PostgreSQL's
//! meaning before it is planned (`rewrite.rs`); `COPY … TO STDOUT` (`copy`) and cursors
//! (`cursor`) run their query through the gate too; every engine setting is refused because it
//! would change the engine.
//!
//! A connection does not keep the rights it connected with: before every statement (simple or
//! extended protocol, a prepared statement included) its credential is authenticated again, so
//! a revoked or expired token or JWT ends the connection, and its session is reopened when the
//! principal or the catalog's generation changed (an apply, a publication), so a removed
//! membership or a narrowed access block applies to the next statement.

mod catalog;
mod copy;
mod cursor;
mod encode;
mod execute;
mod link;
mod params;
mod rewrite;
mod search_path;
mod settings;
mod show;
mod transaction;
mod version;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, into_pg_type};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt, StreamExt};
use meshwork_auth::Credential;
use meshwork_core::lifecycle::Deprecation;
use meshwork_core::principal::Principal;
use meshwork_query::{CATALOG_NAME, QuerySession};
use pgwire::api::auth::{LoginInfo, StartupHandler, finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::simplequery::Query;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::error::ServeError;
use crate::gate::Gate;
use crate::metrics::GaugeGuard;
use crate::pool::Opened;
use execute::Answer;
use link::{ClientLink, Interruption, Links, Registration};

const INTERFACE: &str = "postgres";

/// A statement as parsed: the SQL, and its AST and plan (for types). The same shape as
/// datafusion-postgres uses, so its hooks can read the portal store.
type PgStatement = (String, Option<(Statement, LogicalPlan)>);

/// A governed query's batches as they stream, ended by a cancel request or the client going
/// away.
type Batches = std::pin::Pin<Box<dyn futures::Stream<Item = PgWireResult<RecordBatch>> + Send>>;

pub(crate) async fn serve(gate: Arc<Gate>, listener: TcpListener, mut stop: watch::Receiver<bool>) -> Result<(), ServeError> {
    tracing::info!(address = %listener.local_addr()?, "Postgres wire listening");
    let links = Arc::new(Links::default());
    let queries = Arc::new(PgQueries { gate: gate.clone(), parser: Arc::new(PgParser { gate: gate.clone(), sql: Arc::new(PostgresCompatibilityParser::new()), rules: Arc::new(rewrite::rules()) }) });
    let cancel = Arc::new(PgCancel { links: links.clone() });
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let (socket, watcher) = match with_watcher(socket) {
                        Ok(pair) => pair,
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot take a Postgres connection");
                            continue;
                        }
                    };
                    // Handlers per connection: the startup handler hands this connection its link.
                    let handlers = PgHandlers {
                        queries: queries.clone(),
                        startup: Arc::new(PgStartup { gate: gate.clone(), links: links.clone(), link: Mutex::new(Some(ClientLink::new(watcher))) }),
                        cancel: cancel.clone(),
                    };
                    let id = crate::request_id();
                    connections.spawn(tracing::Instrument::instrument(
                        async move {
                            if let Err(err) = pgwire::tokio::process_socket(socket, None, handlers).await {
                                tracing::debug!(error = %err, "connection ended with an error");
                            }
                        },
                        tracing::info_span!("postgres", connection = %id, peer = %peer),
                    ));
                }
                Err(err) => tracing::warn!(error = %err, "cannot accept a Postgres connection"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    // Idle connections are closed at once; connections running a query get the grace period
    // (the caller aborts this task, and with it the connections, when it ends).
    while gate.running_queries() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    connections.abort_all();
    Ok(())
}

/// The socket for pgwire and a duplicate of it for [`ClientLink`] to watch. If duplicating
/// fails (out of file descriptors), the connection is served without the watcher.
fn with_watcher(socket: TcpStream) -> std::io::Result<(TcpStream, Option<TcpStream>)> {
    let socket = socket.into_std()?;
    let watcher = socket.try_clone().and_then(TcpStream::from_std);
    if let Err(err) = &watcher {
        tracing::warn!(error = %err, "cannot watch a Postgres connection: a client going away will not stop its query");
    }
    Ok((TcpStream::from_std(socket)?, watcher.ok()))
}

struct PgHandlers {
    queries: Arc<PgQueries>,
    startup: Arc<PgStartup>,
    cancel: Arc<PgCancel>,
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Cancel requests: they arrive on a connection of their own and name another by its key.
struct PgCancel {
    links: Arc<Links>,
}

#[async_trait]
impl CancelHandler for PgCancel {
    async fn on_cancel_request(&self, request: pgwire::messages::cancel::CancelRequest) {
        self.links.cancel(&request);
    }
}

/// What a connection keeps once authenticated.
struct PgConnection {
    /// The password it authenticated with, presented again before every statement.
    credential: Secret,
    /// The session for the rights of its last statement; replaced when they change.
    current: Mutex<Arc<PgSession>>,
    link: Arc<ClientLink>,
    /// Warnings of the statements run since the last answer (deprecated products read), sent
    /// as `NoticeResponse`s before it: psql prints them as `WARNING:`.
    notices: Mutex<Vec<String>>,
    _registration: Registration,
    _open: GaugeGuard,
}

/// A credential kept for re-authentication; never printed.
struct Secret(String);

impl Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A query session with `pg_catalog`, opened for one principal at one catalog generation.
struct PgSession {
    session: QuerySession,
    /// What it was opened for; it serves a statement only while a new session would decide the
    /// same (the pool's rule, `Opened::serves`).
    opened: Opened,
    _open: GaugeGuard,
}

impl PgSession {
    async fn open(gate: &Gate, principal: Principal, generation: i64) -> PgWireResult<PgSession> {
        let session = gate.open_session(&principal, INTERFACE).await.map_err(serve_error)?;
        catalog::install(&session, gate.engine().catalog().as_ref())
            .await
            .map_err(|e| user_error("FATAL", "XX000", format!("cannot set up pg_catalog: {e}")))?;
        version::register(session.context());
        rewrite::like_escape::register(session.context());
        rewrite::scalar_subquery::register(session.context());
        rewrite::bool_literal::register(session.context()).map_err(|e| user_error("FATAL", "XX000", format!("cannot set up the Postgres session: {e}")))?;
        let opened = Opened::new(principal, INTERFACE, generation, session.valid_until());
        Ok(PgSession { session, opened, _open: gate.metrics().session_opened(INTERFACE) })
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // datafusion-postgres's `pg_catalog` holds the session's catalog list, which holds
        // `pg_catalog`: a reference cycle that kept every session (its tables and several MiB of
        // `pg_catalog` data) alive after its connection closed. Removing the schema breaks it.
        if let Some(catalog) = self.session.context().catalog(CATALOG_NAME)
            && let Err(err) = catalog.deregister_schema("pg_catalog", true)
        {
            tracing::warn!(error = %err, "cannot release a Postgres session's pg_catalog");
        }
    }
}

impl PgConnection {
    /// The session to run the next statement in, for the rights the credential has now: it is
    /// authenticated again (a revoked or expired credential fails, FATAL), and the session is
    /// reopened when the principal (its groups, domains, attributes) or the catalog's generation
    /// (an apply, a publication, an approved or revoked access request since) changed, a new day
    /// began (a sunset may have passed) or one of the principal's grants ended.
    async fn session(&self, gate: &Gate) -> PgWireResult<Arc<PgSession>> {
        let generation = gate.engine().catalog().generation().await.map_err(|e| serve_error(e.into()))?;
        let who = gate.authenticate(Credential(Some(&self.credential.0)), INTERFACE).await.map_err(serve_error)?;
        let current = self.current.lock().expect("session lock").clone();
        if current.opened.serves(&Opened::new(who.principal.clone(), INTERFACE, generation, None), chrono::Utc::now()) {
            return Ok(current);
        }
        tracing::info!(principal = %who.principal.name, generation, "Postgres session reopened: rights or publications changed");
        let fresh = Arc::new(PgSession::open(gate, who.principal, generation).await?);
        *self.current.lock().expect("session lock") = fresh.clone();
        Ok(fresh)
    }
}

fn user_error(severity: &str, code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(severity.to_owned(), code.to_owned(), message.into())))
}

fn serve_error(err: ServeError) -> PgWireError {
    let severity = if err.code() == meshwork_query::ErrorCode::Unauthenticated { "FATAL" } else { "ERROR" };
    user_error(severity, err.sqlstate(), err.client_message())
}

/// Password authentication: the password is the credential.
struct PgStartup {
    gate: Arc<Gate>,
    links: Arc<Links>,
    /// This connection's link, taken when it authenticates.
    link: Mutex<Option<ClientLink>>,
}

#[async_trait]
impl StartupHandler for PgStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = LoginInfo::from_client_info(client).user().unwrap_or_default().to_owned();
                let generation = self.gate.engine().catalog().generation().await.map_err(|e| serve_error(e.into()))?;
                let who = self.gate.authenticate(Credential(Some(password.password.as_str())), INTERFACE).await.map_err(serve_error)?;
                tracing::info!(principal = %who.principal.name, user, "Postgres connection authenticated");
                let parameters = version::server_parameters(&who.principal);
                let session = PgSession::open(&self.gate, who.principal, generation).await?;
                let link = Arc::new(self.link.lock().expect("link lock").take().unwrap_or_else(|| ClientLink::new(None)));
                // Cancel requests find the connection by its pid and secret key.
                let (pid, secret) = (rand::random::<i32>().abs(), pgwire::messages::startup::SecretKey::I32(rand::random::<i32>()));
                client.set_pid_and_secret_key(pid, secret.clone());
                client.session_extensions().insert(PgConnection {
                    credential: Secret(password.password),
                    current: Mutex::new(Arc::new(session)),
                    _registration: self.links.register(pid, &secret, &link),
                    link,
                    notices: Mutex::new(Vec::new()),
                    _open: self.gate.metrics().connection_opened(INTERFACE),
                });
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Sends the warnings collected since the last answer as `NoticeResponse`s (SQLSTATE 01P01,
/// `deprecated_feature`), before the answer they belong to.
async fn flush_notices<C>(client: &mut C) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let Ok(conn) = connection(client) else { return Ok(()) };
    let notices = std::mem::take(&mut *conn.notices.lock().expect("notices lock"));
    for notice in notices {
        let info = ErrorInfo::new("WARNING".into(), "01P01".into(), notice);
        client.feed(PgWireBackendMessage::NoticeResponse(info.into())).await?;
    }
    Ok(())
}

fn connection<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<PgConnection>> {
    client.session_extensions().get::<PgConnection>().ok_or_else(|| user_error("FATAL", "08003", "the connection is not authenticated"))
}

/// Parses statements with datafusion-postgres's compatibility rewrites and plans them in the
/// connection's session, for parameter and result types.
struct PgParser {
    gate: Arc<Gate>,
    sql: Arc<PostgresCompatibilityParser>,
    /// Our rewrites, after datafusion-postgres's and the catalog's (`rewrite.rs`).
    rules: Arc<Vec<Arc<dyn SqlStatementRewriteRule>>>,
}

impl PgParser {
    /// Parses on a planner thread and refuses statements too long or too deeply nested there,
    /// so that no tree deep enough to overflow an async worker's stack (printing or dropping it
    /// recurses once per level) ever reaches one.
    async fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        meshwork_query::check_length(sql).map_err(|e| serve_error(e.into()))?;
        let (parser, rules, sql) = (self.sql.clone(), self.rules.clone(), sql.to_owned());
        meshwork_query::on_planner_thread(move || -> PgWireResult<Vec<Statement>> {
            let statements = parser.parse(&sql).map_err(|e| match e {
                ParserError::RecursionLimitExceeded => serve_error(meshwork_query::recursion_refusal().into()),
                other => user_error("ERROR", "42601", other.to_string()),
            })?;
            let statements: Vec<Statement> = statements.into_iter().map(catalog::rewrite).map(|statement| rewrite::apply(&rules, statement)).collect();
            for statement in &statements {
                meshwork_query::check_nesting(statement).map_err(|e| serve_error(e.into()))?;
            }
            Ok(statements)
        })
        .await
        .map_err(|e| serve_error(e.into()))?
    }
}

/// Refuses statements that would bypass the gate or change the engine under the session.
fn refuse(statement: &Statement) -> Option<PgWireError> {
    if let Err(refused) = settings::check(statement) {
        return Some(user_error("ERROR", "42501", refused.message()));
    }
    None
}

/// A plan with the columns of `schema` and no rows: what Describe reports for statements
/// answered here rather than planned (`COPY`, `FETCH`, `CLOSE`).
fn described(schema: Option<SchemaRef>) -> PgWireResult<LogicalPlan> {
    let schema = match schema {
        Some(schema) => datafusion::common::DFSchema::try_from(schema.as_ref().clone()).map_err(|e| user_error("ERROR", "XX000", e.to_string()))?,
        None => datafusion::common::DFSchema::empty(),
    };
    Ok(LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation { produce_one_row: false, schema: Arc::new(schema) }))
}

/// `RESET` of a client setting: accepted, and nothing to do (the hooks keep no defaults).
fn reset_response(statement: &Statement) -> Option<Response> {
    matches!(statement, Statement::Reset(_)).then(|| Response::Execution(Tag::new("RESET")))
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.parse_one(client, sql).await.map_err(|err| failed(sql, err))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        match stmt {
            (_, Some((_, plan))) => parameter_types(plan)?.iter().map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type)).collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn get_result_schema(&self, stmt: &PgStatement, column_format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        match stmt {
            (_, Some((Statement::Declare { .. }, _))) => Ok(Vec::new()),
            (_, Some((_, plan))) => arrow_schema_to_pg_fields(&rewrite::wire_schema(plan.schema().as_arrow()), column_format.unwrap_or(&Format::UnifiedText), None),
            _ => Ok(Vec::new()),
        }
    }
}

impl PgParser {
    /// Parses and plans one statement of the extended protocol.
    async fn parse_one<C: ClientInfo + Unpin + Send + Sync>(&self, client: &C, sql: &str) -> PgWireResult<Option<PgStatement>> {
        let mut statements = self.parse(sql).await?;
        if statements.is_empty() {
            return Ok(None);
        }
        // As PostgreSQL does: a prepared statement is one statement. Running the first and
        // dropping the rest would hide from the client what it asked for.
        if statements.len() > 1 {
            return Err(user_error("ERROR", "42601", "cannot insert multiple commands into a prepared statement; send one statement per query"));
        }
        let statement = statements.remove(0);
        if let Some(err) = refuse(&statement) {
            return Err(err);
        }
        let text = statement.to_string();
        let conn = connection(client)?;
        let current = conn.session(&self.gate).await?;
        search_path::apply(current.session.context(), client.metadata());
        if reset_response(&statement).is_some() {
            return Ok(Some((text, Some((statement, described(None)?)))));
        }
        // COPY is checked here, so a refused one fails at Parse; it has no result columns.
        if let Some(request) = copy::request(&statement) {
            request?;
            return Ok(Some((text, Some((statement, described(None)?)))));
        }
        match cursor::statement(&statement).transpose()? {
            // The cursor's query is planned for its parameter types; DECLARE itself has no columns.
            Some(cursor::CursorStatement::Declare(declaration)) => {
                let plan = current.session.sql(&declaration.sql).await.map_err(|e| serve_error(e.into()))?.logical_plan().clone();
                return Ok(Some((text, Some((statement, plan)))));
            }
            Some(cursor::CursorStatement::Fetch { name, .. }) => {
                let plan = described(execute::cursors(client).schema(&name))?;
                return Ok(Some((text, Some((statement, plan)))));
            }
            Some(cursor::CursorStatement::Close(_)) => return Ok(Some((text, Some((statement, described(None)?))))),
            None => {}
        }
        for hook in hooks() {
            if let Some(plan) = hook.handle_extended_parse_query(&statement, current.session.context(), client).await {
                return Ok(Some((text, Some((statement, plan?)))));
            }
        }
        let frame = current.session.sql(&text).await.map_err(|e| serve_error(e.into()))?;
        let plan = frame.logical_plan().clone();
        Ok(Some((text, Some((statement, plan)))))
    }
}

/// Logs a statement that failed with the error its client gets, in the connection's span:
/// whoever runs a driver against the server needs to see why it failed. The statement is
/// normalised as the gate logs it; credentials never travel in statements.
fn failed(sql: &str, err: PgWireError) -> PgWireError {
    match &err {
        PgWireError::UserError(info) => tracing::info!(sql = %meshwork_query::normalise(sql), code = %info.code, error = %info.message, "statement failed"),
        other => tracing::info!(sql = %meshwork_query::normalise(sql), error = %other, "statement failed"),
    }
    err
}

/// Placeholder types ordered `$1`, `$2`, ….
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    meshwork_query::parameter_types(plan).map_err(|e| user_error("ERROR", "42P18", e.to_string()))
}

/// Statements answered without planning, first hook first: savepoints and the failed-block
/// state (`transaction.rs`) before everything, our `SHOW` answers before datafusion-postgres's.
fn hooks() -> [Arc<dyn QueryHook>; 5] {
    [Arc::new(transaction::SavepointHook), Arc::new(show::ShowHook), Arc::new(search_path::SearchPathHook), Arc::new(SetShowHook), Arc::new(TransactionStatementHook)]
}

/// Simple and extended query handling over the connection's session.
struct PgQueries {
    gate: Arc<Gate>,
    parser: Arc<PgParser>,
}

impl PgQueries {
    /// Runs one query through the gate in `current`: its columns and its batches as they
    /// stream. A cancel request or the client going away stops it, while its first batch is
    /// computed or later while it streams; dropping the stream records it as `cancelled`.
    async fn start<C: ClientInfo + ?Sized>(&self, client: &C, current: &PgSession, sql: &str, params: Option<ParamValues>) -> PgWireResult<(SchemaRef, Batches)> {
        let conn = connection(client)?;
        let mark = conn.link.mark();
        let mut stream = self.gate.run(&current.session, INTERFACE, sql, params).await.map_err(serve_error)?;
        // Computing up to the first row happens here, so an error is reported before any row
        // description is sent.
        tokio::select! {
            primed = stream.prime() => primed.map_err(serve_error)?,
            why = conn.link.interrupted(mark) => return Err(interruption_error(why)),
        }
        // Only a statement that answers carries its warnings (sent before its answer).
        conn.notices.lock().expect("notices lock").extend(stream.deprecations().iter().map(Deprecation::warning));
        conn.notices.lock().expect("notices lock").extend(stream.privacy().iter().map(meshwork_query::PrivacySpent::notice));
        let schema = stream.schema();
        let link = conn.link.clone();
        let interrupted = Box::pin(async move { link.interrupted(mark).await });
        let batches = futures::stream::unfold((Some(stream), interrupted), |(stream, mut interrupted)| async move {
            let mut stream = stream?;
            tokio::select! {
                // The statement ends here: dropping its stream stops DataFusion's tasks.
                why = &mut interrupted => Some((Err(interruption_error(why)), (None, interrupted))),
                batch = stream.next() => batch.map(|batch| (batch.map_err(|e| serve_error(e.into())), (Some(stream), interrupted))),
            }
        });
        // Fused: a cursor asks again after the end.
        Ok((schema, Box::pin(batches.fuse())))
    }

    /// Runs one query through the gate and answers with its rows as they stream.
    async fn query<C: ClientInfo + ?Sized>(&self, client: &C, current: &PgSession, sql: &str, params: Option<ParamValues>, format: &Format) -> PgWireResult<Response> {
        let (schema, batches) = self.start(client, current, sql, params).await?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(&rewrite::wire_schema(&schema), format, Some(options))?);
        let mut encoder = encode::RowEncoder::new(fields.clone());
        let sql = sql.to_owned();
        let rows = batches
            .map(move |batch| -> Box<dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync> {
                match batch {
                    Ok(batch) => encoder.items(&batch),
                    Err(err) => Box::new(std::iter::once(Err(failed(&sql, err)))),
                }
            })
            .flat_map(futures::stream::iter);
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }

    /// `COPY … TO STDOUT` and the cursor statements, their queries run through the gate like
    /// [`PgQueries::query`]; `None` for any other statement. `format`: the Bind's result
    /// format (extended protocol).
    async fn copy_or_cursor<C: ClientInfo + ?Sized>(&self, client: &C, current: &PgSession, statement: &Statement, params: Option<ParamValues>, format: Option<&Format>) -> PgWireResult<Option<Answer>> {
        if let Some(request) = copy::request(statement) {
            let request = request?;
            let (schema, batches) = self.start(client, current, &request.sql, None).await?;
            return Ok(Some(Answer::Copy { format: request.format, schema, batches }));
        }
        let Some(statement) = cursor::statement(statement).transpose()? else { return Ok(None) };
        let cursors = execute::cursors(client);
        let response = match statement {
            cursor::CursorStatement::Declare(declaration) => {
                if client.transaction_status() == TransactionStatus::Idle {
                    return Err(user_error("ERROR", "25P01", "DECLARE CURSOR can only be used in transaction blocks; send BEGIN first"));
                }
                let (schema, batches) = self.start(client, current, &declaration.sql, params).await?;
                cursors.declare(&declaration, schema, batches)?;
                Response::Execution(Tag::new("DECLARE CURSOR"))
            }
            cursor::CursorStatement::Fetch { name, count } => {
                let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                Response::Query(cursors.fetch(&name, count, format, options).await?)
            }
            cursor::CursorStatement::Close(name) => {
                cursors.close(name.as_deref())?;
                Response::Execution(Tag::new(if name.is_some() { "CLOSE CURSOR" } else { "CLOSE CURSOR ALL" }))
            }
        };
        Ok(Some(Answer::Response(response)))
    }

    /// Answers one statement of a simple query.
    async fn simple_statement<C>(&self, client: &mut C, statement: &Statement) -> PgWireResult<Answer>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(err) = refuse(statement) {
            return Err(err);
        }
        let conn = connection(client)?;
        let current = conn.session(&self.gate).await?;
        search_path::apply(current.session.context(), client.metadata());
        if let Some(response) = reset_response(statement) {
            return Ok(response.into());
        }
        for hook in hooks() {
            if let Some(response) = hook.handle_simple_query(statement, current.session.context(), client).await {
                return Ok(response?.into());
            }
        }
        if let Some(answer) = self.copy_or_cursor(client, &current, statement, None, None).await? {
            return Ok(answer);
        }
        Ok(self.query(client, &current, &statement.to_string(), None, &Format::UnifiedText).await?.into())
    }

    /// Answers the statement of a portal (extended protocol), with its bound parameters.
    async fn extended_statement<C>(&self, client: &mut C, portal: &Portal<PgStatement>) -> PgWireResult<Answer>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (sql, Some((statement, plan))) = &portal.statement.statement else { return Ok(Response::EmptyQuery.into()) };
        let types = parameter_types(plan)?;
        let wire: Vec<Type> = types.iter().map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type)).collect::<PgWireResult<_>>()?;
        let type_refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
        let wire_refs: Vec<Option<&Type>> = wire.iter().map(Some).collect();
        let decoded = deserialize_parameters_with_server_types(portal, &type_refs, &wire_refs).map_err(|err| params::refusal(portal, &types).unwrap_or(err))?;
        let params = params::text_arrays(portal, decoded);
        let conn = connection(client)?;
        // A statement prepared earlier runs with the rights the credential has now.
        let current = conn.session(&self.gate).await?;
        search_path::apply(current.session.context(), client.metadata());
        if let Some(response) = reset_response(statement) {
            return Ok(response.into());
        }
        for hook in hooks() {
            if let Some(response) = hook.handle_extended_query(statement, plan, &params, current.session.context(), client).await {
                return Ok(response?.into());
            }
        }
        let params = if types.is_empty() { None } else { Some(params) };
        if let Some(answer) = self.copy_or_cursor(client, &current, statement, params.clone(), Some(&portal.result_column_format)).await? {
            if let Some(Ok(cursor::CursorStatement::Declare(declaration))) = cursor::statement(statement) {
                cursor_portal(client, &declaration)?;
            }
            return Ok(answer);
        }
        Ok(self.query(client, &current, sql, params, &portal.result_column_format).await?.into())
    }
}

/// A declared cursor as a portal of its name, as PostgreSQL has it: drivers describe it
/// (`Describe P 'name'`, psycopg) to learn its columns before fetching. Executing it answers
/// nothing; its rows come with `FETCH`.
fn cursor_portal<C>(client: &C, declaration: &cursor::Declaration) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore,
    C::PortalStore: PortalStore<Statement = PgStatement>,
{
    let schema = execute::cursors(client).schema(&declaration.name);
    let statement = (declaration.sql.clone(), Some((Statement::Query(declaration.query.clone()), described(schema)?)));
    let mut portal = Portal::new_cursor(declaration.name.clone(), Arc::new(StoredStatement::new(declaration.name.clone(), statement, Vec::new())));
    if declaration.binary {
        portal.result_column_format = Format::UnifiedBinary;
    }
    portal.state = Arc::new(tokio::sync::Mutex::new(PortalExecutionState::Finished));
    client.portal_store().put_portal(Arc::new(portal));
    Ok(())
}

/// The error a client sees when its statement was interrupted (a client that went away sees
/// nothing).
fn interruption_error(why: Interruption) -> PgWireError {
    match why {
        Interruption::Cancelled => user_error("ERROR", "57014", "canceling statement due to user request"),
        Interruption::Gone => user_error("FATAL", "08006", "the client closed the connection"),
    }
}

#[async_trait]
impl SimpleQueryHandler for PgQueries {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        execute::simple(self, client, query).await
    }

    /// Not called: [`execute::simple`] answers each statement as it runs.
    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(user_error("ERROR", "XX000", "internal error: simple queries are answered by on_query"))
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgQueries {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        self.parser.clone()
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        execute::extended(self, client, message).await
    }

    /// Not called: [`execute::extended`] runs portals and streams their rows.
    async fn do_query<C>(&self, _client: &mut C, _portal: &Portal<PgStatement>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(user_error("ERROR", "XX000", "internal error: portals are run by on_execute"))
    }
}
