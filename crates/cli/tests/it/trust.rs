//! `apply` with quality rules, `product quality`, `refresh --downstream` and `events` through
//! the binary.

use super::{meshwork, ok, query_csv, stderr, stdout, tiny_mesh, write, ORDERS_CSV};

#[test]
fn a_rejected_apply_is_explained_and_refresh_rebuilds_downstream() {
    let (_tmp, dir) = tiny_mesh();
    let yaml = std::fs::read_to_string(dir.join("domains/sales/products/orders/product.yaml")).unwrap();
    write(
        &dir,
        "domains/sales/products/orders/product.yaml",
        &format!("{yaml}quality:\n  - {{ rule: unique, column: order_id }}\n  - {{ rule: range, column: amount, max: 50, severity: warn }}\n"),
    );
    let applied = ok(&dir, &["apply"]);
    assert!(applied.contains("sales.orders         published (quality warnings)"), "{applied}");
    assert!(applied.contains("warning: sales.orders: quality rule `range_amount` (range) failed: 1 of 4 rows have `amount` outside ..50"), "{applied}");

    // A duplicate order: the unique rule blocks the publish, the old version stays.
    write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}4,dave,,1.00,2025-07-01T00:00:00Z\n"));
    let output = meshwork(&dir, &["apply"]);
    assert_eq!(output.status.code(), Some(1), "{}{}", stdout(&output), stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("REJECTED by quality"), "{text}");
    assert!(text.contains("error: sales.orders: quality rule `unique_order_id` (unique) failed: 1 values of `order_id` occur more than once (2 rows)"), "{text}");
    assert!(text.contains("nothing was published; `sales.orders` keeps its previous version. Samples: `meshwork product quality sales.orders`"), "{text}");
    assert!(text.contains("marketing.roi        BLOCKED by sales.orders"), "{text}");
    assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM sales.orders"), "n\n4\n");

    let history: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "quality", "sales.orders", "--format", "json"])).unwrap();
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["outcome"].as_str().unwrap()).collect::<Vec<_>>(), ["failed", "warned"]);
    let unique = runs[0]["results"].as_array().unwrap().iter().find(|r| r["name"] == "unique_order_id").unwrap();
    let sampled: Vec<(i64, &str)> = unique["samples"].as_array().unwrap().iter().map(|s| (s["order_id"].as_i64().unwrap(), s["customer"].as_str().unwrap())).collect();
    assert_eq!(sampled, [(4, "carol"), (4, "dave")]);
    let text = ok(&dir, &["product", "quality", "sales.orders"]);
    assert!(text.contains("sample failing rows of `unique_order_id`:"), "{text}");
    let shown = ok(&dir, &["product", "show", "sales.orders"]);
    assert!(shown.contains("latest quality run: FAILED at "), "{shown}");

    // Fixed data, rebuilt on demand with everything downstream, in order.
    write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}5,dave,AUTUMN,1.00,2025-07-01T00:00:00Z\n"));
    let refreshed: serde_json::Value = serde_json::from_str(&ok(&dir, &["refresh", "sales.orders", "--downstream", "--format", "json"])).unwrap();
    let results: Vec<(&str, &str)> = refreshed["products"].as_array().unwrap().iter().map(|p| (p["product"].as_str().unwrap(), p["result"].as_str().unwrap())).collect();
    assert_eq!(results, [("sales.orders", "published"), ("marketing.roi", "published")]);
    assert_eq!(query_csv(&dir, "SELECT orders FROM marketing.roi WHERE code = 'AUTUMN'"), "orders\n1\n");

    let events: serde_json::Value = serde_json::from_str(&ok(&dir, &["events", "--format", "json"])).unwrap();
    let kinds: Vec<(&str, &str)> = events.as_array().unwrap().iter().map(|e| (e["kind"].as_str().unwrap(), e["product"].as_str().unwrap_or(""))).collect();
    assert!(kinds.contains(&("product.quality_failed", "sales.orders")), "{kinds:?}");
    assert!(kinds.contains(&("product.quality_warned", "sales.orders")), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|(k, _)| *k == "product.published").count(), 5, "{kinds:?}");

    let unknown = meshwork(&dir, &["refresh", "sales.order"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(stderr(&unknown).trim(), "error: product `sales.order` is not in the mesh repository; did you mean `sales.orders`?");
}

/// A one-endpoint HTTP receiver on a free port: answers 200 and hands over each request's
/// headers (lowercased names) and body.
fn receiver() -> (String, std::sync::mpsc::Receiver<(std::collections::HashMap<String, String>, Vec<u8>)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (sender, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = std::collections::HashMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let Some((name, value)) = line.trim_end().split_once(": ") else { break };
                headers.insert(name.to_lowercase(), value.to_owned());
            }
            let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            if sender.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (format!("http://{address}/hook"), received)
}

#[test]
fn serve_refreshes_dependants_on_upstream_change_evaluates_slos_and_calls_webhooks() {
    use std::io::BufRead;
    use hmac::Mac;
    let (url, hooks) = receiver();
    let (_tmp, dir) = tiny_mesh();
    write(
        &dir,
        "mesh.yaml",
        &format!("name: tiny\nscheduler:\n  slo_interval: 1s\nnotifications:\n  webhooks:\n    - {{ name: test, url: \"{url}\", secret_env: MESHWORK_TEST_HOOK_SECRET, events: [product.published] }}\n"),
    );
    let roi = std::fs::read_to_string(dir.join("domains/marketing/products/roi/product.yaml")).unwrap();
    write(&dir, "domains/marketing/products/roi/product.yaml", &format!("{roi}refresh:\n  on_upstream_change: true\n"));
    let orders = std::fs::read_to_string(dir.join("domains/sales/products/orders/product.yaml")).unwrap();
    write(&dir, "domains/sales/products/orders/product.yaml", &format!("{orders}slo:\n  freshness: 1h\n"));
    ok(&dir, &["apply"]);

    // Without the webhook's secret in the environment the server does not start.
    let refused = meshwork(&dir, &["serve", "--http-port", "0", "--flight-sql-port", "0", "--postgres-port", "0"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("environment variable `MESHWORK_TEST_HOOK_SECRET` is not set"), "{}", stderr(&refused));

    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .args(["-C", dir.to_str().unwrap(), "serve", "--http-port", "0", "--flight-sql-port", "0", "--postgres-port", "0"])
        .env("MESHWORK_TEST_HOOK_SECRET", "s3cret")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    for line in log.by_ref() {
        if line.unwrap().starts_with("meshwork serving") {
            break;
        }
    }
    std::thread::spawn(move || for _ in log {});
    std::thread::sleep(std::time::Duration::from_millis(1500));

    // The sales domain publishes new orders from its own process; nobody tells marketing.
    write(&dir, "data/orders.csv", &format!("{ORDERS_CSV}5,dave,AUTUMN,7.00,2025-07-01T00:00:00Z\n"));
    ok(&dir, &["refresh", "sales.orders"]);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (headers, body) = hooks.recv_timeout(std::time::Duration::from_secs(60)).expect("webhook deliveries within a minute");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(format!("{}.", headers["x-meshwork-timestamp"]).as_bytes());
        mac.update(&body);
        assert_eq!(headers["x-meshwork-signature"], format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        seen.push((event["product"].as_str().unwrap().to_owned(), event["payload"]["trigger"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, [("sales.orders".to_owned(), "refresh".to_owned()), ("marketing.roi".to_owned(), "upstream".to_owned())]);
    assert_eq!(query_csv(&dir, "SELECT orders FROM marketing.roi WHERE code = 'AUTUMN'"), "orders\n1\n", "the server refreshed the dependant");

    // The server evaluates SLOs continuously.
    let mut freshness = serde_json::Value::Null;
    for _ in 0..50 {
        let shown: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "show", "sales.orders", "--format", "json"])).unwrap();
        freshness = shown["slo"].as_array().unwrap().iter().find(|c| c["objective"] == "freshness").cloned().unwrap_or_default();
        if !freshness.is_null() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(freshness["status"], "met", "{freshness}");
    assert_eq!(freshness["budget_remaining"], 1.0);
    std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(server.wait().unwrap().success());
}
