//! `meshwork import`: ODCS contracts (one product per schema object) and ODPS products turned
//! into `product.yaml` files, every field that has no Meshwork equivalent reported with its
//! path. The written descriptor is parsed back with the real parser before it is returned.

use crate::column_type::ColumnType;
use crate::descriptor::ProductDescriptor;
use crate::diagnostic::{Diagnostic, DiagnosticCode};
use crate::id::{DomainName, ProductId, ProductName, check_identifier, check_name};
use crate::parse::{parse_product, snake_case};
use crate::standards::fields::Fields;
use crate::standards::odcs::{ACCESS, INPUTS, OUTPUT_PORTS, REFRESH, ROLE_READ, ROLE_UNMASKED, SLO, SUCCESSOR, TRANSFORM};
use crate::standards::odps::{self, ProductPorts};
use crate::standards::yaml::Yaml;
use crate::standards::{Unmapped, quality, types};

/// One document to import: its file name and content.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file, for reports.
    pub file: String,
    /// Its content.
    pub value: Yaml,
}

/// A file the import writes, relative to the mesh repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path relative to the repository root.
    pub path: String,
    /// Content.
    pub content: String,
}

/// A product read from the documents.
#[derive(Debug, Clone)]
pub struct ImportedProduct {
    /// Its address.
    pub id: ProductId,
    /// `product.yaml`, its transform file and, for a contract without inputs, a placeholder
    /// CSV file with the contract's header.
    pub files: Vec<File>,
    /// The descriptor the written `product.yaml` parses to (transform SQL filled in).
    pub descriptor: ProductDescriptor,
}

/// Everything an import found.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// Products that could be written.
    pub products: Vec<ImportedProduct>,
    /// Fields not taken over, or taken over approximately.
    pub unmapped: Vec<Unmapped>,
    /// Problems that stopped a document or product.
    pub errors: Vec<Diagnostic>,
}

/// Imports `documents`; `domain` replaces the contracts' domain.
pub fn import(documents: &[Document], domain: Option<&DomainName>) -> Imported {
    let mut out = Imported::default();
    let mut products: Vec<(String, ProductPorts, Vec<Unmapped>)> = Vec::new();
    let mut contracts = Vec::new();
    for doc in documents {
        match doc.value.get("kind").and_then(Yaml::scalar_text).as_deref() {
            Some("DataContract") => contracts.push(doc),
            Some("DataProduct") => {
                let mut report = Vec::new();
                let ports = odps::import(&doc.value, &mut report);
                products.push((doc.file.clone(), ports, report));
            }
            other => out.errors.push(
                Diagnostic::new(DiagnosticCode::InvalidValue, &doc.file, format!("`kind: {}` is neither an ODCS contract nor an ODPS product", other.unwrap_or("")))
                    .field("kind")
                    .hint("import `kind: DataContract` (ODCS v3) or `kind: DataProduct` (ODPS v1) files"),
            ),
        }
    }
    let mut matched = vec![false; products.len()];
    for doc in contracts {
        let id = doc.value.get("id").and_then(Yaml::scalar_text);
        let ports = products.iter().position(|(_, p, _)| p.contract_id.is_some() && p.contract_id == id);
        if let Some(at) = ports {
            matched[at] = true;
            let (file, _, report) = &products[at];
            out.unmapped.extend(report.iter().cloned().map(|mut u| {
                u.file = file.clone();
                u
            }));
        }
        contract(doc, ports.map(|at| &products[at].1), domain, &mut out);
    }
    for ((file, ports, _), matched) in products.iter().zip(matched) {
        if !matched {
            let id = ports.contract_id.clone().unwrap_or_default();
            out.errors.push(
                Diagnostic::new(DiagnosticCode::MissingReference, file, format!("the contract `{id}` of this product's output ports is not among the imported files"))
                    .hint("import the product's ODCS contract together with it"),
            );
        }
    }
    out
}

fn name_of(text: &str, what: &str, path: &str, report: &mut Vec<Unmapped>, valid: impl Fn(&str) -> bool) -> String {
    if valid(text) {
        return text.to_owned();
    }
    let fixed = snake_case(text);
    report.push(Unmapped::new(path, format!("{what} `{text}` is not a Meshwork name; written as `{fixed}`")));
    fixed
}

