//! A product's contract as a Bitol ODCS v3.1.0 document (`meshwork export --format odcs`).

use crate::descriptor::*;
use crate::standards::quality::{self, Level};
use crate::standards::render;
use crate::standards::types::to_odcs;
use crate::standards::yaml::Yaml;
use crate::standards::{Serving, contract_id};

/// The ODCS version written.
pub const API_VERSION: &str = "v3.1.0";

/// Custom properties carrying `product.yaml` sections ODCS has no field for.
pub const INPUTS: &str = "meshworkInputs";
/// The transform: `{ file, sql }`.
pub const TRANSFORM: &str = "meshworkTransform";
/// `refresh:`.
pub const REFRESH: &str = "meshworkRefresh";
/// Row filter, masks and discoverability (readers and `unmasked_for` are ODCS roles).
pub const ACCESS: &str = "meshworkAccess";
/// SLO fields ODCS's SLA properties do not hold.
pub const SLO: &str = "meshworkSlo";
/// The successor product.
pub const SUCCESSOR: &str = "meshworkSuccessor";
/// Output ports, when not all are on.
pub const OUTPUT_PORTS: &str = "meshworkOutputPorts";

/// ODCS role access of readers, and of principals that see unmasked values.
pub const ROLE_READ: &str = "read";
/// See [`ROLE_READ`].
pub const ROLE_UNMASKED: &str = "unmasked";

/// The contract of `d` as served by this mesh.
pub fn export(d: &ProductDescriptor, serving: &Serving) -> Yaml {
    let id = d.id();
    let mut doc = Yaml::map()
        .with("apiVersion", API_VERSION)
        .with("kind", "DataContract")
        .with("id", contract_id(&id))
        .with("name", d.name.as_str())
        .with("version", &d.version)
        .with("status", d.status.as_str())
        .with("domain", d.domain.as_str());
    if !d.tags.is_empty() {
        doc.set("tags", &d.tags);
    }
    if let Some(description) = &d.description {
        doc.set("description", Yaml::map().with("purpose", description));
    }
    doc.set("schema", vec![schema_object(d)]);
    if let Some(owner) = &d.owner {
        doc.set("team", Yaml::map().with("name", d.domain.as_str()).with("members", vec![Yaml::map().with("username", owner).with("role", "owner")]));
    }
    if let Some(access) = &d.access {
        let role = |who: &String, access: &str| Yaml::map().with("role", who).with("access", access);
        let roles: Vec<Yaml> = access.readers.iter().map(|r| role(r, ROLE_READ)).chain(access.unmasked_for.iter().map(|r| role(r, ROLE_UNMASKED))).collect();
        doc = doc.with_seq("roles", roles);
    }
    doc = doc.with_seq("slaProperties", sla(d));
    doc = doc.with_seq("servers", servers(d, serving));
    doc.with_seq("customProperties", customs(d))
}

fn schema_object(d: &ProductDescriptor) -> Yaml {
    let mut column_checks: Vec<(String, Yaml)> = Vec::new();
    let mut table_checks = Vec::new();
    for (i, rule) in d.quality.iter().enumerate() {
        match quality::export(rule, i) {
            (Level::Column(c), check) => column_checks.push((c, check)),
            (Level::Table, check) => table_checks.push(check),
        }
    }
    let properties = d
        .contract
        .columns
        .iter()
        .map(|c| {
            let (logical, options, physical) = to_odcs(c.data_type);
            let mut p = Yaml::map().with("name", &c.name).with("logicalType", logical).with_opt("logicalTypeOptions", options).with("physicalType", physical);
            if !c.nullable {
                p.set("required", true);
            }
            if let Some(at) = d.contract.primary_key.iter().position(|k| k == &c.name) {
                p.set("primaryKey", true);
                p.set("primaryKeyPosition", (at + 1) as i64);
            }
            p = p.with_opt("description", c.description.as_ref()).with_opt("classification", c.classification.map(|k| k.as_str()));
            let checks: Vec<Yaml> = column_checks.iter().filter(|(col, _)| col == &c.name).map(|(_, q)| q.clone()).collect();
            p.with_seq("quality", checks)
        })
        .collect();
    Yaml::map()
        .with("name", d.name.as_str())
        .with("physicalName", d.name.as_str())
        .with("physicalType", "table")
        .with_opt("businessName", d.title.as_ref())
        .with("logicalType", "object")
        .with("properties", Yaml::Seq(properties))
        .with_seq("quality", table_checks)
}

/// A duration as an SLA value and unit (`d`, `h`, `m` or `s`).
fn sla_duration(seconds: u64) -> (u64, &'static str) {
    for (unit, factor) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds > 0 && seconds % factor == 0 {
            return (seconds / factor, unit);
        }
    }
    (seconds, "s")
}

