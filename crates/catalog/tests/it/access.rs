//! Access requests and grants on each backend: one pending request per principal and product,
//! decisions that make grants, withdrawal, revocation, expiry recorded once, and the events and
//! generation each step writes.

use chrono::{Duration, Utc};
use meshwork_catalog::{
    AccessDecisionRecord, AccessRequestFilter, AccessRequestId, AccessRequestStatus, CatalogStore, EventFilter, GrantId, NewAccessRequest,
};
use meshwork_core::event::EventKind;

use super::{Backend, id, publication};

fn ask(principal: &str, product: &str, until: Option<chrono::DateTime<Utc>>) -> NewAccessRequest {
    NewAccessRequest { product: id(product), principal: principal.into(), purpose: format!("{principal} needs it"), until, created_at: micros(Utc::now()) }
}

fn micros(at: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    meshwork_catalog::time::parse(&meshwork_catalog::time::format(&at)).unwrap()
}

fn decision(approve: bool, comment: Option<&str>) -> AccessDecisionRecord {
    AccessDecisionRecord { approve, by: "sam".into(), comment: comment.map(str::to_owned), at: micros(Utc::now()) }
}

async fn kinds(catalog: &dyn CatalogStore) -> Vec<EventKind> {
    catalog.events(&EventFilter::default()).await.unwrap().into_iter().map(|e| e.kind).filter(|k| k.as_str().starts_with("access.")).collect()
}

#[tokio::test]
async fn requests_are_one_pending_at_a_time_and_decided_once() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        catalog.publish(&publication("sales.orders", "h", &[])).await.unwrap();
        let until = micros(Utc::now() + Duration::days(30));
        let first = catalog.request_access(&ask("ana", "sales.orders", Some(until))).await.unwrap().expect("a first request is stored");
        assert_eq!((first.status, first.until, first.decided_at.is_none()), (AccessRequestStatus::Pending, Some(until), true));
        assert_eq!(catalog.access_request(first.id).await.unwrap(), Some(first.clone()));

        // A second pending request of the same principal for the same product is refused;
        // another principal, or another product, may ask.
        assert_eq!(catalog.request_access(&ask("ana", "sales.orders", None)).await.unwrap(), None);
        let carl = catalog.request_access(&ask("carl", "sales.orders", None)).await.unwrap().unwrap();
        let refunds = catalog.request_access(&ask("ana", "sales.refunds", None)).await.unwrap().unwrap();

        // Approving makes a grant ending at the request's `until` and moves the generation.
        let generation = catalog.generation().await.unwrap();
        let (approved, grant) = catalog.decide_access_request(first.id, &decision(true, Some("ok for Q1"))).await.unwrap().unwrap();
        assert_eq!(approved.status, AccessRequestStatus::Approved);
        assert_eq!((approved.decided_by.as_deref(), approved.comment.as_deref()), (Some("sam"), Some("ok for Q1")));
        let grant = grant.expect("an approval makes a grant");
        assert_eq!((grant.principal.as_str(), grant.expires_at, grant.request, grant.revoked_at), ("ana", Some(until), Some(first.id), None));
        assert!(catalog.generation().await.unwrap() > generation);
        // Decided once: a second answer finds nothing pending.
        assert_eq!(catalog.decide_access_request(first.id, &decision(false, Some("no"))).await.unwrap(), None);

        // Denying makes no grant and leaves the generation alone.
        let generation = catalog.generation().await.unwrap();
        let (denied, none) = catalog.decide_access_request(carl.id, &decision(false, Some("not for contractors"))).await.unwrap().unwrap();
        assert_eq!((denied.status, none), (AccessRequestStatus::Denied, None));
        assert_eq!(catalog.generation().await.unwrap(), generation);

        // Withdrawing: once, only while pending; afterwards the principal may ask again.
        let withdrawn = catalog.withdraw_access_request(refunds.id, Utc::now()).await.unwrap().unwrap();
        assert_eq!((withdrawn.status, withdrawn.decided_by.as_deref()), (AccessRequestStatus::Withdrawn, Some("ana")));
        assert_eq!(catalog.withdraw_access_request(refunds.id, Utc::now()).await.unwrap(), None);
        assert_eq!(catalog.withdraw_access_request(first.id, Utc::now()).await.unwrap(), None);
        assert!(catalog.request_access(&ask("ana", "sales.refunds", None)).await.unwrap().is_some());

        // Filters.
        let pending = AccessRequestFilter { status: Some(AccessRequestStatus::Pending), ..AccessRequestFilter::default() };
        assert_eq!(catalog.access_requests(&pending).await.unwrap().iter().map(|r| r.product.to_string()).collect::<Vec<_>>(), ["sales.refunds"]);
        let of_orders = AccessRequestFilter { product: Some(id("sales.orders")), ..AccessRequestFilter::default() };
        assert_eq!(catalog.access_requests(&of_orders).await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [first.id, carl.id]);
        let of_carl = AccessRequestFilter { principal: Some("carl".into()), ..AccessRequestFilter::default() };
        assert_eq!(catalog.access_requests(&of_carl).await.unwrap().len(), 1);
        assert_eq!(catalog.access_request(AccessRequestId(9999)).await.unwrap(), None);

        assert_eq!(
            kinds(&catalog).await,
            [
                EventKind::AccessRequested,
                EventKind::AccessRequested,
                EventKind::AccessRequested,
                EventKind::AccessApproved,
                EventKind::AccessDenied,
                EventKind::AccessWithdrawn,
                EventKind::AccessRequested
            ]
        );
        let approved_event = catalog.events(&EventFilter { kinds: vec![EventKind::AccessApproved], ..EventFilter::default() }).await.unwrap().pop().unwrap();
        assert_eq!(approved_event.product, Some(id("sales.orders")));
        assert_eq!(approved_event.payload["principal"], "ana");
        assert_eq!(approved_event.payload["grant"], grant.id.0);
        drop(catalog);
        backend.finish().await;
    }
}