fn contract(doc: &Document, ports: Option<&ProductPorts>, domain_flag: Option<&DomainName>, out: &mut Imported) {
    let mut report = Vec::new();
    let mut f = Fields::new(&doc.value, "");
    let api = f.text("apiVersion").unwrap_or_default();
    if !api.starts_with("v3.") {
        out.errors.push(
            Diagnostic::new(DiagnosticCode::InvalidValue, &doc.file, format!("`apiVersion: {api}` is not ODCS v3"))
                .field("apiVersion")
                .hint("Meshwork imports ODCS v3.x contracts; upgrade older ones with `datacontract import --format odcs`"),
        );
        return;
    }
    let _ = (f.take("kind"), f.take("id"));
    let top_name = f.text("name");
    let version = f.text("version").unwrap_or_else(|| "1.0.0".into());
    let status = match f.text("status").as_deref() {
        None | Some("active") => None,
        Some("draft") => Some("draft"),
        Some("deprecated") => Some("deprecated"),
        Some(other) => {
            let mapped = if other == "retired" { "deprecated" } else { "draft" };
            report.push(Unmapped::new("status", format!("status `{other}` is read as `{mapped}`")));
            Some(mapped)
        }
    };
    let domain_text = f.text("domain");
    let domain = match (domain_flag, &domain_text) {
        (Some(d), _) => d.as_str().to_owned(),
        (None, Some(text)) => name_of(text, "domain", "domain", &mut report, |t| check_name(t).is_ok()),
        (None, None) => {
            out.errors.push(Diagnostic::new(DiagnosticCode::MissingField, &doc.file, "the contract names no domain").field("domain").hint("pass `--domain NAME`"));
            return;
        }
    };
    let mut tags: Vec<String> = match f.take("tags") {
        Some(Yaml::Seq(items)) => items.iter().filter_map(Yaml::scalar_text).collect(),
        _ => Vec::new(),
    };
    let mut description = None;
    if let Some(value) = f.take("description") {
        let mut d = Fields::new(value, "description");
        description = d.text("purpose");
        d.finish(&mut report);
    }
    let owner = team(&mut f, &domain, &mut report);
    let access = roles(&mut f, &mut report);
    let (mut slo, sunset) = sla(&mut f, &mut report);
    for (path, server) in f.items("servers") {
        // Meshwork's own servers are derived from the output ports on export.
        if !server.get("server").and_then(Yaml::scalar_text).is_some_and(|s| s.starts_with("meshwork-")) {
            report.push(Unmapped::new(path, "servers are where Meshwork serves the product, not where it reads it; add an input port for this source"));
        }
    }
    let customs = [INPUTS, TRANSFORM, REFRESH, ACCESS, SLO, SUCCESSOR, OUTPUT_PORTS].map(|name| f.custom(name).cloned());
    let [inputs, transform, refresh, access_custom, slo_custom, successor, output_ports] = customs;
    if let Some(Yaml::Map(entries)) = slo_custom {
        let mut base = Yaml::Map(entries);
        if let Some(Yaml::Map(more)) = slo.take() {
            for (k, v) in more {
                base.set(&k, v);
            }
        }
        slo = Some(base);
    }
    let access = match (access, access_custom) {
        (None, None) => None,
        (roles, custom) => {
            let mut a = Yaml::map();
            if let Some((readers, unmasked)) = &roles {
                a = a.with_seq("readers", readers.clone());
                if let Some(Yaml::Map(entries)) = &custom {
                    for (k, v) in entries {
                        a.set(k, v.clone());
                    }
                }
                a = a.with_seq("unmasked_for", unmasked.clone());
            } else if let Some(custom) = custom {
                a = custom;
            }
            Some(a)
        }
    };
    let objects = f.items("schema");
    if objects.is_empty() {
        out.errors.push(Diagnostic::new(DiagnosticCode::MissingField, &doc.file, "the contract has no schema object").field("schema").hint("a product needs `schema: [{ name: …, properties: [...] }]`"));
    }
    let common = Common { version, status, domain, owner, access, slo, sunset, successor, refresh, output_ports, inputs, transform };
    for (path, object) in &objects {
        let mut object_report = Vec::new();
        let mut o = Fields::new(object, path);
        let raw_name = o.text("name").unwrap_or_default();
        let name = name_of(&raw_name, "product name", &format!("{path}.name"), &mut object_report, |t| check_name(t).is_ok());
        if o.text("physicalName").is_some_and(|p| p != raw_name) {
            object_report.push(Unmapped::new(format!("{path}.physicalName"), "Meshwork serves the product under its name; the physical name is not kept"));
        }
        let _ = (o.take("physicalType"), o.take("logicalType"));
        let business = o.text("businessName");
        let title = business.or_else(|| top_name.clone().filter(|n| n != &raw_name));
        let object_description = o.text("description");
        if let Some(Yaml::Seq(items)) = o.take("tags") {
            let extra: Vec<String> = items.iter().filter_map(Yaml::scalar_text).filter(|t| !tags.contains(t)).collect();
            tags.extend(extra);
        }
        let (columns, primary_key, mut rules) = properties(&mut o, &mut object_report);
        for (qpath, check) in o.items("quality") {
            rules.extend(quality::import(check, &qpath, None, &mut object_report));
        }
        o.finish(&mut object_report);
        let identity = Identity { name, title, description: description.clone().or(object_description), tags: tags.clone() };
        let product = build(&common, ports, identity, columns, primary_key, rules, path, &mut object_report);
        match product {
            Ok(product) => out.products.push(product),
            Err(mut errors) => out.errors.append(&mut errors),
        }
        out.unmapped.extend(object_report.into_iter().map(|mut u| {
            u.file = doc.file.clone();
            u
        }));
    }
    f.finish(&mut report);
    out.unmapped.extend(report.into_iter().map(|mut u| {
        u.file = doc.file.clone();
        u
    }));
}