fn sla(d: &ProductDescriptor) -> Vec<Yaml> {
    let mut out = Vec::new();
    if let Some(slo) = &d.slo {
        if let Some(max_age) = slo.freshness {
            let (value, unit) = sla_duration(max_age.seconds);
            let element = slo.freshness_column.as_ref().map(|c| format!("{}.{c}", d.name));
            out.push(Yaml::map().with("property", "latency").with("value", value).with("unit", unit).with_opt("element", element));
        }
        if let Some(availability) = slo.availability {
            out.push(Yaml::map().with("property", "availability").with("value", availability).with("unit", "percent"));
        }
        if let Some(Completeness { measure: CompletenessMeasure::NonNull { column }, min_ratio }) = &slo.completeness {
            out.push(Yaml::map().with("property", "completeness").with("value", *min_ratio).with("element", format!("{}.{column}", d.name)));
        }
    }
    if let Some(sunset) = d.sunset {
        out.push(Yaml::map().with("property", "endOfLife").with("value", sunset.format("%Y-%m-%d").to_string()));
    }
    out
}

fn servers(d: &ProductDescriptor, s: &Serving) -> Vec<Yaml> {
    let mut out = Vec::new();
    let ports = &d.output_ports;
    if ports.postgres {
        out.push(
            Yaml::map()
                .with("server", "meshwork-postgres")
                .with("type", "postgres")
                .with("description", "Meshwork's PostgreSQL wire port: an API token is the password")
                .with("host", &s.host)
                .with("port", i64::from(s.postgres_port))
                .with("database", &s.database)
                .with("schema", d.domain.as_str()),
        );
    }
    if ports.flight_sql {
        out.push(
            Yaml::map()
                .with("server", "meshwork-flight-sql")
                .with("type", "custom")
                .with("description", "Meshwork's Arrow Flight SQL port (bearer token)")
                .with("host", &s.host)
                .with("port", i64::from(s.flight_sql_port))
                .with("catalog", &s.database)
                .with("schema", d.domain.as_str()),
        );
    }
    if ports.rest {
        out.push(
            Yaml::map()
                .with("server", "meshwork-http")
                .with("type", "api")
                .with("description", "Meshwork's HTTP API: the product's detail; POST SQL to /api/v1/query")
                .with("location", format!("http://{}:{}/api/v1/products/{}", s.host, s.http_port, d.id())),
        );
    }
    if ports.file_export
        && let Some(uri) = &s.table_uri
    {
        let server = Yaml::map().with("server", "meshwork-delta").with("description", "The product's Delta table (time travel by version)");
        out.push(if uri.starts_with("s3://") {
            server.with("type", "s3").with("location", uri).with("format", "delta")
        } else {
            server.with("type", "local").with("path", uri.strip_prefix("file://").unwrap_or(uri)).with("format", "delta")
        });
    }
    out
}

fn custom(name: &str, value: Yaml) -> Yaml {
    Yaml::map().with("property", name).with("value", value)
}

/// The `transform` custom value: `{ file, sql }`.
pub fn transform_value(t: &Transform) -> Yaml {
    Yaml::map().with_opt("file", t.file.as_ref()).with("sql", &t.sql)
}

fn customs(d: &ProductDescriptor) -> Vec<Yaml> {
    let mut out = vec![custom(INPUTS, render::inputs(&d.inputs))];
    if let Some(t) = &d.transform {
        out.push(custom(TRANSFORM, transform_value(t)));
    }
    if let Some(r) = render::refresh(&d.refresh) {
        out.push(custom(REFRESH, r));
    }
    if let Some(a) = &d.access {
        let mut value = Yaml::map().with_opt("row_filter", a.row_filter.as_ref());
        if !a.masks.is_empty() {
            value.set("masks", render::masks(a));
        }
        if a.discoverable {
            value.set("discoverable", true);
        }
        out.push(custom(ACCESS, value));
    }
    if let Some(slo) = &d.slo {
        let mut rest = Yaml::map();
        if let Some(c @ Completeness { measure: CompletenessMeasure::UpstreamRows { .. }, .. }) = &slo.completeness {
            rest.set("completeness", render::completeness(c));
        }
        if slo.target != DEFAULT_SLO_TARGET {
            rest.set("target", slo.target);
        }
        if slo.window != DEFAULT_SLO_WINDOW {
            rest.set("window", render::duration(slo.window));
        }
        let in_sla = slo.freshness.is_some() || slo.availability.is_some() || matches!(&slo.completeness, Some(Completeness { measure: CompletenessMeasure::NonNull { .. }, .. }));
        if rest != Yaml::map() || !in_sla {
            out.push(custom(SLO, rest));
        }
    }
    if let Some(successor) = &d.successor {
        out.push(custom(SUCCESSOR, Yaml::from(successor.to_string())));
    }
    if let Some(ports) = render::output_ports(&d.output_ports) {
        out.push(custom(OUTPUT_PORTS, ports));
    }
    out
}
