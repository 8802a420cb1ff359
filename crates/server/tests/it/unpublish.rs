//! A product removed from the repository and unpublished by the next apply disappears from the
//! running server at once: listing, search, detail and queries answer as for a missing product.

use meshwork_pipeline::{SilentObserver, apply, load_mesh};
use meshwork_query::QueryLimits;
use serde_json::Value;

use super::Served;

#[tokio::test]
async fn an_unpublished_product_is_not_found_on_http_even_by_administrators() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let request = client.get(served.url(path)).bearer_auth(served.token("admin").to_owned());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).unwrap())
        }
    };
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(ids(&get("/api/v1/products?q=ledger").await.1).contains(&"finance.ledger".to_owned()));

    let root = served.root();
    std::fs::remove_dir_all(root.join("domains/finance/products/ledger")).unwrap();
    let mesh = load_mesh(&root).unwrap_or_else(|d| panic!("{d:#?}"));
    let home = mesh.home();
    let report = apply(&mesh, served.catalog.as_ref(), &home.open_store().unwrap(), &SilentObserver).await.unwrap();
    assert_eq!(report.outcomes.last().map(|(id, o)| (id.to_string(), o.keyword())), Some(("finance.ledger".into(), "unpublished")));

    assert_eq!(ids(&get("/api/v1/products").await.1), ["marketing.campaigns", "sales.customers", "sales.orders"]);
    assert_eq!(ids(&get("/api/v1/products?q=ledger").await.1), Vec::<String>::new());
    let (status, detail) = get("/api/v1/products/finance.ledger").await;
    assert_eq!((status, detail["error"]["code"].as_str()), (404, Some("not_found")), "{detail}");
    let query = served.post_query(Some(served.token("admin")), "SELECT count(*) FROM finance.ledger", "application/json").await;
    assert_eq!(query.status(), 404);
    // The event log still tells what happened, to administrators.
    let (_, events) = get("/api/v1/events?after=0&kind=product.unpublished").await;
    assert_eq!(events["events"][0]["product"], "finance.ledger", "{events:#}");
    served.stop().await;
}
