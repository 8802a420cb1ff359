//! A deprecated product on every network interface: its readers are warned (HTTP headers and
//! JSON field, Flight SQL response header and schema metadata, a Postgres NoticeResponse on the
//! simple and the extended protocol); after its sunset it reads as not found, with the successor
//! named only for a principal who could read it.

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use meshwork_query::QueryLimits;

use super::{Served, psql};
use crate::wire::Wire;

const WARNING: &str = "`sales.orders_v1` is deprecated and is no longer served from 2099-12-31; move to `sales.orders`";
const GONE: &str = "`sales.orders_v1` is no longer served since its sunset on 2020-01-01; read its successor `sales.orders`";
const OLD: &str = "SELECT count(*) AS n FROM sales.orders_v1";
const NEW: &str = "SELECT count(*) AS n FROM sales.orders";

/// `sales.orders` at 2.0.0 with major 1 kept as the deprecated `sales.orders_v1`.
fn keep_major_one(root: &std::path::Path, sunset: &str) {
    let orders = root.join("domains/sales/products/orders/product.yaml");
    let text = std::fs::read_to_string(&orders).unwrap();
    let kept = root.join("domains/sales/products/orders_v1/product.yaml");
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    let v1 = text.replace("name: orders\n", "name: orders_v1\n").replace("version: 2.0.0", "version: 1.0.0");
    std::fs::write(&kept, format!("{v1}status: deprecated\nsunset: {sunset}\nsuccessor: sales.orders\n")).unwrap();
    std::fs::write(&orders, text.replace("version: 1.0.0", "version: 2.0.0")).unwrap();
}

async fn flight_get(client: &mut FlightSqlServiceClient<tonic::transport::Channel>, sql: &str) -> Result<(Vec<String>, String, Vec<RecordBatch>), String> {
    let info = client.execute(sql.to_owned(), None).await.map_err(|e| e.to_string())?;
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
    let headers: Vec<String> = stream
        .headers()
        .get_all("x-meshwork-deprecation")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| e.to_string())?;
    let metadata = batches.first().and_then(|b| b.schema().metadata().get("meshwork.deprecation").cloned()).unwrap_or_default();
    Ok((headers, metadata, batches))
}

