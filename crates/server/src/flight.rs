//! The Arrow Flight SQL server: statements, prepared statements, metadata, streamed results.
//!
//! Every call authenticates its `authorization` header (`Bearer <token>`, or `Basic` with the
//! token as password, which is what ADBC sends for `username`/`password`). Statement tickets
//! and prepared statement handles are signed with a per-process key and name the principal
//! that created them: a ticket replayed by another principal is refused as not found.
//!
//! Statements take `$1`, `$2`, … or `?` placeholders (what the Flight SQL JDBC driver sends),
//! numbered by the query layer in the parsed statement. Catalog answers are built from the
//! principal's session, so they list only what it may read.

mod metadata;
mod planned;
mod sql_info;
mod types;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo,
    CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandStatementQuery, DoPutPreparedStatementResult,
    ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use futures::{Stream, StreamExt, TryStreamExt};
use hmac::{Hmac, Mac};
use meshwork_auth::{Credential, Identity};
use meshwork_core::lifecycle::Deprecation;
use meshwork_query::{CATALOG_NAME, Placeholders};
use prost::Message;
use sha2::Sha256;
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ServeError;
use crate::pool::{Opened, PooledSession};
use crate::gate::Gate;
use crate::http::DEPRECATION_METADATA;
use metadata::VisibleTable;

const INTERFACE: &str = "flight_sql";
/// Response header carrying one deprecation warning per deprecated product a statement read.
pub(crate) const DEPRECATION_HEADER: &str = "x-meshwork-deprecation";


/// How long a statement ticket or prepared statement handle stays valid.
const HANDLE_LIFETIME_SECS: i64 = 24 * 3600;

pub(crate) async fn serve(gate: Arc<Gate>, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    tracing::info!(address = %listener.local_addr()?, "Flight SQL listening");
    let incoming = tokio_stream_from(listener);
    let service = FlightServiceServer::new(MeshFlightSql { gate, planned: Arc::default() }).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
    tonic::transport::Server::builder()
        // Every call gets a request id in its log lines, like HTTP requests.
        .trace_fn(|request| tracing::info_span!("flight_sql", request_id = %crate::request_id(), path = %request.uri().path()))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| ServeError::Internal(format!("Flight SQL server: {e}")))
}

fn tokio_stream_from(listener: TcpListener) -> impl Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

/// The Flight SQL service over the gate.
#[derive(Clone)]
struct MeshFlightSql {
    gate: Arc<Gate>,
    /// Schemas of statements just prepared, for the FlightInfo asked for next.
    planned: Arc<planned::PlannedSchemas>,
}

/// What a ticket or prepared statement handle carries; signed so clients cannot forge one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Handle {
    /// Principal that created it.
    principal: String,
    /// The statement.
    sql: String,
    /// Bound parameter values: one row, as an Arrow IPC stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<Vec<u8>>,
    /// Unix time after which it is refused.
    expires: i64,
    /// Random: no two handles are the same bytes, so each has its own planned schema.
    #[serde(default)]
    nonce: u64,
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

