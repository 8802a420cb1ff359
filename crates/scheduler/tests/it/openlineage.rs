//! OpenLineage delivery from the catalog's outbox to real sinks: an HTTP receiver (the Marquez
//! endpoint) that fails before it succeeds, an NDJSON file, a bounded flush past a sink that is
//! down or hangs, cursors that survive a restart, and pruning of what every sink has.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use meshwork_catalog::{CatalogStore, SqlCatalog};
use meshwork_core::descriptor::{LineageSink, LineageTarget, OpenLineageConfig};
use meshwork_core::openlineage::{Naming, RunEvent, RunId, complete_event, fail_event, start_event};
use meshwork_scheduler::{LineageDelivery, Patience};

#[derive(Default)]
struct Received {
    /// Status answered to each request, in order.
    statuses: Vec<u16>,
    /// `Authorization` of each request.
    authorizations: Vec<String>,
    /// Bodies answered with 200.
    accepted: Vec<serde_json::Value>,
}

/// A lineage endpoint at `/api/v1/lineage` answering 503 to the first `failures` requests and
/// 200 after; with `hang`, it never answers.
async fn receiver(failures: usize, hang: bool) -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    let app = axum::Router::new().route(
        "/api/v1/lineage",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                if hang {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                }
                let mut received = state.lock().unwrap();
                let status = if received.statuses.len() < failures { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
                received.statuses.push(status.as_u16());
                received.authorizations.push(headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default());
                if status == StatusCode::OK {
                    received.accepted.push(serde_json::from_slice(&body).unwrap());
                }
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/lineage", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Four events of two runs: a START and its COMPLETE, a START and its FAIL.
fn events() -> Vec<RunEvent> {
    let descriptor = meshwork_core::parse::parse_product(
        "product.yaml",
        "name: orders\ndomain: sales\nversion: 1.0.0\ninputs:\n  - { name: raw, source: { kind: csv, path: data/orders.csv } }\ncontract:\n  columns:\n    - { name: order_id, type: bigint }\n",
    )
    .unwrap_or_else(|d| panic!("{d:#?}"))
    .value;
    let naming = Naming { namespace: "acme".into(), root: "/srv/mesh".into(), connections: Default::default(), endpoints: Default::default() };
    let at = chrono::Utc::now();
    let first = RunId::v7(1, 1);
    let second = RunId::v7(2, 2);
    let lineage = meshwork_core::lineage::ProductLineage::identity(&descriptor);
    vec![
        start_event(&naming, &descriptor, &first, at),
        complete_event(&naming, &descriptor, &first, at, &lineage, &[]),
        start_event(&naming, &descriptor, &second, at),
        fail_event(&naming, &descriptor, &second, at, "the build failed", &[]),
    ]
}

fn config(url: &str, file: &str) -> OpenLineageConfig {
    OpenLineageConfig {
        namespace: "acme".into(),
        sinks: vec![
            LineageSink { name: "marquez".into(), target: LineageTarget::Http { url: url.into(), api_key_env: Some("MESHWORK_TEST_MARQUEZ_KEY".into()) } },
            LineageSink { name: "archive".into(), target: LineageTarget::File { path: file.into() } },
        ],
    }
}

fn keys(variable: &str) -> Option<String> {
    (variable == "MESHWORK_TEST_MARQUEZ_KEY").then(|| "ol-key-123".to_owned())
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn events_reach_an_http_sink_with_its_api_key_after_retries_and_a_file_sink_line_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog: Arc<dyn CatalogStore> = Arc::new(SqlCatalog::open_sqlite(&tmp.path().join("catalog.db")).await.unwrap());
    let (url, received) = receiver(2, false).await;
    let events = events();
    catalog.append_openlineage(&events).await.unwrap();
    let wire: Vec<serde_json::Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();

    // A command's flush: one attempt per event. The endpoint fails, so its events wait; the
    // file sink gets every event, one JSON document per line.
    let delivery = LineageDelivery::with_keys(&config(&url, "out/lineage.ndjson"), tmp.path(), catalog.clone(), Duration::from_millis(20), keys).unwrap();
    let flushed = delivery.flush(Duration::from_secs(5)).await;
    assert_eq!((flushed[0].sink.as_str(), flushed[0].delivered), ("marquez", 0));
    assert!(flushed[0].pending.as_deref().is_some_and(|p| p.contains("503")), "{flushed:?}");
    assert_eq!((flushed[1].sink.as_str(), flushed[1].delivered, flushed[1].pending.as_deref()), ("archive", 4, None));
    assert_eq!(lines(&tmp.path().join("out/lineage.ndjson")), wire);
    assert_eq!(catalog.openlineage_outbox(0, 100).await.unwrap().len(), 4, "the endpoint has not got them yet");

    // Background delivery retries with backoff: the second attempt fails too, the third lands.
    let marquez = &delivery.sinks()[0];
    let round = marquez.deliver_pending(Patience::Retry).await.unwrap();
    assert_eq!((round.delivered, round.stopped), (4, None));
    {
        let received = received.lock().unwrap();
        assert_eq!(received.statuses, [503, 503, 200, 200, 200, 200]);
        assert!(received.authorizations.iter().all(|a| a == "Bearer ol-key-123"), "{:?}", received.authorizations);
        assert_eq!(received.accepted, wire, "in outbox order, sent as stored");
    }

    // Every sink has them: pruned. New events go to both sinks, each from its own cursor, after
    // a restart too.
    assert_eq!(delivery.prune().await.unwrap(), 4);
    assert!(catalog.openlineage_outbox(0, 100).await.unwrap().is_empty());
    catalog.append_openlineage(&events[..1]).await.unwrap();
    let restarted = LineageDelivery::with_keys(&config(&url, "out/lineage.ndjson"), tmp.path(), catalog.clone(), Duration::from_millis(20), keys).unwrap();
    let flushed = restarted.flush(Duration::from_secs(5)).await;
    assert!(flushed.iter().all(|f| f.delivered == 1 && f.pending.is_none()), "{flushed:?}");
    assert_eq!(received.lock().unwrap().accepted.len(), 5);
    assert_eq!(lines(&tmp.path().join("out/lineage.ndjson")).len(), 5);
    assert!(catalog.openlineage_outbox(0, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_sink_that_is_down_or_hangs_holds_only_its_own_events_and_a_flush_waits_a_bounded_time() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog: Arc<dyn CatalogStore> = Arc::new(SqlCatalog::open_sqlite(&tmp.path().join("catalog.db")).await.unwrap());
    catalog.append_openlineage(&events()).await.unwrap();

    // Nobody listens at the address.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/lineage", closed.local_addr().unwrap());
    drop(closed);
    let delivery = LineageDelivery::with_keys(&config(&url, "lineage.ndjson"), tmp.path(), catalog.clone(), Duration::from_millis(20), keys).unwrap();
    let flushed = delivery.flush(Duration::from_secs(5)).await;
    assert!(flushed[0].pending.as_deref().is_some_and(|p| p.contains("cannot reach")), "{flushed:?}");
    assert_eq!(flushed[1].delivered, 4);
    assert_eq!(catalog.openlineage_outbox(0, 100).await.unwrap().len(), 4, "kept until the endpoint has them");

    // An endpoint that never answers costs a flush its bound, no more.
    let (url, _received) = receiver(0, true).await;
    let delivery = LineageDelivery::with_keys(&config(&url, "lineage.ndjson"), tmp.path(), catalog.clone(), Duration::from_millis(20), keys).unwrap();
    let started = Instant::now();
    let flushed = delivery.flush(Duration::from_millis(500)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(flushed[0].pending.as_deref().is_some_and(|p| p.contains("not done within")), "{flushed:?}");
    assert_eq!(lines(&tmp.path().join("lineage.ndjson")).len(), 4, "the file sink was not held up, nor written twice");

    // A missing API key is named with its variable; a command leaves that sink out, feeds the
    // others, and pruning still waits for the sink left out.
    let error = LineageDelivery::with_keys(&config(&url, "lineage.ndjson"), tmp.path(), catalog.clone(), Duration::from_millis(20), |_| None).unwrap_err();
    let message = "openlineage sink `marquez`: environment variable `MESHWORK_TEST_MARQUEZ_KEY` is not set; export the API key: until then the sink's events wait in the outbox";
    assert_eq!(error.to_string(), message);
    let (delivery, left_out) = LineageDelivery::available(&config(&url, "lineage.ndjson"), tmp.path(), catalog.clone(), Duration::from_millis(20)).unwrap();
    assert_eq!(left_out.iter().map(ToString::to_string).collect::<Vec<_>>(), [message]);
    assert_eq!(delivery.sinks().iter().map(|s| s.name()).collect::<Vec<_>>(), ["archive"]);
    catalog.append_openlineage(&events()[..1]).await.unwrap();
    let flushed = delivery.flush(Duration::from_secs(5)).await;
    assert_eq!((flushed.len(), flushed[0].delivered), (1, 1));
    assert_eq!(lines(&tmp.path().join("lineage.ndjson")).len(), 5);
    assert_eq!(catalog.openlineage_outbox(0, 100).await.unwrap().len(), 5, "kept for the sink left out");
}

#[tokio::test]
async fn scheduled_and_cascaded_refreshes_emit_runs_that_the_background_delivery_writes() {
    use chrono::TimeZone;
    let mesh = crate::open(tempfile::tempdir().unwrap()).await;
    crate::write(&mesh.root, "mesh.yaml", "name: m\nopenlineage:\n  sinks:\n    - { name: archive, kind: file, path: lineage.ndjson }\n");
    crate::product(&mesh.root, "a", &[], "refresh:\n  schedule: \"0 * * * *\"\n");
    crate::product(&mesh.root, "b", &["a"], "refresh:\n  on_upstream_change: true\n");
    crate::apply(&mesh).await;
    let clock = Arc::new(meshwork_core::clock::ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 22, 10, 30, 0).unwrap()));
    let config = meshwork_core::descriptor::SchedulerConfig { retries: 0, ..Default::default() };
    let scheduler = meshwork_scheduler::Scheduler::new(mesh.root.clone(), mesh.catalog.clone(), mesh.store.clone(), clock.clone(), config).await.unwrap();
    assert!(scheduler.tick().await.unwrap().is_empty());
    crate::write(&mesh.root, "data/a.csv", "id\n1\n2\n3\n");
    clock.advance(chrono::Duration::minutes(31));
    for trigger in ["schedule", "upstream"] {
        let jobs = scheduler.tick().await.unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].trigger.as_str(), trigger);
        let report = scheduler.run_job(jobs[0].clone()).await.unwrap();
        assert!(report.outcomes.values().all(|o| o == "published"), "{report:?}");
    }

    // `serve`'s background delivery follows the outbox until it is stopped.
    let loaded = meshwork_pipeline::load_mesh(&mesh.root).unwrap_or_else(|d| panic!("{d:#?}"));
    let catalog: Arc<dyn CatalogStore> = mesh.catalog.clone();
    let delivery = LineageDelivery::new(loaded.repo.config.openlineage.as_ref().unwrap(), &mesh.root, catalog, Duration::from_millis(20)).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(delivery.run(stopped));
    let file = mesh.root.join("lineage.ndjson");
    let started = Instant::now();
    while std::fs::read_to_string(&file).map(|t| t.lines().count()).unwrap_or(0) < 8 {
        assert!(started.elapsed() < Duration::from_secs(20), "the background delivery did not write the events");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    let steps: Vec<String> = lines(&file).iter().map(|e| format!("{} {}", e["eventType"].as_str().unwrap(), e["job"]["name"].as_str().unwrap())).collect();
    assert_eq!(
        steps,
        ["START d.a", "COMPLETE d.a", "START d.b", "COMPLETE d.b", "START d.a", "COMPLETE d.a", "START d.b", "COMPLETE d.b"],
        "the apply's runs, then the scheduled run of `a` and the cascaded run of `b`"
    );
}
