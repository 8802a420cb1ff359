//! The descriptor files of the skeleton and of the example mesh.

/// Files of `meshwork init` without `--example`.
pub fn skeleton(name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "mesh.yaml",
            format!(
                r#"# mesh.yaml: settings of this mesh. Docs: docs/descriptors.md in the Meshwork repository.
name: {name}
description: A new data mesh.
# storage:
#   data_dir: .meshwork/data        # where product Delta tables live (default)
#   url: s3://BUCKET/PREFIX          # or an S3-compatible bucket (docs/deployment.md)
# metadata:
#   url: sqlite:.meshwork/catalog.db  # the metadata store (default: embedded SQLite)
# server:
#   bind: 127.0.0.1
#   http_port: 8080
#   flight_sql_port: 50051
#   postgres_port: 5433
# openlineage:                      # OpenLineage events of every build (docs/standards.md)
#   sinks:
#     - {{ name: archive, kind: file, path: .meshwork/openlineage.ndjson }}
#     - {{ name: marquez, kind: http, url: "http://localhost:5000" }}
"#
            ),
        ),
        (
            "domains/example/domain.yaml",
            r#"# A domain: a business area that owns its data products.
name: example
title: Example domain
description: Replace with your business domain, e.g. sales.
owners: [group:example-data]
members: []
"#
            .to_owned(),
        ),
        (
            "domains/example/products/greetings/product.yaml",
            r#"# A data product: addressable in SQL as `example.greetings`.
name: greetings
domain: example
version: 1.0.0                     # semver; bump MAJOR on breaking contract changes
title: Greetings
description: One row per greeting, in several languages.
owner: group:example-data
tags: [example]
inputs:
  - name: raw_greetings            # the transform sees this input as a table of this name
    source: { kind: csv, path: data/greetings.csv }
# transform: transform.sql        # SQL over the inputs; omitted = identity over one input
contract:                          # the built data must match this schema exactly
  primary_key: [id]
  columns:
    - { name: id, type: bigint, nullable: false, description: Greeting identifier, classification: public }
    - { name: language, type: string, description: ISO 639-1 language code, classification: public }
    - { name: text, type: string, description: The greeting, classification: public }
"#
            .to_owned(),
        ),
        ("data/greetings.csv", "id,language,text\n1,en,Hello\n2,fr,Bonjour\n3,ja,Konnichiwa\n".to_owned()),
        (".gitignore", ".meshwork/\n".to_owned()),
    ]
}

/// Descriptor files of the example mesh (data files are generated separately).
pub fn example_descriptors() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "mesh.yaml",
            r#"# The example mesh: three domains, seven products, two of them combining other domains' data.
name: example-mesh
description: A web shop's analytical data, owned by the sales, marketing and finance domains.
storage:
  data_dir: .meshwork/data
# Governance rollout: off, warn or enforce per policy. Built-ins not listed keep their default
# (see `meshwork validate` output and docs/governance.md); files in policies/ default to enforce.
policies:
  descriptions_required: enforce
  classification_required: enforce
  owner_required: enforce
