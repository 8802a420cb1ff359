//! Another Meshwork, or any Flight SQL server, as the source of a virtual product: a client with
//! the bearer token read from the environment variable the connection names, the schema of a
//! read (planned by the server, nothing run), and the batches of a statement streamed from every
//! endpoint the server answers with. Errors name the connection and never carry the token.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::{StreamExt, TryStreamExt};
use meshwork_core::descriptor::{DatabaseRead, FlightEndpoint};
use tonic::transport::{Channel, Endpoint};

use crate::connect::scrub;
use crate::{SourceColumn, SourceError, SourceRows};

/// How long connecting may take before the endpoint counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of a Flight SQL endpoint, authenticated by its token.
pub struct FlightSession {
    name: String,
    client: FlightSqlServiceClient<Channel>,
    secret: Option<String>,
}

impl std::fmt::Debug for FlightSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightSession").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Opens connection `name` to a Flight SQL endpoint, its token read from the environment.
pub async fn connect_flight(name: &str, endpoint: &FlightEndpoint) -> Result<FlightSession, SourceError> {
    let secret = match &endpoint.token_env {
        Some(variable) => match std::env::var(variable) {
            Ok(value) => Some(value),
            Err(_) => return Err(SourceError::MissingToken { connection: name.to_owned(), variable: variable.clone() }),
        },
        None => None,
    };
    let hint = match &endpoint.token_env {
        Some(variable) => format!("${variable}"),
        None => "no `token_env`: none is sent".to_owned(),
    };
    let failed = |reason: String| SourceError::Connect { connection: name.to_owned(), url: endpoint.url.clone(), reason: scrub(&reason, secret.as_deref()), password_hint: hint.clone() };
    let address = endpoint.url.replacen("grpc://", "http://", 1);
    let channel = Endpoint::from_shared(address).map_err(|e| failed(e.to_string()))?.connect_timeout(CONNECT_TIMEOUT).timeout(Duration::from_secs(3600));
    let channel = channel.connect().await.map_err(|e| failed(format!("{e}: {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default())))?;
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(token) = &secret {
        client.set_token(token.clone());
    }
    Ok(FlightSession { name: name.to_owned(), client, secret })
}

/// `read` as a `FROM` item of the endpoint's SQL (DataFusion's, for another Meshwork).
pub fn flight_from_item(read: &DatabaseRead) -> String {
    match read {
        DatabaseRead::Table(table) => table.clone(),
        DatabaseRead::Query(query) => format!("({query}\n) AS meshwork_source"),
    }
}

/// `name` as an identifier of the endpoint's SQL.
pub fn flight_quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl FlightSession {
    /// The columns of `read` as the endpoint plans `SELECT * FROM …` (nothing is read), each
    /// with the contract-like name of its Arrow type's family (see [`arrow_type_name`]).
    pub async fn columns(&mut self, read: &DatabaseRead) -> Result<Vec<SourceColumn>, SourceError> {
        let sql = format!("SELECT * FROM {}", flight_from_item(read));
        let what = crate::schema::describe_read(read);
        let info = self.client.execute(sql, None).await.map_err(|e| self.error(&what, e))?;
        let schema = info.try_decode_schema().map_err(|e| self.error(&what, e))?;
        Ok(schema.fields().iter().map(|f| SourceColumn { name: f.name().clone(), type_name: arrow_type_name(f.data_type()).to_owned() }).collect())
    }

    /// Streams the batches of `sql` (its columns as the endpoint types them) from every endpoint
    /// of the server's answer, in order.
    pub fn query(self, what: String, sql: String, schema: SchemaRef) -> SourceRows {
        let FlightSession { name, mut client, secret } = self;
        let error = move |reason: String| SourceError::Query { connection: name.clone(), what: what.clone(), reason: scrub(&reason, secret.as_deref()) };
        let batches = futures::stream::once(async move {
            let info = client.execute(sql, None).await.map_err(|e| error(e.to_string()))?;
            let mut streams = Vec::with_capacity(info.endpoint.len());
            for endpoint in info.endpoint {
                let Some(ticket) = endpoint.ticket else { continue };
                let stream = client.do_get(ticket).await.map_err(|e| error(e.to_string()))?;
                let error = error.clone();
                streams.push(stream.map_err(move |e| error(e.to_string())));
            }
            Ok::<_, SourceError>(futures::stream::iter(streams).flatten())
        })
        .try_flatten();
        SourceRows { schema, batches: Box::pin(batches.map(|b: Result<RecordBatch, SourceError>| b)) }
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> SourceError {
        SourceError::Query { connection: self.name.clone(), what: what.to_owned(), reason: scrub(&e.to_string(), self.secret.as_deref()) }
    }
}

/// The name of an Arrow type's family as [`crate::TypeFamily::of`] reads it, so that an
/// endpoint's columns are checked against the contract by the same mapping table as a
/// database's.
pub fn arrow_type_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "BIGINT",
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => "NUMERIC",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "DOUBLE PRECISION",
        DataType::Boolean => "BOOLEAN",
        DataType::Date32 | DataType::Date64 => "DATE",
        DataType::Timestamp(_, _) => "TIMESTAMP",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "BYTEA",
        _ => "TEXT",
    }
}