impl MeshFlightSql {
    async fn identity(&self, metadata: &MetadataMap) -> Result<Identity, Status> {
        let header = match metadata.get("authorization") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| ServeError::Unauthenticated(meshwork_auth::AuthError::Malformed))?),
        };
        let credential = match header {
            Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => basic_password(&h[6..])?,
            other => other.map(str::to_owned),
        };
        Ok(self.gate.authenticate(Credential::from_authorization(credential.as_deref()), INTERFACE).await?)
    }

    fn seal(&self, handle: &Handle) -> Vec<u8> {
        let body = serde_json::to_vec(handle).expect("handles serialize");
        let mut mac = Hmac::<Sha256>::new_from_slice(self.gate.ticket_key()).expect("any key length");
        mac.update(&body);
        let mut out = mac.finalize().into_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Checks a handle's signature, expiry and owner. Anything wrong reads as "not found", so a
    /// replayed ticket tells its holder nothing.
    fn open(&self, bytes: &[u8], who: &Identity) -> Result<Handle, Status> {
        let not_found = || Status::not_found("statement handle not found: it expired, belongs to another principal, or was issued by another server process; plan the statement again");
        if bytes.len() < 32 {
            return Err(not_found());
        }
        let (tag, body) = bytes.split_at(32);
        let mut mac = Hmac::<Sha256>::new_from_slice(self.gate.ticket_key()).expect("any key length");
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| not_found())?;
        let handle: Handle = serde_json::from_slice(body).map_err(|_| not_found())?;
        if handle.principal != who.principal.name || handle.expires < chrono::Utc::now().timestamp() {
            tracing::warn!(holder = %who.principal.name, "refused a Flight SQL handle issued to another principal or expired");
            return Err(not_found());
        }
        Ok(handle)
    }

    fn new_handle(&self, who: &Identity, sql: String, params: Option<Vec<u8>>) -> Vec<u8> {
        self.seal(&Handle { principal: who.principal.name.clone(), sql, params, expires: chrono::Utc::now().timestamp() + HANDLE_LIFETIME_SECS, nonce: rand::random() })
    }

    /// A session for `who`, its statements taking `?` as well as `$n` placeholders.
    async fn session(&self, who: &Identity) -> Result<PooledSession, Status> {
        let mut session = self.gate.session(&who.principal, INTERFACE).await?;
        session.set_placeholders(Placeholders::Positional);
        Ok(session)
    }

    /// Plans `sql` for `who` and describes its result (its schema with the deprecation warnings
    /// DoGet will stamp on the stream too), with what the session it was planned in was opened
    /// for.
    async fn plan(&self, who: &Identity, sql: &str) -> Result<(meshwork_query::PreparedStatement, Opened), Status> {
        let session = self.session(who).await?;
        let mut prepared = session.prepare(sql).await.map_err(ServeError::from)?;
        prepared.schema = Arc::new(with_deprecations(&prepared.schema, &prepared.deprecations));
        Ok((prepared, session.opened().clone()))
    }

    /// The result schema of a prepared statement with its bound values: `SELECT ?` takes the
    /// type of its value, and clients check that the stream has the schema announced.
    async fn bound_schema(&self, who: &Identity, handle: &Handle) -> Result<Schema, Status> {
        let session = self.session(who).await?;
        let mut frame = session.sql(&handle.sql).await.map_err(ServeError::from)?;
        if let Some(bytes) = &handle.params {
            frame = frame.with_param_values(decode_params(bytes)?).map_err(|e| ServeError::from(meshwork_query::QueryError::from(e)))?;
        }
        Ok(with_deprecations(frame.schema().as_arrow(), &session.deprecations_of(frame.logical_plan())))
    }

    fn flight_info(schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket { ticket: ticket.into() });
        Ok(FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_ordered(true))
    }

    /// Runs a statement and streams its batches as Flight data.
    async fn stream(&self, who: &Identity, handle: Handle) -> Result<Response<DoGetStream>, Status> {
        let params = match &handle.params {
            Some(bytes) => Some(decode_params(bytes)?),
            None => None,
        };
        let session = self.session(who).await?;
        let mut stream = self.gate.run(&session, INTERFACE, &handle.sql, params).await?.holding(session);
        stream.prime().await?;
        let warnings: Vec<String> = stream.deprecations().iter().map(Deprecation::warning).collect();
        let privacy: Vec<String> = stream.privacy().iter().map(meshwork_query::PrivacySpent::header).collect();
        // Deprecation warnings travel twice: as response headers for clients that read them,
        // and in the result schema's metadata (also in GetFlightInfo's), which every Arrow
        // client keeps.
        let stamp = !stream.deprecations().is_empty();
        let schema = Arc::new(with_deprecations(&stream.schema(), stream.deprecations()));
        let stamped = schema.clone();
        let batches = stream
            .map(move |batch| match stamp {
                true => batch.and_then(|b| b.with_schema(stamped.clone()).map_err(|e| meshwork_query::QueryError::Internal(e.to_string()))),
                false => batch,
            })
            .map_err(|e| FlightError::Tonic(Box::new(ServeError::from(e).to_status())));
        let data = FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from);
        let mut response = Response::new(Box::pin(data) as DoGetStream);
        for warning in warnings {
            if let Ok(value) = warning.parse() {
                response.metadata_mut().append(DEPRECATION_HEADER, value);
            }
        }
        for spent in privacy {
            if let Ok(value) = spent.parse() {
                response.metadata_mut().append("meshwork-privacy", value);
            }
        }
        Ok(response)
    }

    /// The products `who` may read, from its session's catalog (which holds nothing else), with
    /// their contracts; sorted by domain and name.
    async fn visible_tables(&self, who: &Identity) -> Result<Vec<VisibleTable>, Status> {
        let session = self.gate.session(&who.principal, INTERFACE).await?;
        let catalog = session.context().catalog(CATALOG_NAME).ok_or_else(|| Status::internal("the mesh catalog is missing"))?;
        let mut contracts = HashMap::new();
        for record in self.gate.engine().catalog().products().await.map_err(|e| ServeError::Internal(e.to_string()))? {
            contracts.insert((record.id.domain.to_string(), record.id.name.to_string()), record.descriptor.contract);
        }
        let mut out = Vec::new();
        for domain in catalog.schema_names() {
            let Some(schema) = catalog.schema(&domain) else { continue };
            for name in schema.table_names() {
                if let Ok(Some(provider)) = schema.table(&name).await {
                    let contract = contracts.remove(&(domain.clone(), name.clone()));
                    out.push(VisibleTable { domain: domain.clone(), name, schema: provider.schema(), contract });
                }
            }
        }
        out.sort_by(|a, b| (&a.domain, &a.name).cmp(&(&b.domain, &b.name)));
        Ok(out)
    }

    fn one_batch(schema: SchemaRef, batch: Result<RecordBatch, impl std::fmt::Display>) -> Result<Response<DoGetStream>, Status> {
        let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
        let stream = FlightDataEncoderBuilder::new().with_schema(schema).build(futures::stream::once(async { Ok(batch) })).map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    fn metadata_info(query: impl ProstMessageExt, schema: &Schema, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
        Ok(Response::new(Self::flight_info(schema, query.as_any().encode_to_vec(), descriptor)?))
    }
}

