//! A JWT is not accepted before its `nbf` (not before) time, with the same 30 s leeway for clock
//! skew as its expiry, on every interface.

use futures::TryStreamExt;
use meshwork_query::QueryLimits;
use serde_json::{Value, json};

use crate::wire::Wire;
use crate::{Served, jwt, psql};

#[tokio::test]
async fn a_jwt_before_its_nbf_is_refused_on_every_interface() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let now = chrono::Utc::now().timestamp();
    let early = jwt("signing_key.pem", json!({"nbf": now + 3600}));

    let response = reqwest::Client::new().get(served.url("/api/v1/whoami")).bearer_auth(&early).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert!(body["error"]["message"].as_str().unwrap().contains("not valid yet"), "{body}");

    let mut flight = served.flight(&early).await;
    let err = flight.execute("SELECT 1".into(), None).await.unwrap_err().to_string();
    assert!(err.contains("not valid yet"), "{err}");
    let mut sam = served.flight(&jwt("signing_key.pem", json!({}))).await;
    let ticket = sam.execute("SELECT 1 AS one".into(), None).await.unwrap().endpoint[0].ticket.clone().unwrap();
    let err = match flight.do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()).unwrap_err().to_string(),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("not valid yet"), "{err}");

    let (out, err) = psql(served.at.postgres.port(), &early, "SELECT 1").await;
    assert!(out.is_empty() && err.contains("not valid yet"), "{out}{err}");
    let refused = Wire::connect(served.at.postgres.port(), &early).await.err().expect("refused at connect");
    assert_eq!((refused.severity.as_str(), refused.code.as_str()), ("FATAL", "28000"));

    // Within the leeway, and once valid, the token works everywhere.
    for nbf in [now + 10, now - 60] {
        let token = jwt("signing_key.pem", json!({"nbf": nbf}));
        let who = reqwest::Client::new().get(served.url("/api/v1/whoami")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(who.status(), 200, "nbf {nbf}");
        let (out, err) = psql(served.at.postgres.port(), &token, "SELECT 1").await;
        assert_eq!(out, "1\n", "{err}");
        let mut client = served.flight(&token).await;
        assert!(client.execute("SELECT 1".into(), None).await.is_ok());
    }
    let metrics = reqwest::get(served.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("meshwork_auth_failures_total{interface=\"http\",reason=\"not_yet_valid\"} 1"), "{metrics}");
    served.stop().await;
}
