//! Every record goes in and comes back typed and equal on each backend; filters select the
//! same rows on each.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use meshwork_catalog::{
    ApiTokenRecord, AuditEvent, AuditFilter, AuditOutcome, AuditProduct, CatalogStore, DeliveryOutcome, DeliveryRecord, EventFilter, GovernanceSnapshot,
    NewEvent, Objective, OperationsMark, PolicyRecord, PolicyStateRecord, QualityRun, RuleResult, RuleStatus, RunOutcome, SloCheck, SloStatus, Trigger,
};
use meshwork_core::descriptor::{PolicyState, Severity};
use meshwork_core::event::EventKind;
use meshwork_core::id::DomainName;
use serde_json::json;

use super::{Backend, id, publication};

/// `at` as the store keeps it: microseconds.
fn micros(at: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    meshwork_catalog::time::parse(&meshwork_catalog::time::format(&at)).unwrap()
}

fn audit_event(principal: &str, product: &str, outcome: AuditOutcome, at: chrono::DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: 0,
        at: micros(at),
        principal: principal.into(),
        interface: "postgres".into(),
        action: "query".into(),
        statement: format!("SELECT * FROM {product}"),
        products: vec![AuditProduct {
            product: product.into(),
            decision: "allow".into(),
            policies: vec!["descriptor".into()],
            row_filters: 1,
            masks: vec!["email:hash".into()],
            reasons: Vec::new(),
            decision_us: 12,
            as_of: Vec::new(),
            aggregate: None,
            epsilon: None,
        }],
        rows: Some(3),
        duration_ms: 1.5,
        outcome,
        error: None,
    }
}

#[tokio::test]
async fn audit_events_round_trip_filter_and_complete_once() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let old = Utc::now() - Duration::hours(2);
        let first = audit_event("ana", "sales.orders", AuditOutcome::Ok, old);
        let first_id = catalog.record_audit(&first).await.unwrap();
        let running = audit_event("mia", "sales.customers", AuditOutcome::Running, Utc::now());
        let running_id = catalog.record_audit(&running).await.unwrap();
        catalog.complete_audit(running_id, Some(7), 9.0, AuditOutcome::Error, Some("boom")).await.unwrap();
        catalog.complete_audit(running_id, Some(8), 10.0, AuditOutcome::Ok, None).await.unwrap();

        let all = catalog.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [running_id, first_id], "newest first");
        assert_eq!(all[1], AuditEvent { id: first_id, ..first });
        assert_eq!((all[0].outcome, all[0].rows, all[0].error.as_deref()), (AuditOutcome::Error, Some(7), Some("boom")), "completed once");
        let by_principal = catalog.audit(&AuditFilter { principal: Some("ana".into()), ..AuditFilter::default() }).await.unwrap();
        assert_eq!(by_principal.len(), 1);
        let recent = catalog.audit(&AuditFilter { since: Some(Utc::now() - Duration::hours(1)), ..AuditFilter::default() }).await.unwrap();
        assert_eq!(recent.iter().map(|e| e.id).collect::<Vec<_>>(), [running_id]);
        let by_product = catalog.audit(&AuditFilter { product: Some(id("sales.orders")), limit: Some(5), ..AuditFilter::default() }).await.unwrap();
        assert_eq!(by_product.iter().map(|e| e.id).collect::<Vec<_>>(), [first_id]);
        assert_eq!(catalog.query_outcomes(&id("sales.orders"), old - Duration::seconds(1)).await.unwrap(), (1, 0));
        assert_eq!(catalog.query_outcomes(&id("sales.customers"), old).await.unwrap(), (0, 1));
        assert_eq!(catalog.query_outcomes(&id("sales.orders"), Utc::now()).await.unwrap(), (0, 0));
        backend.finish().await;
    }
}

/// Statements served at once each record their event and complete it, as `meshwork serve`
/// does: every event lands once and is completed once, on each backend (on SQLite the writers
/// of a process queue for their turn instead of sleeping in SQLite's busy handler).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_statements_record_and_complete_their_events() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for n in 0..10u64 {
                        let id = catalog.record_audit(&audit_event(&format!("u{task}"), "sales.orders", AuditOutcome::Running, Utc::now())).await.unwrap();
                        catalog.complete_audit(id, Some(n), 1.0, AuditOutcome::Ok, None).await.unwrap();
                        ids.push(id);
                    }
                    ids
                })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.extend(task.await.unwrap());
        }
        let events = catalog.audit(&AuditFilter { limit: Some(1000), ..AuditFilter::default() }).await.unwrap();
        assert_eq!(events.len(), 160);
        assert!(events.iter().all(|e| e.outcome == AuditOutcome::Ok), "every event completed");
        let mut stored: Vec<i64> = events.iter().map(|e| e.id).collect();
        stored.sort_unstable();
        ids.sort_unstable();
        assert_eq!(stored, ids);
        backend.finish().await;
    }
}