struct Common {
    version: String,
    status: Option<&'static str>,
    domain: String,
    owner: Option<String>,
    access: Option<Yaml>,
    slo: Option<Yaml>,
    sunset: Option<String>,
    successor: Option<Yaml>,
    refresh: Option<Yaml>,
    output_ports: Option<Yaml>,
    inputs: Option<Yaml>,
    transform: Option<Yaml>,
}

struct Identity {
    name: String,
    title: Option<String>,
    description: Option<String>,
    tags: Vec<String>,
}

fn team(f: &mut Fields<'_>, domain: &str, report: &mut Vec<Unmapped>) -> Option<String> {
    let team = f.take("team")?;
    let (members, base) = match team {
        Yaml::Seq(_) => (Some(team), "team".to_owned()),
        _ => {
            let mut t = Fields::new(team, "team");
            if t.text("name").is_some_and(|n| n != domain) {
                report.push(Unmapped::new("team.name", "the owning team is the product's domain; the team name is not kept"));
            }
            let members = t.take("members");
            t.finish(report);
            (members, "team.members".to_owned())
        }
    };
    let mut owner = None;
    if let Some(Yaml::Seq(items)) = members {
        for (i, member) in items.iter().enumerate() {
            let path = format!("{base}[{i}]");
            let mut m = Fields::new(member, &path);
            let username = m.text("username").unwrap_or_default();
            let role = m.text("role").unwrap_or_default().to_ascii_lowercase().replace([' ', '_', '-'], "");
            if owner.is_none() && matches!(role.as_str(), "owner" | "productowner" | "dataowner" | "dataproductowner") {
                owner = Some(match username.split_once(':') {
                    Some(("user" | "group" | "service", rest)) if !rest.is_empty() => username.clone(),
                    _ => format!("user:{username}"),
                });
                m.finish(report);
            } else {
                m.take_all();
                m.finish(report);
                report.push(Unmapped::new(path, format!("team member `{username}` is not the product's owner; Meshwork keeps one owner")));
            }
        }
    }
    owner
}

type Roles = (Vec<Yaml>, Vec<Yaml>);

