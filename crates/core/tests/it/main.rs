//! Golden tests of descriptor parsing and mesh checks: each error class with its file, position,
//! field and hint.

use std::collections::BTreeMap;

use expect_test::{Expect, expect};
use meshwork_core::diagnostic::{Diagnostic, DiagnosticCode};
use meshwork_core::mesh::{DomainEntry, MeshRepo, ProductEntry, descriptor_hash};
use meshwork_core::parse::{parse_domain, parse_mesh_config, parse_product};

mod openlineage;

const FILE: &str = "domains/sales/products/orders/product.yaml";

const ORDERS: &str = "\
name: orders
domain: sales
version: 1.2.0
title: Orders
owner: group:sales-data
inputs:
  - name: raw_orders
    source: { kind: csv, path: data/orders.csv, delimiter: ';' }
contract:
  primary_key: [order_id]
  columns:
    - { name: order_id, type: bigint, nullable: false }
    - { name: amount, type: \"decimal(12,2)\" }
";

/// Renders every diagnostic of parsing `text` as `product.yaml`, one per line.
fn check_product(text: &str, expect: Expect) {
    let rendered = match parse_product(FILE, text) {
        Ok(_) => "ok".to_owned(),
        Err(diagnostics) => render(&diagnostics),
    };
    expect.assert_eq(&rendered);
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("[{}] {d}\n", d.code.as_str())).collect()
}

#[test]
fn a_valid_product_parses_with_defaults() {
    let product = parse_product(FILE, ORDERS).unwrap().value;
    assert_eq!(product.id().to_string(), "sales.orders");
    assert_eq!(product.version, "1.2.0");
    assert!(product.contract.columns[1].nullable);
    assert!(product.output_ports.flight_sql);
    match &product.inputs[0].source {
        meshwork_core::descriptor::InputSource::Csv { delimiter, header, null_values, .. } => {
            assert_eq!(*delimiter, ';');
            assert!(*header);
            assert_eq!(null_values, &vec![String::new()]);
        }
        other => panic!("unexpected source {other:?}"),
    }
}

