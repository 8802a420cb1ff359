//! `/health` says the process is up; `/ready` tells a load balancer whether this replica can
//! serve: the metadata store answers and the storage root can be listed.

use meshwork_query::QueryLimits;

use crate::Served;

async fn ready(served: &Served) -> (u16, serde_json::Value) {
    let response = reqwest::get(served.url("/ready")).await.unwrap();
    (response.status().as_u16(), serde_json::from_slice(&response.bytes().await.unwrap()).unwrap())
}

#[tokio::test]
async fn ready_reports_the_metadata_store_and_the_storage_it_depends_on() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let (status, body) = ready(&served).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "{body}");
    assert_eq!((body["metadata"].as_str(), body["storage"].as_str()), (Some("ok"), Some("ok")));

    // The storage goes away: not ready, and the answer says which part failed.
    let data = served.root().join(".meshwork/data");
    let moved = served.root().join(".meshwork/data-moved");
    std::fs::rename(&data, &moved).unwrap();
    let (status, body) = ready(&served).await;
    assert_eq!((status, body["status"].as_str(), body["metadata"].as_str()), (503, Some("not_ready"), Some("ok")), "{body}");
    assert_eq!(body["storage"].as_str(), Some("error: unreachable (see the server log)"), "the error itself is not shown without a token: {body}");
    // Liveness does not depend on it.
    assert_eq!(reqwest::get(served.url("/health")).await.unwrap().status().as_u16(), 200);

    std::fs::rename(&moved, &data).unwrap();
    assert_eq!(ready(&served).await.0, 200);
    served.stop().await;
}
