//! Errors of the query layer, and how DataFusion's errors are told to users.

use datafusion::error::DataFusionError;

/// Errors of the query layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The SQL is invalid, refers to something unknown, or failed while running. The message is
    /// complete: DataFusion's error chain is folded into it, not exposed as a source.
    #[error("{}", sql_message(.0))]
    Sql(DataFusionError),
    /// The metadata store failed.
    #[error(transparent)]
    Catalog(#[from] meshwork_catalog::CatalogError),
    /// A product's table could not be opened.
    #[error(transparent)]
    Storage(#[from] meshwork_storage::StorageError),
    /// `--as` named a principal the mesh does not declare.
    #[error("unknown principal `{name}`{hint}")]
    UnknownPrincipal {
        /// The name given.
        name: String,
        /// " (hint: …)" text.
        hint: String,
    },
    /// The action is reserved for administrators.
    #[error("{0} is not allowed for `{1}`: it is reserved for administrators")]
    AdminOnly(String, String),
    /// The stored policies do not compile (the catalog was written by another version).
    #[error("stored policy does not compile: {0}")]
    Policy(String),
    /// The query ran longer than the server allows.
    #[error(
        "query cancelled: it ran longer than the {limit} limit (hint: add filters or a LIMIT, or ask the platform team to raise `server.query_timeout`)"
    )]
    Timeout {
        /// The limit, e.g. `30s`.
        limit: String,
    },
    /// The query needed more memory than one query may use.
    #[error(
        "query failed: resources exhausted: {detail} (hint: add filters, aggregate before sorting, or ask the platform team to raise `server.query_memory`)"
    )]
    ResourcesExhausted {
        /// What DataFusion could not allocate.
        detail: String,
    },
    /// The audit event could not be completed, so the result is withheld.
    #[error("the result is withheld: its audit event could not be written: {0}")]
    AuditUnavailable(String),
    /// A read on behalf of a domain names a product that has no published version.
    #[error("product `{0}` is not published (hint: apply the mesh so it is built first)")]
    NotPublished(meshwork_core::id::ProductId),
    /// A read on behalf of a domain names a product past its sunset.
    #[error("{} (hint: change the input port to read {})", .0.gone(), .0.successor.as_ref().map_or("another product".to_owned(), |s| format!("`{s}`")))]
    NoLongerServed(meshwork_core::lifecycle::Deprecation),
    /// A read on behalf of a domain names a product the domain may not read.
    #[error("domain `{principal}` may not read product `{product}`: {}", reasons.join("; "))]
    NotReadable {
        /// The product.
        product: meshwork_core::id::ProductId,
        /// The reading domain's principal.
        principal: String,
        /// Why the access decision denied it.
        reasons: Vec<String>,
    },
    /// The caller may not do this; the message says who may and what to do instead.
    #[error("{0}")]
    Refused(String),
    /// The statement would reveal more of a product than its aggregate-only reader may learn
    /// (rows, small groups, hidden columns), or the reader's privacy budget is spent; the
    /// message names the rule and what to change.
    #[error("{0}")]
    AggregateOnly(String),
    /// A request is malformed; the message names the part and the fix.
    #[error("{0}")]
    Invalid(String),
    /// The thing asked about does not exist, or the caller may not know it does (the two are
    /// answered alike).
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state (a second pending access request, deciding
    /// a request already decided); the message says what is there.
    #[error("{0}")]
    Conflict(String),
    /// The mesh's Ballista cluster could not run a statement; the message says what failed.
    #[error("{0}")]
    Cluster(String),
    /// Stored data could not be read back (a bug or a store from another version).
    #[error("internal error (this is a bug in meshwork): {0}")]
    Internal(String),
}

/// What kind of failure an error is, as every interface reports it: a stable code clients may
/// match on (`as_str`). The server maps each code, in one table, to an HTTP status, a gRPC code
/// and a SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No credential, or one that is invalid, revoked or expired.
    Unauthenticated,
    /// A principal the mesh does not declare.
    UnknownPrincipal,
    /// The caller may not do this (what it may see is answered as not found instead).
    Forbidden,
    /// No such thing, or one the caller may not see.
    NotFound,
    /// The request clashes with the current state.
    Conflict,
    /// The request is malformed.
    BadRequest,
    /// The SQL cannot be planned or run.
    InvalidQuery,
    /// The principal already runs as many queries as allowed.
    TooManyQueries,
    /// The query ran past the time limit.
    Timeout,
    /// The query needed more memory than allowed.
    ResourcesExhausted,
    /// A bug or a failure of the platform; details stay in the server log.
    Internal,
}

