//! A Postgres client that stops waiting stops its query: a cancel request (psql's Ctrl-C)
//! while the first row is computed or while rows stream, and a client killed or disconnected
//! mid-query. The audit event completes as `cancelled`; nothing waits for the time limit (these
//! servers have none). Connections leave nothing behind when they close.

use std::time::Duration;

use meshwork_catalog::{AuditEvent, AuditFilter};
use meshwork_query::QueryLimits;

use crate::Served;
use crate::wire::Wire;

/// Runs forever without a time limit, producing nothing until the end.
const ENDLESS_COUNT: &str = "SELECT count(*) FROM generate_series(1, 1000000000000)";
/// Streams rows as fast as the client reads them, for a long while.
const ENDLESS_ROWS: &str = "SELECT value FROM generate_series(1, 1000000000000)";

impl Served {
    /// The audit event of `statement` once `done` holds for it. Waits for the server (a few
    /// seconds at most when things work); gives up after a minute so a regression fails
    /// instead of hanging.
    async fn audit_of(&self, statement: &str, done: impl Fn(&AuditEvent) -> bool) -> AuditEvent {
        for _ in 0..600 {
            let events = self.catalog.audit(&AuditFilter::default()).await.unwrap();
            if let Some(event) = events.into_iter().find(|e| e.statement == statement && done(e)) {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no audit event of `{statement}` reached the expected state within a minute");
    }

    async fn metric(&self, line_start: &str) -> String {
        let text = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
        text.lines().find(|l| l.starts_with(line_start)).unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn a_cancel_request_stops_a_query_before_and_during_streaming() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut conn = Wire::connect(port, served.token("sam")).await.unwrap();
    let (_, pid, key) = conn.cancel_key();

    // While the first row is being computed.
    conn.send_query(ENDLESS_COUNT).await;
    served.audit_of(ENDLESS_COUNT, |e| e.outcome == "running").await;
    Wire::cancel(port, pid, key).await;
    let err = conn.answer().await.expect_err("cancelled");
    assert_eq!((err.code.as_str(), err.message.as_str()), ("57014", "canceling statement due to user request"));
    served.audit_of(ENDLESS_COUNT, |e| e.outcome == "cancelled").await;

    // While rows stream.
    conn.send_query(ENDLESS_ROWS).await;
    conn.first_row().await.unwrap();
    Wire::cancel(port, pid, key).await;
    let err = conn.count_rest().await.expect_err("cancelled while streaming");
    assert_eq!(err.code, "57014", "{err:?}");
    served.audit_of(ENDLESS_ROWS, |e| e.outcome == "cancelled").await;

    // The connection goes on; a cancel request naming another key changes nothing.
    Wire::cancel(port, pid, key.wrapping_add(1)).await;
    assert_eq!(conn.simple("SELECT 1").await.unwrap(), [[Some("1".to_owned())]]);
    served.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_stops_its_query() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();

    // psql killed while the server computes the first row.
    let sql = "SELECT count(*) AS killed FROM generate_series(1, 1000000000000)";
    let mut psql = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "whoever", "-d", "meshwork", "-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", served.token("sam"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql is installed (postgresql-client)");
    served.audit_of(sql, |e| e.outcome == "running").await;
    psql.kill().unwrap();
    psql.wait().unwrap();
    let event = served.audit_of(sql, |e| e.outcome != "running").await;
    assert_eq!(event.outcome, "cancelled", "{event:#?}");

    // A client that disconnects while rows stream.
    let mut conn = Wire::connect(port, served.token("sam")).await.unwrap();
    let sql = "SELECT value AS dropped FROM generate_series(1, 1000000000000)";
    conn.send_query(sql).await;
    conn.first_row().await.unwrap();
    drop(conn);
    let event = served.audit_of(sql, |e| e.outcome != "running").await;
    assert_eq!(event.outcome, "cancelled", "{event:#?}");

    // Nothing of the closed connections is left: no connection, no session, no query.
    for _ in 0..100 {
        if served.metric("meshwork_connections{interface=\"postgres\"}").await.ends_with(" 0")
            && served.metric("meshwork_sessions{interface=\"postgres\"}").await.ends_with(" 0")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served.metric("meshwork_connections{interface=\"postgres\"}").await, "meshwork_connections{interface=\"postgres\"} 0");
    assert_eq!(served.metric("meshwork_sessions{interface=\"postgres\"}").await, "meshwork_sessions{interface=\"postgres\"} 0");
    assert_eq!(served.metric("meshwork_active_queries{interface=\"postgres\"}").await, "meshwork_active_queries{interface=\"postgres\"} 0");
    served.stop().await;
}

#[tokio::test]
async fn connections_hold_their_state_only_while_open() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let mut open = Vec::new();
    for _ in 0..5 {
        let mut conn = Wire::connect(port, served.token("ana")).await.unwrap();
        assert_eq!(conn.simple("SELECT count(*) FROM sales.orders").await.unwrap(), [[Some("3".to_owned())]]);
        open.push(conn);
    }
    assert_eq!(served.metric("meshwork_connections{interface=\"postgres\"}").await, "meshwork_connections{interface=\"postgres\"} 5");
    assert_eq!(served.metric("meshwork_sessions{interface=\"postgres\"}").await, "meshwork_sessions{interface=\"postgres\"} 5");
    drop(open);
    let mut last = String::new();
    for _ in 0..100 {
        last = served.metric("meshwork_sessions{interface=\"postgres\"}").await;
        if last.ends_with(" 0") && served.metric("meshwork_connections{interface=\"postgres\"}").await.ends_with(" 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, "meshwork_sessions{interface=\"postgres\"} 0");
    served.stop().await;
}