fn roles(f: &mut Fields<'_>, report: &mut Vec<Unmapped>) -> Option<Roles> {
    let items = f.items("roles");
    if items.is_empty() {
        return None;
    }
    let (mut readers, mut unmasked) = (Vec::new(), Vec::new());
    for (path, role) in items {
        let mut r = Fields::new(role, &path);
        let name = r.text("role").unwrap_or_default();
        let access = r.text("access").unwrap_or_else(|| ROLE_READ.into());
        if access != ROLE_READ && access != ROLE_UNMASKED {
            r.take_all();
            r.finish(report);
            report.push(Unmapped::new(&path, format!("role access `{access}`: Meshwork grants reading only")));
            continue;
        }
        let principal = if name == "*" || name.split_once(':').is_some_and(|(k, rest)| matches!(k, "user" | "group" | "domain" | "service") && !rest.is_empty()) {
            name.clone()
        } else {
            report.push(Unmapped::new(format!("{path}.role"), format!("role `{name}` is read as the group `group:{name}`")));
            format!("group:{name}")
        };
        match access.as_str() {
            ROLE_READ => readers.push(Yaml::from(principal)),
            ROLE_UNMASKED => unmasked.push(Yaml::from(principal)),
            other => {
                r.take_all();
                report.push(Unmapped::new(&path, format!("role access `{other}`: Meshwork grants reading only")));
            }
        }
        r.finish(report);
    }
    Some((readers, unmasked))
}

/// Seconds of an SLA value with its unit.
fn sla_seconds(value: &Yaml, unit: Option<&str>) -> Option<u64> {
    let n = value.as_f64().filter(|n| *n >= 0.0)?;
    let factor = match unit.unwrap_or("d").to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" | "seconds" => 1.0,
        "m" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        "y" | "yr" | "year" | "years" => 365.0 * 86_400.0,
        _ => return None,
    };
    Some((n * factor).round() as u64)
}

fn sla(f: &mut Fields<'_>, report: &mut Vec<Unmapped>) -> (Option<Yaml>, Option<String>) {
    let mut slo = Yaml::map();
    let mut sunset = None;
    for (path, item) in f.items("slaProperties") {
        let mut s = Fields::new(item, &path);
        let property = s.text("property").unwrap_or_default();
        let value = s.take("value").cloned().unwrap_or(Yaml::Null);
        let unit = s.text("unit");
        let element = s.text("element").map(|e| e.rsplit('.').next().unwrap_or_default().to_owned());
        match property.to_ascii_lowercase().as_str() {
            "latency" | "ly" | "freshness" => match sla_seconds(&value, unit.as_deref()) {
                Some(seconds) => {
                    let max_age = crate::standards::render::duration(crate::descriptor::DurationSpec { seconds });
                    match element {
                        Some(column) => slo.set("freshness", Yaml::map().with("max_age", max_age).with("column", column)),
                        None => slo.set("freshness", max_age),
                    }
                }
                None => {
                    s.take_all();
                    report.push(Unmapped::new(&path, "a freshness needs a number and a unit (`d`, `h`, `m`, `s`)"));
                }
            },
            "availability" | "av" => match value.as_f64() {
                Some(v) => slo.set("availability", v),
                None => report.push(Unmapped::new(&path, "availability must be a percentage")),
            },
            "completeness" => match (value.as_f64(), element) {
                (Some(ratio), Some(column)) => slo.set("completeness", Yaml::map().with("column", column).with("min_ratio", ratio)),
                _ => report.push(Unmapped::new(&path, "completeness needs a ratio and the column (`element`)")),
            },
            "endoflife" | "el" => match value.scalar_text() {
                Some(date) if date.get(..10).is_some_and(|day| chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok()) => {
                    if date.len() > 10 {
                        report.push(Unmapped::new(&path, format!("end of life `{date}` is read as the date `{}`", &date[..10])));
                    }
                    sunset = Some(date[..10].to_owned());
                }
                _ => report.push(Unmapped::new(&path, "end of life must be a date")),
            },
            other => {
                s.take_all();
                report.push(Unmapped::new(&path, format!("SLA property `{other}` has no Meshwork objective")));
            }
        }
        s.finish(report);
    }
    (if slo == Yaml::map() { None } else { Some(slo) }, sunset)
}

