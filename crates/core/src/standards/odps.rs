//! A product as a Bitol ODPS v1.0.0 document (`meshwork export --format odps`): its input
//! ports referencing the contracts (or files) it reads, one output port per Meshwork output
//! port, each referencing the product's ODCS contract; and such documents read back.

use std::collections::BTreeMap;

use crate::descriptor::*;
use crate::id::ProductId;
use crate::standards::fields::Fields;
use crate::standards::odcs::{REFRESH, TRANSFORM, transform_value};
use crate::standards::yaml::Yaml;
use crate::standards::{Unmapped, contract_id, render};

/// The ODPS version written.
pub const API_VERSION: &str = "v1.0.0";
/// Custom property of a file input port: its `source:` in `product.yaml` terms.
pub const SOURCE: &str = "meshworkSource";
/// The version an input port names when its upstream has no published version to name.
pub const UNVERSIONED: &str = "current";

/// Meshwork's output ports, as ODPS output port types, with their descriptions.
const PORTS: &[(&str, &str)] = &[
    ("sql", "SQL through `meshwork query` and the catalog"),
    ("flight_sql", "Arrow Flight SQL"),
    ("postgres", "PostgreSQL wire protocol"),
    ("rest", "HTTP REST API"),
    ("file_export", "The Delta table, for direct readers allowed by policy"),
];

fn port_on(ports: &OutputPorts, name: &str) -> bool {
    match name {
        "sql" => ports.sql,
        "flight_sql" => ports.flight_sql,
        "postgres" => ports.postgres,
        "rest" => ports.rest,
        _ => ports.file_export,
    }
}

/// The product document of `d`; `versions` gives the published version of each upstream.
pub fn export(d: &ProductDescriptor, versions: &BTreeMap<ProductId, String>) -> Yaml {
    let id = d.id();
    let mut doc = Yaml::map()
        .with("apiVersion", API_VERSION)
        .with("kind", "DataProduct")
        .with("id", contract_id(&id))
        .with("name", d.name.as_str())
        .with("version", &d.version)
        .with("status", d.status.as_str())
        .with("domain", d.domain.as_str());
    if let Some(description) = &d.description {
        doc.set("description", Yaml::map().with("purpose", description));
    }
    if !d.tags.is_empty() {
        doc.set("tags", &d.tags);
    }
    let version_of = |p: &ProductId| versions.get(p).cloned().unwrap_or_else(|| UNVERSIONED.to_owned());
    let inputs: Vec<Yaml> = d
        .inputs
        .iter()
        .map(|port| match &port.source {
            InputSource::Product { product } => Yaml::map().with("name", &port.name).with("version", version_of(product)).with("contractId", contract_id(product)),
            source => Yaml::map()
                .with("name", &port.name)
                .with("version", UNVERSIONED)
                .with("contractId", match source.database() {
                    Some((kind, db)) => match &db.read {
                        DatabaseRead::Table(table) => format!("{kind}:{}/{table}", db.connection),
                        DatabaseRead::Query(_) => format!("{kind}:{}", db.connection),
                    },
                    None => format!("file:{}", source.path().unwrap_or_default()),
                })
                .with("customProperties", vec![Yaml::map().with("property", SOURCE).with("value", render::file_source(source))]),
        })
        .collect();
    doc = doc.with_seq("inputPorts", inputs);
    let input_contracts: Vec<Yaml> = d.upstream().map(|p| Yaml::map().with("id", contract_id(p)).with("version", version_of(p))).collect();
    let outputs: Vec<Yaml> = PORTS
        .iter()
        .filter(|(name, _)| port_on(&d.output_ports, name))
        .map(|(name, description)| {
            Yaml::map()
                .with("name", *name)
                .with("description", *description)
                .with("type", *name)
                .with("version", &d.version)
                .with("contractId", contract_id(&id))
                .with_seq("inputContracts", input_contracts.clone())
        })
        .collect();
    doc = doc.with_seq("outputPorts", outputs);
    if let Some(owner) = &d.owner {
        doc.set("team", Yaml::map().with("name", d.domain.as_str()).with("members", vec![Yaml::map().with("username", owner).with("role", "owner")]));
    }
    let mut customs = Vec::new();
    if let Some(t) = &d.transform {
        customs.push(Yaml::map().with("property", TRANSFORM).with("value", transform_value(t)));
    }
    if let Some(r) = render::refresh(&d.refresh) {
        customs.push(Yaml::map().with("property", REFRESH).with("value", r));
    }
    doc.with_seq("customProperties", customs)
}

