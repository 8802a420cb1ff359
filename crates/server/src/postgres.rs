//! The PostgreSQL wire protocol server (pgwire), with `pg_catalog` from datafusion-postgres.
//!
//! A connection authenticates with its password, which is an API token or a JWT (the user name
//! is not used: the credential names the principal). It then gets its own query session, so
//! `pg_catalog`, `information_schema` and `\dt` list only what the principal may read, and every
//! statement runs through the gate like on the other interfaces. `SET`/`SHOW` and transaction
//! statements that drivers send are answered by datafusion-postgres's hooks; cursors and
//! `SET datafusion.*` are refused because they would bypass the gate or change the engine.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt, StreamExt};
use meshwork_auth::Credential;
use meshwork_query::{CATALOG_NAME, QuerySession};
use pgwire::api::auth::{DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, PgWireConnectionState, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::ServeError;
use crate::gate::Gate;

const INTERFACE: &str = "postgres";

/// A statement as parsed: the SQL, and its AST and plan (for types). The same shape as
/// datafusion-postgres uses, so its hooks can read the portal store.
type PgStatement = (String, Option<(Statement, LogicalPlan)>);

pub(crate) async fn serve(gate: Arc<Gate>, listener: TcpListener, mut stop: watch::Receiver<bool>) -> Result<(), ServeError> {
    tracing::info!(address = %listener.local_addr()?, "Postgres wire listening");
    let manager = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(PgHandlers {
        queries: Arc::new(PgQueries { gate: gate.clone(), parser: Arc::new(PgParser { sql: Arc::new(PostgresCompatibilityParser::new()) }) }),
        startup: Arc::new(PgStartup { gate: gate.clone(), manager: manager.clone() }),
        cancel: Arc::new(DefaultCancelHandler::new(manager)),
    });
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let handlers = handlers.clone();
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

struct PgHandlers {
    queries: Arc<PgQueries>,
    startup: Arc<PgStartup>,
    cancel: Arc<DefaultCancelHandler>,
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

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// What a connection keeps once authenticated.
struct PgConnection {
    session: QuerySession,
}

fn user_error(severity: &str, code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(severity.to_owned(), code.to_owned(), message.into())))
}

fn serve_error(err: ServeError) -> PgWireError {
    let severity = if err.code() == "unauthenticated" { "FATAL" } else { "ERROR" };
    user_error(severity, err.sqlstate(), err.client_message())
}

/// Password authentication: the password is the credential.
struct PgStartup {
    gate: Arc<Gate>,
    manager: Arc<ConnectionManager>,
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
                let who = self.gate.authenticate(Credential(Some(password.password.as_str())), INTERFACE).await.map_err(serve_error)?;
                tracing::info!(principal = %who.principal.name, user, "Postgres connection authenticated");
                let session = self.gate.session(&who.principal, INTERFACE).await.map_err(serve_error)?;
                setup_pg_catalog(session.context(), CATALOG_NAME, EmptyContextProvider)
                    .map_err(|e| user_error("FATAL", "XX000", format!("cannot set up pg_catalog: {e}")))?;
                client.session_extensions().insert(PgConnection { session });
                // Cancel requests find the connection by its pid and secret key.
                let (pid, secret) = (rand::random::<i32>().abs(), pgwire::messages::startup::SecretKey::I32(rand::random::<i32>()));
                client.set_pid_and_secret_key(pid, secret.clone());
                let (handle, guard) = self.manager.register(pid, secret);
                client.session_extensions().insert(handle);
                client.session_extensions().insert(guard);
                finish_authentication(client, &DefaultServerParameterProvider::default()).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn connection<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<PgConnection>> {
    client.session_extensions().get::<PgConnection>().ok_or_else(|| user_error("FATAL", "08003", "the connection is not authenticated"))
}

/// Parses statements with datafusion-postgres's compatibility rewrites and plans them in the
/// connection's session, for parameter and result types.
struct PgParser {
    sql: Arc<PostgresCompatibilityParser>,
}

impl PgParser {
    /// Parses on a planner thread and refuses statements too long or too deeply nested there,
    /// so that no tree deep enough to overflow an async worker's stack (printing or dropping it
    /// recurses once per level) ever reaches one.
    async fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        meshwork_query::check_length(sql).map_err(|e| serve_error(e.into()))?;
        let (parser, sql) = (self.sql.clone(), sql.to_owned());
        meshwork_query::on_planner_thread(move || -> PgWireResult<Vec<Statement>> {
            let statements = parser.parse(&sql).map_err(|e| match e {
                ParserError::RecursionLimitExceeded => serve_error(meshwork_query::recursion_refusal().into()),
                other => user_error("ERROR", "42601", other.to_string()),
            })?;
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
    let text = statement.to_string();
    let lower = text.to_ascii_lowercase();
    match statement {
        Statement::Set(_) if lower.contains("datafusion.") => {
            Some(user_error("ERROR", "42501", "`SET datafusion.*` is not allowed: engine settings are fixed by the server"))
        }
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
            Some(user_error("ERROR", "0A000", "cursors are not supported; run the query and read its rows as they stream"))
        }
        _ => None,
    }
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql).await?;
        if statements.is_empty() {
            return Ok(None);
        }
        let statement = statements.remove(0);
        if let Some(err) = refuse(&statement) {
            return Err(err);
        }
        let text = statement.to_string();
        let conn = connection(client)?;
        for hook in hooks() {
            if let Some(plan) = hook.handle_extended_parse_query(&statement, conn.session.context(), client).await {
                return Ok(Some((text, Some((statement, plan?)))));
            }
        }
        let frame = conn.session.sql(&text).await.map_err(|e| serve_error(e.into()))?;
        let plan = frame.logical_plan().clone();
        Ok(Some((text, Some((statement, plan)))))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        match stmt {
            (_, Some((_, plan))) => parameter_types(plan)?.iter().map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type)).collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn get_result_schema(&self, stmt: &PgStatement, column_format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        match stmt {
            (_, Some((_, plan))) => arrow_schema_to_pg_fields(plan.schema().as_arrow(), column_format.unwrap_or(&Format::UnifiedText), None),
            _ => Ok(Vec::new()),
        }
    }
}

/// Placeholder types ordered `$1`, `$2`, ….
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    meshwork_query::parameter_types(plan).map_err(|e| user_error("ERROR", "42P18", e.to_string()))
}

