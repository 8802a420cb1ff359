//! Operational databases as sources of data products: connecting to a PostgreSQL or MySQL/MariaDB
//! database named in `mesh.yaml` (its password from the environment, never written down or shown),
//! reading a source's schema and checking it against a contract, and streaming its rows into Arrow
//! batches in bounded memory, all of them or those past a watermark.
//!
//! Values travel as the database's own text (`CAST(col AS TEXT)`), except bytes, so that the
//! contract decides the types with the same checks as a CSV cell and a value that does not fit is
//! reported with its table, key and column; which source types may feed which contract types is
//! the table in [`schema`].

mod connect;
mod flight;
mod read;
pub mod scratch;
pub mod schema;

pub use connect::{SourceConnection, connect, quote_ident};
pub use flight::{FlightSession, arrow_type_name, connect_flight, flight_from_item, flight_quote};
pub use read::{BLOCK_ROWS, Range, SourceRows, query, read};
pub use schema::{SourceColumn, TypeFamily};

/// What went wrong with an operational database. Messages never hold a password: they are
/// built from the connection's name and URL (which holds none) and the database's own error
/// text, from which the password is removed should the database ever echo it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A product names a connection `mesh.yaml` does not declare.
    #[error("connection `{0}` is not declared in `mesh.yaml`; add it under `connections:`")]
    UnknownConnection(String),
    /// The environment variable that should hold the password is not set.
    #[error("connection `{connection}` takes its password from the environment variable `{variable}`, which is not set; set it and run again")]
    MissingPassword {
        /// The connection.
        connection: String,
        /// The variable.
        variable: String,
    },
    /// The environment variable that should hold a Flight SQL endpoint's token is not set.
    #[error("connection `{connection}` takes its token from the environment variable `{variable}`, which is not set; set it to an API token of the endpoint and run again")]
    MissingToken {
        /// The connection.
        connection: String,
        /// The variable.
        variable: String,
    },
    /// The database could not be reached, or refused the user or password.
    #[error("cannot connect to database `{connection}` ({url}): {reason}; check that it is reachable and that its user and password (`{password_hint}`) are right")]
    Connect {
        /// The connection.
        connection: String,
        /// Its URL, which holds no password.
        url: String,
        /// The database's or the network's answer.
        reason: String,
        /// Where the password comes from.
        password_hint: String,
    },
    /// A statement on the source failed.
    #[error("reading {what} from database `{connection}` failed: {reason}")]
    Query {
        /// The connection.
        connection: String,
        /// The table or query read.
        what: String,
        /// The database's answer.
        reason: String,
    },
    /// The source's columns do not match what the product needs of them.
    #[error("{what} of database `{connection}` does not match the contract: {}", problems.join("; "))]
    Schema {
        /// The connection.
        connection: String,
        /// The table or query.
        what: String,
        /// Each mismatch, with its fix.
        problems: Vec<String>,
    },
}