"#,
        ),
        (
            "principals.yaml",
            r#"# Who queries the mesh. Domain memberships also come from `owners`/`members` in domain.yaml.
# Try: meshwork query --as ana "SELECT * FROM sales.customers LIMIT 5"
principals:
  - name: sam                      # sales analyst: member of sales, sees customers unmasked
    groups: [sales-analysts]
    attributes: { region: EU }
  - name: mia                      # marketing analyst in North America
    attributes: { region: NA }
  - name: fred                     # finance controller
    groups: [finance-data]
    attributes: { region: EU }
  - name: ana                      # analyst outside the domains, EU only
    groups: [analysts]
    attributes: { region: EU }
  - name: gus                      # global analyst: every region
    groups: [analysts, global-analysts]
  - name: carl                     # contractor: pii is nulled by policies/contractors_no_pii.rego
    groups: [analysts, contractors]
    attributes: { region: NA }
  - name: bi-dashboard             # a service account for a BI tool
    kind: service
    groups: [analysts]
    attributes: { region: APAC }
"#,
        ),
        (
            "policies/contractors_no_pii.rego",
            r#"# Access policy of the governance guild: contractors never see personal data, whatever a
# product's own masks say. Access policies can deny, add row filters and add masks.
package meshwork.access.contractors_no_pii

masks[column.name] := "null" if {
	"contractors" in input.principal.groups
	some column in input.product.contract.columns
	column.classification == "pii"
}
"#,
        ),
        (
            "policies/deprecated_needs_successor.rego",
            r#"# Governance policy of the guild: a deprecated product names its successor and sunset date.
package meshwork.governance.deprecated_needs_successor

violations contains {"field": "successor", "message": "a deprecated product must name its `successor`"} if {
	input.product.status == "deprecated"
	not input.product.successor
}

violations contains {"field": "sunset", "message": "a deprecated product must have a `sunset` date"} if {
	input.product.status == "deprecated"
	not input.product.sunset
}
"#,
        ),
        (
            "domains/finance/policies/finance_owned.rego",
            r#"# Domain policy of finance: its products are owned by the finance data team. Domain policies
# add restrictions for their own products; they cannot switch off the guild's.
package meshwork.governance.finance_owned

violations contains {"field": "owner", "message": sprintf("finance products are owned by `group:finance-data`, not `%s`", [input.product.owner])} if {
	input.product.owner != "group:finance-data"
}
"#,
        ),
        (".gitignore", ".meshwork/\n"),
        (
            "domains/sales/domain.yaml",
            r#"name: sales
title: Sales
description: Web shop customers and orders.
owners: [group:sales-data]
members: [user:sam, group:sales-analysts]
"#,
        ),
        (
            "domains/marketing/domain.yaml",
            r#"name: marketing
title: Marketing
description: Campaigns and their return on investment.
owners: [group:marketing-data]
members: [user:mia]
"#,
        ),
        (
            "domains/finance/domain.yaml",
            r#"name: finance
title: Finance
description: Revenue reporting across regions and customers.
owners: [group:finance-data]
members: [user:fred]
"#,
        ),
        (
            "domains/sales/products/customers/product.yaml",
            r#"name: customers
domain: sales
version: 1.0.0
title: Customers
description: One row per registered web shop customer.
owner: group:sales-data
tags: [customers, crm]
inputs:
  - name: raw_customers
    source: { kind: csv, path: data/sales/customers.csv }
contract:
  primary_key: [customer_id]
  columns:
    - { name: customer_id, type: bigint, nullable: false, description: Customer identifier, classification: internal }
    - { name: full_name, type: string, nullable: false, description: Customer's full name, classification: pii }
    - { name: email, type: string, nullable: false, description: Customer's e-mail address, classification: pii }
    - { name: country, type: string, nullable: false, description: ISO 3166 country code, classification: internal }
    - { name: region, type: string, nullable: false, description: "Sales region (EU, NA, APAC)", classification: internal }
    - { name: segment, type: string, nullable: false, description: "consumer, business or enterprise", classification: internal }
    - { name: signup_date, type: date, nullable: false, description: Day the customer registered, classification: internal }
access:
  readers: [domain:finance, domain:marketing, group:analysts]
  # Analysts see their own region's customers; global analysts, the sales domain, the finance
  # domain (its products report on every region) and platform admins see all (admins are
  # filtered like anyone unless a descriptor says so, as here). Products of other domains are
  # built from what their domain may read, so this filter also shapes what finance publishes.
  row_filter: "region = principal.attr('region') OR principal.in_group('global-analysts') OR principal.in_domain('sales') OR principal.in_domain('finance') OR principal.is_admin()"
  masks:
    full_name: { kind: partial, keep_first: 1, keep_last: 0 }
    email: hash                    # stable: still joins and counts distinct
  # Only sales sees names and e-mails; finance's products are built from the masked values.
  unmasked_for: [domain:sales]
# Checked on the staged data before each publish: an `error` rule that fails publishes nothing.
quality:
  - { rule: unique, column: customer_id }
  - { rule: regex, column: email, pattern: '^[^@ ]+@[^@ ]+\.[a-z]+$' }
  - { rule: accepted_values, column: region, values: [EU, NA, APAC] }
  - { rule: accepted_values, column: segment, values: [consumer, business, enterprise], severity: warn }
slo:
  completeness: { column: email, min_ratio: 0.99 }
"#,
        ),
        (
            "domains/sales/products/orders/product.yaml",
            r#"name: orders
domain: sales
version: 1.0.0
title: Web shop orders
description: One row per order placed on the web shop, test orders removed.
owner: group:sales-data
tags: [orders, revenue]
inputs:
  - name: raw_orders
    source: { kind: csv, path: "data/sales/orders/*.csv" }
transform: transform.sql
contract:
  primary_key: [order_id]
  columns:
    - { name: order_id, type: bigint, nullable: false, description: Order identifier, classification: internal }
    - { name: customer_id, type: bigint, nullable: false, description: "Buyer, see sales.customers", classification: internal }
    - { name: placed_at, type: timestamp, nullable: false, description: When the order was placed (UTC), classification: internal }
    - { name: status, type: string, nullable: false, description: "completed, cancelled, refunded or pending", classification: internal }
    - { name: channel, type: string, nullable: false, description: "web, mobile or store", classification: internal }
    - { name: campaign_code, type: string, description: Marketing campaign the order is attributed to, classification: internal }
    - { name: items, type: int, nullable: false, description: Number of items, classification: internal }
    - { name: amount, type: "decimal(12,2)", nullable: false, description: Order total in EUR, classification: confidential }
access:
  readers: [domain:finance, domain:marketing, group:analysts]
quality:
  - { rule: unique, column: order_id }
  - { rule: accepted_values, column: status, values: [completed, cancelled, refunded, pending] }
  - { rule: range, column: amount, min: 0 }
  - { rule: range, column: items, min: 1, max: 1000 }
  - { rule: referential, column: customer_id, references: sales.customers, references_column: customer_id }
  - { rule: row_count, name: no_sudden_drop, max_change_pct: 50, severity: warn }
  - { rule: sql, name: no_future_orders, assert: "SELECT count(*) = 0 FROM this WHERE placed_at > now()" }
slo:
  freshness: 24h
  availability: 99.9
refresh:
  on_upstream_change: true
"#,
        ),
        (
            "domains/sales/products/orders/transform.sql",
            r#"-- Orders as the shop exports them, minus test orders. Columns named like contract columns are
-- already read with the contract's types, so bad values are reported with their file and row.
SELECT order_id, customer_id, placed_at, status, channel, campaign_code, items, amount
FROM raw_orders
WHERE status <> 'test'
ORDER BY order_id
"#,
        ),
        (
            "domains/sales/products/daily_sales/product.yaml",
            r#"name: daily_sales
domain: sales
version: 1.0.0
title: Daily sales
description: Completed orders and revenue per day and channel.
owner: group:sales-data
tags: [revenue, daily]
inputs:
  - name: orders
    product: sales.orders
transform: |
  SELECT CAST(placed_at AS DATE) AS day, channel, COUNT(*) AS orders, SUM(amount) AS revenue
  FROM orders
  WHERE status = 'completed'
  GROUP BY 1, 2
  ORDER BY 1, 2
contract:
  primary_key: [day, channel]
  columns:
    - { name: day, type: date, nullable: false, description: Calendar day (UTC), classification: internal }
    - { name: channel, type: string, nullable: false, description: Sales channel, classification: internal }
    - { name: orders, type: bigint, nullable: false, description: Completed orders, classification: internal }
    - { name: revenue, type: "decimal(14,2)", nullable: false, description: Revenue in EUR, classification: confidential }
access:
  readers: ["*"]
refresh:
  on_upstream_change: true
"#,
        ),
        (
            "domains/marketing/products/campaigns/product.yaml",
            r#"name: campaigns
domain: marketing
version: 1.0.0
title: Marketing campaigns
description: One row per campaign with its channel, dates and budget.
owner: group:marketing-data
tags: [campaigns]
inputs:
  - name: raw_campaigns
    source: { kind: ndjson, path: data/marketing/campaigns.ndjson }
contract:
  primary_key: [campaign_id]
  columns:
    - { name: campaign_id, type: bigint, nullable: false, description: Campaign identifier, classification: public }
    - { name: code, type: string, nullable: false, description: Code orders are attributed with, classification: public }
    - { name: name, type: string, nullable: false, description: Campaign name, classification: public }
    - { name: channel, type: string, nullable: false, description: "email, social or search", classification: public }
    - { name: start_date, type: date, nullable: false, description: First day, classification: public }
    - { name: end_date, type: date, nullable: false, description: Last day, classification: public }
    - { name: budget, type: "decimal(12,2)", nullable: false, description: Spend in EUR, classification: confidential }
access:
  readers: ["*"]
  masks:
    budget: "null"                 # budgets are for marketing and finance only
  unmasked_for: [domain:marketing, domain:finance]
"#,
        ),
        (
            "domains/marketing/products/campaign_roi/product.yaml",
            r#"name: campaign_roi
domain: marketing
version: 1.0.0
title: Campaign return on investment
description: Revenue of completed orders attributed to each campaign, against its budget.
owner: group:marketing-data
tags: [campaigns, roi, revenue]
inputs:
  - name: campaigns
    product: marketing.campaigns
  - name: orders
    product: sales.orders
transform: transform.sql
contract:
  primary_key: [campaign_id]
  columns:
    - { name: campaign_id, type: bigint, nullable: false, description: Campaign identifier, classification: public }
    - { name: code, type: string, nullable: false, description: Campaign code, classification: public }
    - { name: channel, type: string, nullable: false, description: Campaign channel, classification: public }
    - { name: budget, type: "decimal(12,2)", nullable: false, description: Spend in EUR, classification: confidential }
    - { name: orders, type: bigint, nullable: false, description: Completed attributed orders, classification: internal }
    - { name: revenue, type: "decimal(14,2)", nullable: false, description: Attributed revenue in EUR, classification: confidential }
    - { name: roi, type: double, nullable: false, description: (revenue - budget) / budget, classification: confidential }
access:
  readers: [domain:sales, group:analysts]
refresh:
  on_upstream_change: true
"#,
        ),
        (
            "domains/marketing/products/campaign_roi/transform.sql",
            r#"-- Attribute completed orders to campaigns by code (sales domain data, marketing's question).
SELECT
    c.campaign_id,
    c.code,
    c.channel,
    c.budget,
    COUNT(o.order_id) AS orders,
    COALESCE(SUM(o.amount), 0) AS revenue,
    CAST((COALESCE(SUM(o.amount), 0) - c.budget) AS DOUBLE) / CAST(c.budget AS DOUBLE) AS roi
FROM campaigns c
LEFT JOIN orders o ON o.campaign_code = c.code AND o.status = 'completed'
GROUP BY c.campaign_id, c.code, c.channel, c.budget
ORDER BY c.campaign_id
"#,
        ),
        (
            "domains/finance/products/revenue_by_region/product.yaml",
            r#"name: revenue_by_region
domain: finance
version: 1.0.0
title: Monthly revenue by region
description: Completed-order revenue per sales region and month, from sales orders and customers.
owner: group:finance-data
tags: [revenue, monthly, regions]
inputs:
  - name: orders
    product: sales.orders
  - name: customers
    product: sales.customers
transform: transform.sql
contract:
  primary_key: [region, month]
  columns:
    - { name: region, type: string, nullable: false, description: Sales region, classification: internal }
    - { name: month, type: date, nullable: false, description: First day of the month, classification: internal }
    - { name: orders, type: bigint, nullable: false, description: Completed orders, classification: internal }
    - { name: customers, type: bigint, nullable: false, description: Distinct buying customers, classification: internal }
    - { name: revenue, type: "decimal(14,2)", nullable: false, description: Revenue in EUR, classification: confidential }
access:
  readers: ["*"]
refresh:
  on_upstream_change: true
"#,
        ),
        (
            "domains/finance/products/revenue_by_region/transform.sql",
            r#"SELECT
    c.region,
    CAST(date_trunc('month', o.placed_at) AS DATE) AS month,
    COUNT(*) AS orders,
    COUNT(DISTINCT o.customer_id) AS customers,
    SUM(o.amount) AS revenue
FROM orders o
JOIN customers c ON c.customer_id = o.customer_id
WHERE o.status = 'completed'
GROUP BY 1, 2
ORDER BY 1, 2
"#,
        ),
        (
            "domains/finance/products/customer_value/product.yaml",
            r#"name: customer_value
domain: finance
version: 1.0.0
title: Customer lifetime value
description: Completed orders and revenue per customer over their lifetime.
owner: group:finance-data
tags: [customers, revenue, ltv]
inputs:
  - name: orders
    product: sales.orders
  - name: customers
    product: sales.customers
transform: transform.sql
contract:
  primary_key: [customer_id]
  columns:
    - { name: customer_id, type: bigint, nullable: false, description: Customer identifier, classification: internal }
    - { name: region, type: string, nullable: false, description: Sales region, classification: internal }
    - { name: segment, type: string, nullable: false, description: Customer segment, classification: internal }
    - { name: orders, type: bigint, nullable: false, description: Completed orders, classification: internal }
    - { name: lifetime_revenue, type: "decimal(14,2)", nullable: false, description: Revenue in EUR, classification: confidential }
    - { name: first_order_at, type: timestamp, description: First completed order, classification: internal }
    - { name: last_order_at, type: timestamp, description: Latest completed order, classification: internal }
access:
  readers: [domain:sales, group:analysts]
  row_filter: "region = principal.attr('region') OR principal.in_group('global-analysts') OR principal.in_domain('finance') OR principal.is_admin()"
  discoverable: true           # others see its card and may request access (docs/portal.md)
quality:
  - { rule: unique, column: customer_id }
  - { rule: referential, column: customer_id, references: sales.customers, references_column: customer_id }
  - { rule: sql, name: revenue_matches_orders, assert: "SELECT (SELECT sum(lifetime_revenue) FROM this) = (SELECT sum(amount) FROM sales.orders WHERE status = 'completed')" }
slo:
  freshness: 24h
  completeness: { upstream: sales.customers, min_ratio: 1.0 }
refresh:
  on_upstream_change: true
"#,
        ),
        (
            "domains/finance/products/customer_value/transform.sql",
            r#"SELECT
    c.customer_id,
    c.region,
    c.segment,
    COUNT(o.order_id) AS orders,
    COALESCE(SUM(o.amount), 0) AS lifetime_revenue,
    MIN(o.placed_at) AS first_order_at,
    MAX(o.placed_at) AS last_order_at
FROM customers c
LEFT JOIN orders o ON o.customer_id = c.customer_id AND o.status = 'completed'
GROUP BY c.customer_id, c.region, c.segment
ORDER BY c.customer_id
"#,
        ),
    ]
}
