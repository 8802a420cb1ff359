//! Access requests in the portal, as a browser posts them: the public card of a discoverable
//! product and its request form, `/access` for requesters and owners, approval reaching the
//! requester's console at once and revocation ending it, and the refusals (no CSRF token, a
//! hidden product, a non-owner deciding, the requester deciding its own request).

use meshwork_catalog::{AccessRequestFilter, AccessRequestStatus};
use meshwork_query::QueryLimits;

use crate::Served;
use crate::portal::{Browser, FormBody, client};

const LEDGER: &str = "SELECT entry_id, account, amount FROM finance.ledger ORDER BY entry_id";

/// The fixture mesh with `finance.ledger` discoverable, its `account` masked outside finance.
async fn served() -> Served {
    let served = Served::start(QueryLimits::default(), 8).await;
    served
        .reapply(|root| {
            let file = root.join("domains/finance/products/ledger/product.yaml");
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, format!("{text}access:\n  discoverable: true\n  masks: {{ account: redact }}\n")).unwrap();
        })
        .await;
    served
}

async fn body(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), response.text().await.unwrap())
}

fn location(response: &reqwest::Response) -> &str {
    response.headers()["location"].to_str().unwrap()
}

#[tokio::test]
async fn a_discoverable_product_shows_its_card_and_hidden_ones_stay_not_found() {
    let served = served().await;
    let olga = Browser::sign_in(&served, "olga").await;
    let (status, card) = body(olga.get(&served, "/products/finance.ledger").await).await;
    assert_eq!(status, 200, "{card}");
    assert!(card.contains("<code>finance.ledger</code>") && card.contains("group:finance-data"), "{card}");
    assert!(card.contains(r#"<label for="purpose">Purpose</label>"#) && card.contains(r#"type="date""#) && card.contains(r#"action="/products/finance.ledger/access-requests""#), "{card}");
    // The card only: no columns, versions, quality or lineage.
    for private in ["entry_id", "id=\"contract\"", "id=\"versions\"", "id=\"lineage\"", "id=\"quality\""] {
        assert!(!card.contains(private), "{private} on the card: {card}");
    }
    // The search page lists the card, marked as one, without quality or SLO; searching by one
    // of its columns does not find it.
    let (status, found) = body(olga.get(&served, "/?q=ledger").await).await;
    assert_eq!(status, 200, "{found}");
    assert!(found.contains(r#"href="/products/finance.ledger""#) && found.contains("card: you may request access"), "{found}");
    assert!(!found.contains(" · quality ") && !found.contains(" · SLO "), "{found}");
    let (_, by_column) = body(olga.get(&served, "/?q=entry_id").await).await;
    assert!(by_column.contains("No products match.") && !by_column.contains("finance.ledger"), "{by_column}");
    // A product olga may not discover is the same 404 page as a missing one.
    let (hidden_status, hidden) = body(olga.get(&served, "/products/sales.orders").await).await;
    let (missing_status, missing) = body(olga.get(&served, "/products/sales.nope").await).await;
    assert_eq!((hidden_status, missing_status), (404, 404));
    assert_eq!(hidden, missing);
    // Asking for a hidden product is not found too, whatever the form says.
    let (status, asked) = body(olga.post(&served, "/products/sales.orders/access-requests", &[("purpose", "")]).await).await;
    assert_eq!((status, asked), (404, missing));
    served.stop().await;
}

#[tokio::test]
async fn a_request_approved_in_the_portal_reaches_the_console_and_revoking_ends_it() {
    let served = served().await;
    let (olga, sam, admin) = (Browser::sign_in(&served, "olga").await, Browser::sign_in(&served, "sam").await, Browser::sign_in(&served, "admin").await);
    let ask = "/products/finance.ledger/access-requests";
    assert_eq!(olga.post(&served, "/console/run", &[("sql", LEDGER)]).await.status(), 404, "olga does not read the ledger yet");

    // Without the session's CSRF token the request is refused and nothing is asked.
    let refused = client().post(served.url(ask)).header("cookie", olga.cookie()).form_body(&[("purpose", "audit")]).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    // Mistakes show the form again with the message and what was typed.
    let (status, page) = body(olga.post(&served, ask, &[("purpose", "  "), ("until", "")]).await).await;
    assert_eq!(status, 400);
    assert!(page.contains("needs a purpose") && page.contains("id=\"request-form\""), "{page}");
    let (status, page) = body(olga.post(&served, ask, &[("purpose", "old audit"), ("until", "2020-01-01")]).await).await;
    assert_eq!(status, 400);
    assert!(page.contains("is not in the future") && page.contains(">old audit</textarea>"), "{page}");
    assert!(served.catalog.access_requests(&AccessRequestFilter::default()).await.unwrap().is_empty());

    let until = (chrono::Utc::now() + chrono::Duration::days(30)).date_naive().to_string();
    let made = olga.post(&served, ask, &[("purpose", "year-end audit"), ("until", &until)]).await;
    assert_eq!((made.status().as_u16(), location(&made)), (303, "/products/finance.ledger"));
    let requests = served.catalog.access_requests(&AccessRequestFilter::default()).await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.principal.as_str(), request.purpose.as_str(), request.status), ("olga", "year-end audit", AccessRequestStatus::Pending));
    assert_eq!(request.until.unwrap().date_naive().to_string(), (chrono::Utc::now() + chrono::Duration::days(31)).date_naive().to_string(), "the chosen day is included");
    let (_, card) = body(olga.get(&served, "/products/finance.ledger").await).await;
    assert!(card.contains("Request pending.") && card.contains("Withdraw request") && !card.contains("id=\"request-form\""), "{card}");
    let (status, again) = body(olga.post(&served, ask, &[("purpose", "again")]).await).await;
    assert_eq!(status, 409);
    assert!(again.contains("already has a pending access request"), "{again}");
    let audit = served.catalog.audit(&meshwork_catalog::AuditFilter { principal: Some("olga".into()), ..Default::default() }).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "access.request" && e.interface == "portal"), "{audit:#?}");

    // Nobody else sees or decides it: sam owns nothing of finance, olga may not decide her own.
    let (_, sams) = body(sam.get(&served, "/access").await).await;
    assert!(!sams.contains("year-end audit") && !sams.contains("olga"), "{sams}");
    let approve = format!("/access/requests/{}/approve", request.id);
    assert_eq!(sam.post(&served, &approve, &[("comment", "sure")]).await.status(), 404);
    assert_eq!(olga.post(&served, &approve, &[]).await.status(), 403);
    let (_, olgas) = body(olga.get(&served, "/access").await).await;
    assert!(olgas.contains("year-end audit") && !olgas.contains("Requests waiting for you"), "{olgas}");

    // The owner sees it; a denial needs a comment; the approval is a grant.
    let (_, admins) = body(admin.get(&served, "/access").await).await;
    assert!(admins.contains("year-end audit") && admins.contains(&format!(r#"formaction="/access/requests/{}/deny""#, request.id)), "{admins}");
    let (status, page) = body(admin.post(&served, &format!("/access/requests/{}/deny", request.id), &[("comment", "")]).await).await;
    assert_eq!(status, 400);
    assert!(page.contains("needs a comment"), "{page}");
    let approved = admin.post(&served, &approve, &[("comment", "until the audit ends")]).await;
    assert_eq!((approved.status().as_u16(), location(&approved)), (303, "/access"));
    let (status, rows) = body(olga.post(&served, "/console/run", &[("sql", LEDGER)]).await).await;
    assert_eq!(status, 200, "{rows}");
    assert!(rows.contains("<tr><td>1</td><td>***</td><td>1000.00</td></tr>"), "masked like any reader outside finance: {rows}");

    // The product page shows the grant: to olga hers, to the owner with a Revoke button.
    let (status, page) = body(olga.get(&served, "/products/finance.ledger").await).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"contract\"") && page.contains("year-end audit") && page.contains("Give up"), "{page}");
    let (_, page) = body(admin.get(&served, "/products/finance.ledger").await).await;
    assert!(page.contains("year-end audit") && page.contains(">Revoke</button>"), "{page}");
    let grant = served.catalog.grants(None).await.unwrap().remove(0);
    let revoke = format!("/access/grants/{}/revoke", grant.id);
    assert_eq!(sam.post(&served, &revoke, &[]).await.status(), 404, "sam owns nothing of finance");
    let revoked = admin.post(&served, &revoke, &[("next", "/products/finance.ledger")]).await;
    assert_eq!((revoked.status().as_u16(), location(&revoked)), (303, "/products/finance.ledger"));
    assert_eq!(olga.post(&served, "/console/run", &[("sql", LEDGER)]).await.status(), 404, "revoked: not found again");
    let (status, card) = body(olga.get(&served, "/products/finance.ledger").await).await;
    assert_eq!(status, 200);
    assert!(card.contains("id=\"request-form\"") && card.contains("until the audit ends"), "the card again, with the last answer: {card}");
    served.stop().await;
}