/// `schema` with the warnings of `deprecations` in its metadata (`meshwork.deprecation`, one per
/// line); unchanged when there are none.
fn with_deprecations(schema: &Schema, deprecations: &[Deprecation]) -> Schema {
    if deprecations.is_empty() {
        return schema.clone();
    }
    let mut metadata = schema.metadata().clone();
    metadata.insert(DEPRECATION_METADATA.into(), deprecations.iter().map(Deprecation::warning).collect::<Vec<_>>().join("\n"));
    schema.clone().with_metadata(metadata)
}

/// The password of an HTTP Basic credential: ADBC and JDBC send the token as the password.
fn basic_password(encoded: &str) -> Result<Option<String>, Status> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| Status::unauthenticated("malformed Basic credential"))?;
    let text = String::from_utf8(bytes).map_err(|_| Status::unauthenticated("malformed Basic credential"))?;
    Ok(text.split_once(':').map(|(_, password)| password.to_owned()))
}

fn encode_params(batch: &RecordBatch) -> Result<Vec<u8>, Status> {
    let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(|e| Status::internal(e.to_string()))?;
    writer.write(batch).and_then(|_| writer.finish()).map_err(|e| Status::internal(e.to_string()))?;
    writer.into_inner().map_err(|e| Status::internal(e.to_string()))
}

