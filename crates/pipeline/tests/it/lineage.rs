//! Column lineage read from transform plans: every SQL shape asserted as a whole table.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use expect_test::{Expect, expect};
use meshwork_core::lineage::ProductLineage;
use meshwork_core::parse::parse_product;
use meshwork_pipeline::lineage::column_lineage;

/// A product of domain `growth` reading `shop.orders` as `orders`, `shop.customers` as
/// `customers` and a CSV file as `raw`.
fn descriptor(transform: Option<&str>) -> meshwork_core::descriptor::ProductDescriptor {
    let transform = transform.map(|sql| format!("transform: {sql:?}\n")).unwrap_or_default();
    let yaml = format!(
        "name: p\ndomain: growth\nversion: 1.0.0\ninputs:\n  - {{ name: orders, product: shop.orders }}\n  - {{ name: customers, product: shop.customers }}\n  - {{ name: raw, source: {{ kind: csv, path: raw.csv }} }}\n{transform}contract:\n  columns:\n    - {{ name: order_id, type: bigint }}\n    - {{ name: email, type: string }}\n"
    );
    parse_product("product.yaml", &yaml).unwrap_or_else(|d| panic!("{d:#?}")).value
}

fn table(ctx: &SessionContext, name: &str, fields: Vec<Field>) {
    let table = MemTable::try_new(Arc::new(Schema::new(fields)), vec![Vec::new()]).unwrap();
    ctx.register_table(name, Arc::new(table)).unwrap();
}

async fn lineage(sql: &str) -> ProductLineage {
    let ctx = SessionContext::new();
    table(
        &ctx,
        "orders",
        vec![
            Field::new("order_id", DataType::Int64, false),
            Field::new("customer_id", DataType::Int64, false),
            Field::new("email", DataType::Utf8, true),
            Field::new("region", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(12, 2), true),
            Field::new("placed_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("status", DataType::Utf8, true),
        ],
    );
    table(
        &ctx,
        "customers",
        vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("email", DataType::Utf8, true),
            Field::new("country", DataType::Utf8, true),
        ],
    );
    table(&ctx, "raw", vec![Field::new("id", DataType::Int64, true), Field::new("note", DataType::Utf8, true)]);
    let frame = ctx.sql(sql).await.unwrap();
    column_lineage(frame.logical_plan(), &descriptor(Some(sql))).unwrap()
}

/// One line per output column: `name: input.column derivation` per source; `~` marks a source
/// whose value the column does not carry.
fn render(lineage: &ProductLineage) -> String {
    lineage
        .columns
        .iter()
        .map(|c| {
            let sources: Vec<String> = c
                .sources
                .iter()
                .map(|s| format!("{}{}.{} {}", if s.carries_value { "" } else { "~" }, s.input, s.column, s.derivation.as_str()))
                .collect();
            format!("{}: {}\n", c.name, sources.join(", "))
        })
        .collect()
}

async fn check(sql: &str, expected: Expect) {
    expected.assert_eq(&render(&lineage(sql).await));
}