/// The columns, primary key and column rules of a schema object.
fn properties(o: &mut Fields<'_>, report: &mut Vec<Unmapped>) -> (Vec<Yaml>, Vec<Yaml>, Vec<Yaml>) {
    let (mut columns, mut keys, mut rules) = (Vec::new(), Vec::new(), Vec::new());
    for (ppath, property) in o.items("properties") {
        let mut p = Fields::new(property, &ppath);
        let raw = p.text("name").unwrap_or_default();
        let name = name_of(&raw, "column name", &format!("{ppath}.name"), report, |t| check_identifier(t).is_ok());
        if p.text("physicalName").is_some_and(|n| n != raw) {
            report.push(Unmapped::new(format!("{ppath}.physicalName"), "the column is served under its name; the physical name is not kept"));
        }
        let logical = p.text("logicalType");
        let physical = p.text("physicalType");
        let mut options = p.take("logicalTypeOptions").map(|o| Fields::new(o, &format!("{ppath}.logicalTypeOptions")));
        let format = options.as_mut().and_then(|o| o.text("format"));
        let ty = match types::from_odcs(logical.as_deref(), format.as_deref(), physical.as_deref()) {
            Ok((ty, note)) => {
                if let Some(note) = note {
                    report.push(Unmapped::new(format!("{ppath}.physicalType"), note));
                }
                ty
            }
            Err(why) => {
                report.push(Unmapped::new(&ppath, format!("{why}; read as `string`")));
                ColumnType::String
            }
        };
        let mut column = Yaml::map().with("name", &name).with("type", ty.to_string());
        if p.take("required") == Some(&Yaml::Bool(true)) {
            column.set("nullable", false);
        }
        column = column.with_opt("description", p.text("description"));
        if let Some(class) = p.text("classification") {
            let mapped = match class.to_ascii_lowercase().as_str() {
                c @ ("public" | "internal" | "confidential" | "pii") => Some(c.to_owned()),
                "restricted" | "sensitive" | "secret" => Some("confidential".to_owned()),
                "personal" | "personal data" | "gdpr" => Some("pii".to_owned()),
                _ => None,
            };
            match &mapped {
                Some(m) if m != &class => report.push(Unmapped::new(format!("{ppath}.classification"), format!("classification `{class}` is read as `{m}`"))),
                None => report.push(Unmapped::new(format!("{ppath}.classification"), format!("classification `{class}` is not one of public, internal, confidential, pii"))),
                _ => {}
            }
            column = column.with_opt("classification", mapped);
        }
        if p.take("primaryKey") == Some(&Yaml::Bool(true)) {
            let at = p.take("primaryKeyPosition").and_then(Yaml::as_f64).unwrap_or(f64::MAX);
            keys.push((at, Yaml::from(name.clone())));
        } else {
            let _ = p.take("primaryKeyPosition");
        }
        if p.take("unique") == Some(&Yaml::Bool(true)) {
            rules.push(Yaml::map().with("rule", "unique").with("column", &name));
        }
        if let Some(mut o) = options {
            let _ = o.take("timezone");
            if let Some(pattern) = o.text("pattern") {
                rules.push(Yaml::map().with("rule", "regex").with("column", &name).with("pattern", pattern));
            }
            let bound = |o: &mut Fields<'_>, key: &str| o.take(key).and_then(Yaml::scalar_text);
            let (min, xmin, max, xmax) = (bound(&mut o, "minimum"), bound(&mut o, "exclusiveMinimum"), bound(&mut o, "maximum"), bound(&mut o, "exclusiveMaximum"));
            if min.is_some() || xmin.is_some() || max.is_some() || xmax.is_some() {
                let mut r = Yaml::map().with("rule", "range").with("column", &name).with_opt("min", min.clone().or(xmin.clone())).with_opt("max", max.clone().or(xmax.clone()));
                if min.is_none() && xmin.is_some() {
                    r.set("min_inclusive", false);
                }
                if max.is_none() && xmax.is_some() {
                    r.set("max_inclusive", false);
                }
                rules.push(r);
            }
            o.finish(report);
        }
        for (qpath, check) in p.items("quality") {
            rules.extend(quality::import(check, &qpath, Some(&name), report));
        }
        p.finish(report);
        columns.push(column);
    }
    keys.sort_by(|a, b| a.0.total_cmp(&b.0));
    (columns, keys.into_iter().map(|(_, k)| k).collect(), rules)
}

