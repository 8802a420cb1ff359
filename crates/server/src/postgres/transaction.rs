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
//! [`on_query`] is pgwire's simple-query loop with that one transition added, and
//! [`restores_block`] lets the extended protocol's `Execute` set it.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Ident, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire;
use futures::future::{Either, select};
use futures::{Sink, SinkExt};
use pgwire::api::query::{SimpleQueryHandler, send_execution_response, send_query_response, send_ready_for_query};
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionHandle, PgWireConnectionState, copy};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;

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

/// Whether running `statement` in a connection whose block is in `status` puts it back into
/// the block: `ROLLBACK TO` after an error. The extended protocol's `Execute` sets the state
/// itself when this holds, since pgwire keeps a failed block failed.
pub(crate) fn restores_block(statement: &Statement, status: TransactionStatus) -> bool {
    status == TransactionStatus::Error && matches!(Kind::of(statement), Kind::RollbackTo)
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

/// pgwire's simple-query loop (`SimpleQueryHandler::_on_query` of pgwire 0.41), except that a
/// `TransactionStart` answered in a failed block returns to the block: only `ROLLBACK TO`
/// answers so there (BEGIN in a failed block is refused).
pub(crate) async fn on_query<H, C>(handler: &H, client: &mut C, query: Query) -> PgWireResult<()>
where
    H: SimpleQueryHandler + ?Sized,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
        return Err(PgWireError::NotReadyForQuery);
    }
    let mut status = client.transaction_status();
    client.set_state(PgWireConnectionState::QueryInProgress);
    let sql = query.query;
    if sql.chars().all(|c| c == ';' || c.is_whitespace()) {
        client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
    } else {
        let cancel = match client.session_extensions().get::<Arc<ConnectionHandle>>() {
            Some(handle) => Some(handle.start_query().await),
            None => None,
        };
        let responses = match cancel {
            Some(cancel) => match select(handler.do_query(client, &sql), cancel).await {
                Either::Left((result, _)) => result,
                Either::Right(_) => Err(PgWireError::QueryCanceled),
            },
            None => handler.do_query(client, &sql).await,
        }?;
        for response in responses {
            match response {
                Response::EmptyQuery => client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?,
                Response::Query(results) => send_query_response(client, results, true).await?,
                Response::Execution(tag) => send_execution_response(client, tag).await?,
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    status = after(status, &Response::TransactionStart(Tag::new("")));
                }
                Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?;
                    status = status.to_idle_state();
                }
                Response::Error(e) => {
                    client.feed(PgWireBackendMessage::ErrorResponse((*e).into())).await?;
                    status = status.to_error_state();
                }
                Response::CopyIn(result) => {
                    copy::send_copy_in_response(client, result).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                }
                Response::CopyOut(result) => copy::send_copy_out_response(client, result).await?,
                Response::CopyBoth(result) => {
                    copy::send_copy_both_response(client, result).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                }
            }
        }
    }
    // A COPY FROM in progress sends its ReadyForQuery when it ends.
    if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await?;
    }
    Ok(())
}