#[tokio::test]
async fn grants_end_by_revocation_or_by_expiry_recorded_once() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        catalog.publish(&publication("sales.orders", "h", &[])).await.unwrap();
        let now = micros(Utc::now());
        let soon = now + Duration::hours(1);
        let mut grants = Vec::new();
        for (who, until) in [("ana", Some(soon)), ("carl", None), ("olga", Some(soon))] {
            let request = catalog.request_access(&ask(who, "sales.orders", until)).await.unwrap().unwrap();
            grants.push(catalog.decide_access_request(request.id, &decision(true, None)).await.unwrap().unwrap().1.unwrap());
        }
        let ids = |list: Vec<meshwork_catalog::Grant>| list.into_iter().map(|g| g.principal).collect::<Vec<_>>();
        assert_eq!(ids(catalog.open_grants(now).await.unwrap()), ["ana", "carl", "olga"]);
        // Ended grants are not open: the expiry is the instant itself.
        assert_eq!(ids(catalog.open_grants(soon).await.unwrap()), ["carl"]);

        // Revoking ends a grant at once, once, and moves the generation.
        let generation = catalog.generation().await.unwrap();
        let revoked = catalog.revoke_grant(grants[2].id, "sam", now).await.unwrap().unwrap();
        assert_eq!((revoked.revoked_at, revoked.revoked_by.as_deref()), (Some(now), Some("sam")));
        assert!(!revoked.active_at(now));
        assert!(catalog.generation().await.unwrap() > generation);
        assert_eq!(catalog.revoke_grant(grants[2].id, "sam", now).await.unwrap(), None);
        assert_eq!(catalog.revoke_grant(GrantId(9999), "sam", now).await.unwrap(), None);
        assert_eq!(ids(catalog.open_grants(now).await.unwrap()), ["ana", "carl"]);
        // An ended grant cannot be revoked any more.
        assert_eq!(catalog.revoke_grant(grants[0].id, "sam", soon).await.unwrap(), None);

        // Expiry is recorded once per grant, never for revoked ones or before the end.
        assert!(catalog.record_grant_expiries(now).await.unwrap().is_empty());
        assert_eq!(ids(catalog.record_grant_expiries(soon).await.unwrap()), ["ana"]);
        assert!(catalog.record_grant_expiries(soon + Duration::days(1)).await.unwrap().is_empty());
        let events = kinds(&catalog).await;
        assert_eq!(events.iter().filter(|k| **k == EventKind::AccessExpired).count(), 1);
        assert_eq!(events.iter().filter(|k| **k == EventKind::AccessRevoked).count(), 1);

        // Every grant stays listed, ended ones included.
        assert_eq!(ids(catalog.grants(Some(&id("sales.orders"))).await.unwrap()), ["ana", "carl", "olga"]);
        assert!(catalog.grants(Some(&id("sales.refunds"))).await.unwrap().is_empty());
        drop(catalog);
        backend.finish().await;
    }
}

/// Writers that read before they write (a request checks for a pending one first) on many
/// connections at once all succeed: on SQLite each write transaction takes the write lock when
/// it begins, so a writer waits its turn instead of failing with "database is locked" when
/// another committed between its read and its write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_queue_for_the_write_lock_instead_of_failing() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        catalog.publish(&publication("sales.orders", "h", &[])).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    for n in 0..12 {
                        let principal = format!("u{task}_{n}");
                        let stored = catalog.request_access(&ask(&principal, "sales.orders", None)).await;
                        assert!(matches!(stored, Ok(Some(_))), "{principal}: {stored:?}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let pending = AccessRequestFilter { status: Some(AccessRequestStatus::Pending), ..AccessRequestFilter::default() };
        assert_eq!(catalog.access_requests(&pending).await.unwrap().len(), 16 * 12);
        drop(catalog);
        backend.finish().await;
    }
}