#[tokio::test]
async fn deprecated_products_warn_on_every_interface_and_sunset_ones_are_not_found() {
    let served = Served::start(QueryLimits::default(), 8).await;
    served.reapply(|root| keep_major_one(root, "2099-12-31")).await;
    let ana = served.token("ana");

    // HTTP: headers, and the JSON field.
    let response = served.post_query(Some(ana), OLD, "application/json").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers.get_all("meshwork-deprecation").iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>(), [WARNING]);
    assert_eq!(headers["sunset"], "Thu, 31 Dec 2099 00:00:00 GMT");
    assert_eq!(headers["link"], "</api/v1/products/sales.orders>; rel=\"successor-version\"");
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        body["deprecations"],
        serde_json::json!([{"product": "sales.orders_v1", "sunset": "2099-12-31", "successor": "sales.orders", "message": WARNING}])
    );
    assert_eq!(body["rows"].as_array().unwrap().len(), 1);
    let current = served.post_query(Some(ana), NEW, "application/json").await;
    assert!(current.headers().get("meshwork-deprecation").is_none() && current.headers().get("sunset").is_none());
    assert!(!current.text().await.unwrap().contains("deprecations"));

    // Flight SQL: a response header and the schema's metadata.
    let mut flight = served.flight(ana).await;
    let (headers, metadata, batches) = flight_get(&mut flight, OLD).await.unwrap();
    assert_eq!((headers, metadata.as_str(), batches[0].num_rows()), (vec![WARNING.to_owned()], WARNING, 1));
    let (headers, metadata, _) = flight_get(&mut flight, NEW).await.unwrap();
    assert!(headers.is_empty() && metadata.is_empty());

    // Postgres: a NoticeResponse before the rows, on both protocols; psql prints it.
    let port = served.at.postgres.port();
    let mut wire = Wire::connect(port, ana).await.unwrap();
    assert_eq!(wire.simple(OLD).await.unwrap().len(), 1);
    assert_eq!(wire.notices.iter().map(|n| (n.severity.as_str(), n.code.as_str(), n.message.as_str())).collect::<Vec<_>>(), [("WARNING", "01P01", WARNING)]);
    wire.prepare("s1", OLD).await.unwrap();
    assert_eq!(wire.run_prepared("s1").await.unwrap().len(), 1);
    assert_eq!(wire.notices.len(), 2, "the extended protocol warns too: {:?}", wire.notices);
    wire.simple(NEW).await.unwrap();
    assert_eq!(wire.notices.len(), 2, "nothing for a current product");
    let (out, err) = psql(port, ana, OLD).await;
    assert_eq!((out.as_str(), err.as_str()), ("3\n", format!("WARNING:  {WARNING}\n").as_str()));

    // ana subscribes (no webhook: the event feed is enough for her).
    let client = reqwest::Client::new();
    let subscribed = client.post(served.url("/api/v1/products/sales.orders_v1/subscriptions")).bearer_auth(ana).send().await.unwrap();
    assert_eq!(subscribed.status(), 201);
    let feed_start: serde_json::Value =
        serde_json::from_str(&client.get(served.url("/api/v1/events?limit=1000")).bearer_auth(ana).send().await.unwrap().text().await.unwrap()).unwrap();
    let cursor = feed_start["next_cursor"].as_i64().unwrap();

    // The sunset passes: not served, with the successor named for ana only.
    served.reapply(|root| {
        let kept = root.join("domains/sales/products/orders_v1/product.yaml");
        let text = std::fs::read_to_string(&kept).unwrap();
        std::fs::write(&kept, text.replace("sunset: 2099-12-31", "sunset: 2020-01-01")).unwrap();
    })
    .await;
    // Her feed of subscribed products has the sunset (and the publication that carried it), and
    // nothing about other products.
    let feed: serde_json::Value = serde_json::from_str(
        &client.get(served.url(&format!("/api/v1/events?subscribed=true&after={cursor}"))).bearer_auth(ana).send().await.unwrap().text().await.unwrap(),
    )
    .unwrap();
    let events: Vec<(&str, &str)> = feed["events"].as_array().unwrap().iter().map(|e| (e["product"].as_str().unwrap(), e["kind"].as_str().unwrap())).collect();
    assert!(events.contains(&("sales.orders_v1", "product.sunset")) && events.contains(&("sales.orders_v1", "product.published")), "{feed}");
    assert!(events.iter().all(|(product, _)| *product == "sales.orders_v1"), "{feed}");

    let gone = served.post_query(Some(ana), OLD, "application/json").await;
    assert_eq!(gone.status(), 404);
    assert!(gone.text().await.unwrap().contains(GONE));
    let olga = served.post_query(Some(served.token("olga")), OLD, "application/json").await;
    assert_eq!(olga.status(), 404);
    let olga = olga.text().await.unwrap();
    assert!(olga.contains("not found") && !olga.contains("sunset"), "{olga}");
    let err = flight_get(&mut flight, OLD).await.unwrap_err();
    assert!(err.contains(GONE), "{err}");
    let err = flight_get(&mut served.flight(served.token("olga")).await, OLD).await.unwrap_err();
    assert!(err.contains("not found") && !err.contains("sunset"), "{err}");
    let err = Wire::connect(port, ana).await.unwrap().simple(OLD).await.unwrap_err();
    assert!(err.message.contains(GONE) && err.code == "42P01", "{err:?}");
    let err = Wire::connect(port, served.token("olga")).await.unwrap().simple(OLD).await.unwrap_err();
    assert!(!err.message.contains("sunset") && err.code == "42P01", "{err:?}");
    served.stop().await;
}
