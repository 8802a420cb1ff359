//! `meshwork apply` with OpenLineage sinks: every build's events in the NDJSON file, and an
//! endpoint that is down costs the command a bounded wait and a warning, never its success.

use super::{meshwork, stderr, stdout, tiny_mesh, write};

#[test]
fn apply_writes_openlineage_events_to_a_file_and_is_not_failed_by_an_endpoint_that_is_down() {
    let (_tmp, dir) = tiny_mesh();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    write(
        &dir,
        "mesh.yaml",
        &format!(
            "name: tiny\nopenlineage:\n  sinks:\n    - {{ name: archive, kind: file, path: .meshwork/lineage.ndjson }}\n    - {{ name: marquez, kind: http, url: \"http://127.0.0.1:{port}\" }}\n"
        ),
    );
    let output = meshwork(&dir, &["apply"]);
    assert!(output.status.success(), "{}\n{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("3 published, 0 unchanged, 0 failed"), "{}", stdout(&output));
    let warning = format!("warning: openlineage sink `marquez`: events wait in the outbox (cannot reach `http://127.0.0.1:{port}/api/v1/lineage`");
    assert!(stderr(&output).contains(&warning), "{}", stderr(&output));

    let events: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.join(".meshwork/lineage.ndjson")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let steps: Vec<String> = events.iter().map(|e| format!("{} {}/{}", e["eventType"].as_str().unwrap(), e["job"]["namespace"].as_str().unwrap(), e["job"]["name"].as_str().unwrap())).collect();
    assert_eq!(
        steps,
        [
            "START tiny/marketing.campaigns",
            "COMPLETE tiny/marketing.campaigns",
            "START tiny/sales.orders",
            "COMPLETE tiny/sales.orders",
            "START tiny/marketing.roi",
            "COMPLETE tiny/marketing.roi"
        ],
        "in build order, each run's START before its COMPLETE"
    );
    let roi = &events[5];
    assert_eq!(roi["inputs"], serde_json::json!([{ "namespace": "tiny", "name": "marketing.campaigns" }, { "namespace": "tiny", "name": "sales.orders" }]));
    assert!(roi["outputs"][0]["facets"]["columnLineage"]["fields"]["revenue"]["inputFields"].as_array().is_some_and(|f| !f.is_empty()), "{roi:#}");

    // Nothing changed: nothing is built, and the file gets nothing new.
    let output = meshwork(&dir, &["apply"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(dir.join(".meshwork/lineage.ndjson")).unwrap().lines().count(), 6);
}
