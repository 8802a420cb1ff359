//! Refresh jobs: upstream changes cascade to `on_upstream_change` dependants in order and only
//! to them; cron schedules fire on an injectable clock; failures retry without blocking others;
//! the tick records ended access grants once.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use meshwork_catalog::{CatalogStore, EventFilter};
use meshwork_core::clock::{ManualClock, SystemClock};
use meshwork_core::descriptor::{DurationSpec, SchedulerConfig};
use meshwork_core::id::ProductId;
use meshwork_pipeline::{ApplyOptions, SilentObserver, load_mesh, refresh};
use meshwork_scheduler::{Job, Scheduler};

use crate::{apply, open, product, write};

fn id(name: &str) -> ProductId {
    format!("d.{name}").parse().unwrap()
}

fn config(retries: u32) -> SchedulerConfig {
    SchedulerConfig { retries, retry_backoff: DurationSpec { seconds: 1 }, ..SchedulerConfig::default() }
}

const ON_CHANGE: &str = "refresh:\n  on_upstream_change: true\n";

#[tokio::test]
async fn an_upstream_publish_refreshes_its_on_change_dependants_in_order_and_only_them() {
    let mesh = open(tempfile::tempdir().unwrap()).await;
    product(&mesh.root, "a", &[], "");
    product(&mesh.root, "b", &["a"], ON_CHANGE);
    product(&mesh.root, "c", &["b", "a"], ON_CHANGE); // reads a twice over: must build once
    product(&mesh.root, "e", &["a"], ""); // reads a but does not follow it
    product(&mesh.root, "x", &[], "");
    product(&mesh.root, "y", &["x"], ON_CHANGE); // follows something else
    apply(&mesh).await;
    let scheduler = Scheduler::new(mesh.root.clone(), mesh.catalog.clone(), mesh.store.clone(), Arc::new(SystemClock), config(0)).await.unwrap();
    assert!(scheduler.tick().await.unwrap().is_empty(), "what was applied before the scheduler started is not replayed");

    // The domain owning `a` publishes new data; nobody polls, the event drives the rest.
    write(&mesh.root, "data/a.csv", "id\n1\n2\n3\n");
    let loaded = load_mesh(&mesh.root).unwrap();
    let options = ApplyOptions { trigger: "refresh".parse().unwrap(), ..ApplyOptions::default() };
    refresh(&loaded, mesh.catalog.as_ref(), &mesh.store, &SilentObserver, &[id("a")], false, options).await.unwrap();

    let jobs = scheduler.tick().await.unwrap();
    assert_eq!(jobs, [Job { products: BTreeSet::from([id("b"), id("c")]), trigger: "upstream".parse().unwrap() }]);
    let report = scheduler.run_job(jobs[0].clone()).await.unwrap();
    assert_eq!(report.outcomes.values().map(String::as_str).collect::<Vec<_>>(), ["published", "published"]);
    let published = mesh.catalog.events(&EventFilter { kinds: vec!["product.published".parse().unwrap()], ..EventFilter::default() }).await.unwrap();
    let order: Vec<(String, String)> = published
        .iter()
        .skip(6)
        .map(|e| (e.product.as_ref().unwrap().to_string(), e.payload["trigger"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(order, [("d.a".into(), "refresh".into()), ("d.b".into(), "upstream".into()), ("d.c".into(), "upstream".into())]);
    for untouched in ["e", "x", "y"] {
        assert_eq!(mesh.catalog.versions(&id(untouched)).await.unwrap().len(), 1, "d.{untouched} was not refreshed");
    }
    assert_eq!(mesh.catalog.current_version(&id("c")).await.unwrap().unwrap().row_count, 3);
    assert!(scheduler.tick().await.unwrap().is_empty(), "publications of a cascade do not start another");
}

#[tokio::test]
async fn cron_schedules_run_on_an_injectable_clock() {
    let mesh = open(tempfile::tempdir().unwrap()).await;
    product(&mesh.root, "hourly", &[], "refresh:\n  schedule: \"0 * * * *\"\n");
    product(&mesh.root, "other", &[], "");
    apply(&mesh).await;
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 10, 30, 0).unwrap()));
    let scheduler = Scheduler::new(mesh.root.clone(), mesh.catalog.clone(), mesh.store.clone(), clock.clone(), config(0)).await.unwrap();
    assert!(scheduler.tick().await.unwrap().is_empty());
    clock.advance(Duration::minutes(29));
    assert!(scheduler.tick().await.unwrap().is_empty(), "10:59 is before the next firing");

    write(&mesh.root, "data/hourly.csv", "id\n1\n2\n3\n4\n");
    clock.advance(Duration::seconds(65));
    let jobs = scheduler.tick().await.unwrap();
    assert_eq!(jobs, [Job { products: BTreeSet::from([id("hourly")]), trigger: "schedule".parse().unwrap() }]);
    let report = scheduler.run_job(jobs[0].clone()).await.unwrap();
    assert_eq!(report.outcomes[&id("hourly")], "published");
    let runs = mesh.catalog.quality_runs(&id("hourly"), 1).await.unwrap();
    assert_eq!((runs[0].trigger.as_str(), runs[0].row_count), ("schedule", 4));
    assert_eq!(mesh.catalog.versions(&id("other")).await.unwrap().len(), 1);

    clock.advance(Duration::minutes(30));
    assert!(scheduler.tick().await.unwrap().is_empty(), "11:31: nothing due");
    clock.advance(Duration::minutes(30));
    assert_eq!(scheduler.tick().await.unwrap().len(), 1, "12:01: due again");
}