/// The governance dashboard's source: the audit events of applies and refreshes, newest first,
/// at most `limit`, without the queries between them.
#[tokio::test]
async fn applies_are_the_apply_and_refresh_events_newest_first() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let action = |action: &str, minutes: i64| AuditEvent { action: action.into(), ..audit_event("admin", "sales.orders", AuditOutcome::Ok, Utc::now() - Duration::minutes(minutes)) };
        let mut ids = Vec::new();
        for event in [action("apply", 50), action("query", 40), action("refresh", 30), action("query", 20), action("apply", 10)] {
            ids.push(catalog.record_audit(&event).await.unwrap());
        }
        let applies = catalog.applies(10).await.unwrap();
        assert_eq!(applies.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[4], ids[2], ids[0]]);
        assert_eq!((applies[0].action.as_str(), applies[0].products[0].product.as_str()), ("apply", "sales.orders"));
        assert_eq!(catalog.applies(2).await.unwrap().iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["apply", "refresh"]);
        backend.finish().await;
    }
}

/// Who reads a product, from the audit log: per principal and interface, newest first; denied,
/// refused and failed queries are not reads, nor is anything before the window.
#[tokio::test]
async fn readers_of_a_product_come_from_the_audit_log() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let now = Utc::now();
        let at = |minutes: i64| now - Duration::minutes(minutes);
        let over = |interface: &str, mut event: AuditEvent| {
            event.interface = interface.into();
            event
        };
        for event in [
            audit_event("ana", "sales.orders", AuditOutcome::Ok, at(30)),
            audit_event("ana", "sales.orders", AuditOutcome::Ok, at(10)),
            over("http", audit_event("ana", "sales.orders", AuditOutcome::Cancelled, at(20))),
            audit_event("bob", "sales.orders", AuditOutcome::Ok, at(5)),
            audit_event("eve", "sales.orders", AuditOutcome::Denied, at(1)),
            audit_event("eve", "sales.orders", AuditOutcome::Error, at(2)),
            audit_event("old", "sales.orders", AuditOutcome::Ok, at(60 * 24 * 40)),
            audit_event("mia", "sales.customers", AuditOutcome::Ok, at(3)),
        ] {
            catalog.record_audit(&event).await.unwrap();
        }
        let readers = catalog.readers(&id("sales.orders"), now - Duration::days(30)).await.unwrap();
        let seen: Vec<(&str, &str, u64)> = readers.iter().map(|r| (r.principal.as_str(), r.interface.as_str(), r.queries)).collect();
        assert_eq!(seen, [("bob", "postgres", 1), ("ana", "postgres", 2), ("ana", "http", 1)]);
        assert_eq!(readers[1].last_read, micros(at(10)));
        assert!(catalog.readers(&id("sales.returns"), now - Duration::days(30)).await.unwrap().is_empty());
        backend.finish().await;
    }
}

#[tokio::test]
async fn events_are_typed_ordered_and_filtered_by_kind_and_product() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let event = |kind, product: Option<&str>| NewEvent { kind, product: product.map(id), payload: json!({"n": 1}) };
        catalog.append_events(&[event(EventKind::Published, Some("a.b")), event(EventKind::SloViolated, Some("a.c"))]).await.unwrap();
        let last = catalog.append_events(&[event(EventKind::QualityWarned, Some("a.b")), event(EventKind::Purged, None)]).await.unwrap();
        let all = catalog.events(&EventFilter::default()).await.unwrap();
        assert_eq!(all.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Published, EventKind::SloViolated, EventKind::QualityWarned, EventKind::Purged]);
        assert_eq!(all.last().unwrap().id, last);
        assert_eq!(all[0].payload, json!({"n": 1}));
        let kinds = EventFilter { kinds: vec![EventKind::Published, EventKind::Purged], ..EventFilter::default() };
        assert_eq!(catalog.events(&kinds).await.unwrap().iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Published, EventKind::Purged]);
        let product = EventFilter { product: Some(id("a.b")), after: all[0].id, ..EventFilter::default() };
        assert_eq!(catalog.events(&product).await.unwrap().iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::QualityWarned]);
        let page = EventFilter { limit: Some(2), ..EventFilter::default() };
        assert_eq!(catalog.events(&page).await.unwrap().len(), 2);
        backend.finish().await;
    }
}

