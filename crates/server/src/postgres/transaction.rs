//! Savepoints, `DEALLOCATE` and the failed-transaction state, as PostgreSQL answers them.
//!
//! Statements are read-only and transactions are pretend (datafusion-postgres's
//! `TransactionStatementHook` answers `BEGIN`/`COMMIT`/`ROLLBACK`), so a savepoint has nothing
//! to keep: `SAVEPOINT`, `RELEASE` and `ROLLBACK TO` are accepted with PostgreSQL's command tags
//! inside a transaction block and refused outside one, as PostgreSQL does. Drivers send them on
//! their own (psycopg's type lookup, pgJDBC `autosave`, psqlODBC's statement rollback), so
//! refusing them broke connecting.
//!
//! After an error inside a block PostgreSQL refuses everything but the statements that leave
//! that state (25P02), and `ROLLBACK TO` goes back into the block. pgwire computes the state
//! a `ReadyForQuery` reports from the responses and cannot go from failed back to in-block, so
//! `execute.rs`, which sends every answer, uses [`after`] for that one transition.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Ident, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire;
use pgwire::api::ClientInfo;
use pgwire::api::store::PortalStore;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;

/// A statement this module answers.
enum Kind<'a> {
    Savepoint,
    Release,
    RollbackTo,
    /// `DEALLOCATE [PREPARE] name`.
    Deallocate(&'a Ident),
    /// `DEALLOCATE ALL`.
    DeallocateAll,
    /// `COMMIT`/`ROLLBACK`: they leave a failed block (datafusion-postgres answers them).
    Exit,
    Other,
}

impl Kind<'_> {
    fn of(statement: &Statement) -> Kind<'_> {
        match statement {
            Statement::Savepoint { .. } => Kind::Savepoint,
            Statement::ReleaseSavepoint { .. } => Kind::Release,
            Statement::Rollback { savepoint: Some(_), .. } => Kind::RollbackTo,
            Statement::Rollback { .. } | Statement::Commit { .. } => Kind::Exit,
            Statement::Deallocate { name, .. } if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") => Kind::DeallocateAll,
            Statement::Deallocate { name, .. } => Kind::Deallocate(name),
            _ => Kind::Other,
        }
    }
}

fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message.into())))
}

/// Answers savepoints and `DEALLOCATE`, and refuses statements in a failed block.
#[derive(Debug)]
pub(crate) struct SavepointHook;

impl SavepointHook {
    fn respond(statement: &Statement, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        let kind = Kind::of(statement);
        let status = client.transaction_status();
        if status == TransactionStatus::Error {
            return match kind {
                Kind::Exit => None,
                // Back into the block: see `on_query` and `restores_block`.
                Kind::RollbackTo => Some(Ok(Response::TransactionStart(Tag::new("ROLLBACK")))),
                _ => Some(Err(error("25P02", "current transaction is aborted, commands ignored until end of transaction block"))),
            };
        }
        let in_block = status == TransactionStatus::Transaction;
        let outside = |what: &str| Some(Err(error("25P01", format!("{what} can only be used in transaction blocks"))));
        match kind {
            Kind::Savepoint if in_block => Some(Ok(Response::Execution(Tag::new("SAVEPOINT")))),
            Kind::Release if in_block => Some(Ok(Response::Execution(Tag::new("RELEASE")))),
            Kind::RollbackTo if in_block => Some(Ok(Response::Execution(Tag::new("ROLLBACK")))),
            Kind::Savepoint => outside("SAVEPOINT"),
            Kind::Release => outside("RELEASE SAVEPOINT"),
            Kind::RollbackTo => outside("ROLLBACK TO SAVEPOINT"),
            Kind::Deallocate(name) => {
                // Unquoted names fold to lower case, as everywhere in PostgreSQL.
                let name = if name.quote_style.is_some() { name.value.clone() } else { name.value.to_lowercase() };
                let store = client.portal_store();
                if store.get_statement(&name).is_none() {
                    return Some(Err(error("26000", format!("prepared statement \"{name}\" does not exist"))));
                }
                store.rm_statement(&name);
                Some(Ok(Response::Execution(Tag::new("DEALLOCATE"))))
            }
            // pgwire's store cannot list its statements; a client that prepares a name again
            // replaces the old statement, which is what it expects after `DEALLOCATE ALL`.
            Kind::DeallocateAll => Some(Ok(Response::Execution(Tag::new("DEALLOCATE ALL")))),
            Kind::Exit | Kind::Other => None,
        }
    }
}

#[async_trait]
impl QueryHook for SavepointHook {
    async fn handle_simple_query(&self, statement: &Statement, _context: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        SavepointHook::respond(statement, client)
    }

    async fn handle_extended_parse_query(&self, statement: &Statement, _context: &SessionContext, _client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<LogicalPlan>> {
        // No rows and no parameters; Execute answers them.
        match Kind::of(statement) {
            Kind::Savepoint | Kind::Release | Kind::RollbackTo | Kind::Deallocate(_) | Kind::DeallocateAll => {
                Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema: Arc::new(DFSchema::empty()) })))
            }
            Kind::Exit | Kind::Other => None,
        }
    }

    async fn handle_extended_query(&self, statement: &Statement, _plan: &LogicalPlan, _params: &ParamValues, _context: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        SavepointHook::respond(statement, client)
    }
}

/// The block state after `response` in state `status`: pgwire's transitions, except that a
/// `TransactionStart` answered in a failed block returns to the block (only `ROLLBACK TO`
/// answers so there: `BEGIN` in a failed block is refused).
pub(crate) fn after(status: TransactionStatus, response: &Response) -> TransactionStatus {
    match (response, status) {
        (Response::TransactionStart(_), TransactionStatus::Error) => TransactionStatus::Transaction,
        (Response::TransactionStart(_), other) => other.to_in_transaction_state(),
        (Response::TransactionEnd(_), _) => TransactionStatus::Idle,
        (Response::Error(_), other) => other.to_error_state(),
        (_, other) => other,
    }
}

