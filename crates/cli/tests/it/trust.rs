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
