//! Policies follow the data: products derived from another domain's product are built from what
//! their domain may read of it (row filters and masks), a refused upstream stops the build, and
//! `validate`/`plan` say beforehand what each cross-domain read gets.

use std::path::{Path, PathBuf};

use expect_test::expect;

use super::{meshwork, ok, stderr, stdout, write};

const SHOP_ORDERS: &str = "\
order_id,customer_email,region,amount
1,alice@example.com,EU,10.00
2,bob@example.com,NA,20.00
3,carol@example.com,EU,30.00
4,dave@example.com,APAC,40.00
";

/// `shop` masks `customer_email` and hides every region but EU from other domains; `growth`
/// may read `shop.orders` and publishes two products from it for everyone.
fn shop_and_growth() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    write(
        &dir,
        "mesh.yaml",
        "name: leaks\npolicies:\n  descriptions_required: \"off\"\n  classification_required: \"off\"\n",
    );
    write(
        &dir,
        "principals.yaml",
        "principals:\n  - { name: rita, groups: [analysts] }\n  - { name: sid }\n",
    );
    write(
        &dir,
        "domains/shop/domain.yaml",
        "name: shop\nowners: [group:shop-data]\nmembers: [user:sid]\n",
    );
    write(
        &dir,
        "domains/growth/domain.yaml",
        "name: growth\nowners: [group:growth-data]\n",
    );
    write(&dir, "data/orders.csv", SHOP_ORDERS);
    write(&dir, "data/secrets.csv", "k,v\n1,x\n");
    write(
        &dir,
        "domains/shop/products/orders/product.yaml",
        "name: orders
domain: shop
version: 1.0.0
owner: group:shop-data
inputs:
  - { name: raw, source: { kind: csv, path: data/orders.csv } }
contract:
  primary_key: [order_id]
  columns:
    - { name: order_id, type: bigint, nullable: false }
    - { name: customer_email, type: string, nullable: false, classification: confidential }
    - { name: region, type: string, nullable: false }
    - { name: amount, type: \"decimal(10,2)\", nullable: false }
access:
  readers: [domain:growth, group:analysts]
  row_filter: \"region = 'EU' OR principal.in_domain('shop')\"
  masks:
    customer_email: { kind: partial, keep_first: 1, keep_last: 0 }
  unmasked_for: [domain:shop]
",
    );
    write(
        &dir,
        "domains/shop/products/secrets/product.yaml",
        "name: secrets
domain: shop
version: 1.0.0
owner: group:shop-data
inputs:
  - { name: raw, source: { kind: csv, path: data/secrets.csv } }
contract:
  columns:
    - { name: k, type: bigint, nullable: false }
    - { name: v, type: string, nullable: false }
",
    );
    write(
        &dir,
        "domains/growth/products/order_emails/product.yaml",
        "name: order_emails
domain: growth
version: 1.0.0
owner: group:growth-data
inputs:
  - { name: orders, product: shop.orders }
transform: SELECT order_id, customer_email FROM orders
contract:
  primary_key: [order_id]
  columns:
    - { name: order_id, type: bigint, nullable: false }
    - { name: customer_email, type: string, nullable: false, classification: internal }
access:
  readers: [\"*\"]
",
    );
    write(
        &dir,
        "domains/growth/products/revenue_by_region/product.yaml",
        "name: revenue_by_region
domain: growth
version: 1.0.0
owner: group:growth-data
inputs:
  - { name: orders, product: shop.orders }
transform: SELECT region, count(*) AS orders, sum(amount) AS revenue FROM orders GROUP BY region
contract:
  primary_key: [region]
  columns:
    - { name: region, type: string, nullable: false }
    - { name: orders, type: bigint, nullable: false }
    - { name: revenue, type: \"decimal(14,2)\", nullable: false }
access:
  readers: [\"*\"]
",
    );
    (tmp, dir)
}

fn query_as(dir: &Path, principal: &str, sql: &str) -> String {
    ok(dir, &["query", "--as", principal, sql, "--format", "csv"])
}

#[test]
fn a_derived_product_never_holds_more_than_its_domain_may_read() {
    let (_tmp, dir) = shop_and_growth();
    expect![[r#"
        reads of other products, as the reading product's domain:
        PRODUCT                   READS        FOR             GETS
        growth.order_emails       shop.orders  input `orders`  filtered by `region = 'EU' OR principal.in_domain('shop')`; masked: `customer_email` (partial)
        growth.revenue_by_region  shop.orders  input `orders`  filtered by `region = 'EU' OR principal.in_domain('shop')`; masked: `customer_email` (partial)
        ok: 2 domains, 4 products, 0 policy violations, 0 warnings
    "#]]
    .assert_eq(&ok(&dir, &["validate"]));
    ok(&dir, &["apply"]);

    // The masked column stays masked and the filtered rows stay out, for every reader of the
    // derived products: rita (an analyst), and the administrator.
    for reader in ["rita", "admin"] {
        expect![[r#"
            order_id,customer_email
            1,a****************
            3,c****************
        "#]]
        .assert_eq(&query_as(
            &dir,
            reader,
            "SELECT * FROM growth.order_emails ORDER BY order_id",
        ));
        expect![[r#"
            region,orders,revenue
            EU,2,40.00
        "#]]
        .assert_eq(&query_as(
            &dir,
            reader,
            "SELECT * FROM growth.revenue_by_region ORDER BY region",
        ));
    }
    // Joining the source and the derived product on the key pairs masked values with masked
    // values: no clear e-mail to pair a hash or a partial value with.
    expect![[r#"
        order_id,source,derived
        1,a****************,a****************
        3,c****************,c****************
    "#]]
    .assert_eq(&query_as(
        &dir,
        "rita",
        "SELECT s.order_id, s.customer_email AS source, d.customer_email AS derived FROM shop.orders s JOIN growth.order_emails d USING (order_id) ORDER BY 1",
    ));
    // The owning domain still reads its own product in full.
    expect![[r#"
        order_id,customer_email,region
        1,alice@example.com,EU
        2,bob@example.com,NA
        3,carol@example.com,EU
        4,dave@example.com,APAC
    "#]]
    .assert_eq(&query_as(
        &dir,
        "sid",
        "SELECT order_id, customer_email, region FROM shop.orders ORDER BY 1",
    ));
    // The apply's audit event names the upstream reads each build made as its domain.
    let audit: serde_json::Value = serde_json::from_str(&ok(
        &dir,
        &["audit", "--format", "json", "--principal", "admin"],
    ))
    .unwrap();
    let apply = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "apply")
        .expect("the apply is audited");
    let reads: Vec<String> = apply["products"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["product"] == "shop.orders" && p["decision"] == "allow")
        .map(|p| {
            format!(
                "{} {} filter(s) {} {}",
                p["reasons"][0], p["row_filters"], p["masks"], p["policies"]
            )
        })
        .collect();
    expect![[r#"
        [
            "\"read by `growth.order_emails` as domain `growth`\" 1 filter(s) [\"customer_email:partial\"] [\"descriptor\"]",
            "\"read by `growth.revenue_by_region` as domain `growth`\" 1 filter(s) [\"customer_email:partial\"] [\"descriptor\"]",
        ]
    "#]].assert_debug_eq(&reads);
}

#[test]
fn granting_a_consuming_domain_unmasked_unfiltered_reads_is_planned_and_rebuilds_it() {
    let (_tmp, dir) = shop_and_growth();
    ok(&dir, &["apply"]);
    let file = dir.join("domains/shop/products/orders/product.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let granted = yaml
        .replace(
            "OR principal.in_domain('shop')",
            "OR principal.in_domain('shop') OR principal.in_domain('growth')",
        )
        .replace(
            "unmasked_for: [domain:shop]",
            "unmasked_for: [domain:shop, domain:growth]",
        );
    std::fs::write(&file, granted).unwrap();
    // Clear confidential values now flow into `growth.order_emails`: classification follows
    // lineage, so growth must declare the column confidential before it may publish them.
    let refused = meshwork(&dir, &["validate"]);
    assert!(
        stderr(&refused).contains("policy `classification_propagated` on `growth.order_emails`: column `customer_email` is classified `internal`"),
        "{}",
        stderr(&refused)
    );
    let emails = dir.join("domains/growth/products/order_emails/product.yaml");
    let yaml = std::fs::read_to_string(&emails).unwrap().replace("classification: internal", "classification: confidential");
    std::fs::write(&emails, yaml).unwrap();
    expect![[r#"
        PRODUCT                   ACTION                       VERSION  CONTRACT CHANGES
        shop.orders               update (descriptor changed)  1.0.0    2 (1 BREAKING)
        shop.secrets              unchanged                    1.0.0    -
        growth.order_emails       update (descriptor changed)  1.0.0    1 compatible
        growth.revenue_by_region  update (upstream changes)    1.0.0    -

        shop.orders:
          breaking    row filter changed from `region = 'EU' OR principal.in_domain('shop')` to `region = 'EU' OR principal.in_domain('shop') OR principal.in_domain('growth')`
          compatible  `domain:growth` now sees unmasked values
          affects: growth.order_emails, growth.revenue_by_region

        growth.order_emails:
          compatible  column `customer_email`: classification changed from internal to confidential

        growth.order_emails will be built from other data:
          shop.orders (input `orders`): was filtered by `region = 'EU' OR principal.in_domain('shop')`; masked: `customer_email` (partial); now filtered by `region = 'EU' OR principal.in_domain('shop') OR principal.in_domain('growth')`

        growth.revenue_by_region will be built from other data:
          shop.orders (input `orders`): was filtered by `region = 'EU' OR principal.in_domain('shop')`; masked: `customer_email` (partial); now filtered by `region = 'EU' OR principal.in_domain('shop') OR principal.in_domain('growth')`

        0 to create, 3 to update, 1 unchanged, 0 refused
    "#]]
    .assert_eq(&ok(&dir, &["plan"]));
    ok(&dir, &["apply"]);
    expect![[r#"
        order_id,customer_email
        1,alice@example.com
        2,bob@example.com
        3,carol@example.com
        4,dave@example.com
    "#]]
    .assert_eq(&query_as(
        &dir,
        "rita",
        "SELECT * FROM growth.order_emails ORDER BY order_id",
    ));
    expect![[r#"
        region,orders,revenue
        APAC,1,40.00
        EU,2,40.00
        NA,1,20.00
    "#]]
    .assert_eq(&query_as(
        &dir,
        "rita",
        "SELECT * FROM growth.revenue_by_region ORDER BY region",
    ));
}

#[test]
fn a_refused_upstream_is_an_error_in_validate_plan_and_apply() {
    let (_tmp, dir) = shop_and_growth();
    write(
        &dir,
        "domains/growth/products/peek/product.yaml",
        "name: peek
domain: growth
version: 1.0.0
owner: group:growth-data
inputs:
  - { name: secrets, product: shop.secrets }
contract:
  columns:
    - { name: k, type: bigint, nullable: false }
    - { name: v, type: string, nullable: false }
",
    );
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    expect![[r#"
        error: domains/growth/products/peek/product.yaml:6:31: inputs[0].product: [enforce] policy `input_readable` on `growth.peek`: domain `growth` may not read `shop.secrets` (input `secrets`): `growth` is not a reader of `shop.secrets`; `domains/shop/products/secrets/product.yaml` has no `access` block, so only its own domain reads it; ask the owners of `shop.secrets` to add `domain:growth` to `access.readers`, or stop reading it
        invalid: 2 domains, 5 products, 1 policy violation, 0 warnings
    "#]]
    .assert_eq(&stderr(&output));

    let output = meshwork(&dir, &["apply"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(text.contains("growth.peek"), "{text}");
    assert!(text.contains("REFUSED"), "{text}");
    // Everything else was built; the refused product is not served.
    assert_eq!(
        query_as(
            &dir,
            "rita",
            "SELECT count(*) AS n FROM growth.order_emails"
        ),
        "n\n2\n"
    );
    let missing = meshwork(&dir, &["query", "SELECT * FROM growth.peek"]);
    assert!(!missing.status.success());
}