#[tokio::test]
async fn renames_and_select_star_are_copies() {
    check(
        "SELECT order_id AS id, email AS contact, o.region FROM orders o",
        expect![[r#"
            id: orders.order_id copied
            contact: orders.email copied
            region: orders.region copied
        "#]],
    )
    .await;
    check(
        "SELECT * FROM customers",
        expect![[r#"
            customer_id: customers.customer_id copied
            name: customers.name copied
            email: customers.email copied
            country: customers.country copied
        "#]],
    )
    .await;
    // The source names the upstream product of the port; a file input names none.
    let lineage = lineage("SELECT o.email, r.note FROM orders o CROSS JOIN raw r").await;
    assert_eq!(lineage.columns[0].sources[0].product, Some("shop.orders".parse().unwrap()));
    assert_eq!(lineage.columns[1].sources[0].product, None);
}

#[tokio::test]
async fn joins_copy_their_columns_and_make_keys_and_filters_conditions() {
    check(
        "SELECT o.order_id, c.name FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE o.status = 'completed'",
        expect![[r#"
            order_id: ~customers.customer_id condition, ~orders.customer_id condition, orders.order_id copied, ~orders.status condition
            name: ~customers.customer_id condition, customers.name copied, ~orders.customer_id condition, ~orders.status condition
        "#]],
    )
    .await;
    check(
        "SELECT o.order_id, c.country FROM orders o LEFT JOIN customers c ON o.customer_id = c.customer_id AND c.country <> 'XX'",
        expect![[r#"
            order_id: ~customers.country condition, ~customers.customer_id condition, ~orders.customer_id condition, orders.order_id copied
            country: customers.country copied, ~customers.customer_id condition, ~orders.customer_id condition
        "#]],
    )
    .await;
}

#[tokio::test]
async fn aggregations_carry_values_except_counts() {
    check(
        "SELECT region, count(email) AS buyers, count(DISTINCT email) AS distinct_buyers, sum(amount) AS revenue, \
         max(email) AS last_email, avg(amount) AS mean FROM orders GROUP BY region HAVING sum(amount) > 100",
        expect![[r#"
            region: ~orders.amount condition, orders.region copied
            buyers: ~orders.amount condition, ~orders.email aggregated, ~orders.region condition
            distinct_buyers: ~orders.amount condition, ~orders.email aggregated, ~orders.region condition
            revenue: orders.amount aggregated, ~orders.region condition
            last_email: ~orders.amount condition, orders.email aggregated, ~orders.region condition
            mean: orders.amount aggregated, ~orders.region condition
        "#]],
    )
    .await;
    check(
        "SELECT CAST(placed_at AS DATE) AS day, string_agg(email, ',') AS emails, array_agg(DISTINCT region) AS regions FROM orders GROUP BY 1",
        expect![[r#"
            day: orders.placed_at computed
            emails: orders.email aggregated, ~orders.placed_at condition
            regions: ~orders.placed_at condition, orders.region aggregated
        "#]],
    )
    .await;
}

#[tokio::test]
async fn case_branches_carry_and_case_conditions_do_not() {
    check(
        "SELECT order_id, CASE WHEN amount > 100 THEN upper(email) WHEN status = 'x' THEN region ELSE 'small' END AS label, \
         CASE status WHEN 'completed' THEN 1 ELSE 0 END AS done FROM orders",
        expect![[r#"
            order_id: orders.order_id copied
            label: ~orders.amount computed, orders.email computed, orders.region computed, ~orders.status computed
            done: ~orders.status computed
        "#]],
    )
    .await;
}

#[tokio::test]
async fn which_functions_carry_a_value() {
    check(
        "SELECT lower(trim(email)) AS normalized, concat(region, '-', status) AS label, substr(email, 1, 3) AS prefix, \
         coalesce(email, region) AS contact, md5(email) AS hashed, length(email) AS size, email IS NULL AS missing, \
         email LIKE '%@example.com' AS internal, amount * 2 AS doubled FROM orders",
        expect![[r#"
            normalized: orders.email computed
            label: orders.region computed, orders.status computed
            prefix: orders.email computed
            contact: orders.email computed, orders.region computed
            hashed: orders.email computed
            size: ~orders.email computed
            missing: ~orders.email computed
            internal: ~orders.email computed
            doubled: orders.amount computed
        "#]],
    )
    .await;
}

#[tokio::test]
async fn window_functions_aggregate_their_arguments_and_partition_by_conditions() {
    check(
        "SELECT order_id, rank() OVER (PARTITION BY region ORDER BY amount DESC) AS position, \
         sum(amount) OVER (PARTITION BY customer_id) AS customer_total, lag(email) OVER (ORDER BY placed_at) AS previous_email, \
         row_number() OVER () AS n FROM orders",
        expect![[r#"
            order_id: orders.order_id copied
            position: ~orders.amount condition, ~orders.region condition
            customer_total: orders.amount aggregated, ~orders.customer_id condition
            previous_email: orders.email aggregated, ~orders.placed_at condition
            n: 
        "#]],
    )
    .await;
}

#[tokio::test]
async fn unions_merge_their_branches_by_position() {
    check(
        "SELECT email, order_id AS id FROM orders WHERE status = 'completed' UNION SELECT email, customer_id FROM customers \
         UNION ALL SELECT note, id FROM raw",
        expect![[r#"
            email: customers.email copied, orders.email copied, ~orders.status condition, raw.note copied
            id: customers.customer_id copied, orders.order_id copied, ~orders.status condition, raw.id copied
        "#]],
    )
    .await;
}

#[tokio::test]
async fn scalar_in_and_exists_subqueries() {
    check(
        "SELECT o.order_id, (SELECT max(c.name) FROM customers c WHERE c.customer_id = o.customer_id) AS buyer FROM orders o",
        expect![[r#"
            order_id: orders.order_id copied
            buyer: ~customers.customer_id condition, customers.name aggregated, ~orders.customer_id condition
        "#]],
    )
    .await;
    check(
        "SELECT order_id FROM orders WHERE customer_id IN (SELECT customer_id FROM customers WHERE country = 'DE')",
        expect![[r#"
            order_id: ~customers.country condition, ~customers.customer_id condition, ~orders.customer_id condition, orders.order_id copied
        "#]],
    )
    .await;
    check(
        "SELECT c.name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id AND o.amount > 0)",
        expect![[r#"
            name: ~customers.customer_id condition, customers.name copied, ~orders.amount condition, ~orders.customer_id condition
        "#]],
    )
    .await;
}

#[tokio::test]
async fn ctes_and_derived_tables_compose_derivations() {
    check(
        "WITH big AS (SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id) \
         SELECT c.name, b.total, b.total * 2 AS double_total FROM big b JOIN customers c USING (customer_id) ORDER BY b.total DESC LIMIT 10",
        expect![[r#"
            name: ~customers.customer_id condition, customers.name copied, ~orders.amount condition, ~orders.customer_id condition
            total: ~customers.customer_id condition, orders.amount aggregated, ~orders.customer_id condition
            double_total: ~customers.customer_id condition, orders.amount aggregated, ~orders.customer_id condition
        "#]],
    )
    .await;
    check(
        "SELECT upper(e) AS shout FROM (SELECT email AS e FROM customers) t",
        expect![[r#"
            shout: customers.email computed
        "#]],
    )
    .await;
}

#[test]
fn a_product_without_transform_copies_every_contract_column_from_its_input() {
    let mut identity = descriptor(None);
    identity.inputs.truncate(1);
    let plan = datafusion::logical_expr::LogicalPlanBuilder::empty(false).build().unwrap();
    expect![[r#"
        order_id: orders.order_id copied
        email: orders.email copied
    "#]]
    .assert_eq(&render(&column_lineage(&plan, &identity).unwrap()));
}
