//! Access requests over HTTP and what a grant does on every interface: a Postgres connection
//! opened before the approval reads after it and stops after the revocation, a Flight SQL
//! ticket issued before the revocation returns no rows, and the attacks: deciding one's own
//! request, deciding another domain's, and telling hidden products apart through requests.

use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::Served;
use crate::wire::Wire;

const LEDGER: &str = "SELECT entry_id, account, amount FROM finance.ledger ORDER BY entry_id";

impl Served {
    async fn call(&self, method: reqwest::Method, who: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, self.url(path)).bearer_auth(self.token(who).to_owned());
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
    }
}

/// The error message of a JSON error body (without its request id).
fn message(body: &Value) -> String {
    body["error"]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_grant_reaches_open_connections_and_its_revocation_ends_them_and_issued_tickets() {
    let served = Served::start(meshwork_query::QueryLimits::default(), 8).await;
    // The ledger becomes discoverable; its account column is masked for readers outside finance.
    served
        .reapply(|root| {
            let file = root.join("domains/finance/products/ledger/product.yaml");
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, format!("{text}access:\n  discoverable: true\n  masks: {{ account: redact }}\n")).unwrap();
        })
        .await;
    let port = served.at.postgres.port();
    let mut before = Wire::connect(port, served.token("olga")).await.unwrap();
    assert_eq!(before.simple(LEDGER).await.unwrap_err().code, "42P01", "olga does not read the ledger yet");

    // olga sees the card, not the product.
    let (status, card) = served.call(reqwest::Method::GET, "olga", "/api/v1/products/finance.ledger/card", None).await;
    assert_eq!(status, 200);
    assert_eq!(card, json!({"product": "finance.ledger", "title": null, "description": null, "owner": "group:finance-data", "domain": "finance", "tags": [], "status": "active", "visibility": "card"}));
    assert_eq!(served.call(reqwest::Method::GET, "olga", "/api/v1/products/finance.ledger", None).await.0, 404);

    // Search lists the card by its card fields only, without quality or SLO, counted only in
    // the facets a card shows; `cards=false` and the product list leave it out.
    let (status, found) = served.call(reqwest::Method::GET, "olga", "/api/v1/search?q=ledgr", None).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total"], 1, "{found}");
    let hit = &found["hits"][0];
    assert_eq!((hit["product"].as_str(), hit["visibility"].as_str(), &hit["quality"], &hit["slo"]), (Some("finance.ledger"), Some("card"), &Value::Null, &Value::Null), "{hit}");
    assert_eq!(hit["matched"], json!(["name"]));
    assert_eq!(found["facets"]["domain"], json!([{"value": "finance", "count": 1}]));
    assert_eq!((&found["facets"]["classification"], &found["facets"]["quality"], &found["facets"]["slo"]), (&json!([]), &json!([]), &json!([])));
    let (_, by_column) = served.call(reqwest::Method::GET, "olga", "/api/v1/search?q=account", None).await;
    assert_eq!(by_column["total"], 0, "a column name is not on the card: {by_column}");
    let (_, as_admin) = served.call(reqwest::Method::GET, "admin", "/api/v1/search?q=account", None).await;
    assert_eq!(as_admin["hits"][0]["visibility"], "readable", "{as_admin}");
    let (_, readable) = served.call(reqwest::Method::GET, "olga", "/api/v1/search?q=ledger&cards=false", None).await;
    assert_eq!(readable["total"], 0, "{readable}");
    let (_, listed) = served.call(reqwest::Method::GET, "olga", "/api/v1/products", None).await;
    assert!(!listed.to_string().contains("finance.ledger"), "{listed}");

    // Hidden products answer exactly like missing ones, whatever the body.
    let hidden = served.call(reqwest::Method::POST, "olga", "/api/v1/products/sales.orders/access-requests", Some(json!({"nonsense": 1}))).await;
    let missing = served.call(reqwest::Method::POST, "olga", "/api/v1/products/sales.ordrs/access-requests", Some(json!({"nonsense": 1}))).await;
    assert_eq!((hidden.0, missing.0), (404, 404));
    assert_eq!(message(&hidden.1).replace("orders", "X"), message(&missing.1).replace("ordrs", "X"));
    let hidden_card = served.call(reqwest::Method::GET, "olga", "/api/v1/products/sales.orders/card", None).await;
    assert_eq!(hidden_card.0, 404);

    // The request: a purpose is required, `until` must be in the future, one pending at a time.
    let path = "/api/v1/products/finance.ledger/access-requests";
    assert_eq!(served.call(reqwest::Method::POST, "olga", path, Some(json!({"purpose": ""}))).await.0, 400);
    assert_eq!(served.call(reqwest::Method::POST, "olga", path, Some(json!({"purpose": "audit", "until": "2020-01-01T00:00:00Z"}))).await.0, 400);
    let (status, request) = served.call(reqwest::Method::POST, "olga", path, Some(json!({"purpose": "year-end audit"}))).await;
    assert_eq!(status, 201, "{request}");
    assert_eq!((request["status"].as_str(), request["principal"].as_str()), (Some("pending"), Some("olga")));
    let id = request["id"].as_i64().unwrap();
    let (status, again) = served.call(reqwest::Method::POST, "olga", path, Some(json!({"purpose": "again"}))).await;
    assert_eq!(status, 409, "{again}");

    // Attacks on the decision: the requester, and an owner of another domain.
    let (status, own) = served.call(reqwest::Method::POST, "olga", &format!("/api/v1/access-requests/{id}/approve"), None).await;
    assert_eq!(status, 403, "{own}");
    let (status, other) = served.call(reqwest::Method::POST, "sam", &format!("/api/v1/access-requests/{id}/approve"), None).await;
    assert_eq!(status, 404, "{other}");
    assert_eq!(served.call(reqwest::Method::POST, "sam", "/api/v1/access-requests/99999/approve", None).await.1["error"]["message"].as_str().map(|m| m.replace("99999", &id.to_string())), Some(message(&other)));
    assert_eq!(served.call(reqwest::Method::GET, "sam", "/api/v1/access-requests", None).await.1, json!([]));
    assert_eq!(served.call(reqwest::Method::GET, "olga", "/api/v1/access-requests?status=pending", None).await.1.as_array().unwrap().len(), 1);
    assert_eq!(served.call(reqwest::Method::GET, "olga", "/api/v1/access-requests?status=maybe", None).await.0, 400);
    assert!(before.simple(LEDGER).await.is_err(), "nothing was granted");

    // An administrator approves: the connection opened before reads at its next statement,
    // masked like any reader outside finance.
    let (status, approved) = served.call(reqwest::Method::POST, "admin", &format!("/api/v1/access-requests/{id}/approve"), Some(json!({"comment": "until the audit ends"}))).await;
    assert_eq!(status, 200, "{approved}");
    let grant = approved["grant"]["id"].as_i64().unwrap();
    let rows = before.simple(LEDGER).await.unwrap();
    assert_eq!(rows, [[Some("1".into()), Some("***".into()), Some("1000.00".into())], [Some("2".into()), Some("***".into()), Some("-1000.00".into())]]);
    assert_eq!(served.reference("olga", LEDGER).await, "entry_id,account,amount\n1,***,1000.00\n2,***,-1000.00\n");
    let (_, detail) = served.call(reqwest::Method::GET, "olga", "/api/v1/products/finance.ledger", None).await;
    assert_eq!(detail["grants"][0]["principal"], "olga", "{detail}");
    let (_, grants) = served.call(reqwest::Method::GET, "admin", "/api/v1/products/finance.ledger/grants", None).await;
    assert_eq!(grants.as_array().unwrap().len(), 1);

    // A Flight SQL ticket issued while the grant holds returns no rows once it is revoked.
    let mut flight = served.flight(served.token("olga")).await;
    let ticket = flight.execute(LEDGER.into(), None).await.unwrap().endpoint[0].ticket.clone().unwrap();
    let (status, _) = served.call(reqwest::Method::DELETE, "sam", "/api/v1/products/finance.ledger/grants/olga", None).await;
    assert_eq!(status, 404, "sam owns nothing of finance");
    let (status, revoked) = served.call(reqwest::Method::POST, "admin", &format!("/api/v1/grants/{grant}/revoke"), None).await;
    assert_eq!(status, 200, "{revoked}");
    let fetched = match flight.do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|batches| batches.iter().map(|b| b.num_rows()).sum::<usize>()),
        Err(err) => Err(err),
    };
    match fetched {
        Ok(rows) => assert_eq!(rows, 0, "a revoked grant returned rows over an issued ticket"),
        Err(err) => assert!(err.to_string().contains("not found"), "{err}"),
    }
    assert_eq!(before.simple(LEDGER).await.unwrap_err().code, "42P01", "the open connection stops reading");
    assert_eq!(served.call(reqwest::Method::GET, "olga", "/api/v1/products/finance.ledger", None).await.0, 404);
    assert_eq!(served.call(reqwest::Method::POST, "admin", &format!("/api/v1/grants/{grant}/revoke"), None).await.0, 404, "revoked once");
    served.stop().await;
}

