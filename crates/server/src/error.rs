//! Server errors and their stable codes, mapped to each protocol's way of saying them.

use std::net::SocketAddr;

use meshwork_auth::AuthError;
use meshwork_query::QueryError;

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

impl ServeError {
    /// The stable code: `unauthenticated`, `too_many_queries`, `not_found`, `forbidden`,
    /// `bad_request`, `invalid_query`, `timeout`, `resources_exhausted`, `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Unauthenticated(_) => "unauthenticated",
            ServeError::TooManyQueries { .. } => "too_many_queries",
            ServeError::NotFound(_) => "not_found",
            ServeError::Forbidden(_) => "forbidden",
            ServeError::BadRequest(_) => "bad_request",
            ServeError::Query(q) => q.code(),
            ServeError::Bind { .. } | ServeError::Catalog(_) | ServeError::Stopped | ServeError::Io(_) | ServeError::Internal(_) => "internal",
        }
    }

    /// The message shown to clients. Internal details stay in the server log.
    pub fn client_message(&self) -> String {
        match self.code() {
            "internal" => "internal error; the server log has details under this request id".to_owned(),
            _ => self.to_string(),
        }
    }

    /// As a gRPC status for Flight SQL.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.client_message();
        match self.code() {
            "unauthenticated" => tonic::Status::unauthenticated(message),
            "too_many_queries" | "resources_exhausted" => tonic::Status::resource_exhausted(message),
            "not_found" => tonic::Status::not_found(message),
            "conflict" => tonic::Status::already_exists(message),
            "forbidden" => tonic::Status::permission_denied(message),
            "bad_request" | "invalid_query" => tonic::Status::invalid_argument(message),
            "timeout" => tonic::Status::deadline_exceeded(message),
            _ => tonic::Status::internal(message),
        }
    }

    /// The PostgreSQL SQLSTATE for the Postgres wire server.
    pub fn sqlstate(&self) -> &'static str {
        match self.code() {
            "unauthenticated" => "28000",
            "too_many_queries" => "53300",
            "resources_exhausted" => "53200",
            "not_found" => "42P01",
            "conflict" => "55000",
            "forbidden" => "42501",
            "bad_request" | "invalid_query" => "42000",
            "timeout" => "57014",
            _ => "XX000",
        }
    }
}

impl From<ServeError> for tonic::Status {
    fn from(err: ServeError) -> Self {
        err.to_status()
    }
}