#[test]
fn unknown_fields_are_rejected_with_a_suggestion() {
    check_product(
        &ORDERS.replace("title: Orders", "titel: Orders").replace("nullable: false }", "nulable: false }"),
        expect![[r#"
            [unknown_field] domains/sales/products/orders/product.yaml:4:1: titel: unknown field `titel` (hint: did you mean `title`?)
            [unknown_field] domains/sales/products/orders/product.yaml:12:39: contract.columns[0].nulable: unknown field `nulable` (hint: did you mean `nullable`?)
        "#]],
    );
}

#[test]
fn bad_types_name_the_column_and_the_closest_type() {
    check_product(
        &ORDERS.replace("type: bigint", "type: strng").replace("decimal(12,2)", "decimal(40,2)"),
        expect![[r#"
            [invalid_value] domains/sales/products/orders/product.yaml:12:31: contract.columns[0].type: unknown type `strng`, expected one of `boolean`, `tinyint`, `smallint`, `int`, `bigint`, `float`, `double`, `decimal(p,s)`, `string`, `binary`, `date` or `timestamp` (hint: did you mean `string`?)
            [invalid_value] domains/sales/products/orders/product.yaml:13:29: contract.columns[1].type: invalid decimal type `decimal(40,2)`: precision out of range (hint: write it as `decimal(precision,scale)` with 1 <= precision <= 38 and 0 <= scale <= precision, e.g. `decimal(12,2)`)
        "#]],
    );
}

#[test]
fn versions_and_column_names_outside_the_conventions_parse_for_the_policies_to_judge() {
    // Semantic versioning and snake_case columns are governance policies (`semver_version`,
    // `snake_case_names`) so a mesh can stage them; the parser only requires text and identifiers.
    let text = ORDERS.replace("version: 1.2.0", "version: 1.2").replace("order_id", "orderId");
    let product = parse_product(FILE, &text).unwrap().value;
    assert_eq!(product.version, "1.2");
    assert_eq!(product.contract.columns[0].name, "orderId");
    check_product(
        &ORDERS.replace("{ name: order_id", "{ name: order-id"),
        expect![[r#"
            [invalid_name] domains/sales/products/orders/product.yaml:12:15: contract.columns[0].name: `order-id` is not a valid name (hint: use snake_case: a lowercase letter, then lowercase letters, digits or `_`, e.g. `order_id`)
            [missing_reference] domains/sales/products/orders/product.yaml:10:17: contract.primary_key[0]: column `order_id` is not in the contract (hint: the contract declares `amount`)
        "#]],
    );
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    check_product(
        "name: Orders\nversion: one\ninputs: []\ncontract:\n  primary_key: [id]\n  columns:\n    - { name: amount, type: money, classification: secret }\n",
        expect![[r#"
            [invalid_name] domains/sales/products/orders/product.yaml:1:7: name: `Orders` is not a valid name (hint: use snake_case: a lowercase letter, then lowercase letters, digits or `_`, e.g. `orders`)
            [missing_field] domains/sales/products/orders/product.yaml:1:5: domain: missing required field `domain` (hint: add `domain: sales`)
            [invalid_value] domains/sales/products/orders/product.yaml:7:29: contract.columns[0].type: unknown type `money`, expected one of `boolean`, `tinyint`, `smallint`, `int`, `bigint`, `float`, `double`, `decimal(p,s)`, `string`, `binary`, `date` or `timestamp`
            [invalid_value] domains/sales/products/orders/product.yaml:7:52: contract.columns[0].classification: unknown value `secret`, expected one of `public`, `internal`, `confidential` or `pii`
            [missing_reference] domains/sales/products/orders/product.yaml:5:17: contract.primary_key[0]: column `id` is not in the contract (hint: the contract declares `amount`)
        "#]],
    );
}

#[test]
fn later_capability_fields_are_parsed_and_checked() {
    let text = format!(
        "{ORDERS}quality:\n  - {{ rule: unique, column: order_id }}\n  - {{ rule: range, column: amount, min: 0 }}\n  - {{ rule: sql, name: positive, assert: \"SELECT count(*) = 0 FROM this WHERE amount < 0\", severity: warn }}\nslo: {{ freshness: 24h }}\nrefresh: {{ schedule: '0 6 * * *', on_upstream_change: true }}\naccess:\n  readers: [domain:sales, group:analysts]\n  row_filter: \"region = 'EU'\"\n  masks: {{ amount: hash, order_id: \"null\" }}\noutput_ports: {{ postgres: false }}\n"
    );
    let product = parse_product(FILE, &text).unwrap().value;
    assert_eq!(product.quality.len(), 3);
    assert_eq!(product.quality[0].name, "unique_order_id");
    assert_eq!(product.quality[2].severity, meshwork_core::descriptor::Severity::Warn);
    assert_eq!(product.slo.unwrap().freshness.unwrap().seconds, 86_400);
    assert!(product.refresh.on_upstream_change);
    assert!(!product.output_ports.postgres);
    let access = product.access.unwrap();
    assert_eq!(access.masks["amount"], meshwork_core::descriptor::Mask::Hash);
    assert_eq!(access.masks["order_id"], meshwork_core::descriptor::Mask::Null);

    check_product(
        &format!("{ORDERS}quality:\n  - {{ rule: uniqe, column: order_id }}\n  - {{ rule: not_null, column: amout }}\nslo: {{ freshness: 1 day }}\naccess: {{ readers: [analysts], masks: {{ amount: redact }} }}\n"),
        expect![[r#"
            [invalid_value] domains/sales/products/orders/product.yaml:15:13: quality[0].rule: unknown value `uniqe`, expected one of `not_null`, `unique`, `accepted_values`, `range`, `regex`, `row_count`, `freshness`, `referential` or `sql` (hint: did you mean `unique`?)
            [missing_reference] domains/sales/products/orders/product.yaml:16:31: quality[1].column: column `amout` is not in the contract (hint: did you mean `amount`?)
            [invalid_value] domains/sales/products/orders/product.yaml:17:19: slo.freshness: invalid duration `1 day` (hint: write a whole number and a unit `s`, `m`, `h`, `d` or `w`, e.g. `24h`)
            [invalid_value] domains/sales/products/orders/product.yaml:18:21: access.readers[0]: `analysts` is not a principal reference (hint: write `user:NAME`, `service:NAME`, `group:NAME`, `domain:NAME` or `*`)
            [invalid_value] domains/sales/products/orders/product.yaml:18:41: access.masks.amount: mask `redact` needs a string column, but `amount` is decimal(12,2) (hint: use `hash` or `null` for columns of other types)
        "#]],
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    check_product(
        "name: orders\ncontract: [\n",
        expect![[r#"
            [syntax] domains/sales/products/orders/product.yaml:3:1: invalid YAML: while parsing a node, did not find expected node content at byte 25 line 3 column 1
        "#]],
    );
    let err = parse_mesh_config("mesh.yaml", "name: a\nname: b\n").unwrap_err();
    expect![[r#"
        [syntax] mesh.yaml:2:1: field `name` is given twice (hint: keep one of them)
    "#]]
    .assert_eq(&render(&err));
}

fn product_entry(domain: &str, name: &str, inputs: &str) -> ProductEntry {
    let file = format!("domains/{domain}/products/{name}/product.yaml");
    let text = format!(
        "name: {name}\ndomain: {domain}\nversion: 1.0.0\ninputs:\n{inputs}transform: SELECT 1 AS id\ncontract:\n  columns:\n    - {{ name: id, type: bigint }}\n"
    );
    let located = parse_product(&file, &text).unwrap_or_else(|d| panic!("{}", render(&d)));
    ProductEntry { descriptor: located.value, file, dir_domain: domain.into(), dir_name: name.into(), positions: located.positions }
}

fn repo(products: Vec<ProductEntry>) -> MeshRepo {
    let config = parse_mesh_config("mesh.yaml", "name: test\n").unwrap().value;
    let mut domains = BTreeMap::new();
    for name in ["sales", "marketing"] {
        let located = parse_domain("domain.yaml", &format!("name: {name}\n")).unwrap();
        domains.insert(
            located.value.name.clone(),
            DomainEntry { descriptor: located.value, file: format!("domains/{name}/domain.yaml"), dir_name: name.into(), positions: located.positions },
        );
    }
    MeshRepo { config, domains, products: products.into_iter().map(|p| (p.descriptor.id(), p)).collect(), unparsed: Default::default() }
}

#[test]
fn missing_references_suggest_the_closest_product() {
    let repo = repo(vec![
        product_entry("sales", "orders", "  - { name: raw, source: { kind: csv, path: x.csv } }\n"),
        product_entry("marketing", "roi", "  - { name: orders, product: sales.order }\n"),
    ]);
    expect![[r#"
        [missing_reference] domains/marketing/products/roi/product.yaml:5:30: inputs[0].product: product `sales.order` does not exist (hint: did you mean `sales.orders`?)
    "#]]
    .assert_eq(&render(&repo.check()));
}

#[test]
fn dependency_cycles_name_every_product_in_the_cycle() {
    let repo = repo(vec![
        product_entry("sales", "a", "  - { name: c, product: marketing.c }\n"),
        product_entry("sales", "b", "  - { name: a, product: sales.a }\n"),
        product_entry("marketing", "c", "  - { name: b, product: sales.b }\n"),
        product_entry("marketing", "d", "  - { name: raw, source: { kind: csv, path: x.csv } }\n"),
    ]);
    expect![[r#"
        [dependency_cycle] domains/marketing/products/c/product.yaml:5:25: inputs[0].product: products depend on each other in a cycle: marketing.c -> sales.b -> sales.a -> marketing.c (hint: a product cannot read, directly or through others, from itself; remove one of these inputs)
    "#]]
    .assert_eq(&render(&repo.check()));
    assert_eq!(repo.check()[0].code, DiagnosticCode::DependencyCycle);
}

#[test]
fn build_order_puts_upstream_first_and_is_stable() {
    let repo = repo(vec![
        product_entry("marketing", "roi", "  - { name: o, product: sales.orders }\n  - { name: c, product: marketing.campaigns }\n"),
        product_entry("sales", "orders", "  - { name: raw, source: { kind: csv, path: x.csv } }\n"),
        product_entry("marketing", "campaigns", "  - { name: raw, source: { kind: csv, path: y.csv } }\n"),
    ]);
    let order: Vec<String> = repo.build_order().unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(order, ["marketing.campaigns", "sales.orders", "marketing.roi"]);
}

#[test]
fn descriptor_hash_ignores_formatting_but_not_content() {
    let a = parse_product(FILE, ORDERS).unwrap().value;
    let b = parse_product(FILE, &format!("# a comment\n{ORDERS}")).unwrap().value;
    let c = parse_product(FILE, &ORDERS.replace("1.2.0", "1.3.0")).unwrap().value;
    assert_eq!(descriptor_hash(&a), descriptor_hash(&b));
    assert_ne!(descriptor_hash(&a), descriptor_hash(&c));
}

#[test]
fn discoverable_is_off_by_default_and_leaves_existing_hashes_alone() {
    let closed = parse_product(FILE, &format!("{ORDERS}access:\n  readers: [group:analysts]\n")).unwrap().value;
    let open = parse_product(FILE, &format!("{ORDERS}access:\n  readers: [group:analysts]\n  discoverable: true\n")).unwrap().value;
    assert!(!closed.access.as_ref().unwrap().discoverable);
    assert!(open.access.as_ref().unwrap().discoverable);
    // A descriptor without the field serializes as before, so products published by an
    // earlier meshwork are not rebuilt for it.
    assert!(!serde_json::to_string(&closed).unwrap().contains("discoverable"));
    assert_ne!(descriptor_hash(&closed), descriptor_hash(&open));
    let bad = parse_product(FILE, &format!("{ORDERS}access:\n  discoverable: maybe\n")).unwrap_err();
    assert!(render(&bad).contains("access.discoverable"), "{}", render(&bad));
}

#[test]
fn server_limits_and_oidc_are_read_from_mesh_yaml() {
    let text = "name: m\nserver:\n  query_memory: 512MiB\n  query_timeout: 90s\n  max_queries_per_principal: 2\nauth:\n  oidc:\n    issuer: https://idp.example/\n    audience: [a, b]\n    jwks: keys.json\n    attributes: { region: geo }\n";
    let config = parse_mesh_config("mesh.yaml", text).unwrap_or_else(|d| panic!("{}", render(&d))).value;
    assert_eq!(config.server.query_memory_bytes, 512 << 20);
    assert_eq!(config.server.query_timeout.seconds, 90);
    assert_eq!(config.server.max_queries_per_principal, 2);
    let oidc = config.auth.oidc.unwrap();
    assert_eq!(oidc.audiences, ["a", "b"]);
    assert_eq!(oidc.algorithms, ["RS256", "ES256", "EdDSA"]);
    assert_eq!((oidc.principal_claim.as_str(), oidc.groups_claim.as_str()), ("sub", "groups"));
    assert_eq!(oidc.attributes["region"], "geo");

    let bad = "name: m\nserver:\n  query_memory: lots\n  max_queries_per_principal: 0\nauth:\n  oidc:\n    issuer: https://idp.example/\n    jwks: keys.json\n    algorithms: [HS256, RS265]\n";
    let err = parse_mesh_config("mesh.yaml", bad).unwrap_err();
    expect![[r#"
        [invalid_value] mesh.yaml:3:17: server.query_memory: invalid size `lots` (hint: write a number and a unit `KiB`, `MiB`, `GiB` (or `KB`, `MB`, `GB`), e.g. `512MiB`)
        [invalid_value] mesh.yaml:4:30: server.max_queries_per_principal: `0` is not a positive number (hint: e.g. `8`)
        [missing_field] mesh.yaml:7:11: auth.oidc.audience: missing required field `audience` (hint: add `audience: meshwork`)
        [invalid_value] mesh.yaml:9:18: auth.oidc.algorithms[0]: unsupported JWT algorithm `HS256` (hint: symmetric `HS*` keys cannot come from a JWKS: use an asymmetric algorithm such as `RS256`)
        [invalid_value] mesh.yaml:9:25: auth.oidc.algorithms[1]: unsupported JWT algorithm `RS265` (hint: did you mean `RS256`?)
    "#]]
    .assert_eq(&render(&err));
}

#[test]
fn a_domain_principal_carries_its_declared_groups_and_attributes_and_never_admin() {
    let located = parse_domain("domain.yaml", "name: growth\nprincipal:\n  groups: [reporting]\n  attributes: { region: EU }\n").unwrap();
    let principal = meshwork_core::principal::Principal::for_domain(&located.value);
    assert_eq!(principal.name, "growth");
    assert_eq!(principal.kind.as_str(), "domain");
    assert!(!principal.admin);
    assert!(principal.matches("domain:growth") && principal.matches("group:reporting") && principal.matches("*"));
    assert!(!principal.matches("user:growth") && !principal.matches("service:growth") && !principal.matches("domain:shop"));
    assert_eq!(principal.attributes.get("region").map(String::as_str), Some("EU"));

    let refused = parse_domain("domain.yaml", "name: growth\nprincipal:\n  groups: [admins]\n").unwrap_err();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].message, "a domain cannot be in the `admins` group");
    assert_eq!(refused[0].field, "principal.groups");
    let unknown = parse_domain("domain.yaml", "name: growth\nprincipal:\n  admin: true\n").unwrap_err();
    assert!(unknown[0].message.contains("admin"), "{unknown:?}");
}

#[test]
fn metadata_stores_are_typed_and_never_hold_a_password() {
    use meshwork_core::descriptor::MetadataStore;
    let store = |text: &str| parse_mesh_config("mesh.yaml", text).map(|c| c.value.metadata).map_err(|d| render(&d));
    assert_eq!(store("name: m\n").unwrap(), MetadataStore::Sqlite { path: ".meshwork/catalog.db".into() });
    assert_eq!(store("name: m\nmetadata: { url: 'sqlite:state/meta.db' }\n").unwrap(), MetadataStore::Sqlite { path: "state/meta.db".into() });
    assert_eq!(
        store("name: m\nmetadata: postgres://meshwork@db:5432/mesh\n").unwrap(),
        MetadataStore::Postgres { url: "postgres://meshwork@db:5432/mesh".into(), password_env: None }
    );
    assert_eq!(
        store("name: m\nmetadata:\n  url: postgresql://meshwork@db/mesh\n  password_env: META_PW\n").unwrap(),
        MetadataStore::Postgres { url: "postgresql://meshwork@db/mesh".into(), password_env: Some("META_PW".into()) }
    );
    expect![[r#"
        [invalid_value] mesh.yaml:2:11: metadata: the metadata URL holds a password, which must not be written in `mesh.yaml` (hint: remove it from the URL, put it in an environment variable and name that variable in `metadata.password_env`)
    "#]]
    .assert_eq(&store("name: m\nmetadata: postgres://meshwork:hunter2@db/mesh\n").unwrap_err());
    expect![[r#"
        [invalid_value] mesh.yaml:2:11: metadata: unsupported metadata store `mysql://db/mesh` (hint: use `sqlite:PATH` (the embedded default) or `postgres://USER@HOST:PORT/DATABASE`)
    "#]]
    .assert_eq(&store("name: m\nmetadata: mysql://db/mesh\n").unwrap_err());
    expect![[r#"
        [invalid_value] mesh.yaml:4:17: metadata.password_env: `meta-pw` is not an environment variable name (hint: use upper-case letters, digits and `_`, e.g. `MESHWORK_METADATA_PASSWORD`)
    "#]]
    .assert_eq(&store("name: m\nmetadata:\n  url: postgres://meshwork@db/mesh\n  password_env: meta-pw\n").unwrap_err());
}

#[test]
fn connections_are_typed_and_never_hold_a_password() {
    use meshwork_core::descriptor::{Connection, DatabaseKind};
    let connections = |text: &str| parse_mesh_config("mesh.yaml", text).map(|c| c.value.connections).map_err(|d| render(&d));
    let parsed = connections("name: m\nconnections:\n  crm: { url: \"postgres://reader@crm-db:5432/crm\", password_env: CRM_PASSWORD }\n  erp: { url: \"mariadb://etl@erp/erp\" }\n").unwrap();
    assert_eq!(parsed["crm"], Connection { kind: DatabaseKind::Postgres, url: "postgres://reader@crm-db:5432/crm".into(), password_env: Some("CRM_PASSWORD".into()) });
    assert_eq!(parsed["erp"], Connection { kind: DatabaseKind::Mysql, url: "mariadb://etl@erp/erp".into(), password_env: None });
    // A password passed as a URL parameter is refused too, for connections and the catalog.
    for text in ["name: m\nconnections:\n  crm: { url: \"postgres://reader@db/crm?sslmode=require&password=hunter2\" }\n", "name: m\nmetadata: postgres://meshwork@db/mesh?PassWord=hunter2\n"] {
        let error = parse_mesh_config("mesh.yaml", text).map(|_| ()).map_err(|d| render(&d)).unwrap_err();
        assert!(error.contains("holds a password") && !error.contains("hunter2"), "{error}");
    }
    expect![[r#"
        [invalid_value] mesh.yaml:3:15: connections.crm.url: the connection URL holds a password, which must not be written in `mesh.yaml` (hint: remove it from the URL, put it in an environment variable and name that variable in `password_env`)
        [invalid_value] mesh.yaml:4:15: connections.dwh.url: unsupported database `oracle` (hint: use `postgres://USER@HOST:PORT/DATABASE` or `mysql://USER@HOST:PORT/DATABASE`)
        [invalid_value] mesh.yaml:5:14: connections.bi.url: the connection URL names no host or database (hint: write `mysql://USER@HOST:PORT/DATABASE`)
        [invalid_name] mesh.yaml:6:3: connections.CRM: `CRM` is not a valid name (hint: use snake_case: a lowercase letter, then lowercase letters, digits or `_`, e.g. `c_r_m`)
    "#]]
    .assert_eq(
        &connections("name: m\nconnections:\n  crm: { url: \"postgres://reader:hunter2@db/crm\" }\n  dwh: { url: \"oracle://x@db/y\" }\n  bi: { url: \"mysql://x@db\" }\n  CRM: { url: \"postgres://x@db/y\" }\n").unwrap_err(),
    );
}

#[test]
fn flight_sql_endpoints_are_connections_with_a_token_and_serve_virtual_products_only() {
    use meshwork_core::descriptor::FlightEndpoint;
    let config = parse_mesh_config("mesh.yaml", "name: m\nconnections:\n  emea: { url: \"grpc://emea-mesh:50051\", token_env: EMEA_TOKEN }\n").unwrap().value;
    assert_eq!(config.flight_endpoints["emea"], FlightEndpoint { url: "grpc://emea-mesh:50051".into(), token_env: Some("EMEA_TOKEN".into()) });
    assert!(config.connections.is_empty());
    let errors = |text: &str| parse_mesh_config("mesh.yaml", text).map(|_| ()).map_err(|d| render(&d)).unwrap_err();
    expect![[r#"
        [invalid_value] mesh.yaml:3:15: connections.tls.url: Flight SQL over TLS (`grpc+tls://`) is not supported yet (hint: reach the endpoint over a private network with `grpc://HOST:PORT`, or through a TLS-terminating proxy beside this server)
        [invalid_value] mesh.yaml:4:45: connections.pw.password_env: `password_env` is not for a Flight SQL connection (hint: name the variable in `token_env`)
        [invalid_value] mesh.yaml:5:15: connections.bad.url: the URL is not a Flight SQL endpoint (hint: write `grpc://HOST:PORT`, e.g. `grpc://emea-mesh:50051`, with nothing else in it; the token goes in `token_env`)
        [invalid_value] mesh.yaml:6:46: connections.db.token_env: `token_env` is not for a database connection (hint: name the variable in `password_env`)
    "#]]
    .assert_eq(&errors(
        "name: m\nconnections:\n  tls: { url: \"grpc+tls://emea:443\" }\n  pw: { url: \"grpc://emea:1\", password_env: X }\n  bad: { url: \"grpc://emea-mesh\" }\n  db: { url: \"postgres://x@db/y\", token_env: X }\n",
    ));
    let product = |extra: &str| {
        let yaml = format!("name: orders\ndomain: peer\nversion: 1.0.0\n{extra}inputs:\n  - name: remote\n    source: {{ kind: flight_sql, connection: emea, table: sales.orders }}\ncontract:\n  columns:\n    - {{ name: id, type: bigint }}\n");
        parse_product("product.yaml", &yaml).map(|p| p.value).map_err(|d| render(&d))
    };
    let live = product("virtual: true\n").unwrap();
    assert!(matches!(live.remote(), Some((_, meshwork_core::descriptor::Remote::FlightSql(_)))));
    expect![[r#"
        [invalid_value] product.yaml:5:3: inputs[0].source.kind: input `remote` reads a Flight SQL endpoint, which is served live, not copied (hint: add `virtual: true` and keep it the product's only input)
    "#]]
    .assert_eq(&product("").unwrap_err());
}

#[test]
fn database_sources_read_a_table_or_a_query_and_may_load_incrementally() {
    use meshwork_core::descriptor::{DatabaseRead, Incremental, InputSource, LoadMode};
    let product = |source: &str| {
        let yaml = format!("name: customers\ndomain: crm\nversion: 1.0.0\ninputs:\n  - name: src\n    source: {source}\ncontract:\n  primary_key: [id]\n  columns:\n    - {{ name: id, type: bigint }}\n");
        parse_product("product.yaml", &yaml).map(|p| p.value.inputs[0].source.clone()).map_err(|d| render(&d))
    };
    let source = product("{ kind: postgres, connection: crm, table: public.customers, incremental: { column: updated_at } }").unwrap();
    let InputSource::Postgres(db) = source else { panic!("{source:?}") };
    assert_eq!(db.read, DatabaseRead::Table("public.customers".into()));
    assert_eq!(db.incremental, Some(Incremental { column: "updated_at".into(), mode: LoadMode::Merge }));
    let source = product("{ kind: mysql, connection: erp, query: \"SELECT id FROM orders WHERE NOT deleted;\" }").unwrap();
    let InputSource::Mysql(db) = source else { panic!("{source:?}") };
    assert_eq!(db.read, DatabaseRead::Query("SELECT id FROM orders WHERE NOT deleted".into()));
    expect![[r#"
        [invalid_value] product.yaml:6:13: inputs[0].source: a database source reads a `table` or a `query`, not both (hint: keep one of them)
    "#]]
    .assert_eq(&product("{ kind: postgres, connection: crm, table: t, query: \"SELECT 1\" }").unwrap_err());
    expect![[r#"
        [invalid_value] product.yaml:6:80: inputs[0].source.path: `path` applies to file sources, not `postgres` (hint: remove `path`)
        [invalid_value] product.yaml:6:55: inputs[0].source.table: `x; DROP TABLE t` is not a table name (hint: write `table` or `schema.table`; for anything else write a `query`)
    "#]]
    .assert_eq(&product("{ kind: postgres, connection: crm, table: \"x; DROP TABLE t\", path: a.csv }").unwrap_err());
    expect![[r#"
        [invalid_value] product.yaml:6:52: inputs[0].source.incremental: `incremental` applies to database sources (`postgres`, `mysql`), not `csv` (hint: remove `incremental`)
    "#]]
    .assert_eq(&product("{ kind: csv, path: a.csv, incremental: { column: id, mode: upsert } }").unwrap_err());
}

#[test]
fn storage_locations_are_typed_and_never_hold_credentials() {
    use meshwork_core::descriptor::{S3Location, StorageLocation};
    let storage = |text: &str| parse_mesh_config("mesh.yaml", text).map(|c| c.value.storage).map_err(|d| render(&d));
    assert_eq!(storage("name: m\n").unwrap(), StorageLocation::Local { data_dir: ".meshwork/data".into() });
    assert_eq!(storage("name: m\nstorage: { data_dir: /srv/tables }\n").unwrap(), StorageLocation::Local { data_dir: "/srv/tables".into() });
    let s3 = |bucket: &str, prefix: &str| S3Location { bucket: bucket.into(), prefix: prefix.into(), endpoint: None, region: None, allow_http: None };
    assert_eq!(storage("name: m\nstorage: s3://analytics-mesh/prod/tables/\n").unwrap(), StorageLocation::S3(s3("analytics-mesh", "prod/tables")));
    assert_eq!(storage("name: m\nstorage: s3://analytics-mesh\n").unwrap(), StorageLocation::S3(s3("analytics-mesh", "")));
    assert_eq!(
        storage("name: m\nstorage:\n  url: s3://mesh-bucket/p\n  endpoint: http://127.0.0.1:9000/\n  region: eu-central-1\n  allow_http: false\n").unwrap(),
        StorageLocation::S3(S3Location { endpoint: Some("http://127.0.0.1:9000".into()), region: Some("eu-central-1".into()), allow_http: Some(false), ..s3("mesh-bucket", "p") })
    );
    expect![[r#"
        [invalid_value] mesh.yaml:2:10: storage: `Mesh_Bucket` is not a bucket name (hint: bucket names are 3 to 63 lower-case letters, digits, `-` and `.`, e.g. `s3://analytics-mesh/prod`)
    "#]]
    .assert_eq(&storage("name: m\nstorage: s3://Mesh_Bucket/x\n").unwrap_err());
    expect![[r#"
        [invalid_value] mesh.yaml:2:10: storage: `team~a/x` is not a key prefix (hint: use segments of letters, digits, `.`, `_` and `-`, e.g. `s3://analytics-mesh/prod/tables`)
    "#]]
    .assert_eq(&storage("name: m\nstorage: s3://mesh-bucket/team~a/x\n").unwrap_err());
    expect![[r#"
        [invalid_value] mesh.yaml:4:3: storage.secret_access_key: storage credentials must not be written in `mesh.yaml` (hint: remove the key and set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment of every `meshwork` process)
    "#]]
    .assert_eq(&storage("name: m\nstorage:\n  url: s3://mesh-bucket/x\n  secret_access_key: hunter2\n").unwrap_err());
    // Every problem of the block at once, the secret never echoed.
    let both = storage("name: m\nstorage:\n  url: s3://My_Bucket/x\n  secret_access_key: hunter2\n").unwrap_err();
    assert!(both.contains("`My_Bucket` is not a bucket name") && both.contains("storage credentials must not be written") && !both.contains("hunter2"), "{both}");
    expect![[r#"
        [invalid_value] mesh.yaml:4:13: storage.endpoint: the endpoint has a query string, which would put settings or credentials in `mesh.yaml` (hint: write only the server's address)
    "#]]
    .assert_eq(&storage("name: m\nstorage:\n  url: s3://mesh-bucket/x\n  endpoint: https://s3.example.com/?X-Amz-Security-Token=abc\n").unwrap_err());
}

#[test]
fn a_sunset_is_a_calendar_date() {
    let deprecated = |date: &str| format!("{ORDERS}status: deprecated\nsunset: {date}\n");
    let product = parse_product(FILE, &deprecated("2027-06-30")).unwrap().value;
    assert_eq!(product.sunset, chrono::NaiveDate::from_ymd_opt(2027, 6, 30));
    check_product(
        &deprecated("2025-13-45"),
        expect![[r#"
            [invalid_value] domains/sales/products/orders/product.yaml:15:9: sunset: `2025-13-45` is not a date (hint: write a calendar date as YYYY-MM-DD, e.g. `2027-06-30`)
        "#]],
    );
    check_product(
        &deprecated("2027-6-30"),
        expect![[r#"
            [invalid_value] domains/sales/products/orders/product.yaml:15:9: sunset: `2027-6-30` is not a date (hint: write a calendar date as YYYY-MM-DD, e.g. `2027-06-30`)
        "#]],
    );
}

/// The classification table of `docs/evolution.md`: one case per change kind, from the
/// published descriptor to the next, asserted exactly.
#[test]
fn every_change_kind_is_classified_breaking_or_compatible() {
    use meshwork_core::contract_diff::diff;
    const BASE: &str = "\
name: orders
domain: sales
version: 1.0.0
title: Orders
description: One row per order.
owner: group:sales
tags: [orders]
inputs:
  - { name: raw, source: { kind: csv, path: data/orders.csv } }
contract:
  primary_key: [order_id]
  columns:
    - { name: order_id, type: int, nullable: false }
    - { name: amount, type: \"decimal(10,2)\", description: Total }
    - { name: email, type: string, classification: pii }
    - { name: status, type: string }
    - { name: note, type: string }
quality:
  - { rule: accepted_values, column: status, values: [open, done] }
  - { rule: range, column: amount, min: 0, max: 1000 }
  - { rule: row_count, min: 10 }
  - { rule: not_null, column: amount, severity: error }
slo: { freshness: 24h, completeness: { column: email, min_ratio: 0.9 } }
access:
  readers: [domain:sales, group:analysts]
  row_filter: \"status = 'done'\"
  masks: { email: hash }
  unmasked_for: [group:support]
";
    let parse = |text: &str| meshwork_core::parse::parse_product("product.yaml", text).unwrap_or_else(|d| panic!("{d:?}\n{text}")).value;
    let base = parse(BASE);
    let cases: &[(&str, &str, &str)] = &[
        ("    - { name: note, type: string }\n", "", "column_removed breaking"),
        ("    - { name: status, type: string }\n", "    - { name: status, type: string }\n    - { name: channel, type: string }\n", "column_added compatible"),
        ("    - { name: status, type: string }\n", "    - { name: status, type: string }\n    - { name: channel, type: string, nullable: false }\n", "column_added compatible"),
        ("name: order_id, type: int,", "name: order_id, type: bigint,", "type_widened compatible"),
        ("type: \"decimal(10,2)\"", "type: \"decimal(12,2)\"", "type_widened compatible"),
        ("name: order_id, type: int,", "name: order_id, type: double,", "type_widened compatible"),
        ("name: order_id, type: int,", "name: order_id, type: smallint,", "type_changed breaking"),
        ("type: \"decimal(10,2)\"", "type: \"decimal(10,3)\"", "type_changed breaking"),
        ("name: order_id, type: int,", "name: order_id, type: string,", "type_changed breaking"),
        ("name: status, type: string }", "name: status, type: string, nullable: false }", "became_non_nullable breaking"),
        ("name: order_id, type: int, nullable: false }", "name: order_id, type: int }", "became_nullable breaking"),
        ("primary_key: [order_id]", "primary_key: [order_id, status]", "primary_key_changed breaking"),
        ("  - { rule: row_count, min: 10 }\n", "", "quality_rule_removed breaking"),
        ("  - { rule: row_count, min: 10 }\n", "  - { rule: row_count, min: 10 }\n  - { rule: unique, column: order_id }\n", "quality_rule_added compatible"),
        ("values: [open, done]", "values: [open, done, void]", "quality_rule_weakened breaking"),
        ("values: [open, done]", "values: [done]", "quality_rule_strengthened compatible"),
        ("min: 0, max: 1000", "min: -5, max: 1000", "quality_rule_weakened breaking"),
        ("min: 0, max: 1000", "min: 0, max: 500", "quality_rule_strengthened compatible"),
        ("rule: row_count, min: 10", "rule: row_count, min: 5", "quality_rule_weakened breaking"),
        ("column: amount, severity: error", "column: amount, severity: warn", "quality_rule_weakened breaking"),
        ("slo: { freshness: 24h,", "slo: { freshness: 48h,", "slo_weakened breaking"),
        ("slo: { freshness: 24h,", "slo: { freshness: 6h,", "slo_strengthened compatible"),
        ("min_ratio: 0.9", "min_ratio: 0.95", "slo_strengthened compatible"),
        ("slo: { freshness: 24h, completeness: { column: email, min_ratio: 0.9 } }", "slo: { completeness: { column: email, min_ratio: 0.9 } }", "slo_weakened breaking"),
        ("readers: [domain:sales, group:analysts]", "readers: [domain:sales]", "reader_removed breaking"),
        ("readers: [domain:sales, group:analysts]", "readers: [domain:sales, group:analysts, group:finance]", "reader_added compatible"),
        ("row_filter: \"status = 'done'\"", "row_filter: \"status = 'done' AND amount > 0\"", "row_filter_changed breaking"),
        ("  row_filter: \"status = 'done'\"\n", "", "row_filter_removed compatible"),
        ("masks: { email: hash }", "masks: { email: hash, status: redact }", "mask_added breaking"),
        ("masks: { email: hash }", "masks: { email: \"null\" }", "mask_added breaking"),
        ("  masks: { email: hash }\n", "", "mask_removed compatible"),
        ("unmasked_for: [group:support]", "unmasked_for: []", "unmasked_for_removed breaking"),
        ("unmasked_for: [group:support]", "unmasked_for: [group:support, group:audit]", "unmasked_for_added compatible"),
        ("unmasked_for: [group:support]\n", "unmasked_for: [group:support]\n  aggregate_only: { readers: [group:partners], min_group_size: 25 }\n", "aggregate_only_changed compatible"),
        ("description: One row per order.", "description: One row per order, refunds included.", "documentation compatible"),
        ("tags: [orders]", "tags: [orders, sales]", "documentation compatible"),
        ("description: Total }", "description: Order total in EUR }", "documentation compatible"),
        ("tags: [orders]\n", "tags: [orders]\nstatus: deprecated\nsunset: 2027-03-01\nsuccessor: sales.orders_v2\n", "deprecated compatible"),
    ];
    let mut table = String::new();
    for (from, to, expected) in cases {
        assert!(BASE.contains(from), "case `{from}` does not apply");
        let changes = diff(&base, &parse(&BASE.replacen(from, to, 1)));
        let got: Vec<String> = changes.iter().map(|c| format!("{} {}", c.kind, if c.breaking { "breaking" } else { "compatible" })).collect();
        assert_eq!(got, [expected.to_string()], "`{from}` -> `{to}`: {changes:#?}");
        table.push_str(&format!("{}\n", changes[0].detail));
    }
    assert!(diff(&base, &base).is_empty(), "no change, no diff");
    // The sentences `plan` shows and policies quote.
    expect![[r#"
        column `note` was removed (or renamed)
        column `channel` (string) was added
        column `channel` (string, not null) was added
        column `order_id` widened from int to bigint
        column `amount` widened from decimal(10,2) to decimal(12,2)
        column `order_id` widened from int to double
        column `order_id` changed type from int to smallint
        column `amount` changed type from decimal(10,2) to decimal(10,3)
        column `order_id` changed type from int to string
        column `status` became non-nullable
        column `order_id` became nullable
        primary key changed from [order_id] to [order_id, status]
        quality rule `row_count_3` (row_count) was removed
        quality rule `unique_order_id` (unique) was added
        quality rule `accepted_values_status`: accepted values let more data pass
        quality rule `accepted_values_status`: accepted values let less data pass
        quality rule `range_amount`: range let more data pass
        quality rule `range_amount`: range let less data pass
        quality rule `row_count_3`: row count bounds let more data pass
        quality rule `not_null_amount` only warns now (a failure no longer blocks publishing)
        freshness objective changed from 1d to 2d
        freshness objective changed from 1d to 6h
        completeness objective changed from 0.9 to 0.95
        freshness objective removed
        `group:analysts` may no longer read the product
        `group:finance` may now read the product
        row filter changed from `status = 'done'` to `status = 'done' AND amount > 0`
        row filter `status = 'done'` was removed
        column `status` is masked with redact
        column `email`: mask changed from hash to null
        column `email` is no longer masked (was hash)
        `group:support` now sees masked values
        `group:audit` now sees unmasked values
        aggregate-only access changed from none to group:partners in groups of at least 25 rows
        description changed from `One row per order.` to `One row per order, refunds included.`
        tags changed from [orders] to [orders, sales]
        column `amount`: description changed
        the product is deprecated (sunset 2027-03-01, successor `sales.orders_v2`)
    "#]].assert_eq(&table);
}

#[test]
fn a_cluster_names_its_scheduler_and_which_queries_run_there() {
    use meshwork_core::descriptor::{ClusterConfig, ClusterRun};
    let parsed = |text: &str| parse_mesh_config("mesh.yaml", text).map(|p| p.value.cluster).map_err(|d| render(&d));
    assert_eq!(parsed("name: m\n").unwrap(), None);
    assert_eq!(
        parsed("name: m\ncluster: { scheduler: \"df://10.0.0.5:50050\" }\n").unwrap(),
        Some(ClusterConfig { scheduler: "10.0.0.5:50050".into(), run: ClusterRun::Large { min_scan_bytes: ClusterRun::DEFAULT_MIN_SCAN_BYTES } })
    );
    assert_eq!(
        parsed("name: m\ncluster: { scheduler: \"ballista:50050\", run: large, min_scan: 256MiB }\n").unwrap(),
        Some(ClusterConfig { scheduler: "ballista:50050".into(), run: ClusterRun::Large { min_scan_bytes: 256 << 20 } })
    );
    assert_eq!(parsed("name: m\ncluster: { scheduler: \"127.0.0.1:50050\", run: all }\n").unwrap(), Some(ClusterConfig { scheduler: "127.0.0.1:50050".into(), run: ClusterRun::All }));
    expect![[r#"
        [invalid_value] mesh.yaml:2:23: cluster.scheduler: `ballista` names no port (hint: write the scheduler's host and gRPC port, e.g. `127.0.0.1:50050`)
        [invalid_value] mesh.yaml:2:38: cluster.run: unknown value `everything`, expected one of `all` or `large`
    "#]]
    .assert_eq(&parsed("name: m\ncluster: { scheduler: ballista, run: everything }\n").unwrap_err());
    expect![[r#"
        [invalid_value] mesh.yaml:2:50: cluster.min_scan: `min_scan` applies to `run: large` only (hint: remove it, or write `run: large` to send only queries scanning that much)
    "#]]
    .assert_eq(&parsed("name: m\ncluster: { scheduler: \"h:1\", run: all, min_scan: 1GiB }\n").unwrap_err());
    expect![[r#"
        [missing_field] mesh.yaml:2:10: cluster.scheduler: missing required field `scheduler` (hint: add `scheduler: 127.0.0.1:50050`)
    "#]]
    .assert_eq(&parsed("name: m\ncluster: { run: all }\n").unwrap_err());
}

#[test]
fn aggregate_only_readers_parse_with_privacy_and_refuse_what_cannot_hold() {
    use meshwork_core::aggregate::{AggregateOnly, NoiseMechanism};
    let with = |block: &str| format!("{ORDERS}    - {{ name: email, type: string, classification: pii }}\naccess:\n  readers: [domain:sales]\n  aggregate_only:\n{block}");
    let parsed = parse_product(FILE, &with("    readers: [group:partners]\n    columns_hidden: [email]\n    privacy: { epsilon: 0.5, budget: 5, bounds: { amount: [0, 1000] } }\n")).unwrap().value;
    let rule: AggregateOnly = parsed.access.unwrap().aggregate_only.unwrap();
    assert_eq!((rule.readers, rule.min_group_size, rule.columns_hidden), (vec!["group:partners".to_owned()], AggregateOnly::DEFAULT_MIN_GROUP_SIZE, vec!["email".to_owned()]));
    let privacy = rule.privacy.unwrap();
    assert_eq!((privacy.mechanism, privacy.epsilon.get(), privacy.budget.get(), privacy.window.seconds), (NoiseMechanism::Laplace, 0.5, 5.0, 86_400));
    assert_eq!(privacy.bounds["amount"].sensitivity(), 1000.0);
    check_product(
        &with("    readers: []\n    min_group_size: 1\n    columns_hidden: [emial]\n"),
        expect![[r#"
            [missing_field] domains/sales/products/orders/product.yaml:18:12: access.aggregate_only.readers: `aggregate_only` names no readers (hint: add `readers: [group:partners]`, the principals that may query the product only in aggregate)
            [invalid_value] domains/sales/products/orders/product.yaml:19:21: access.aggregate_only.min_group_size: `1` is not a group size of at least 2 (hint: a group of one row is that row: write e.g. `min_group_size: 25`)
            [missing_reference] domains/sales/products/orders/product.yaml:20:22: access.aggregate_only.columns_hidden[0]: column `emial` is not in the contract (hint: did you mean `email`?)
        "#]],
    );
    check_product(
        &with("    readers: [\"*\"]\n    columns_hidden: [email]\n    privacy: { mechanism: gaussian, epsilon: 2, budget: 1, window: 0s, bounds: { amount: [10, 1], email: [0, 1], order_id: [0, x] } }\n"),
        expect![[r#"
            [invalid_value] domains/sales/products/orders/product.yaml:20:68: access.aggregate_only.privacy.window: a budget window of no time renews at once (hint: write e.g. `window: 1d`)
            [invalid_value] domains/sales/products/orders/product.yaml:20:57: access.aggregate_only.privacy.budget: the budget 1 is smaller than one answer's epsilon 2: no query could be answered (hint: raise `budget` to at least 2)
            [missing_field] domains/sales/products/orders/product.yaml:20:14: access.aggregate_only.privacy.delta: gaussian noise needs `delta` (hint: add `delta: 1e-6`, or use `mechanism: laplace`)
            [invalid_value] domains/sales/products/orders/product.yaml:20:46: access.aggregate_only.privacy.epsilon: gaussian noise is calibrated for ε ≤ 1 per answer, found 2 (hint: lower `epsilon`, or use `mechanism: laplace`)
            [invalid_value] domains/sales/products/orders/product.yaml:20:90: access.aggregate_only.privacy.bounds.amount: the bounds of `amount` must be two numbers, the smaller first (hint: write e.g. `amount: [0, 10000]`: each row's value is clamped into them)
            [invalid_value] domains/sales/products/orders/product.yaml:20:99: access.aggregate_only.privacy.bounds.email: `email` is not a numeric column; only numbers are summed (hint: remove it from `bounds`)
            [invalid_value] domains/sales/products/orders/product.yaml:20:124: access.aggregate_only.privacy.bounds.order_id: the bounds of `order_id` must be two numbers, the smaller first (hint: write e.g. `order_id: [0, 10000]`: each row's value is clamped into them)
        "#]],
    );
}
