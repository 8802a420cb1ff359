//! Server errors and their stable codes, mapped to each protocol's way of saying them.

use std::net::SocketAddr;

use meshwork_auth::AuthError;
use meshwork_query::{ErrorCode, QueryError};

/// Errors of the servers. [`ServeError::code`] is stable: clients may match on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen for {what} on `{addr}`: {error} (hint: another process uses the port; change it in `mesh.yaml` under `server:` or with a flag)")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error (in the message, not a source, so it is printed once).
        error: std::io::Error,
    },
    /// The credential was refused.
    #[error("unauthenticated: {0}")]
    Unauthenticated(AuthError),
    /// The principal already runs as many queries as allowed.
    #[error("too many queries: `{principal}` already runs {limit} queries at once, the most allowed; wait for one to finish (limit `server.max_queries_per_principal`)")]
    TooManyQueries {
        /// Who.
        principal: String,
        /// The limit.
        limit: u32,
    },
    /// Something the caller may not see or use. Products the caller may not read are reported
    /// as not found, exactly like missing ones.
    #[error("not found: {0}")]
    NotFound(String),
    /// The action is reserved for administrators.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The metadata store failed.
    #[error(transparent)]
    Catalog(#[from] meshwork_catalog::CatalogError),
    /// A server stopped by itself.
    #[error("a server stopped unexpectedly")]
    Stopped,
    /// I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How every interface says one error code. One row per code, so HTTP, Flight SQL and the
/// Postgres wire can never disagree about what a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireCode {
    /// The HTTP status.
    pub http: axum::http::StatusCode,
    /// The gRPC code (Flight SQL).
    pub grpc: tonic::Code,
    /// The PostgreSQL SQLSTATE (Postgres wire).
    pub sqlstate: &'static str,
}

/// The table of [`WireCode`]s.
pub fn wire(code: ErrorCode) -> WireCode {
    use axum::http::StatusCode as Http;
    use tonic::Code as Grpc;
    let (http, grpc, sqlstate) = match code {
        ErrorCode::Unauthenticated => (Http::UNAUTHORIZED, Grpc::Unauthenticated, "28000"),
        ErrorCode::UnknownPrincipal => (Http::FORBIDDEN, Grpc::PermissionDenied, "28000"),
        ErrorCode::Forbidden => (Http::FORBIDDEN, Grpc::PermissionDenied, "42501"),
        ErrorCode::NotFound => (Http::NOT_FOUND, Grpc::NotFound, "42P01"),
        ErrorCode::BadRequest | ErrorCode::InvalidQuery => (Http::BAD_REQUEST, Grpc::InvalidArgument, "42000"),
        ErrorCode::TooManyQueries => (Http::TOO_MANY_REQUESTS, Grpc::ResourceExhausted, "53300"),
        ErrorCode::Timeout => (Http::REQUEST_TIMEOUT, Grpc::DeadlineExceeded, "57014"),
        ErrorCode::ResourcesExhausted => (Http::UNPROCESSABLE_ENTITY, Grpc::ResourceExhausted, "53200"),
        _ => (Http::INTERNAL_SERVER_ERROR, Grpc::Internal, "XX000"),
    };
    WireCode { http, grpc, sqlstate }
}

impl ServeError {
    /// The stable code clients may match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServeError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ServeError::TooManyQueries { .. } => ErrorCode::TooManyQueries,
            ServeError::NotFound(_) => ErrorCode::NotFound,
            ServeError::Forbidden(_) => ErrorCode::Forbidden,
            ServeError::BadRequest(_) => ErrorCode::BadRequest,
            ServeError::Query(q) => q.code(),
            ServeError::Bind { .. } | ServeError::Catalog(_) | ServeError::Stopped | ServeError::Io(_) | ServeError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// How each interface says it.
    pub fn wire(&self) -> WireCode {
        wire(self.code())
    }

    /// The message shown to clients. Internal details stay in the server log.
    pub fn client_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal error; the server log has details under this request id".to_owned(),
            _ => self.to_string(),
        }
    }

    /// As a gRPC status for Flight SQL.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.wire().grpc, self.client_message())
    }

    /// The PostgreSQL SQLSTATE for the Postgres wire server.
    pub fn sqlstate(&self) -> &'static str {
        self.wire().sqlstate
    }
}

impl From<ServeError> for tonic::Status {
    fn from(err: ServeError) -> Self {
        err.to_status()
    }
}
