//! `openlineage:` in `mesh.yaml` and the pure parts of the OpenLineage model: run ids and the
//! mapping of Meshwork's derivations to OpenLineage transformations.

use expect_test::expect;
use meshwork_core::descriptor::{LineageSink, LineageTarget};
use meshwork_core::lineage::Derivation;
use meshwork_core::openlineage::{RunId, transformation};
use meshwork_core::parse::parse_mesh_config;

use super::render;

#[test]
fn openlineage_sinks_parse_with_the_mesh_name_as_namespace_and_marquez_endpoint_by_default() {
    let text = "name: acme-mesh\nopenlineage:\n  sinks:\n    - { name: archive, kind: file, path: .meshwork/lineage.ndjson }\n    - { name: marquez, kind: http, url: \"http://marquez:5000/\", api_key_env: MARQUEZ_API_KEY }\n    - { name: custom, kind: http, url: \"https://lineage.example.com\", endpoint: /v2/events }\n";
    let config = parse_mesh_config("mesh.yaml", text).unwrap_or_else(|d| panic!("{}", render(&d))).value.openlineage.unwrap();
    assert_eq!(config.namespace, "acme-mesh");
    assert_eq!(
        config.sinks,
        [
            LineageSink { name: "archive".into(), target: LineageTarget::File { path: ".meshwork/lineage.ndjson".into() } },
            LineageSink {
                name: "marquez".into(),
                target: LineageTarget::Http { url: "http://marquez:5000/api/v1/lineage".into(), api_key_env: Some("MARQUEZ_API_KEY".into()) }
            },
            LineageSink { name: "custom".into(), target: LineageTarget::Http { url: "https://lineage.example.com/v2/events".into(), api_key_env: None } },
        ]
    );
    let named = parse_mesh_config("mesh.yaml", "name: m\nopenlineage:\n  namespace: prod\n  sinks: [{ name: a, kind: file, path: a.ndjson }]\n").unwrap().value;
    assert_eq!(named.openlineage.unwrap().namespace, "prod");
    assert_eq!(parse_mesh_config("mesh.yaml", "name: m\n").unwrap().value.openlineage, None);
}

#[test]
fn openlineage_sink_mistakes_are_reported_with_a_fix() {
    let bad = "name: m\nopenlineage:\n  sinks:\n    - { name: a, kind: kafka }\n    - { name: b, kind: http, url: \"https://user:pw@marquez\", path: x.ndjson }\n    - { name: c, kind: file, url: \"http://x\" }\n    - { name: d, kind: http, url: \"http://x\", api_key_env: my-key }\n    - { name: d, kind: file, path: d.ndjson }\n";
    let err = parse_mesh_config("mesh.yaml", bad).unwrap_err();
    expect![[r#"
        [invalid_value] mesh.yaml:4:24: openlineage.sinks[0].kind: unknown value `kafka`, expected one of `file` or `http`
        [invalid_value] mesh.yaml:5:68: openlineage.sinks[1].path: `path` applies to `file` sinks only (hint: remove it, or write `kind: file`)
        [invalid_value] mesh.yaml:5:35: openlineage.sinks[1].url: the URL holds credentials, which must not be written in `mesh.yaml` (hint: write only the address; put an API key in an environment variable named by `api_key_env`)
        [invalid_value] mesh.yaml:6:35: openlineage.sinks[2].url: `url` applies to `http` sinks only (hint: remove it, or write `kind: http`)
        [missing_field] mesh.yaml:6:7: openlineage.sinks[2].path: missing required field `path` (hint: add `path: .meshwork/openlineage.ndjson`)
        [invalid_value] mesh.yaml:7:60: openlineage.sinks[3].api_key_env: `my-key` is not an environment variable name (hint: use upper-case letters, digits and `_`, e.g. `MARQUEZ_API_KEY`)
        [invalid_value] mesh.yaml:8:7: openlineage.sinks[4]: sink `d` is declared twice (hint: give each sink its own name)
    "#]]
    .assert_eq(&render(&err));
    let empty = parse_mesh_config("mesh.yaml", "name: m\nopenlineage:\n  sinks: []\n").unwrap_err();
    expect![[r#"
        [invalid_value] mesh.yaml:3:10: openlineage.sinks: `openlineage` names no sink (hint: add one, e.g. `sinks: [{ name: marquez, kind: http, url: "http://localhost:5000" }]`, or remove `openlineage`)
    "#]]
    .assert_eq(&render(&empty));
}

#[test]
fn run_ids_are_uuid_v7_with_the_time_first() {
    assert_eq!(RunId::v7(0x0190_1234_5678, u128::MAX).as_str(), "01901234-5678-7fff-bfff-ffffffffffff");
    assert_eq!(RunId::v7(0x0190_1234_5678, 0).as_str(), "01901234-5678-7000-8000-000000000000");
    assert!(RunId::v7(1, u128::MAX) < RunId::v7(2, 0), "ids sort by start time");
}

#[test]
fn derivations_map_to_openlineage_transformations() {
    let rows: Vec<String> = [
        (Derivation::Copied, true),
        (Derivation::Computed, true),
        (Derivation::Computed, false),
        (Derivation::Aggregated, true),
        (Derivation::Aggregated, false),
        (Derivation::Condition, false),
    ]
    .into_iter()
    .map(|(derivation, carries)| {
        let t = transformation(derivation, carries);
        format!("{} carries={carries}: {} {} masking={}", derivation.as_str(), t.kind, t.subtype.as_deref().unwrap_or("-"), t.masking)
    })
    .collect();
    expect![[r#"
        copied carries=true: DIRECT IDENTITY masking=false
        computed carries=true: DIRECT TRANSFORMATION masking=false
        computed carries=false: DIRECT TRANSFORMATION masking=true
        aggregated carries=true: DIRECT AGGREGATION masking=false
        aggregated carries=false: DIRECT AGGREGATION masking=true
        condition carries=false: INDIRECT - masking=false"#]]
    .assert_eq(&rows.join("\n"));
}
