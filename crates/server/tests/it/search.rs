//! `GET /api/v1/search`: ranked, typo-tolerant search whose hits and facet counts never include a
//! product the caller may not read.

use meshwork_query::QueryLimits;
use serde_json::{Value, json};

use crate::Served;

async fn search(served: &Served, query: &str, who: &str) -> (u16, Value) {
    let response = reqwest::Client::new().get(served.url(&format!("/api/v1/search?{query}"))).bearer_auth(served.token(who)).send().await.unwrap();
    (response.status().as_u16(), serde_json::from_slice(&response.bytes().await.unwrap()).unwrap())
}

fn products(page: &Value) -> Vec<&str> {
    page["hits"].as_array().unwrap().iter().map(|h| h["product"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn search_neither_lists_nor_counts_what_the_caller_may_not_read() {
    let served = Served::start(QueryLimits::default(), 8).await;

    // `amount` is a column of sales.orders (ana may read it) and of finance.ledger (she may not).
    let (status, as_admin) = search(&served, "q=amount", "admin").await;
    assert_eq!(status, 200, "{as_admin}");
    assert_eq!(products(&as_admin), ["finance.ledger", "sales.orders"]);
    assert_eq!(as_admin["total"], 2);
    assert_eq!(as_admin["facets"]["domain"], json!([{"value": "finance", "count": 1}, {"value": "sales", "count": 1}]));
    assert_eq!(as_admin["hits"][1]["matched"], json!(["column"]));
    let (_, as_ana) = search(&served, "q=amount", "ana").await;
    assert_eq!(products(&as_ana), ["sales.orders"]);
    assert_eq!(as_ana["total"], 1);
    assert_eq!(as_ana["facets"]["domain"], json!([{"value": "sales", "count": 1}]));
    assert_eq!(as_ana["facets"]["status"], json!([{"value": "active", "count": 1}]));
    // Asking for the hidden product's domain finds nothing and counts nothing there either.
    let (_, narrowed) = search(&served, "q=amount&domain=finance", "ana").await;
    assert_eq!((narrowed["total"].clone(), narrowed["hits"].clone()), (json!(0), json!([])));
    assert_eq!(narrowed["facets"]["domain"], json!([{"value": "sales", "count": 1}]));
    assert_eq!(narrowed["facets"]["quality"], json!([]));

    // A typo, a hit's fields, and a filter.
    let (_, typo) = search(&served, "q=custmer", "ana").await;
    assert_eq!(products(&typo)[0], "sales.customers", "{typo}");
    let hit = &typo["hits"][0];
    assert_eq!((hit["domain"].as_str(), hit["status"].as_str(), hit["quality"].as_str(), hit["slo"].as_str()), (Some("sales"), Some("active"), Some("passed"), Some("unknown")), "{hit}");
    let (_, pii) = search(&served, "classification=pii", "ana").await;
    assert_eq!(products(&pii), ["sales.customers"]);
    let (_, paged) = search(&served, "limit=1&offset=1", "ana").await;
    assert_eq!((products(&paged), paged["total"].clone()), (vec!["sales.customers"], json!(3)));

    let (status, bad) = search(&served, "classification=secret", "ana").await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["message"], "bad request: unknown classification `secret`; use one of `public`, `internal`, `confidential` or `pii`");
    served.stop().await;
}
