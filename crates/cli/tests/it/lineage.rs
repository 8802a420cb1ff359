//! `product lineage` in every format, restricted to what the caller may see, and
//! `classification_propagated` in `validate` through the binary.

use expect_test::expect;

use super::{governed_mesh, meshwork, ok, stderr, stdout, tiny_mesh, write};

#[test]
fn product_and_column_lineage_in_every_format() {
    let (_tmp, dir) = tiny_mesh();
    ok(&dir, &["apply"]);
    expect![[r#"
        lineage of marketing.roi (upstream and downstream):
          marketing.campaigns -> marketing.roi
          sales.orders -> marketing.roi

        columns:
          COLUMN                      SOURCE                      DERIVATION  CARRIES VALUE
          marketing.campaigns.code    raw.code (file)             copied      yes
          marketing.campaigns.budget  raw.budget (file)           copied      yes
          marketing.roi.code          marketing.campaigns.budget  condition   no
          marketing.roi.code          marketing.campaigns.code    copied      yes
          marketing.roi.code          sales.orders.campaign       condition   no
          marketing.roi.budget        marketing.campaigns.budget  copied      yes
          marketing.roi.budget        marketing.campaigns.code    condition   no
          marketing.roi.budget        sales.orders.campaign       condition   no
          marketing.roi.orders        marketing.campaigns.budget  condition   no
          marketing.roi.orders        marketing.campaigns.code    condition   no
          marketing.roi.orders        sales.orders.campaign       condition   no
          marketing.roi.orders        sales.orders.order_id       aggregated  no
          marketing.roi.revenue       marketing.campaigns.budget  condition   no
          marketing.roi.revenue       marketing.campaigns.code    condition   no
          marketing.roi.revenue       sales.orders.amount         aggregated  yes
          marketing.roi.revenue       sales.orders.campaign       condition   no
          sales.orders.order_id       raw.order_id (file)         copied      yes
          sales.orders.customer       raw.customer (file)         copied      yes
          sales.orders.campaign       raw.campaign (file)         copied      yes
          sales.orders.amount         raw.amount (file)           copied      yes
          sales.orders.placed_at      raw.placed_at (file)        copied      yes
    "#]]
    .assert_eq(&ok(&dir, &["product", "lineage", "marketing.roi", "--columns"]));
    expect![[r#"
        lineage of sales.orders (downstream):
          sales.orders -> marketing.roi
    "#]]
    .assert_eq(&ok(&dir, &["product", "lineage", "sales.orders", "--downstream"]));
    expect![[r#"
        lineage of sales.orders (upstream):
          no other products
    "#]]
    .assert_eq(&ok(&dir, &["product", "lineage", "sales.orders", "--upstream"]));
    expect![[r#"
        digraph lineage {
          rankdir=LR;
          "marketing.campaigns" [shape=box];
          "marketing.roi" [shape=box];
          "sales.orders" [shape=box];
          "marketing.campaigns" -> "marketing.roi";
          "sales.orders" -> "marketing.roi";
        }
    "#]]
    .assert_eq(&ok(&dir, &["product", "lineage", "marketing.roi", "--format", "dot"]));
    expect![[r#"
        flowchart LR
          subgraph marketing_campaigns["marketing.campaigns"]
            marketing_campaigns_budget["budget"]
            marketing_campaigns_code["code"]
          end
          subgraph marketing_roi["marketing.roi"]
            marketing_roi_budget["budget"]
            marketing_roi_code["code"]
            marketing_roi_orders["orders"]
            marketing_roi_revenue["revenue"]
          end
          subgraph sales_orders["sales.orders"]
            sales_orders_amount["amount"]
            sales_orders_campaign["campaign"]
            sales_orders_customer["customer"]
            sales_orders_order_id["order_id"]
            sales_orders_placed_at["placed_at"]
          end
          marketing_campaigns_raw_budget[/"raw.budget (file)"/]
          marketing_campaigns_raw_code[/"raw.code (file)"/]
          sales_orders_raw_amount[/"raw.amount (file)"/]
          sales_orders_raw_campaign[/"raw.campaign (file)"/]
          sales_orders_raw_customer[/"raw.customer (file)"/]
          sales_orders_raw_order_id[/"raw.order_id (file)"/]
          sales_orders_raw_placed_at[/"raw.placed_at (file)"/]
          marketing_campaigns_raw_code -->|copied| marketing_campaigns_code
          marketing_campaigns_raw_budget -->|copied| marketing_campaigns_budget
          marketing_campaigns_budget -->|condition| marketing_roi_code
          marketing_campaigns_code -->|copied| marketing_roi_code
          sales_orders_campaign -->|condition| marketing_roi_code
          marketing_campaigns_budget -->|copied| marketing_roi_budget
          marketing_campaigns_code -->|condition| marketing_roi_budget
          sales_orders_campaign -->|condition| marketing_roi_budget
          marketing_campaigns_budget -->|condition| marketing_roi_orders
          marketing_campaigns_code -->|condition| marketing_roi_orders
          sales_orders_campaign -->|condition| marketing_roi_orders
          sales_orders_order_id -->|aggregated| marketing_roi_orders
          marketing_campaigns_budget -->|condition| marketing_roi_revenue
          marketing_campaigns_code -->|condition| marketing_roi_revenue
          sales_orders_amount -->|aggregated| marketing_roi_revenue
          sales_orders_campaign -->|condition| marketing_roi_revenue
          sales_orders_raw_order_id -->|copied| sales_orders_order_id
          sales_orders_raw_customer -->|copied| sales_orders_customer
          sales_orders_raw_campaign -->|copied| sales_orders_campaign
          sales_orders_raw_amount -->|copied| sales_orders_amount
          sales_orders_raw_placed_at -->|copied| sales_orders_placed_at
    "#]]
    .assert_eq(&ok(&dir, &["product", "lineage", "marketing.roi", "--upstream", "--columns", "--format", "mermaid"]));
    expect![[r#"
        digraph lineage {
          rankdir=LR;
          subgraph cluster_0 {
            label="marketing.campaigns";
            "marketing.campaigns.budget" [label="budget", shape=box];
            "marketing.campaigns.code" [label="code", shape=box];
          }
          subgraph cluster_1 {
            label="marketing.roi";
            "marketing.roi.budget" [label="budget", shape=box];
            "marketing.roi.code" [label="code", shape=box];
            "marketing.roi.orders" [label="orders", shape=box];
            "marketing.roi.revenue" [label="revenue", shape=box];
          }
          "marketing.campaigns:raw.budget" [label="raw.budget (file)", shape=note];
          "marketing.campaigns:raw.code" [label="raw.code (file)", shape=note];
          "marketing.campaigns:raw.code" -> "marketing.campaigns.code" [label="copied"];
          "marketing.campaigns:raw.budget" -> "marketing.campaigns.budget" [label="copied"];
          "marketing.campaigns.budget" -> "marketing.roi.code" [label="condition"];
          "marketing.campaigns.code" -> "marketing.roi.code" [label="copied"];
          "marketing.campaigns.budget" -> "marketing.roi.budget" [label="copied"];
          "marketing.campaigns.code" -> "marketing.roi.budget" [label="condition"];
          "marketing.campaigns.budget" -> "marketing.roi.orders" [label="condition"];
          "marketing.campaigns.code" -> "marketing.roi.orders" [label="condition"];
          "marketing.campaigns.budget" -> "marketing.roi.revenue" [label="condition"];
          "marketing.campaigns.code" -> "marketing.roi.revenue" [label="condition"];
        }
    "#]]
    .assert_eq(&ok(&dir, &["product", "lineage", "marketing.campaigns", "--columns", "--format", "dot"]));
    let json: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "lineage", "marketing.roi", "--columns", "--format", "json"])).unwrap();
    let condition = |input: &str, product: &str, column: &str| {
        serde_json::json!({ "input": input, "product": product, "column": column, "derivation": "condition", "carries_value": false })
    };
    assert_eq!(
        json["columns"]["marketing.roi"][2],
        serde_json::json!({ "name": "orders", "sources": [
            condition("campaigns", "marketing.campaigns", "budget"),
            condition("campaigns", "marketing.campaigns", "code"),
            condition("orders", "sales.orders", "campaign"),
            { "input": "orders", "product": "sales.orders", "column": "order_id", "derivation": "aggregated", "carries_value": false },
        ] })
    );
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
    expect![[r#"
        lineage of sales.orders (upstream and downstream):
          no other products

        columns:
          COLUMN                  SOURCE                DERIVATION  CARRIES VALUE
          sales.orders.order_id   raw.order_id (file)   copied      yes
          sales.orders.customer   raw.customer (file)   copied      yes
          sales.orders.campaign   raw.campaign (file)   copied      yes
          sales.orders.amount     raw.amount (file)     copied      yes
          sales.orders.placed_at  raw.placed_at (file)  copied      yes
    "#]]
    .assert_eq(&ok(&dir, &["--as", "ana", "product", "lineage", "sales.orders", "--columns"]));
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
        "name: big_orders\ndomain: growth\nversion: 1.0.0\nowner: group:growth\ninputs:\n  - { name: orders, product: shop.orders }\n  - { name: customers, product: shop.customers }\ntransform: |\n  SELECT o.order_id, o.amount * 1.19 AS gross, lower(c.email) AS contact, count(*) OVER (PARTITION BY c.email) AS orders_of_customer\n  FROM orders o JOIN customers c USING (customer_id) WHERE o.amount > 100\ncontract:\n  columns:\n    - { name: order_id, type: bigint, classification: internal }\n    - { name: gross, type: double, classification: internal }\n    - { name: contact, type: string, classification: internal }\n    - { name: orders_of_customer, type: bigint, classification: internal }\n",
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
    expect![[r#"
        error: domains/growth/products/big_orders/product.yaml:14:52: contract.columns[1].classification: [enforce] policy `classification_propagated` on `growth.big_orders`: column `gross` is classified `internal` but carries the value of confidential column `amount` of `shop.orders` (computed through input `orders`); declare `classification: confidential`, or have `shop.orders` mask `amount` for domain `growth`
        invalid: 2 domains, 3 products, 1 policy violation, 0 warnings
    "#]]
    .assert_eq(&stderr(&output));
    let product = dir.join("domains/growth/products/big_orders/product.yaml");
    let fixed = std::fs::read_to_string(&product).unwrap().replace("type: double, classification: internal", "type: double, classification: confidential");
    std::fs::write(&product, fixed).unwrap();
    expect![[r#"
        reads of other products, as the reading product's domain:
        PRODUCT            READS           FOR                GETS
        growth.big_orders  shop.orders     input `orders`     full (no filter, no mask)
        growth.big_orders  shop.customers  input `customers`  masked: `email` (hash)
        ok: 2 domains, 3 products, 0 policy violations, 0 warnings
    "#]]
    .assert_eq(&ok(&dir, &["validate"]));
    ok(&dir, &["apply"]);
    expect![[r#"
        lineage of growth.big_orders (upstream):
          shop.customers -> growth.big_orders
          shop.orders -> growth.big_orders

        columns:
          COLUMN                                SOURCE                      DERIVATION  CARRIES VALUE
          growth.big_orders.order_id            shop.customers.customer_id  condition   no
          growth.big_orders.order_id            shop.orders.amount          condition   no
          growth.big_orders.order_id            shop.orders.customer_id     condition   no
          growth.big_orders.order_id            shop.orders.order_id        copied      yes
          growth.big_orders.gross               shop.customers.customer_id  condition   no
          growth.big_orders.gross               shop.orders.amount          computed    yes
          growth.big_orders.gross               shop.orders.customer_id     condition   no
          growth.big_orders.contact             shop.customers.customer_id  condition   no
          growth.big_orders.contact             shop.customers.email        computed    yes
          growth.big_orders.contact             shop.orders.amount          condition   no
          growth.big_orders.contact             shop.orders.customer_id     condition   no
          growth.big_orders.orders_of_customer  shop.customers.customer_id  condition   no
          growth.big_orders.orders_of_customer  shop.customers.email        condition   no
          growth.big_orders.orders_of_customer  shop.orders.amount          condition   no
          growth.big_orders.orders_of_customer  shop.orders.customer_id     condition   no
          shop.customers.customer_id            raw.customer_id (file)      copied      yes
          shop.customers.email                  raw.email (file)            copied      yes
          shop.orders.order_id                  raw.order_id (file)         copied      yes
          shop.orders.customer_id               raw.customer_id (file)      copied      yes
          shop.orders.amount                    raw.amount (file)           copied      yes
    "#]]
    .assert_eq(&ok(&dir, &["product", "lineage", "growth.big_orders", "--columns", "--upstream"]));
}
