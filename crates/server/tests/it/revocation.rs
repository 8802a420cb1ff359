//! Rights change under open connections: a revoked or expired API token, an expired JWT, a
//! removed membership and a narrowed access block apply to the next statement of an open
//! Postgres connection (simple protocol, a statement prepared before, a portal bound before),
//! and to Flight SQL tickets and prepared statement handles issued before.

use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use meshwork_auth::issue_token;
use meshwork_pipeline::{SilentObserver, apply, load_mesh};
use meshwork_query::QueryLimits;
use serde_json::json;

use crate::wire::Wire;
use crate::{Served, jwt};

const ORDERS: &str = "SELECT order_id FROM sales.orders ORDER BY order_id";

impl Served {
    /// Edits the served mesh repository with `edit`, then applies it, as an operator would.
    pub(crate) async fn reapply(&self, edit: impl FnOnce(&Path)) {
        let root = self._dir.path().join("mesh");
        edit(&root);
        let mesh = load_mesh(&root).unwrap_or_else(|d| panic!("{d:#?}"));
        let report = apply(&mesh, self.catalog.as_ref(), &mesh.home().open_store().unwrap(), &SilentObserver).await.unwrap();
        assert!(!report.failed(), "{report:#?}");
    }
}

fn replace_in(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

fn ids(rows: &[Vec<Option<String>>]) -> Vec<&str> {
    rows.iter().map(|r| r[0].as_deref().unwrap()).collect()
}

/// Three open connections of one principal: one for the simple protocol, one holding a
/// prepared statement, one holding a bound portal, all prepared while the rights held.
async fn three_connections(port: u16, credential: &str) -> (Wire, Wire, Wire) {
    let mut simple = Wire::connect(port, credential).await.unwrap();
    assert!(!simple.simple(ORDERS).await.unwrap().is_empty());
    let mut prepared = Wire::connect(port, credential).await.unwrap();
    prepared.prepare("orders", ORDERS).await.unwrap();
    assert!(!prepared.run_prepared("orders").await.unwrap().is_empty());
    let mut portal = Wire::connect(port, credential).await.unwrap();
    portal.prepare("orders", ORDERS).await.unwrap();
    portal.bind("orders", "open").await.unwrap();
    (simple, prepared, portal)
}

/// The next statement of each of the three connections, with the error code it got.
async fn next_statements(simple: &mut Wire, prepared: &mut Wire, portal: &mut Wire) -> [Result<Vec<String>, (String, String)>; 3] {
    let shape = |r: Result<Vec<Vec<Option<String>>>, crate::wire::PgError>| {
        r.map(|rows| ids(&rows).into_iter().map(str::to_owned).collect()).map_err(|e| (e.code, e.message))
    };
    [shape(simple.simple(ORDERS).await), shape(prepared.run_prepared("orders").await), shape(portal.execute("open").await)]
}

fn assert_unauthenticated(results: &[Result<Vec<String>, (String, String)>; 3], why: &str) {
    for (result, how) in results.iter().zip(["simple", "prepared", "portal"]) {
        match result {
            Err((code, message)) => assert!(code == "28000" && message.contains(why), "{how}: {code} {message}"),
            Ok(rows) => panic!("{how}: the connection kept its rights: {rows:?}"),
        }
    }
}

#[tokio::test]
async fn a_revoked_token_ends_open_connections_and_is_refused_on_flight() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let issued = issue_token(served.catalog.as_ref(), "ana", None, None).await.unwrap();
    let (mut simple, mut prepared, mut portal) = three_connections(port, &issued.token).await;
    let mut flight = served.flight(&issued.token).await;
    let info = flight.execute(ORDERS.into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();

    served.catalog.revoke_token(&issued.record.id).await.unwrap();
    assert_unauthenticated(&next_statements(&mut simple, &mut prepared, &mut portal).await, "revoked");
    let err = match flight.do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()).unwrap_err().to_string(),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("revoked"), "{err}");
    // The refused connections are gone: new ones are refused at connect.
    let refused = Wire::connect(port, &issued.token).await.err().expect("a revoked token cannot connect");
    assert_eq!(refused.code, "28000");
    served.stop().await;
}

