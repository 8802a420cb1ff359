//! `product lineage` in every format, restricted to what the caller may see, and
//! `classification_propagated` in `validate` through the binary.

use expect_test::expect;

use super::{governed_mesh, meshwork, ok, stderr, stdout, tiny_mesh, write};

#[test]
fn product_and_column_lineage_in_every_format() {
    let (_tmp, dir) = tiny_mesh();
    ok(&dir, &["apply"]);
    expect![[r#""#]].assert_eq(&ok(&dir, &["product", "lineage", "marketing.roi", "--columns"]));
    expect![[r#""#]].assert_eq(&ok(&dir, &["product", "lineage", "sales.orders", "--downstream"]));
    expect![[r#""#]].assert_eq(&ok(&dir, &["product", "lineage", "sales.orders", "--upstream"]));
    expect![[r#""#]].assert_eq(&ok(&dir, &["product", "lineage", "marketing.roi", "--format", "dot"]));
    expect![[r#""#]].assert_eq(&ok(&dir, &["product", "lineage", "marketing.roi", "--upstream", "--columns", "--format", "mermaid"]));
    expect![[r#""#]].assert_eq(&ok(&dir, &["product", "lineage", "marketing.campaigns", "--columns", "--format", "dot"]));
    let json: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "lineage", "marketing.roi", "--columns", "--format", "json"])).unwrap();
    expect![[r#""#]].assert_eq(&serde_json::to_string_pretty(&json["columns"]["marketing.roi"][2]).unwrap());
    assert_eq!(json["edges"], serde_json::json!([
        { "upstream": "marketing.campaigns", "downstream": "marketing.roi" },
        { "upstream": "sales.orders", "downstream": "marketing.roi" },
    ]));
    let both = meshwork(&dir, &["product", "lineage", "marketing.roi", "--upstream", "--downstream"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

#[test]
fn lineage_shows_only_products_the_caller_may_see() {
    let (_tmp, dir) = governed_mesh();
    ok(&dir, &["apply"]);
    // ana reads sales.orders but not marketing.roi: the edge to it and its columns are hidden.
    expect![[r#""#]].assert_eq(&ok(&dir, &["--as", "ana", "product", "lineage", "sales.orders", "--columns"]));
    let hidden = meshwork(&dir, &["--as", "ana", "product", "lineage", "marketing.roi"]);
    assert_eq!(hidden.status.code(), Some(1));
    assert_eq!(stderr(&hidden), "error: product `marketing.roi` not found; `meshwork product list` shows the published products\n");
}

/// `shop` publishes orders with a confidential amount it lets `growth` read in clear, and
/// customers whose pii e-mail everyone outside `shop` reads hashed.
fn shop_and_growth() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    write(&dir, "mesh.yaml", "name: governed\npolicies:\n  descriptions_required: \"off\"\n");
    write(&dir, "domains/shop/domain.yaml", "name: shop\nowners: [group:shop]\n");
    write(&dir, "domains/growth/domain.yaml", "name: growth\nowners: [group:growth]\n");
    write(&dir, "data/orders.csv", "order_id,customer_id,amount\n1,10,120.00\n2,11,80.00\n3,10,300.00\n");
    write(&dir, "data/customers.csv", "customer_id,email\n10,ann@example.com\n11,bob@example.com\n");
    write(
        &dir,
        "domains/shop/products/orders/product.yaml",
        "name: orders\ndomain: shop\nversion: 1.0.0\nowner: group:shop\ninputs:\n  - { name: raw, source: { kind: csv, path: data/orders.csv } }\ncontract:\n  columns:\n    - { name: order_id, type: bigint, classification: internal }\n    - { name: customer_id, type: bigint, classification: internal }\n    - { name: amount, type: \"decimal(10,2)\", classification: confidential }\naccess:\n  readers: [domain:growth]\n",
    );
    write(
        &dir,
        "domains/shop/products/customers/product.yaml",
        "name: customers\ndomain: shop\nversion: 1.0.0\nowner: group:shop\ninputs:\n  - { name: raw, source: { kind: csv, path: data/customers.csv } }\ncontract:\n  columns:\n    - { name: customer_id, type: bigint, classification: internal }\n    - { name: email, type: string, classification: pii }\naccess:\n  readers: [domain:growth]\n  masks: { email: hash }\n",
    );
    write(
        &dir,
        "domains/growth/products/big_orders/product.yaml",
        "name: big_orders\ndomain: growth\nversion: 1.0.0\nowner: group:growth\ninputs:\n  - { name: orders, product: shop.orders }\n  - { name: customers, product: shop.customers }\ntransform: |\n  SELECT o.order_id, o.amount * 1.19 AS gross, lower(c.email) AS contact, count(*) OVER (PARTITION BY c.email) AS orders_of_customer\n  FROM orders o JOIN customers c USING (customer_id) WHERE o.amount > 100\ncontract:\n  columns:\n    - { name: order_id, type: bigint, classification: internal }\n    - { name: gross, type: \"decimal(14,4)\", classification: internal }\n    - { name: contact, type: string, classification: internal }\n    - { name: orders_of_customer, type: bigint, classification: internal }\n",
    );
    (tmp, dir)
}

#[test]
fn validate_raises_classifications_along_lineage_before_building() {
    let (_tmp, dir) = shop_and_growth();
    // `gross` carries the confidential amount growth reads in clear; `contact` carries only the
    // hash growth reads of the pii e-mail, and the count carries nothing.
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    expect![[r#""#]].assert_eq(&stderr(&output));
    let product = dir.join("domains/growth/products/big_orders/product.yaml");
    let fixed = std::fs::read_to_string(&product).unwrap().replace("\"decimal(14,4)\", classification: internal", "\"decimal(14,4)\", classification: confidential");
    std::fs::write(&product, fixed).unwrap();
    expect![[r#""#]].assert_eq(&ok(&dir, &["validate"]));
    ok(&dir, &["apply"]);
    expect![[r#""#]].assert_eq(&ok(&dir, &["product", "lineage", "growth.big_orders", "--columns", "--upstream"]));
}