#[allow(clippy::too_many_arguments)]
fn build(
    c: &Common,
    ports: Option<&ProductPorts>,
    identity: Identity,
    columns: Vec<Yaml>,
    primary_key: Vec<Yaml>,
    rules: Vec<Yaml>,
    object_path: &str,
    report: &mut Vec<Unmapped>,
) -> Result<ImportedProduct, Vec<Diagnostic>> {
    let dir = format!("domains/{}/products/{}", c.domain, identity.name);
    let mut files = Vec::new();
    let mut doc = Yaml::map()
        .with("name", &identity.name)
        .with("domain", &c.domain)
        .with("version", &c.version)
        .with_opt("title", identity.title)
        .with_opt("description", identity.description)
        .with_opt("owner", c.owner.clone());
    if !identity.tags.is_empty() {
        doc.set("tags", identity.tags.clone());
    }
    doc = doc.with_opt("status", c.status).with_opt("sunset", c.sunset.clone()).with_opt("successor", c.successor.clone());
    let inputs = ports.map(|p| Yaml::Seq(p.inputs.clone())).filter(|i| i != &Yaml::Seq(vec![])).or_else(|| c.inputs.clone());
    let inputs = match inputs {
        Some(inputs) => inputs,
        None => {
            let path = format!("data/{}/{}.csv", c.domain, identity.name);
            let header: Vec<String> = columns.iter().filter_map(|c| c.get("name").and_then(Yaml::scalar_text)).collect();
            files.push(File { path: path.clone(), content: format!("{}\n", header.join(",")) });
            report.push(Unmapped::new(object_path, format!("the contract names no input: `{path}` (the contract's header, no rows) stands in for the source; point `inputs` at the real data")));
            Yaml::Seq(vec![Yaml::map().with("name", "source").with("source", Yaml::map().with("kind", "csv").with("path", path))])
        }
    };
    doc.set("inputs", inputs);
    let transform = ports.and_then(|p| p.transform.clone()).or_else(|| c.transform.clone());
    if let Some(t) = transform {
        let sql = t.get("sql").and_then(Yaml::scalar_text).unwrap_or_default();
        match t.get("file").and_then(Yaml::scalar_text) {
            Some(file) if !file.split('/').any(|part| part == ".." || part.is_empty()) => {
                files.push(File { path: format!("{dir}/{file}"), content: sql });
                doc.set("transform", crate::standards::render::transform(&crate::descriptor::Transform { file: Some(file), sql: String::new() }));
            }
            _ => doc.set("transform", Yaml::map().with("sql", sql)),
        }
    }
    let mut contract = Yaml::map();
    if !primary_key.is_empty() {
        contract.set("primary_key", Yaml::Seq(primary_key));
    }
    doc.set("contract", contract.with("columns", Yaml::Seq(columns)));
    doc = doc.with_seq("quality", rules);
    doc = doc.with_opt("slo", c.slo.clone());
    doc = doc.with_opt("refresh", ports.and_then(|p| p.refresh.clone()).or_else(|| c.refresh.clone()));
    doc = doc.with_opt("access", c.access.clone());
    doc = doc.with_opt("output_ports", ports.and_then(|p| p.output_ports.clone()).or_else(|| c.output_ports.clone()));
    let path = format!("{dir}/product.yaml");
    let text = doc.to_text();
    let mut descriptor = parse_product(&path, &text).map_err(|diagnostics| diagnostics.into_iter().map(|d| d.hint("the contract maps to a descriptor Meshwork refuses; fix the contract and import it again")).collect::<Vec<_>>())?.value;
    if let Some(t) = &mut descriptor.transform
        && let Some(file) = &t.file
    {
        t.sql = files.iter().find(|f| f.path == format!("{dir}/{file}")).map(|f| f.content.clone()).unwrap_or_default();
    }
    files.insert(0, File { path, content: text });
    let id = ProductId::new(DomainName::new(&c.domain).expect("checked above"), ProductName::new(&identity.name).expect("checked above"));
    Ok(ImportedProduct { id, files, descriptor })
}
