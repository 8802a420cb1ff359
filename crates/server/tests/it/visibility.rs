//! What the HTTP API tells about products the caller may not read: a product's detail names
//! only visible inputs, and the event feed answers a hidden product like a missing one.

use meshwork_query::QueryLimits;
use serde_json::Value;

use crate::Served;

/// `finance.ledger_totals`, readable by everyone, built from `finance.ledger`, which only
/// finance reads.
const LEDGER_TOTALS: &str = "name: ledger_totals
domain: finance
version: 1.0.0
owner: group:finance-data
inputs:
  - { name: ledger, product: finance.ledger }
transform: SELECT count(*) AS entries FROM ledger
contract:
  columns:
    - { name: entries, type: bigint }
quality:
  - { rule: referential, column: entries, references: finance.ledger, references_column: entry_id, severity: warn }
access:
  readers: [\"*\"]
";

async fn get(served: &Served, path: &str, who: &str) -> (u16, Value) {
    let response = reqwest::Client::new().get(served.url(path)).bearer_auth(served.token(who)).send().await.unwrap();
    (response.status().as_u16(), serde_json::from_slice(&response.bytes().await.unwrap()).unwrap())
}

#[tokio::test]
async fn a_detail_names_only_visible_inputs_and_hidden_events_look_missing() {
    let served = Served::start(QueryLimits::default(), 8).await;
    served
        .reapply(|root| {
            let dir = root.join("domains/finance/products/ledger_totals");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("product.yaml"), LEDGER_TOTALS).unwrap();
        })
        .await;

    let (status, detail) = get(&served, "/api/v1/products/finance.ledger_totals", "ana").await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["descriptor"]["inputs"], serde_json::json!([]), "{detail:#}");
    assert_eq!(detail["descriptor"]["quality"], serde_json::json!([]), "{detail:#}");
    assert_eq!(detail["upstream"], serde_json::json!([]));
    assert!(!detail.to_string().contains("finance.ledger\""), "{detail}");
    // Someone who may read the input sees it.
    let (_, admin) = get(&served, "/api/v1/products/finance.ledger_totals", "admin").await;
    assert_eq!(admin["descriptor"]["inputs"][0]["source"]["product"], "finance.ledger", "{admin:#}");
    assert_eq!(admin["upstream"], serde_json::json!(["finance.ledger"]));

    // finance.ledger has events; finance.nope has none and does not exist: same answer.
    let (_, all) = get(&served, "/api/v1/events?product=finance.ledger", "admin").await;
    assert!(!all["events"].as_array().unwrap().is_empty());
    for after in [0, 1] {
        let (hidden_status, hidden) = get(&served, &format!("/api/v1/events?product=finance.ledger&after={after}"), "ana").await;
        let (missing_status, missing) = get(&served, &format!("/api/v1/events?product=finance.nope&after={after}"), "ana").await;
        assert_eq!((hidden_status, &hidden), (missing_status, &missing), "after={after}");
        assert_eq!(hidden["next_cursor"], after);
    }
    served.stop().await;
}
