//! Idle query sessions are reused between statements of one principal on one interface (and
//! from Flight SQL's GetFlightInfo to its DoGet), never across principals, and not once the
//! catalog moved: after a reapply the next statement opens a session under the new rules.

use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;

use crate::{Served, csv};

/// How many sessions Flight SQL handed out, opened or reused.
async fn taken(served: &Served) -> u64 {
    sessions(served, "flight_sql", "opened").await + sessions(served, "flight_sql", "reused").await
}

/// How many sessions `interface` handed to statements, `opened` or `reused`.
async fn sessions(served: &Served, interface: &str, how: &str) -> u64 {
    let metrics = reqwest::get(served.url("/metrics")).await.unwrap().text().await.unwrap();
    let line = format!("meshwork_query_sessions_total{{interface=\"{interface}\",how=\"{how}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&line)).map(|n| n.parse().unwrap()).unwrap_or(0)
}

#[tokio::test]
async fn sessions_are_reused_only_while_they_decide_as_a_new_one_would() {
    let served = Served::start(meshwork_query::QueryLimits::default(), 8).await;
    let sql = "SELECT order_id, region, amount FROM sales.orders ORDER BY order_id";
    let query = |who: &'static str| {
        let served = &served;
        async move { served.post_query(Some(served.token(who)), sql, "text/csv").await.text().await.unwrap() }
    };
    let first = query("ana").await;
    assert_eq!(first, served.reference("ana", sql).await);
    assert_eq!(query("ana").await, first);
    assert_eq!(query("ana").await, first);
    assert_eq!((sessions(&served, "http", "opened").await, sessions(&served, "http", "reused").await), (1, 2));

    // Another principal never gets ana's session (its row filter differs).
    let sam = query("sam").await;
    assert_eq!(sam, served.reference("sam", sql).await);
    assert_ne!(sam, first);
    assert_eq!(sessions(&served, "http", "opened").await, 2);

    // Flight SQL: DoGet reuses the session GetFlightInfo planned in and returned to the pool.
    let mut client = served.flight(served.token("ana")).await;
    let info = client.execute(sql.to_owned(), None).await.unwrap();
    let batches: Vec<RecordBatch> = client.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(csv(&batches), first);
    assert_eq!((sessions(&served, "flight_sql", "opened").await, sessions(&served, "flight_sql", "reused").await), (1, 1));

    // A reapply that masks `amount` moves the catalog's generation: the idle sessions are not
    // reused, and the next statement reads under the new rules on both interfaces.
    served
        .reapply(|root| {
            let file = root.join("domains/sales/products/orders/product.yaml");
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, text.replace("access:\n", "access:\n  masks: { amount: \"null\" }\n")).unwrap();
        })
        .await;
    let masked = query("ana").await;
    assert_ne!(masked, first);
    assert_eq!(masked, served.reference("ana", sql).await);
    assert_eq!(sessions(&served, "http", "opened").await, 3);
    let info = client.execute(sql.to_owned(), None).await.unwrap();
    let batches: Vec<RecordBatch> = client.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(csv(&batches), masked);
    assert_eq!(sessions(&served, "flight_sql", "opened").await, 2);
    served.stop().await;
}

/// ADBC prepares every statement, then asks for its FlightInfo: the second call answers with the
/// schema the first planned (no session, no planning) while nothing changed, and plans again
/// once the catalog moved.
#[tokio::test]
async fn a_prepared_statements_flight_info_reuses_its_plan_until_the_catalog_moves() {
    let served = Served::start(meshwork_query::QueryLimits::default(), 8).await;
    let sql = "SELECT order_id, region, amount FROM sales.orders ORDER BY order_id";
    let expected = served.reference("ana", sql).await;
    let mut client = served.flight(served.token("ana")).await;

    let mut statement = client.prepare(sql.to_owned(), None).await.unwrap();
    assert_eq!(taken(&served).await, 1, "preparing plans in a session");
    let prepared_schema = statement.dataset_schema().unwrap().clone();
    let info = statement.execute().await.unwrap();
    assert_eq!(taken(&served).await, 1, "the FlightInfo of an unchanged prepared statement takes no session");
    assert_eq!(info.clone().try_decode_schema().unwrap(), prepared_schema);
    let batches: Vec<RecordBatch> = client.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(csv(&batches), expected);
    assert_eq!(taken(&served).await, 2, "DoGet runs the statement in a session");

    // Deprecating the product moves the generation and changes the result schema (its
    // metadata carries the warning): the same handle's FlightInfo is planned again.
    served
        .reapply(|root| {
            let file = root.join("domains/sales/products/orders/product.yaml");
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, format!("{text}status: deprecated\nsunset: 2099-12-31\n")).unwrap();
        })
        .await;
    let info = statement.execute().await.unwrap();
    assert_eq!(taken(&served).await, 3, "after a reapply the FlightInfo is planned again");
    let schema = info.clone().try_decode_schema().unwrap();
    assert_ne!(schema, prepared_schema);
    assert!(schema.metadata().values().any(|warning| warning.contains("`sales.orders` is deprecated")), "{schema:?}");
    statement.close().await.unwrap();
    served.stop().await;
}