#[tokio::test]
async fn quality_runs_slo_checks_and_deliveries_round_trip() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let product = id("sales.orders");
        let run = QualityRun {
            id: 0,
            product: Some(product.clone()),
            at: micros(Utc::now()),
            trigger: Trigger::Upstream,
            outcome: RunOutcome::Warned,
            published_seq: None,
            row_count: 42,
            build_ms: 1.0,
            stage_ms: 2.0,
            quality_ms: 3.0,
            results: vec![RuleResult {
                name: "not_null_id".into(),
                rule: "not_null".into(),
                severity: Severity::Warn,
                status: RuleStatus::Failed,
                failing: 1,
                checked: 42,
                message: "1 NULL".into(),
                samples: vec![serde_json::Map::from_iter([("id".to_owned(), json!(null))])],
            }],
        };
        assert_eq!(catalog.operations_mark().await.unwrap(), OperationsMark::default(), "nothing recorded yet");
        let run_id = catalog.record_quality_run(&product, &run).await.unwrap();
        assert_eq!(catalog.operations_mark().await.unwrap(), OperationsMark { quality_run: run_id, slo_check: 0 });
        let mut published = publication("sales.orders", "h", &[]);
        published.quality = Some(QualityRun { outcome: RunOutcome::Passed, results: Vec::new(), ..run.clone() });
        catalog.publish(&published).await.unwrap();
        let runs = catalog.quality_runs(&product, 10).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].outcome, runs[0].published_seq), (RunOutcome::Passed, Some(1)), "newest first, with its publication");
        assert_eq!(runs[1], QualityRun { id: run_id, ..run });

        let now = micros(Utc::now());
        let check = |objective, status, at| SloCheck {
            product: product.clone(),
            objective,
            at,
            status,
            value: Some(0.5),
            threshold: 0.9,
            budget_remaining: None,
            message: "measured".into(),
        };
        let checks = [
            check(Objective::Freshness, SloStatus::Violated, now - Duration::hours(3)),
            check(Objective::Freshness, SloStatus::Met, now),
            check(Objective::Completeness, SloStatus::AtRisk, now),
        ];
        catalog.record_slo_checks(&checks).await.unwrap();
        let latest = catalog.latest_slo_checks(&product).await.unwrap();
        assert_eq!(latest, [checks[2].clone(), checks[1].clone()], "one per objective, by objective");
        let operations = catalog.latest_operations().await.unwrap();
        assert_eq!(operations.quality, BTreeMap::from([(product.clone(), RunOutcome::Passed)]), "the newest run counts");
        assert_eq!(operations.slo, BTreeMap::from([(product.clone(), vec![SloStatus::AtRisk, SloStatus::Met])]), "the newest check per objective");
        let mark = catalog.operations_mark().await.unwrap();
        assert!(mark.quality_run > run_id && mark.slo_check > 0, "{mark:?}");
        let recent = catalog.slo_checks(&product, now - Duration::hours(1), 10).await.unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(catalog.slo_checks(&product, now - Duration::hours(4), 1).await.unwrap().len(), 1);

        let delivery = |attempt, outcome| DeliveryRecord {
            webhook: "ops".into(),
            event_id: 1,
            attempt,
            at: micros(Utc::now()),
            status: Some(503),
            outcome,
            error: Some("the endpoint answered 503".into()),
        };
        catalog.record_delivery(&delivery(1, DeliveryOutcome::Retrying)).await.unwrap();
        catalog.record_delivery(&delivery(2, DeliveryOutcome::Failed)).await.unwrap();
        let deliveries = catalog.deliveries("ops", 10).await.unwrap();
        assert_eq!(deliveries.iter().map(|d| (d.attempt, d.outcome)).collect::<Vec<_>>(), [(2, DeliveryOutcome::Failed), (1, DeliveryOutcome::Retrying)]);
        assert!(catalog.deliveries("other", 10).await.unwrap().is_empty());
        backend.finish().await;
    }
}

