//! How answers go out on the wire: a simple `Query` statement by statement, and an extended
//! `Execute` whose rows stream.
//!
//! pgwire's own loops do not fit in two ways. A simple query's statements were all run before
//! the first answer was sent, so a `COPY` could not stream its rows and an error in a later
//! statement swallowed the answers of the earlier ones. And an `Execute` with no row limit (what
//! psycopg, asyncpg, npgsql and JDBC without a fetch size send) collected every row in memory
//! before sending the first (`Portal::fetch(0)`). Here each statement is answered before the
//! next runs, a `COPY` is sent by [`copy::send`], and an `Execute` sends rows as the query makes
//! them with `send_partial_query_response`, which also keeps portal suspension (`Execute` with
//! a row limit, JDBC's `setFetchSize`) working. The end of a transaction closes its cursors.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt};
use pgwire::api::portal::PortalExecutionState;
use pgwire::api::query::{send_execution_response, send_partial_query_response, send_query_response, send_ready_for_query};
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::response::EmptyQueryResponse;
use pgwire::messages::simplequery::Query;
use pgwire::types::format::FormatOptions;

use super::copy::{self, CopyFormat};
use super::cursor::Cursors;
use super::{Batches, PgQueries, PgStatement};

/// What a statement answers.
pub(super) enum Answer {
    /// Sent as pgwire sends it.
    Response(Response),
    /// `COPY … TO STDOUT`: its rows, sent as they stream.
    Copy { format: CopyFormat, schema: SchemaRef, batches: Batches },
}

impl From<Response> for Answer {
    fn from(response: Response) -> Answer {
        Answer::Response(response)
    }
}

/// The connection's cursors.
pub(super) fn cursors<C: ClientInfo + ?Sized>(client: &C) -> Arc<Cursors> {
    client.session_extensions().get_or_insert_with(Cursors::default)
}

/// A simple `Query`: every statement is run and answered before the next; the first error
/// ends the query (the caller sends it, then ReadyForQuery).
pub(super) async fn simple<C>(queries: &PgQueries, client: &mut C, query: Query) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
        return Err(PgWireError::NotReadyForQuery);
    }
    client.set_state(PgWireConnectionState::QueryInProgress);
    let statements = queries.parser.parse(&query.query).await.map_err(|err| super::failed(&query.query, err))?;
    if statements.is_empty() {
        client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
    }
    for statement in statements {
        let answer = queries.simple_statement(client, &statement).await.map_err(|err| super::failed(&statement.to_string(), err))?;
        super::flush_notices(client).await?;
        send(client, answer, true).await?;
    }
    client.set_state(PgWireConnectionState::ReadyForQuery);
    let status = client.transaction_status();
    send_ready_for_query(client, status).await
}

/// Sends one statement's answer and follows the transaction it begins or ends. `describe`:
/// rows come with their RowDescription (simple protocol).
async fn send<C>(client: &mut C, answer: Answer, describe: bool) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let response = match answer {
        Answer::Copy { format, schema, batches } => {
            let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            return copy::send(client, &format, schema, batches, options).await;
        }
        Answer::Response(response) => response,
    };
    match response {
        Response::EmptyQuery => client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?,
        Response::Query(results) => send_query_response(client, results, describe).await?,
        Response::Execution(tag) => send_execution_response(client, tag).await?,
        Response::TransactionStart(tag) => {
            send_execution_response(client, tag).await?;
            // `ROLLBACK TO` in a failed block answers so and returns to the block
            // (`transaction.rs`); pgwire's transition would keep the block failed.
            client.set_transaction_status(super::transaction::after(client.transaction_status(), &Response::TransactionStart(Tag::new(""))));
        }
        Response::TransactionEnd(tag) => {
            send_execution_response(client, tag).await?;
            client.set_transaction_status(client.transaction_status().to_idle_state());
            end_transaction(client);
        }
        Response::Error(err) => {
            client.feed(PgWireBackendMessage::ErrorResponse((*err).into())).await?;
            client.set_transaction_status(client.transaction_status().to_error_state());
        }
        Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
            return Err(super::user_error("ERROR", "XX000", "internal error: a COPY answer outside of COPY TO STDOUT"));
        }
    }
    Ok(())
}

/// `COMMIT`/`ROLLBACK`: the transaction's cursors close, and with them their portals.
fn end_transaction<C>(client: &C)
where
    C: ClientInfo + ClientPortalStore,
    C::PortalStore: PortalStore,
{
    for name in cursors(client).end_transaction() {
        client.portal_store().rm_portal(&name);
    }
    client.portal_store().rm_portal(DEFAULT_NAME);
}

/// An extended `Execute`: runs the portal the first time, then sends up to `max_rows` rows
/// (all when 0) as they stream, ending with `PortalSuspended` when rows remain.
pub(super) async fn extended<C>(queries: &PgQueries, client: &mut C, message: Execute) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = PgStatement>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
        return Err(PgWireError::NotReadyForQuery);
    }
    client.set_state(PgWireConnectionState::QueryInProgress);
    let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
    let max_rows = message.max_rows.max(0) as usize;
    let portal = match client.portal_store().get_portal(name) {
        Some(Entry::Value(portal)) => portal,
        Some(Entry::Empty) => {
            client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
            client.set_state(PgWireConnectionState::ReadyForQuery);
            return Ok(());
        }
        None => return Err(PgWireError::PortalNotFound(name.to_owned())),
    };
    let state = portal.state();
    let mut state = state.lock().await;
    let mut rows = match std::mem::take(&mut *state) {
        PortalExecutionState::Initial => {
            let answer = queries.extended_statement(client, &portal).await.map_err(|err| super::failed(&portal.statement.statement.0, err))?;
            super::flush_notices(client).await?;
            match answer {
                Answer::Response(Response::Query(rows)) => rows,
                other => {
                    *state = PortalExecutionState::Finished;
                    drop(state);
                    send(client, other, false).await?;
                    client.set_state(PgWireConnectionState::ReadyForQuery);
                    return Ok(());
                }
            }
        }
        PortalExecutionState::Suspended(rows) => rows,
        PortalExecutionState::Finished => {
            send_execution_response(client, Tag::new("SELECT").with_rows(0)).await?;
            client.set_state(PgWireConnectionState::ReadyForQuery);
            return Ok(());
        }
    };
    // A portal whose rows failed midway is finished: executing it again does not rerun it.
    *state = PortalExecutionState::Finished;
    if send_partial_query_response(client, &mut rows, max_rows).await? {
        *state = PortalExecutionState::Suspended(rows);
    }
    client.set_state(PgWireConnectionState::ReadyForQuery);
    Ok(())
}
