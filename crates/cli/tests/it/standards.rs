//! `meshwork export --format odcs|odps` and `meshwork import`: the example mesh round trips
//! through both standards, a third-party contract imports with a report of what did not map,
//! and hidden products are not exported.

use std::path::Path;

use expect_test::expect;

use crate::{governed_mesh, meshwork, ok, stderr};

const PRODUCTS: &[&str] = &[
    "sales.customers",
    "sales.orders",
    "sales.daily_sales",
    "marketing.campaigns",
    "marketing.campaign_roi",
    "finance.revenue_by_region",
    "finance.customer_value",
];

fn export_all(dir: &Path, out: &Path) -> Vec<(String, String)> {
    let mut docs = Vec::new();
    for product in PRODUCTS {
        for format in ["odcs", "odps"] {
            let file = out.join(format!("{product}.{format}.yaml"));
            ok(dir, &["export", product, "--format", format, "--repo", "--output", file.to_str().unwrap()]);
            docs.push((file.display().to_string(), std::fs::read_to_string(&file).unwrap()));
        }
    }
    docs
}

/// Export → import → export gives the same documents, and the imported repository is valid.
#[test]
fn the_example_mesh_round_trips_through_odcs_and_odps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("example");
    ok(tmp.path(), &["init", dir.to_str().unwrap(), "--example", "--orders", "500", "--seed", "3"]);
    let first_dir = tmp.path().join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let first = export_all(&dir, &first_dir);

    // The products are removed from the repository (the data stays) and imported back.
    for domain in ["sales", "marketing", "finance"] {
        std::fs::remove_dir_all(dir.join(format!("domains/{domain}/products"))).unwrap();
    }
    let files: Vec<&str> = first.iter().map(|(f, _)| f.as_str()).collect();
    let report = ok(&dir, &[&["import"], files.as_slice()].concat());
    assert!(!report.contains("not mapped"), "a Meshwork export maps entirely:\n{report}");
    ok(&dir, &["validate"]);

    let second_dir = tmp.path().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let second = export_all(&dir, &second_dir);
    for ((file, a), (_, b)) in first.iter().zip(&second) {
        assert_eq!(a, b, "{file} differs after the round trip");
    }

    // Importing again refuses to replace products unless asked to.
    let again = meshwork(&dir, &[&["import"], files.as_slice()].concat());
    assert_eq!(again.status.code(), Some(3));
    assert!(stderr(&again).contains("product `sales.orders` already exists in the repository"), "{}", stderr(&again));
    ok(&dir, &[&["import", "--force"], files.as_slice()].concat());
}