#[tokio::test]
async fn a_grant_with_an_end_closes_an_open_connection_at_that_instant() {
    let served = Served::start(meshwork_query::QueryLimits::default(), 8).await;
    served
        .reapply(|root| {
            let file = root.join("domains/finance/products/ledger/product.yaml");
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, format!("{text}access:\n  discoverable: true\n")).unwrap();
        })
        .await;
    let until = chrono::Utc::now() + chrono::Duration::seconds(4);
    let (status, request) = served
        .call(reqwest::Method::POST, "olga", "/api/v1/products/finance.ledger/access-requests", Some(json!({"purpose": "a look", "until": meshwork_catalog::time::format(&until)})))
        .await;
    assert_eq!(status, 201, "{request}");
    let id = request["id"].as_i64().unwrap();
    assert_eq!(served.call(reqwest::Method::POST, "admin", &format!("/api/v1/access-requests/{id}/approve"), None).await.0, 200);
    let mut open = Wire::connect(served.at.postgres.port(), served.token("olga")).await.unwrap();
    assert_eq!(open.simple(LEDGER).await.unwrap().len(), 2);
    // Past the end, with nothing written to the catalog, the same connection reads nothing.
    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_millis(500);
    tokio::time::sleep(wait).await;
    assert_eq!(open.simple(LEDGER).await.unwrap_err().code, "42P01");
    served.stop().await;
}