impl ErrorCode {
    /// The stable text of the code, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::UnknownPrincipal => "unknown_principal",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::TooManyQueries => "too_many_queries",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ResourcesExhausted => "resources_exhausted",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl QueryError {
    /// The stable code for wire protocols and JSON errors.
    pub fn code(&self) -> ErrorCode {
        match self {
            QueryError::Sql(err) if is_not_found(err) => ErrorCode::NotFound,
            QueryError::Sql(_) => ErrorCode::InvalidQuery,
            QueryError::NotPublished(_) | QueryError::NoLongerServed(_) | QueryError::NotReadable { .. } | QueryError::NotFound(_) => ErrorCode::NotFound,
            QueryError::Conflict(_) => ErrorCode::Conflict,
            QueryError::UnknownPrincipal { .. } => ErrorCode::UnknownPrincipal,
            QueryError::AdminOnly(..) | QueryError::Refused(_) | QueryError::AggregateOnly(_) => ErrorCode::Forbidden,
            QueryError::Invalid(_) => ErrorCode::BadRequest,
            QueryError::Timeout { .. } => ErrorCode::Timeout,
            QueryError::ResourcesExhausted { .. } => ErrorCode::ResourcesExhausted,
            QueryError::Catalog(_)
            | QueryError::Storage(_)
            | QueryError::Policy(_)
            | QueryError::AuditUnavailable(_)
            | QueryError::Cluster(_)
            | QueryError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl QueryError {
    /// Where in the statement the error is, as `(line, column)` counted from 1, when DataFusion's
    /// diagnostic or the SQL parser says so.
    pub fn position(&self) -> Option<(u64, u64)> {
        let QueryError::Sql(err) = self else { return None };
        if let Some(span) = err.diagnostic().and_then(|d| d.span)
            && span.start.line > 0
        {
            return Some((span.start.line, span.start.column));
        }
        // The parser's messages end with "at Line: 1, Column: 8".
        let text = err.find_root().to_string();
        let rest = &text[text.rfind("Line: ")? + "Line: ".len()..];
        let (line, rest) = rest.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((line.trim().parse().ok()?, column.parse().ok()?)).filter(|(line, column)| *line > 0 && *column > 0)
    }
}

fn is_not_found(err: &DataFusionError) -> bool {
    let text = err.find_root().to_string();
    text.contains("not found") && text.contains("table")
}

/// DataFusion prefixes messages with its error category; users need the message itself, and
/// the position in their SQL where DataFusion knows it.
pub(crate) fn sql_message(err: &DataFusionError) -> String {
    // Wrappers (optimizer rule names, contexts) say little; the innermost error says what is wrong.
    let mut text = match err.find_root() {
        DataFusionError::SQL(parser, _) => parser
            .to_string()
            .trim_start_matches("sql parser error: ")
            .to_owned(),
        DataFusionError::ArrowError(arrow, _) => arrow.to_string(),
        root => root.strip_backtrace(),
    };
    for prefix in [
        "Error during planning: ",
        "SQL error: ",
        "Schema error: ",
        "Execution error: ",
        "This feature is not implemented: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            text = rest.to_owned();
            break;
        }
    }
    // SQLOptions refusals name the statement kind; say why it is refused and what to do instead.
    for kind in [
        "DDL not supported: ",
        "DML not supported: ",
        "Statement not supported: ",
    ] {
        if let Some(statement) = text.strip_prefix(kind) {
            text = format!(
                "`{}` is not allowed: queries are read-only; products are published with `meshwork apply`",
                statement_keyword(statement.trim())
            );
            break;
        }
    }
    if let Some(diagnostic) = err.diagnostic() {
        if let Some(span) = diagnostic.span {
            text.push_str(&format!(
                " (at line {}, column {})",
                span.start.line, span.start.column
            ));
        }
        for help in &diagnostic.helps {
            text.push_str(&format!("; hint: {}", help.message));
        }
    }
    text
}

/// The SQL a refused plan node came from, in the words the user wrote.
fn statement_keyword(plan_node: &str) -> &str {
    match plan_node {
        "CreateExternalTable" => "CREATE EXTERNAL TABLE",
        "CreateMemoryTable" => "CREATE TABLE",
        "CreateView" => "CREATE VIEW",
        "CreateCatalogSchema" => "CREATE SCHEMA",
        "CreateCatalog" => "CREATE DATABASE",
        "CreateIndex" => "CREATE INDEX",
        "CreateFunction" => "CREATE FUNCTION",
        "DropTable" => "DROP TABLE",
        "DropView" => "DROP VIEW",
        "DropCatalogSchema" => "DROP SCHEMA",
        "DropFunction" => "DROP FUNCTION",
        "Insert Into" | "InsertInto" => "INSERT",
        "Delete" => "DELETE",
        "Update" => "UPDATE",
        "Truncate" => "TRUNCATE",
        "COPY" | "CopyTo" => "COPY",
        "SetVariable" => "SET",
        "ResetVariable" => "RESET",
        "TransactionStart" => "BEGIN",
        "TransactionEnd" => "COMMIT/ROLLBACK",
        "Prepare" => "PREPARE",
        "Execute" => "EXECUTE",
        "Deallocate" => "DEALLOCATE",
        other => other,
    }
}

impl From<DataFusionError> for QueryError {
    fn from(err: DataFusionError) -> Self {
        match err.find_root() {
            DataFusionError::ResourcesExhausted(detail) => QueryError::ResourcesExhausted {
                detail: detail.clone(),
            },
            DataFusionError::External(inner) if inner.is::<crate::aggregate::Refusal>() => QueryError::AggregateOnly(inner.to_string()),
            _ => QueryError::Sql(err),
        }
    }
}