#[tokio::test]
async fn tokens_governance_settings_and_the_mask_salt() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let created = micros(Utc::now());
        let token = ApiTokenRecord {
            id: "abc".into(),
            principal: "ana".into(),
            description: Some("ci".into()),
            hash: "$argon2id$…".into(),
            created_at: created,
            expires_at: Some(created + Duration::days(1)),
            revoked_at: None,
        };
        catalog.create_token(&token).await.unwrap();
        assert_eq!(catalog.token("abc").await.unwrap(), Some(token.clone()));
        assert!(catalog.revoke_token("abc").await.unwrap());
        assert!(!catalog.revoke_token("abc").await.unwrap(), "once");
        assert!(catalog.token("abc").await.unwrap().unwrap().revoked_at.is_some());
        assert_eq!(catalog.tokens().await.unwrap().len(), 1);
        assert_eq!(catalog.token("nope").await.unwrap(), None);

        let generation = catalog.generation().await.unwrap();
        let snapshot = GovernanceSnapshot {
            principals: Vec::new(),
            policies: vec![
                PolicyRecord { name: "global".into(), domain: None, file: "policies/global.rego".into(), source: "package x".into() },
                PolicyRecord { name: "local".into(), domain: Some(DomainName::new("sales").unwrap()), file: "domains/sales/policies/local.rego".into(), source: "package y".into() },
            ],
            states: vec![
                PolicyStateRecord { domain: None, name: "global".into(), state: PolicyState::Enforce },
                PolicyStateRecord { domain: Some(DomainName::new("sales").unwrap()), name: "local".into(), state: PolicyState::Warn },
            ],
        };
        catalog.replace_governance(&snapshot).await.unwrap();
        assert_eq!(catalog.governance().await.unwrap(), snapshot);
        assert_eq!(catalog.generation().await.unwrap(), generation + 1);

        let salt = catalog.mask_salt().await.unwrap();
        assert_eq!(salt.len(), 64);
        assert_eq!(catalog.mask_salt().await.unwrap(), salt, "created once, then kept");
        assert_eq!(catalog.setting("cursor").await.unwrap(), None);
        catalog.set_setting("cursor", "1").await.unwrap();
        catalog.set_setting("cursor", "2").await.unwrap();
        assert_eq!(catalog.setting("cursor").await.unwrap().as_deref(), Some("2"));
        backend.finish().await;
    }
}

/// Subscriptions: one per product and principal (subscribing again replaces it), listed by
/// product or all, withdrawn once; the log's last event id is what a new one starts after.
#[tokio::test]
async fn subscriptions_are_one_per_product_and_principal() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        assert_eq!(catalog.last_event_id().await.unwrap(), 0, "an empty log");
        let last = catalog.append_events(&[NewEvent { kind: EventKind::Published, product: Some(id("sales.orders")), payload: json!({}) }]).await.unwrap();
        assert_eq!(catalog.last_event_id().await.unwrap(), last);
        let subscription = |product: &str, principal: &str, webhook: Option<&str>| meshwork_catalog::Subscription {
            product: id(product),
            principal: principal.into(),
            webhook: webhook.map(Into::into),
            events: vec![EventKind::Deprecated, EventKind::Sunset],
            secret: webhook.map(|_| "s3cret".into()),
            created_at: micros(Utc::now()),
            created_by: principal.into(),
            after_event: last,
        };
        let ana = subscription("sales.orders", "ana", None);
        catalog.subscribe(&ana).await.unwrap();
        catalog.subscribe(&subscription("sales.customers", "ana", None)).await.unwrap();
        let replaced = subscription("sales.orders", "ana", Some("https://hooks.example.com/a"));
        catalog.subscribe(&replaced).await.unwrap();
        let bob = subscription("sales.orders", "bob", None);
        catalog.subscribe(&bob).await.unwrap();
        let orders = catalog.subscriptions(Some(&id("sales.orders"))).await.unwrap();
        assert_eq!(orders, [replaced, bob]);
        assert_eq!(orders[0].secret.as_deref(), Some("s3cret"), "the secret is kept for signing");
        assert!(!format!("{:?}", orders[0]).contains("s3cret"), "and never shown by Debug");
        let all: Vec<String> = catalog.subscriptions(None).await.unwrap().iter().map(|s| format!("{} {}", s.product, s.principal)).collect();
        assert_eq!(all, ["sales.customers ana", "sales.orders ana", "sales.orders bob"]);
        assert!(catalog.unsubscribe(&id("sales.orders"), "bob").await.unwrap());
        assert!(!catalog.unsubscribe(&id("sales.orders"), "bob").await.unwrap(), "once");
        assert_eq!(catalog.subscriptions(Some(&id("sales.orders"))).await.unwrap().len(), 1);
        backend.finish().await;
    }
}