#[tokio::test]
async fn an_expired_token_or_jwt_ends_open_connections() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    // Both expire about eight seconds from now: time enough to connect and prepare.
    let expire_at = tokio::time::Instant::now() + Duration::from_secs(8);
    let token = issue_token(served.catalog.as_ref(), "ana", None, Some(chrono::Duration::seconds(8))).await.unwrap().token;
    // A JWT's expiry has 30 s of leeway for clock skew: expired 22 s ago, it is accepted for 8 s more.
    let token_jwt = jwt("signing_key.pem", json!({"preferred_username": "ana", "exp": chrono::Utc::now().timestamp() - 22}));
    let (mut simple, mut prepared, mut portal) = three_connections(port, &token).await;
    let (mut simple_jwt, mut prepared_jwt, mut portal_jwt) = three_connections(port, &token_jwt).await;
    tokio::time::sleep_until(expire_at + Duration::from_secs(2)).await;
    assert_unauthenticated(&next_statements(&mut simple, &mut prepared, &mut portal).await, "expired");
    assert_unauthenticated(&next_statements(&mut simple_jwt, &mut prepared_jwt, &mut portal_jwt).await, "expired");
    served.stop().await;
}

#[tokio::test]
async fn a_removed_membership_applies_to_the_next_statement_everywhere() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let sam = served.token("sam").to_owned();
    let (mut simple, mut prepared, mut portal) = three_connections(port, &sam).await;
    assert_eq!(ids(&simple.simple(ORDERS).await.unwrap()), ["101", "102", "103", "104", "105", "106"], "sam reads every region as a sales member");
    let mut flight = served.flight(&sam).await;
    let ticket = flight.execute(ORDERS.into(), None).await.unwrap().endpoint[0].ticket.clone().unwrap();
    let handle = flight.prepare(ORDERS.into(), None).await.unwrap();

    // sam leaves sales: he is no analyst, so sales.orders is no longer his to read.
    served.reapply(|root| replace_in(&root.join("domains/sales/domain.yaml"), "members: [user:sam]", "members: []")).await;
    for (result, how) in next_statements(&mut simple, &mut prepared, &mut portal).await.into_iter().zip(["simple", "prepared", "portal"]) {
        let (code, message) = result.expect_err(how);
        assert!(code == "42P01" && message.contains("not found"), "{how}: {code} {message}");
    }
    let err = match flight.do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()).unwrap_err().to_string(),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("not found"), "{err}");
    let mut handle = handle;
    let err = handle.execute().await.err().expect("the prepared statement is planned again with sam's rights now").to_string();
    assert!(err.contains("not found"), "{err}");
    served.stop().await;
}

#[tokio::test]
async fn a_narrowed_access_block_applies_to_the_next_statement_everywhere() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let ana = served.token("ana").to_owned();
    let (mut simple, mut prepared, mut portal) = three_connections(port, &ana).await;
    assert_eq!(ids(&simple.simple(ORDERS).await.unwrap()), ["101", "102", "104"]);
    let mut flight = served.flight(&ana).await;
    let ticket = flight.execute(ORDERS.into(), None).await.unwrap().endpoint[0].ticket.clone().unwrap();
    let mut handle = flight.prepare(ORDERS.into(), None).await.unwrap();

    // Analysts lose sales.orders: only the sales domain reads it now.
    served.reapply(|root| replace_in(&root.join("domains/sales/products/orders/product.yaml"), "readers: [group:analysts]", "readers: [domain:sales]")).await;
    for (result, how) in next_statements(&mut simple, &mut prepared, &mut portal).await.into_iter().zip(["simple", "prepared", "portal"]) {
        let (code, message) = result.expect_err(how);
        assert!(code == "42P01" && message.contains("not found"), "{how}: {code} {message}");
    }
    // The connection itself still serves what ana may read.
    assert_eq!(simple.simple("SELECT count(*) FROM sales.customers").await.unwrap(), [[Some("2".to_owned())]]);
    let err = match flight.do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()).unwrap_err().to_string(),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("not found"), "{err}");
    let err = handle.execute().await.err().expect("the handle runs with ana's rights now").to_string();
    assert!(err.contains("not found"), "{err}");
    served.stop().await;
}