/// The contract of one product, as written (a snapshot of the mapping).
#[test]
fn a_contract_names_types_rules_slos_roles_and_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("example");
    ok(tmp.path(), &["init", dir.to_str().unwrap(), "--example", "--orders", "200", "--seed", "3"]);
    let contract = ok(&dir, &["export", "sales.customers", "--format", "odcs", "--repo"]);
    expect![[r#"
        apiVersion: v3.1.0
        kind: DataContract
        id: sales.customers
        name: customers
        version: "1.0.0"
        status: active
        domain: sales
        tags:
          - customers
          - crm
        description:
          purpose: One row per registered web shop customer.
        schema:
          - name: customers
            physicalName: customers
            physicalType: table
            businessName: Customers
            logicalType: object
            properties:
              - name: customer_id
                logicalType: integer
                logicalTypeOptions:
                  format: i64
                physicalType: bigint
                required: true
                primaryKey: true
                primaryKeyPosition: 1
                description: Customer identifier
                classification: internal
                quality:
                  - name: unique_customer_id
                    type: library
                    dimension: uniqueness
                    metric: duplicateValues
                    mustBe: 0
                    severity: error
              - name: full_name
                logicalType: string
                physicalType: text
                required: true
                description: Customer's full name
                classification: pii
              - name: email
                logicalType: string
                physicalType: text
                required: true
                description: Customer's e-mail address
                classification: pii
                quality:
                  - name: regex_email
                    type: library
                    dimension: conformity
                    metric: invalidValues
                    arguments:
                      pattern: "^[^@ ]+@[^@ ]+\\.[a-z]+$"
                    mustBe: 0
                    severity: error
              - name: country
                logicalType: string
                physicalType: text
                required: true
                description: ISO 3166 country code
                classification: internal
              - name: region
                logicalType: string
                physicalType: text
                required: true
                description: Sales region (EU, NA, APAC)
                classification: internal
                quality:
                  - name: accepted_values_region
                    type: library
                    dimension: conformity
                    metric: invalidValues
                    arguments:
                      validValues:
                        - EU
                        - NA
                        - APAC
                    mustBe: 0
                    severity: error
              - name: segment
                logicalType: string
                physicalType: text
                required: true
                description: consumer, business or enterprise
                classification: internal
                quality:
                  - name: accepted_values_segment
                    type: library
                    dimension: conformity
                    metric: invalidValues
                    arguments:
                      validValues:
                        - consumer
                        - business
                        - enterprise
                    mustBe: 0
                    severity: warning
              - name: signup_date
                logicalType: date
                physicalType: date
                required: true
                description: Day the customer registered
                classification: internal
        team:
          name: sales
          members:
            - username: "group:sales-data"
              role: owner
        roles:
          - role: "domain:finance"
            access: read
          - role: "domain:marketing"
            access: read
          - role: "group:analysts"
            access: read
          - role: "domain:sales"
            access: unmasked
        slaProperties:
          - property: completeness
            value: 0.99
            element: customers.email
        servers:
          - server: meshwork-postgres
            type: postgres
            description: "Meshwork's PostgreSQL wire port: an API token is the password"
            host: "127.0.0.1"
            port: 5433
            database: meshwork
            schema: sales
          - server: meshwork-flight-sql
            type: custom
            description: Meshwork's Arrow Flight SQL port (bearer token)
            host: "127.0.0.1"
            port: 50051
            catalog: meshwork
            schema: sales
          - server: meshwork-http
            type: api
            description: "Meshwork's HTTP API: the product's detail; POST SQL to /api/v1/query"
            location: "http://127.0.0.1:8080/api/v1/products/sales.customers"
        customProperties:
          - property: meshworkInputs
            value:
              - name: raw_customers
                source:
                  kind: csv
                  path: data/sales/customers.csv
          - property: meshworkAccess
            value:
              row_filter: region = principal.attr('region') OR principal.in_group('global-analysts') OR principal.in_domain('sales') OR principal.in_domain('finance') OR principal.is_admin()
              masks:
                email: hash
                full_name:
                  kind: partial
                  keep_first: 1
                  keep_last: 0
    "#]].assert_eq(&contract);
    let product = ok(&dir, &["export", "finance.customer_value", "--format", "odps", "--repo"]);
    expect![[r#"
        apiVersion: v1.0.0
        kind: DataProduct
        id: finance.customer_value
        name: customer_value
        version: "1.0.0"
        status: active
        domain: finance
        description:
          purpose: Completed orders and revenue per customer over their lifetime.
        tags:
          - customers
          - revenue
          - ltv
        inputPorts:
          - name: orders
            version: "1.0.0"
            contractId: sales.orders
          - name: customers
            version: "1.0.0"
            contractId: sales.customers
        outputPorts:
          - name: sql
            description: "SQL through `meshwork query` and the catalog"
            type: sql
            version: "1.0.0"
            contractId: finance.customer_value
            inputContracts:
              - id: sales.orders
                version: "1.0.0"
              - id: sales.customers
                version: "1.0.0"
          - name: flight_sql
            description: Arrow Flight SQL
            type: flight_sql
            version: "1.0.0"
            contractId: finance.customer_value
            inputContracts:
              - id: sales.orders
                version: "1.0.0"
              - id: sales.customers
                version: "1.0.0"
          - name: postgres
            description: PostgreSQL wire protocol
            type: postgres
            version: "1.0.0"
            contractId: finance.customer_value
            inputContracts:
              - id: sales.orders
                version: "1.0.0"
              - id: sales.customers
                version: "1.0.0"
          - name: rest
            description: HTTP REST API
            type: rest
            version: "1.0.0"
            contractId: finance.customer_value
            inputContracts:
              - id: sales.orders
                version: "1.0.0"
              - id: sales.customers
                version: "1.0.0"
          - name: file_export
            description: The Delta table, for direct readers allowed by policy
            type: file_export
            version: "1.0.0"
            contractId: finance.customer_value
            inputContracts:
              - id: sales.orders
                version: "1.0.0"
              - id: sales.customers
                version: "1.0.0"
        team:
          name: finance
          members:
            - username: "group:finance-data"
              role: owner
        customProperties:
          - property: meshworkTransform
            value:
              file: transform.sql
              sql: |
                SELECT
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
          - property: meshworkRefresh
            value:
              on_upstream_change: true
    "#]].assert_eq(&product);
}

/// A contract written by someone else: what maps is written, the rest is reported by path.
#[test]
fn a_third_party_contract_imports_with_a_report_of_what_did_not_map() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    ok(tmp.path(), &["init", dir.to_str().unwrap()]);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/third_party.odcs.yaml");
    let report = ok(&dir, &["import", fixture.to_str().unwrap(), "--domain", "payments"]);
    let report = report.replace(fixture.to_str().unwrap(), "third_party.odcs.yaml");
    expect![[r#"
        imported payments.payments -> domains/payments/products/payments/product.yaml
        wrote    domains/payments/domain.yaml
        wrote    data/payments/payments.csv
        not mapped (34):
          third_party.odcs.yaml: schema[0].name: product name `Payments` is not a Meshwork name; written as `payments`
          third_party.odcs.yaml: schema[0].physicalName: Meshwork serves the product under its name; the physical name is not kept
          third_party.odcs.yaml: schema[0].properties[0].businessName: `businessName` has no Meshwork equivalent
          third_party.odcs.yaml: schema[0].properties[0].partitioned: `partitioned` has no Meshwork equivalent
          third_party.odcs.yaml: schema[0].properties[0].partitionKeyPosition: `partitionKeyPosition` has no Meshwork equivalent
          third_party.odcs.yaml: schema[0].properties[0].examples: `examples` has no Meshwork equivalent
          third_party.odcs.yaml: schema[0].properties[1].classification: classification `restricted` is read as `confidential`
          third_party.odcs.yaml: schema[0].properties[1].logicalTypeOptions.maxLength: `maxLength` has no Meshwork equivalent
          third_party.odcs.yaml: schema[0].properties[2].quality[1]: checks measured in percent have no Meshwork rule
          third_party.odcs.yaml: schema[0].properties[3].criticalDataElement: `criticalDataElement` has no Meshwork equivalent
          third_party.odcs.yaml: schema[0].properties[5].physicalType: physical type `TIMESTAMP_NTZ` is not a Meshwork type; read as `timestamp` from the logical type
          third_party.odcs.yaml: schema[0].quality[2]: `text` checks are not executable by Meshwork
          third_party.odcs.yaml: schema[0].quality[3]: `custom` checks are not executable by Meshwork
          third_party.odcs.yaml: schema[0].id: `id` has no Meshwork equivalent
          third_party.odcs.yaml: schema[0].dataGranularityDescription: `dataGranularityDescription` has no Meshwork equivalent
          third_party.odcs.yaml: schema[0]: the contract names no input: `data/payments/payments.csv` (the contract's header, no rows) stands in for the source; point `inputs` at the real data
          third_party.odcs.yaml: status: status `proposed` is read as `draft`
          third_party.odcs.yaml: description.limitations: `limitations` has no Meshwork equivalent
          third_party.odcs.yaml: description.usage: `usage` has no Meshwork equivalent
          third_party.odcs.yaml: team.name: the owning team is the product's domain; the team name is not kept
          third_party.odcs.yaml: team.members[0].dateIn: `dateIn` has no Meshwork equivalent
          third_party.odcs.yaml: team.members[1]: team member `mhopper` is not the product's owner; Meshwork keeps one owner
          third_party.odcs.yaml: roles[1].role: role `microstrategy_user_opr` is read as the group `group:microstrategy_user_opr`
          third_party.odcs.yaml: roles[1].firstLevelApprovers: `firstLevelApprovers` has no Meshwork equivalent
          third_party.odcs.yaml: roles[2]: role access `write`: Meshwork grants reading only
          third_party.odcs.yaml: slaProperties[1]: SLA property `retention` has no Meshwork objective
          third_party.odcs.yaml: slaProperties[2]: end of life `2042-05-12T09:30:10-08:00` is read as the date `2042-05-12`
          third_party.odcs.yaml: servers[0]: servers are where Meshwork serves the product, not where it reads it; add an input port for this source
          third_party.odcs.yaml: tenant: `tenant` has no Meshwork equivalent
          third_party.odcs.yaml: authoritativeDefinitions: `authoritativeDefinitions` has no Meshwork equivalent
          third_party.odcs.yaml: support: `support` has no Meshwork equivalent
          third_party.odcs.yaml: price: `price` has no Meshwork equivalent
          third_party.odcs.yaml: contractCreatedTs: `contractCreatedTs` has no Meshwork equivalent
          third_party.odcs.yaml: customProperties[0]: custom property `refRulesetName` has no Meshwork equivalent
        next: meshwork validate
    "#]].assert_eq(&report);
    let written = std::fs::read_to_string(dir.join("domains/payments/products/payments/product.yaml")).unwrap();
    expect![[r#"
        name: payments
        domain: payments
        version: "2.1.0"
        title: Core payment metrics
        description: Views built on top of the seller tables.
        owner: "user:daustin"
        tags:
          - finance
          - payments
        status: draft
        sunset: "2042-05-12"
        inputs:
          - name: source
            source:
              kind: csv
              path: data/payments/payments.csv
        contract:
          primary_key:
            - rcvr_id
          columns:
            - name: txn_ref_dt
              type: date
              nullable: false
              description: Reference date for transaction
              classification: public
            - name: rcvr_id
              type: string
              nullable: false
              description: A description for column rcvr_id.
              classification: confidential
            - name: rcvr_cntry_code
              type: string
              description: Country code
              classification: public
            - name: amount
              type: decimal(12,2)
            - name: txn_count
              type: int
            - name: updated_at
              type: timestamp
        quality:
          - rule: not_null
            column: rcvr_id
          - rule: unique
            column: rcvr_id
          - rule: accepted_values
            name: valid_country
            severity: warn
            column: rcvr_cntry_code
            values:
              - DE
              - FR
              - US
          - rule: range
            column: amount
            min: "0"
          - rule: row_count
            min: 100
            max: 1000000
          - rule: sql
            name: no_negative_totals
            assert: SELECT (SELECT COUNT(*) FROM this WHERE amount < 0) = 0
        slo:
          freshness:
            max_age: "4d"
            column: updated_at
        access:
          readers:
            - "group:analysts"
            - "group:microstrategy_user_opr"
    "#]].assert_eq(&written);
    ok(&dir, &["validate"]);

    // Without `--domain`, the contract's own domain is used, made a Meshwork name.
    let json = ok(&dir, &["import", fixture.to_str().unwrap(), "--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["products"], serde_json::json!(["seller.payments"]), "{value:#}");
    assert!(dir.join("domains/seller/domain.yaml").is_file());
}

/// A product the caller may not read is not exported: it reads as not found.
#[test]
fn export_follows_visibility() {
    let (_tmp, dir) = governed_mesh();
    ok(&dir, &["apply"]);
    let hidden = meshwork(&dir, &["--as", "olga", "export", "sales.orders", "--format", "odcs"]);
    assert_eq!(hidden.status.code(), Some(1));
    assert_eq!(stderr(&hidden), "error: product `sales.orders` not found; `meshwork product list` shows the published products\n");
    let shown = ok(&dir, &["--as", "ana", "export", "sales.orders", "--format", "odcs"]);
    assert!(shown.contains("id: sales.orders") && shown.contains("meshwork-postgres"), "{shown}");
    assert!(!shown.contains("meshwork-delta"), "only administrators are told where the table is:\n{shown}");
    let admin = ok(&dir, &["export", "sales.orders", "--format", "odcs"]);
    assert!(admin.contains("meshwork-delta") && admin.contains("format: delta"), "{admin}");
}