fn decode_params(bytes: &[u8]) -> Result<ParamValues, Status> {
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| Status::internal(e.to_string()))?;
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
        if batch.num_rows() == 0 {
            continue;
        }
        for column in batch.columns() {
            values.push(ScalarValue::try_from_array(column, 0).map_err(|e| Status::internal(e.to_string()))?);
        }
        break;
    }
    Ok(ParamValues::List(values.into_iter().map(Into::into).collect()))
}

#[tonic::async_trait]
impl FlightSqlService for MeshFlightSql {
    type FlightService = MeshFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let who = self.identity(request.metadata()).await?;
        // Clients send the token on every later call as `authorization: Bearer …`; echo the
        // credential they proved, normalised to a bearer header.
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let token = if header.len() > 6 && header[..6].eq_ignore_ascii_case("basic ") {
            basic_password(&header[6..])?.unwrap_or_default()
        } else {
            Credential::from_authorization(Some(&header)).0.unwrap_or_default().to_owned()
        };
        tracing::info!(principal = %who.principal.name, "Flight SQL handshake");
        let response = HandshakeResponse { protocol_version: 0, payload: token.clone().into_bytes().into() };
        let stream: Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>> = Box::pin(futures::stream::iter(vec![Ok(response)]));
        let mut response = Response::new(stream);
        if let Ok(value) = format!("Bearer {token}").parse() {
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(&self, query: CommandStatementQuery, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let who = self.identity(request.metadata()).await?;
        let (prepared, _) = self.plan(&who, &query.query).await?;
        let ticket = TicketStatementQuery { statement_handle: self.new_handle(&who, query.query, None).into() };
        Ok(Response::new(Self::flight_info(&prepared.schema, ticket.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_statement(&self, ticket: TicketStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let who = self.identity(request.metadata()).await?;
        let handle = self.open(&ticket.statement_handle, &who)?;
        self.stream(&who, handle).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let who = self.identity(request.metadata()).await?;
        let (prepared, opened) = self.plan(&who, &query.query).await?;
        let options = IpcWriteOptions::default();
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&prepared.schema, &options).try_into().map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
        let parameter_schema = if prepared.parameters.is_empty() {
            Default::default()
        } else {
            let fields: Vec<Field> = prepared
                .parameters
                .iter()
                .enumerate()
                // A placeholder whose type SQL does not imply (`SELECT ?`) takes text.
                .map(|(i, t)| Field::new(format!("${}", i + 1), t.clone().unwrap_or(DataType::Utf8), true))
                .collect();
            let IpcMessage(bytes) =
                SchemaAsIpc::new(&Schema::new(fields), &options).try_into().map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
            bytes
        };
        let handle = self.new_handle(&who, query.query, None);
        self.planned.remember(&handle, prepared.schema, opened);
        Ok(ActionCreatePreparedStatementResult { prepared_statement_handle: handle.into(), dataset_schema, parameter_schema })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let who = self.identity(request.metadata()).await?;
        let handle = self.open(&query.prepared_statement_handle, &who)?;
        let data = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data).try_collect().await?;
        let params = match batches.into_iter().find(|b| b.num_rows() > 0) {
            Some(batch) => Some(encode_params(&batch)?),
            None => None,
        };
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(self.new_handle(&who, handle.sql, params).into()) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = self.identity(request.metadata()).await?;
        let handle = self.open(&cmd.prepared_statement_handle, &who)?;
        // Unbound, and nothing changed since it was prepared: the schema planned then.
        let mut planned = match handle.params {
            None => self.planned.recall(&cmd.prepared_statement_handle),
            Some(_) => None,
        };
        if let Some((_, opened)) = &planned
            && !opened.serves(&self.gate.opened_now(&who.principal, INTERFACE).await?, chrono::Utc::now())
        {
            planned = None;
        }
        let schema = match planned {
            Some((schema, _)) => schema,
            None => Arc::new(self.bound_schema(&who, &handle).await?),
        };
        Ok(Response::new(Self::flight_info(&schema, cmd.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_prepared_statement(&self, query: CommandPreparedStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let who = self.identity(request.metadata()).await?;
        let handle = self.open(&query.prepared_statement_handle, &who)?;
        self.stream(&who, handle).await
    }

    async fn do_action_close_prepared_statement(&self, query: ActionClosePreparedStatementRequest, request: Request<Action>) -> Result<(), Status> {
        let who = self.identity(request.metadata()).await?;
        // Handles hold no server state but the schema planned for them, dropped now; closing
        // checks that the caller owns the handle first.
        self.open(&query.prepared_statement_handle, &who)?;
        self.planned.forget(&query.prepared_statement_handle);
        Ok(())
    }

    async fn get_flight_info_catalogs(&self, query: CommandGetCatalogs, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.identity(request.metadata()).await?;
        let mut builder = query.into_builder();
        builder.append(CATALOG_NAME);
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(&self, query: CommandGetDbSchemas, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let who = self.identity(request.metadata()).await?;
        let tables = self.visible_tables(&who).await?;
        let mut builder = query.into_builder();
        let mut domains: Vec<&String> = tables.iter().map(|t| &t.domain).collect();
        domains.dedup();
        for domain in domains {
            builder.append(CATALOG_NAME, domain);
        }
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(&self, query: CommandGetTables, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(&self, query: CommandGetTables, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let who = self.identity(request.metadata()).await?;
        let tables = self.visible_tables(&who).await?;
        let mut builder = query.into_builder();
        for table in &tables {
            let schema = metadata::described_schema(table);
            builder.append(CATALOG_NAME, &table.domain, &table.name, "TABLE", &schema).map_err(|e| Status::internal(e.to_string()))?;
        }
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(&self, query: CommandGetTableTypes, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(&self, query: CommandGetTableTypes, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.identity(request.metadata()).await?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_sql_info(&self, query: CommandGetSqlInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        let schema = query.clone().into_builder(sql_info::sql_info()).schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.identity(request.metadata()).await?;
        let builder = query.into_builder(sql_info::sql_info());
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_primary_keys(&self, query: CommandGetPrimaryKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        Self::metadata_info(query, &metadata::primary_keys_schema(), request.into_inner())
    }

    async fn do_get_primary_keys(&self, query: CommandGetPrimaryKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let who = self.identity(request.metadata()).await?;
        let tables = self.visible_tables(&who).await?;
        Self::one_batch(metadata::primary_keys_schema(), metadata::primary_keys(&query, &tables))
    }

    async fn get_flight_info_imported_keys(&self, query: CommandGetImportedKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        Self::metadata_info(query, &metadata::foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_imported_keys(&self, _query: CommandGetImportedKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.identity(request.metadata()).await?;
        Self::one_batch(metadata::foreign_keys_schema(), Ok::<_, Status>(metadata::no_foreign_keys()))
    }

    async fn get_flight_info_exported_keys(&self, query: CommandGetExportedKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        Self::metadata_info(query, &metadata::foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_exported_keys(&self, _query: CommandGetExportedKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.identity(request.metadata()).await?;
        Self::one_batch(metadata::foreign_keys_schema(), Ok::<_, Status>(metadata::no_foreign_keys()))
    }

    async fn get_flight_info_cross_reference(&self, query: CommandGetCrossReference, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        Self::metadata_info(query, &metadata::foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_cross_reference(&self, _query: CommandGetCrossReference, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.identity(request.metadata()).await?;
        Self::one_batch(metadata::foreign_keys_schema(), Ok::<_, Status>(metadata::no_foreign_keys()))
    }

    async fn get_flight_info_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.identity(request.metadata()).await?;
        let schema = query.clone().into_builder(types::xdbc_type_info()).schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.identity(request.metadata()).await?;
        let builder = query.into_builder(types::xdbc_type_info());
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn do_get_fallback(&self, request: Request<Ticket>, message: Any) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.identity(request.metadata()).await?;
        Err(Status::unimplemented(format!("`{}` is not supported by this server", message.type_url)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
