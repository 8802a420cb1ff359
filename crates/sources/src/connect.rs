//! Connecting to a declared database: the password from its environment variable, a read-only
//! session in UTC, and errors that name the connection but never carry the password.

use std::str::FromStr;
use std::time::Duration;

use meshwork_core::descriptor::{Connection, DatabaseKind};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Executor};

use crate::SourceError;

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open session on an operational database, read-only and in UTC.
pub struct SourceConnection {
    /// The connection's name in `mesh.yaml`.
    pub(crate) name: String,
    pub(crate) session: Session,
    /// The password, kept only to scrub it from any message the database sends back.
    secret: Option<String>,
}

pub(crate) enum Session {
    Postgres(PgConnection),
    Mysql(MySqlConnection),
}

impl std::fmt::Debug for SourceConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConnection").field("name", &self.name).field("kind", &self.kind()).finish_non_exhaustive()
    }
}

/// Opens connection `name` as `mesh.yaml` declares it, its password read from the environment.
pub async fn connect(name: &str, connection: &Connection) -> Result<SourceConnection, SourceError> {
    let secret = match &connection.password_env {
        Some(variable) => match std::env::var(variable) {
            Ok(value) => Some(value),
            Err(_) => return Err(SourceError::MissingPassword { connection: name.to_owned(), variable: variable.clone() }),
        },
        None => None,
    };
    let password_hint = match &connection.password_env {
        Some(variable) => format!("${variable}"),
        None => "no `password_env`: none is sent".to_owned(),
    };
    let failed = |reason: String| SourceError::Connect { connection: name.to_owned(), url: connection.url.clone(), reason: scrub(&reason, secret.as_deref()), password_hint: password_hint.clone() };
    let session = async {
        match connection.kind {
            DatabaseKind::Postgres => {
                let mut options = PgConnectOptions::from_str(&connection.url).map_err(|e| e.to_string())?;
                if let Some(secret) = &secret {
                    options = options.password(secret);
                }
                // UTC, ISO dates and round-trip floats, so values read as text mean one thing
                // whatever the server's settings; no statement cache: each build prepares a
                // handful of statements once.
                let options = options
                    .application_name("meshwork")
                    .options([("TimeZone", "UTC"), ("DateStyle", "ISO, YMD"), ("extra_float_digits", "3"), ("standard_conforming_strings", "on")])
                    .statement_cache_capacity(0)
                    .disable_statement_logging();
                let mut session = options.connect().await.map_err(|e| e.to_string())?;
                // One read-only transaction for the whole session: a `query:` can never write
                // (not even by switching a session default back, which a started read-only
                // transaction refuses), and the maximum watermark and the rows read come from
                // one snapshot. Closing the session ends it.
                session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(|e| e.to_string())?;
                Ok(Session::Postgres(session))
            }
            DatabaseKind::Mysql => {
                let url = connection.url.replacen("mariadb://", "mysql://", 1);
                let mut options = MySqlConnectOptions::from_str(&url).map_err(|e| e.to_string())?;
                if let Some(secret) = &secret {
                    options = options.password(secret);
                }
                // sqlx sets the session's time zone to UTC (`+00:00`) by default.
                let options = options.statement_cache_capacity(0).disable_statement_logging();
                let mut session = options.connect().await.map_err(|e| e.to_string())?;
                // As for PostgreSQL: one read-only transaction on one snapshot (InnoDB).
                session.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(|e| e.to_string())?;
                session.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await.map_err(|e| e.to_string())?;
                Ok(Session::Mysql(session))
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, session).await {
        Ok(Ok(session)) => Ok(SourceConnection { name: name.to_owned(), session, secret }),
        Ok(Err(reason)) => Err(failed(reason)),
        Err(_) => Err(failed(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))),
    }
}

impl SourceConnection {
    /// The kind of database.
    pub fn kind(&self) -> DatabaseKind {
        match self.session {
            Session::Postgres(_) => DatabaseKind::Postgres,
            Session::Mysql(_) => DatabaseKind::Mysql,
        }
    }

    /// The connection's name in `mesh.yaml`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A failed statement on `what`, its message scrubbed of the password.
    pub(crate) fn query_error(&self, what: &str, error: impl std::fmt::Display) -> SourceError {
        SourceError::Query { connection: self.name.clone(), what: what.to_owned(), reason: scrub(&error.to_string(), self.secret.as_deref()) }
    }

    /// Closes the session politely.
    pub async fn close(self) {
        use sqlx::Connection as _;
        let _ = match self.session {
            Session::Postgres(c) => c.close().await,
            Session::Mysql(c) => c.close().await,
        };
    }
}

/// `name` as an identifier of `kind`'s SQL, quoted so that any name reads as itself.
pub fn quote_ident(kind: DatabaseKind, name: &str) -> String {
    match kind {
        DatabaseKind::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        DatabaseKind::Mysql => format!("`{}`", name.replace('`', "``")),
    }
}

/// `text` without `secret` (a server could echo what it was sent).
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "<secret>"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_for_their_dialect() {
        assert_eq!(quote_ident(DatabaseKind::Postgres, "a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(DatabaseKind::Mysql, "a`b"), "`a``b`");
    }

    #[test]
    fn a_password_echoed_back_is_scrubbed() {
        assert_eq!(scrub("bad password s3cr3t!", Some("s3cr3t!")), "bad password <secret>");
        assert_eq!(scrub("no secret", None), "no secret");
    }
}
