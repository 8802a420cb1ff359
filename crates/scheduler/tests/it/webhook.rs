//! Webhook delivery to a real HTTP receiver: JSON body, HMAC signature the receiver verifies on
//! its own, retry after a 500, event-kind filter, and a cursor that survives restarts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use meshwork_catalog::{CatalogStore, NewEvent, SqlCatalog};
use meshwork_core::clock::SystemClock;
use meshwork_core::descriptor::Webhook;
use meshwork_scheduler::WebhookDispatcher;
use sha2::Sha256;

#[derive(Default)]
struct Received {
    /// Status answered to each request, in order.
    statuses: Vec<u16>,
    /// Bodies that arrived with a valid signature.
    verified: Vec<serde_json::Value>,
}

const SECRET: &str = "whsec-test-3f1c";

/// Answers 500 to the first request and 200 to the rest; checks each signature itself.
async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let timestamp = headers["x-meshwork-timestamp"].to_str().unwrap().to_owned();
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(format!("{timestamp}.").as_bytes());
                mac.update(&body);
                let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                let mut received = state.lock().unwrap();
                let status = if received.statuses.is_empty() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
                received.statuses.push(status.as_u16());
                if headers["x-meshwork-signature"] == expected.as_str() && status == StatusCode::OK {
                    received.verified.push(serde_json::from_slice(&body).unwrap());
                }
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn event(kind: &str) -> NewEvent {
    NewEvent { kind: kind.parse().unwrap(), product: Some("sales.orders".parse().unwrap()), payload: serde_json::json!({ "version": "1.2.0" }) }
}

#[tokio::test]
async fn events_are_posted_signed_retried_after_a_500_and_filtered_by_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog: Arc<dyn CatalogStore> = Arc::new(SqlCatalog::open_sqlite(&tmp.path().join("catalog.db")).await.unwrap());
    catalog.append_events(&[event("product.published")]).await.unwrap(); // before the webhook existed
    let (url, received) = receiver().await;
    let webhook = Webhook {
        name: "ops".into(),
        url,
        secret_env: "OPS_WEBHOOK_SECRET".into(),
        events: vec!["product.published".parse().unwrap(), "product.quality_failed".parse().unwrap()],
    };
    let dispatcher = WebhookDispatcher::with_secret(webhook.clone(), SECRET.into(), catalog.clone(), Arc::new(SystemClock), Duration::from_millis(20)).unwrap();
    assert_eq!(dispatcher.deliver_pending().await.unwrap(), 0, "a new webhook starts at the end of the log");

    catalog.append_events(&[event("product.schema_changed"), event("product.quality_failed")]).await.unwrap();
    assert_eq!(dispatcher.deliver_pending().await.unwrap(), 2);
    {
        let received = received.lock().unwrap();
        assert_eq!(received.statuses, [500, 200], "one retry after the 500; the filtered kind was not sent");
        assert_eq!(received.verified.len(), 1);
        let body = &received.verified[0];
        assert_eq!((body["kind"].as_str(), body["product"].as_str()), (Some("product.quality_failed"), Some("sales.orders")));
        assert_eq!(body["payload"]["version"], "1.2.0");
        assert_eq!(body["id"], 3);
    }
    let deliveries = catalog.deliveries("ops", 10).await.unwrap();
    let attempts: Vec<(u32, Option<u16>, &str)> = deliveries.iter().rev().map(|d| (d.attempt, d.status, d.outcome.as_str())).collect();
    assert_eq!(attempts, [(1, Some(500), "retrying"), (2, Some(200), "delivered")]);

    // A restarted server resumes after the last handled event.
    let restarted = WebhookDispatcher::with_secret(webhook, SECRET.into(), catalog.clone(), Arc::new(SystemClock), Duration::from_millis(20)).unwrap();
    assert_eq!(restarted.deliver_pending().await.unwrap(), 0);
    catalog.append_events(&[event("product.published")]).await.unwrap();
    assert_eq!(restarted.deliver_pending().await.unwrap(), 1);
    assert_eq!(received.lock().unwrap().verified.len(), 2);
}

#[tokio::test]
async fn a_webhook_whose_secret_is_not_set_is_refused_naming_the_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog: Arc<dyn CatalogStore> = Arc::new(SqlCatalog::open_sqlite(&tmp.path().join("catalog.db")).await.unwrap());
    let webhook = Webhook { name: "ops".into(), url: "http://127.0.0.1:9/".into(), secret_env: "MESHWORK_TEST_UNSET_SECRET".into(), events: vec![] };
    let error = WebhookDispatcher::new(webhook, catalog, Arc::new(SystemClock), Duration::from_secs(1)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "webhook `ops`: environment variable `MESHWORK_TEST_UNSET_SECRET` is not set; export the signing secret before `meshwork serve`"
    );
}
