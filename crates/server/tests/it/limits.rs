//! The per-principal concurrency limit under many concurrent queries from one principal: it
//! holds across HTTP, Flight SQL and the Postgres wire, every refused query is audited with the
//! outcome `refused`, and other principals keep being served meanwhile.

use std::time::Duration;

use futures::TryStreamExt;
use meshwork_catalog::AuditFilter;
use meshwork_query::QueryLimits;

use crate::wire::Wire;
use crate::{Served, csv};

const LONG: &str = "SELECT * FROM generate_series(1, 100000000)";

#[tokio::test]
async fn many_concurrent_queries_of_one_principal_are_limited_and_audited_on_every_interface() {
    let served = Served::start(QueryLimits::default(), 2).await;
    let sam = served.token("sam").to_owned();
    let ana = served.token("ana").to_owned();
    // sam's two slots are taken by two streams he does not read.
    let held = [served.post_query(Some(&sam), LONG, "text/csv").await, served.post_query(Some(&sam), LONG, "text/csv").await];
    assert!(held.iter().all(|r| r.status() == 200));

    // Nine more of sam's queries at once, three per interface, while ana queries on each.
    let port = served.at.postgres.port();
    let sams = (0..3).map(|i| {
        let (served, sam) = (&served, sam.clone());
        async move {
            let sql = format!("SELECT {i} AS attempt");
            let http = served.post_query(Some(&sam), &sql, "application/json").await;
            let http = (http.status().as_u16(), http.text().await.unwrap());
            let mut flight = served.flight(&sam).await;
            let ticket = flight.execute(sql.clone(), None).await.unwrap().endpoint[0].ticket.clone().unwrap();
            let flight = match flight.do_get(ticket).await {
                Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()).map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            let postgres = Wire::connect(port, &sam).await.unwrap().simple(&sql).await;
            (http, flight, postgres)
        }
    });
    // ana runs one query at a time (her own limit is 2 as well), while sam's refusals happen.
    let anas = async {
        let mut answers = Vec::new();
        for i in 0..3 {
            let sql = format!("SELECT {i} AS attempt");
            let http = served.post_query(Some(&ana), &sql, "text/csv").await.text().await.unwrap();
            let mut flight = served.flight(&ana).await;
            let ticket = flight.execute(sql.clone(), None).await.unwrap().endpoint[0].ticket.clone().unwrap();
            let batches: Vec<_> = flight.do_get(ticket).await.unwrap().try_collect().await.unwrap();
            let postgres = Wire::connect(port, &ana).await.unwrap().simple(&sql).await.unwrap();
            answers.push((http, csv(&batches), postgres, i));
        }
        answers
    };
    let (sams, anas) = tokio::join!(futures::future::join_all(sams), anas);
    for (http, flight, postgres) in sams {
        assert_eq!(http.0, 429, "{}", http.1);
        assert!(http.1.contains("too many queries"), "{}", http.1);
        assert!(flight.as_ref().unwrap_err().contains("too many queries"), "{flight:?}");
        let err = postgres.expect_err("refused on the Postgres wire");
        assert_eq!(err.code, "53300", "{err:?}");
    }
    for (http, flight, postgres, i) in anas {
        let expected = format!("attempt\n{i}\n");
        assert_eq!((http.as_str(), flight.as_str()), (expected.as_str(), expected.as_str()));
        assert_eq!(postgres, [[Some(i.to_string())]]);
    }

    // Every refusal is in the audit log, with its interface and statement.
    let audit = served.catalog.audit(&AuditFilter { principal: Some("sam".into()), ..Default::default() }).await.unwrap();
    let refused: Vec<(&str, &str)> = audit.iter().filter(|e| e.outcome == "refused").map(|e| (e.interface.as_str(), e.statement.as_str())).collect();
    assert_eq!(refused.len(), 9, "{audit:#?}");
    for interface in ["http", "flight_sql", "postgres"] {
        for i in 0..3 {
            let statement = format!("SELECT {i} AS attempt");
            assert!(refused.contains(&(interface, statement.as_str())), "{interface} {statement}: {refused:?}");
        }
    }
    assert!(audit.iter().filter(|e| e.outcome == "refused").all(|e| e.error.as_deref().is_some_and(|m| m.contains("too many queries"))));
    let metrics = reqwest::get(served.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("meshwork_queries_total{interface=\"postgres\",outcome=\"refused\"} 3"), "{metrics}");

    // Closing the held streams gives sam his slots back.
    drop(held);
    let mut answer = None;
    for _ in 0..100 {
        let response = served.post_query(Some(&sam), "SELECT 1 AS one", "text/csv").await;
        if response.status() == 200 {
            answer = Some(response.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.as_deref(), Some("one\n1\n"));
    served.stop().await;
}