/// What an ODPS document adds to the product its contract describes.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductPorts {
    /// The contract the output ports reference (`domain.product` for Meshwork's).
    pub contract_id: Option<String>,
    /// `inputs:` in `product.yaml` terms.
    pub inputs: Vec<Yaml>,
    /// `transform:` custom value (`{ file, sql }`), if any.
    pub transform: Option<Yaml>,
    /// `refresh:`, if any.
    pub refresh: Option<Yaml>,
    /// `output_ports:`, when they are Meshwork's and not all on.
    pub output_ports: Option<Yaml>,
}

/// Reads an ODPS document, reporting what it does not map.
pub fn import(doc: &Yaml, report: &mut Vec<Unmapped>) -> ProductPorts {
    let mut f = Fields::new(doc, "");
    for identity in ["apiVersion", "kind", "id", "name", "version", "status", "domain", "description", "tags", "team"] {
        // The contract is the source of a product's identity; the product document repeats it.
        let _ = f.take(identity);
    }
    let mut inputs = Vec::new();
    for (path, port) in f.items("inputPorts") {
        let mut p = Fields::new(port, &path);
        let name = p.text("name").unwrap_or_default();
        let _ = p.take("version");
        let contract = p.text("contractId").unwrap_or_default();
        let name = if crate::id::check_name(&name).is_ok() { name } else { crate::parse::snake_case(&name) };
        if let Some(source) = p.custom(SOURCE) {
            inputs.push(Yaml::map().with("name", name).with("source", source.clone()));
        } else if let Ok(product) = contract.parse::<ProductId>() {
            inputs.push(Yaml::map().with("name", name).with("product", product.to_string()));
        } else {
            p.take_all();
            report.push(Unmapped::new(&path, format!("input contract `{contract}` is not a Meshwork product (`domain.product`); add the input by hand")));
        }
        p.finish(report);
    }
    let mut contract_id = None;
    let mut ports = OutputPorts { sql: false, flight_sql: false, postgres: false, rest: false, file_export: false };
    let mut ours = false;
    for (path, port) in f.items("outputPorts") {
        let mut p = Fields::new(port, &path);
        let kind = p.text("type").unwrap_or_default();
        let _ = (p.take("name"), p.take("description"), p.take("version"), p.take("inputContracts"));
        if let Some(id) = p.text("contractId") {
            contract_id.get_or_insert(id);
        }
        match PORTS.iter().find(|(name, _)| *name == kind) {
            Some((name, _)) => {
                ours = true;
                match *name {
                    "sql" => ports.sql = true,
                    "flight_sql" => ports.flight_sql = true,
                    "postgres" => ports.postgres = true,
                    "rest" => ports.rest = true,
                    _ => ports.file_export = true,
                }
            }
            None => report.push(Unmapped::new(&path, format!("output port type `{kind}` is not a Meshwork port; every product is served on all of Meshwork's"))),
        }
        p.finish(report);
    }
    let output_ports = if ours { render::output_ports(&ports) } else { None };
    let transform = f.custom(TRANSFORM).cloned();
    let refresh = f.custom(REFRESH).cloned();
    f.finish(report);
    ProductPorts { contract_id, inputs, transform, refresh, output_ports }
}
