//! Products leaving the repository, through the binary: `plan` announces the unpublishing,
//! `apply` does it, every command then answers "not found", and `product purge` deletes the
//! data of what was unpublished, for administrators only.

use expect_test::expect;

use super::{governed_mesh, meshwork, ok, stderr, stdout, write};

/// The `product`, `result` and `reason` of each product of an `apply --format json` report.
fn results(report: &str) -> String {
    let report: serde_json::Value = serde_json::from_str(report).unwrap();
    report["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {} {}", p["product"].as_str().unwrap(), p["result"].as_str().unwrap(), p["reason"].as_str().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn removed_and_moved_products_are_unpublished_by_apply_and_purged_by_an_administrator() {
    let (_tmp, dir) = governed_mesh();
    ok(&dir, &["apply"]);
    let old_orders = dir.join(".meshwork/data/sales/orders");
    assert!(old_orders.join("_delta_log").is_dir());

    // `marketing.roi` is deleted; `sales.orders` moves to a new domain `shop`.
    std::fs::remove_dir_all(dir.join("domains/marketing/products/roi")).unwrap();
    let orders = std::fs::read_to_string(dir.join("domains/sales/products/orders/product.yaml")).unwrap();
    std::fs::remove_dir_all(dir.join("domains/sales/products/orders")).unwrap();
    write(&dir, "domains/shop/domain.yaml", "name: shop\nowners: [group:sales]\n");
    write(&dir, "domains/shop/products/orders/product.yaml", &orders.replace("domain: sales", "domain: shop"));

    expect![[r#"
        PRODUCT              ACTION                                   VERSION  CONTRACT CHANGES
        marketing.campaigns  unchanged                                1.0.0    -
        shop.orders          create                                   1.0.0    -
        marketing.roi        unpublish (removed from the repository)  1.0.0    -
        sales.orders         unpublish (moved to shop.orders)         1.0.0    -

        1 to create, 0 to update, 1 unchanged, 0 refused, 2 to unpublish

        warning: domains/marketing/products/campaigns/product.yaml:9:7: contract.columns[0].description: [warn] policy `descriptions_required` on `marketing.campaigns`: column `code` has no description
        warning: domains/marketing/products/campaigns/product.yaml:10:7: contract.columns[1].description: [warn] policy `descriptions_required` on `marketing.campaigns`: column `budget` has no description
        warning: domains/marketing/products/campaigns/product.yaml:1:7: description: [warn] policy `descriptions_required` on `marketing.campaigns`: the product has no description; say what one row means and what the product is for
        warning: domains/marketing/products/campaigns/product.yaml:9:7: contract.columns[0].classification: [warn] policy `classification_required` on `marketing.campaigns`: column `code` has no classification; add `classification: public|internal|confidential|pii`
        warning: domains/marketing/products/campaigns/product.yaml:10:7: contract.columns[1].classification: [warn] policy `classification_required` on `marketing.campaigns`: column `budget` has no classification; add `classification: public|internal|confidential|pii`
        warning: domains/shop/products/orders/product.yaml:11:7: contract.columns[0].description: [warn] policy `descriptions_required` on `shop.orders`: column `order_id` has no description
        warning: domains/shop/products/orders/product.yaml:12:7: contract.columns[1].description: [warn] policy `descriptions_required` on `shop.orders`: column `customer` has no description
        warning: domains/shop/products/orders/product.yaml:13:7: contract.columns[2].description: [warn] policy `descriptions_required` on `shop.orders`: column `campaign` has no description
        warning: domains/shop/products/orders/product.yaml:14:7: contract.columns[3].description: [warn] policy `descriptions_required` on `shop.orders`: column `amount` has no description
        warning: domains/shop/products/orders/product.yaml:15:7: contract.columns[4].description: [warn] policy `descriptions_required` on `shop.orders`: column `placed_at` has no description
        warning: domains/shop/products/orders/product.yaml:1:7: description: [warn] policy `descriptions_required` on `shop.orders`: the product has no description; say what one row means and what the product is for
        warning: domains/shop/products/orders/product.yaml:11:7: contract.columns[0].classification: [warn] policy `classification_required` on `shop.orders`: column `order_id` has no classification; add `classification: public|internal|confidential|pii`
        warning: domains/shop/products/orders/product.yaml:12:7: contract.columns[1].classification: [warn] policy `classification_required` on `shop.orders`: column `customer` has no classification; add `classification: public|internal|confidential|pii`
        warning: domains/shop/products/orders/product.yaml:13:7: contract.columns[2].classification: [warn] policy `classification_required` on `shop.orders`: column `campaign` has no classification; add `classification: public|internal|confidential|pii`
        warning: domains/shop/products/orders/product.yaml:14:7: contract.columns[3].classification: [warn] policy `classification_required` on `shop.orders`: column `amount` has no classification; add `classification: public|internal|confidential|pii`
        warning: domains/shop/products/orders/product.yaml:15:7: contract.columns[4].classification: [warn] policy `classification_required` on `shop.orders`: column `placed_at` has no classification; add `classification: public|internal|confidential|pii`
    "#]]
    .assert_eq(&ok(&dir, &["plan"]));
    let plan: serde_json::Value = serde_json::from_str(&ok(&dir, &["plan", "--format", "json"])).unwrap();
    assert_eq!(plan["products"][3]["action"], "unpublish");
    assert_eq!(plan["products"][3]["reason"], "moved to shop.orders");

    expect![[r#"
        marketing.campaigns unchanged -
        shop.orders published -
        marketing.roi unpublished removed from the repository
        sales.orders unpublished moved to shop.orders"#]]
    .assert_eq(&results(&ok(&dir, &["apply", "--format", "json"])));
    // Nothing left to do.
    assert!(ok(&dir, &["plan"]).contains("0 to create, 0 to update, 2 unchanged, 0 refused\n"));

    // Gone from every command, for its readers and for administrators alike.
    for who in [["--as", "ana"], ["--as", "admin"]] {
        let query = meshwork(&dir, &[who[0], who[1], "query", "SELECT count(*) FROM sales.orders"]);
        assert_eq!(query.status.code(), Some(1));
        assert_eq!(stderr(&query), "error: table 'meshwork.sales.orders' not found (at line 1, column 22)\n");
        let shown = meshwork(&dir, &[who[0], who[1], "product", "show", "sales.orders"]);
        assert_eq!(stderr(&shown), "error: product `sales.orders` not found; did you mean `shop.orders`?\n");
    }
    expect![[r#"
        PRODUCT              VERSION  STATUS  ROWS  OWNER            TITLE
        marketing.campaigns  1.0.0    active  3     group:marketing
        shop.orders          1.0.0    active  4     group:sales
    "#]]
    .assert_eq(&ok(&dir, &["product", "list"]));
    // Its readers read it at its new address, under the same access block.
    assert_eq!(ok(&dir, &["--as", "ana", "query", "SELECT customer FROM shop.orders LIMIT 1", "--format", "csv"]), "customer\n***\n");

    // The event log says what happened; the data is still on disk.
    let events: serde_json::Value = serde_json::from_str(&ok(&dir, &["events", "--product", "sales.orders", "--format", "json"])).unwrap();
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["product.published", "product.unpublished"]);
    assert_eq!(events[1]["payload"]["moved_to"], "shop.orders");
    assert!(old_orders.join("_delta_log").is_dir());

    // Purge: administrators only, and only what was unpublished.
    let refused = meshwork(&dir, &["--as", "ana", "product", "purge", "sales.orders"]);
    assert_eq!(refused.status.code(), Some(1));
    expect![[r#"
        error: `ana` may not purge products: only administrators may; run it as an administrator (`--as NAME`)
    "#]]
    .assert_eq(&stderr(&refused));
    let declared = meshwork(&dir, &["product", "purge", "shop.orders"]);
    expect![[r#"
        error: product `shop.orders` is still in the mesh repository; delete its directory and run `meshwork apply` to unpublish it, then purge it (a product past its `sunset` date is purged while declared)
    "#]]
    .assert_eq(&stderr(&declared));
    let unknown = meshwork(&dir, &["product", "purge", "sales.customers"]);
    expect![[r#"
        error: product `sales.customers` is not an unpublished product; only products unpublished by `meshwork apply` can be purged (`meshwork events --product sales.customers` shows its history)
    "#]]
    .assert_eq(&stderr(&unknown));
    assert!(old_orders.join("_delta_log").is_dir());

    let purged = meshwork(&dir, &["product", "purge", "sales.orders"]);
    assert!(purged.status.success(), "{}", stderr(&purged));
    expect![[r#"
        purged sales.orders (last version 1.0.0): its Delta table and catalog rows are deleted; its audit and event history is kept
    "#]]
    .assert_eq(&stdout(&purged));
    assert!(!old_orders.exists());
    assert!(dir.join(".meshwork/data/shop/orders/_delta_log").is_dir());
    let again = meshwork(&dir, &["product", "purge", "sales.orders"]);
    assert!(stderr(&again).starts_with("error: product `sales.orders` is not an unpublished product"), "{}", stderr(&again));
    let events: serde_json::Value = serde_json::from_str(&ok(&dir, &["events", "--product", "sales.orders", "--format", "json"])).unwrap();
    assert_eq!(events[2]["kind"], "product.purged");
    let audit: serde_json::Value = serde_json::from_str(&ok(&dir, &["audit", "--product", "sales.orders", "--format", "json"])).unwrap();
    assert_eq!(audit[0]["action"], "purge");
    assert_eq!(audit[0]["principal"], "admin");

    // Restoring the deleted product publishes it again.
    write(
        &dir,
        "domains/marketing/products/roi/product.yaml",
        "name: roi\ndomain: marketing\nversion: 1.0.0\nowner: group:marketing\ninputs:\n  - { name: campaigns, product: marketing.campaigns }\ncontract:\n  columns:\n    - { name: code, type: string, nullable: false }\n",
    );
    write(&dir, "domains/marketing/products/roi/transform.sql", "SELECT code FROM campaigns\n");
    assert!(ok(&dir, &["apply"]).contains("1 published, 2 unchanged, 0 failed"));
    assert_eq!(ok(&dir, &["query", "SELECT count(*) AS n FROM marketing.roi", "--format", "csv"]), "n\n3\n");
}

#[test]
fn a_product_still_read_by_another_is_not_unpublished() {
    let (_tmp, dir) = governed_mesh();
    ok(&dir, &["apply"]);
    // `marketing.roi` reads `sales.orders`: removing only the upstream is a validation error,
    // as with any missing upstream, and nothing is unpublished.
    std::fs::remove_dir_all(dir.join("domains/sales/products/orders")).unwrap();
    for command in ["plan", "apply"] {
        let output = meshwork(&dir, &[command]);
        assert_eq!(output.status.code(), Some(3), "{command}");
        assert!(
            stderr(&output).contains("inputs[1].product: product `sales.orders` does not exist"),
            "{command}: {}",
            stderr(&output)
        );
    }
    assert_eq!(ok(&dir, &["query", "SELECT count(*) AS n FROM sales.orders", "--format", "csv"]), "n\n4\n");
}