fn hooks() -> [Arc<dyn QueryHook>; 2] {
    [Arc::new(SetShowHook), Arc::new(TransactionStatementHook)]
}

/// Simple and extended query handling over the connection's session.
struct PgQueries {
    gate: Arc<Gate>,
    parser: Arc<PgParser>,
}

impl PgQueries {
    /// Runs one statement through the gate and answers with its rows as they stream.
    async fn query<C: ClientInfo + ?Sized>(&self, client: &C, sql: &str, params: Option<ParamValues>, format: &Format) -> PgWireResult<Response> {
        let conn = connection(client)?;
        let mut stream = self.gate.run(&conn.session, INTERFACE, sql, params).await.map_err(serve_error)?;
        // Computing up to the first row happens here, where a cancel request can interrupt it
        // and an error is reported before any row description is sent.
        stream.prime().await.map_err(serve_error)?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(&stream.schema(), format, Some(options))?);
        let row_fields = fields.clone();
        let rows = stream
            .map(move |batch| -> Box<dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync> {
                match batch {
                    Ok(batch) => encode_recordbatch(row_fields.clone(), batch),
                    Err(err) => Box::new(std::iter::once(Err(serve_error(err.into())))),
                }
            })
            .flat_map(futures::stream::iter);
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }
}

#[async_trait]
impl SimpleQueryHandler for PgQueries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parser.parse(query).await?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let conn = connection(client)?;
        let mut responses = Vec::with_capacity(statements.len());
        'statements: for statement in statements {
            if let Some(err) = refuse(&statement) {
                return Err(err);
            }
            for hook in hooks() {
                if let Some(response) = hook.handle_simple_query(&statement, conn.session.context(), client).await {
                    responses.push(response?);
                    continue 'statements;
                }
            }
            responses.push(self.query(client, &statement.to_string(), None, &Format::UnifiedText).await?);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgQueries {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        self.parser.clone()
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<PgStatement>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (sql, Some((statement, plan))) = &portal.statement.statement else { return Ok(Response::EmptyQuery) };
        let types = parameter_types(plan)?;
        let wire: Vec<Type> = types.iter().map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type)).collect::<PgWireResult<_>>()?;
        let type_refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
        let wire_refs: Vec<Option<&Type>> = wire.iter().map(Some).collect();
        let params = deserialize_parameters_with_server_types(portal, &type_refs, &wire_refs)?;
        let conn = connection(client)?;
        for hook in hooks() {
            if let Some(response) = hook.handle_extended_query(statement, plan, &params, conn.session.context(), client).await {
                return response;
            }
        }
        let params = if types.is_empty() { None } else { Some(params) };
        self.query(client, sql, params, &portal.result_column_format).await
    }
}