#[tokio::test]
async fn a_failing_refresh_retries_with_backoff_and_does_not_hold_up_other_products() {
    let mesh = open(tempfile::tempdir().unwrap()).await;
    product(&mesh.root, "broken", &[], "");
    product(&mesh.root, "fine", &[], "");
    apply(&mesh).await;
    // The source of `broken` disappears: every attempt fails.
    std::fs::remove_file(mesh.root.join("data/broken.csv")).unwrap();
    write(&mesh.root, "data/fine.csv", "id\n7\n");
    let scheduler = Arc::new(Scheduler::new(mesh.root.clone(), mesh.catalog.clone(), mesh.store.clone(), Arc::new(SystemClock), config(2)).await.unwrap());
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    for name in ["broken", "fine"] {
        let (scheduler, done) = (scheduler.clone(), done.clone());
        tokio::spawn(async move {
            let report = scheduler.run_job(Job { products: BTreeSet::from([id(name)]), trigger: "schedule".parse().unwrap() }).await.unwrap();
            done.send((name, report)).unwrap();
        });
    }
    let (first, fine) = finished.recv().await.unwrap();
    assert_eq!(first, "fine", "the healthy product finished while the broken one was backing off");
    assert_eq!((fine.attempts, fine.outcomes[&id("fine")].as_str()), (1, "published"));
    // One refresh per product at a time: a job for a product being refreshed waits for the next tick.
    let again = Job { products: BTreeSet::from([id("broken")]), trigger: "upstream".parse().unwrap() };
    assert!(scheduler.run_job(again.clone()).await.is_none(), "deferred while the first job backs off");
    assert!(scheduler.tick().await.unwrap().contains(&again), "handed back by the next tick");
    let (_, broken) = finished.recv().await.unwrap();
    assert_eq!((broken.attempts, broken.outcomes[&id("broken")].as_str()), (3, "failed"), "one attempt and two retries");
    let failures = mesh.catalog.events(&EventFilter { kinds: vec!["product.refresh_failed".parse().unwrap()], ..EventFilter::default() }).await.unwrap();
    assert_eq!(failures.len(), 3);
    assert!(failures[0].payload["error"].as_str().unwrap().contains("broken.csv"), "{:?}", failures[0].payload);
    assert_eq!(mesh.catalog.versions(&id("broken")).await.unwrap().len(), 1, "the previous version stays");
}

#[tokio::test]
async fn the_tick_records_each_ended_grant_once() {
    let mesh = open(tempfile::tempdir().unwrap()).await;
    product(&mesh.root, "a", &[], "");
    apply(&mesh).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let request = meshwork_catalog::NewAccessRequest { product: id("a"), principal: "ana".into(), purpose: "a look".into(), until: Some(start + Duration::hours(1)), created_at: start };
    let request = mesh.catalog.request_access(&request).await.unwrap().unwrap();
    let approval = meshwork_catalog::AccessDecisionRecord { approve: true, by: "admin".into(), comment: None, at: start };
    mesh.catalog.decide_access_request(request.id, &approval).await.unwrap().unwrap();
    let clock = Arc::new(ManualClock::new(start + Duration::minutes(30)));
    let scheduler = Scheduler::new(mesh.root.clone(), mesh.catalog.clone(), mesh.store.clone(), clock.clone(), config(0)).await.unwrap();
    let expired = || async { mesh.catalog.events(&EventFilter { kinds: vec![meshwork_core::event::EventKind::AccessExpired], ..EventFilter::default() }).await.unwrap() };
    scheduler.tick().await.unwrap();
    assert!(expired().await.is_empty(), "10:30: the grant holds");
    clock.advance(Duration::minutes(31));
    scheduler.tick().await.unwrap();
    scheduler.tick().await.unwrap();
    let events = expired().await;
    assert_eq!(events.len(), 1, "11:01: ended, recorded once: {events:?}");
    assert_eq!(events[0].payload["principal"], "ana");
}
