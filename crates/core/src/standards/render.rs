//! A descriptor written back as `product.yaml` fields: what `meshwork import` writes, and the
//! Meshwork-only sections the standards carry verbatim in `meshwork…` custom properties.
//! Parsing the output with `parse::parse_product` gives the same descriptor back.

use crate::descriptor::*;
use crate::standards::yaml::Yaml;

/// The whole `product.yaml`. A transform read from a file is written as that file's name; the
/// caller writes the file.
pub fn product_yaml(d: &ProductDescriptor) -> Yaml {
    let mut doc = Yaml::map()
        .with("name", d.name.as_str())
        .with("domain", d.domain.as_str())
        .with("version", &d.version)
        .with_opt("title", d.title.as_ref())
        .with_opt("description", d.description.as_ref())
        .with_opt("owner", d.owner.as_ref());
    if !d.tags.is_empty() {
        doc.set("tags", &d.tags);
    }
    if d.status != ProductStatus::Active {
        doc.set("status", d.status.as_str());
    }
    doc = doc.with_opt("sunset", d.sunset.map(|s| s.format("%Y-%m-%d").to_string())).with_opt("successor", d.successor.as_ref().map(ToString::to_string));
    doc.set("inputs", inputs(&d.inputs));
    if d.storage == Storage::Virtual {
        doc.set("virtual", true);
    }
    if let Some(t) = &d.transform {
        doc.set("transform", transform(t));
    }
    doc.set("contract", contract(&d.contract));
    doc = doc.with_seq("quality", quality(&d.quality));
    doc = doc.with_opt("slo", d.slo.as_ref().map(slo));
    doc = doc.with_opt("refresh", refresh(&d.refresh));
    doc = doc.with_opt("access", d.access.as_ref().map(access));
    doc.with_opt("output_ports", output_ports(&d.output_ports))
}

/// `inputs:`.
pub fn inputs(ports: &[InputPort]) -> Yaml {
    Yaml::Seq(ports.iter().map(|p| input(p)).collect())
}

/// One input port.
pub fn input(port: &InputPort) -> Yaml {
    let entry = Yaml::map().with("name", &port.name);
    match &port.source {
        InputSource::Product { product } => entry.with("product", product.to_string()),
        source => entry.with("source", file_source(source)),
    }
}

/// The `source:` of a file input.
pub fn file_source(source: &InputSource) -> Yaml {
    match source {
        InputSource::Csv { path, header, delimiter, null_values } => {
            let mut s = Yaml::map().with("kind", "csv").with("path", path);
            if !header {
                s.set("header", false);
            }
            if *delimiter != ',' {
                s.set("delimiter", if *delimiter == '\t' { "\\t".to_owned() } else { delimiter.to_string() });
            }
            if null_values != &[String::new()] {
                s.set("null_values", null_values);
            }
            s
        }
        InputSource::Ndjson { path } => Yaml::map().with("kind", "ndjson").with("path", path),
        InputSource::Parquet { path } => Yaml::map().with("kind", "parquet").with("path", path),
        InputSource::Postgres(db) | InputSource::Mysql(db) | InputSource::FlightSql(db) => {
            let kind = source.database().map_or("flight_sql", |(kind, _)| kind.as_str());
            let mut s = Yaml::map().with("kind", kind).with("connection", &db.connection);
            match &db.read {
                DatabaseRead::Table(table) => s.set("table", table),
                DatabaseRead::Query(query) => s.set("query", query),
            }
            if let Some(inc) = &db.incremental {
                s.set("incremental", Yaml::map().with("column", &inc.column).with("mode", inc.mode.as_str()));
            }
            s
        }
        InputSource::Product { product } => Yaml::map().with("product", product.to_string()),
    }
}

/// `transform:`: the file name of a transform kept in a file, else `{ sql: … }`.
pub fn transform(t: &Transform) -> Yaml {
    match &t.file {
        Some(file) if file.ends_with(".sql") && !file.contains(char::is_whitespace) => Yaml::from(file),
        Some(file) => Yaml::map().with("file", file),
        None => Yaml::map().with("sql", &t.sql),
    }
}

fn contract(c: &Contract) -> Yaml {
    let columns = c
        .columns
        .iter()
        .map(|col| {
            let mut entry = Yaml::map().with("name", &col.name).with("type", col.data_type.to_string());
            if !col.nullable {
                entry.set("nullable", false);
            }
            entry.with_opt("description", col.description.as_ref()).with_opt("classification", col.classification.map(|k| k.as_str()))
        })
        .collect();
    let mut doc = Yaml::map();
    if !c.primary_key.is_empty() {
        doc.set("primary_key", &c.primary_key);
    }
    doc.with("columns", Yaml::Seq(columns))
}

fn quality(rules: &[QualityRule]) -> Vec<Yaml> {
    rules.iter().enumerate().map(|(i, r)| quality_rule(r, i)).collect()
}

/// The name `product.yaml` gives a rule that has none, at position `index`.
pub fn default_rule_name(check: &QualityCheck, index: usize) -> String {
    match check {
        QualityCheck::NotNull { column }
        | QualityCheck::AcceptedValues { column, .. }
        | QualityCheck::Range { column, .. }
        | QualityCheck::Regex { column, .. }
        | QualityCheck::Freshness { column, .. }
        | QualityCheck::Referential { column, .. } => format!("{}_{column}", check.keyword()),
        QualityCheck::Unique { columns } => format!("unique_{}", columns.join("_")),
        _ => format!("{}_{}", check.keyword(), index + 1),
    }
}

/// One quality rule; its name is written only when it is not the default at `index`.
pub fn quality_rule(rule: &QualityRule, index: usize) -> Yaml {
    let mut r = Yaml::map().with("rule", rule.check.keyword());
    if rule.name != default_rule_name(&rule.check, index) {
        r.set("name", &rule.name);
    }
    if rule.severity == Severity::Warn {
        r.set("severity", "warn");
    }
    match &rule.check {
        QualityCheck::NotNull { column } => r.with("column", column),
        QualityCheck::Unique { columns } if columns.len() == 1 => r.with("column", &columns[0]),
        QualityCheck::Unique { columns } => r.with("columns", columns),
        QualityCheck::AcceptedValues { column, values } => r.with("column", column).with("values", values),
        QualityCheck::Range { column, min, max, min_inclusive, max_inclusive } => {
            let mut r = r.with("column", column).with_opt("min", min.as_ref()).with_opt("max", max.as_ref());
            if !min_inclusive {
                r.set("min_inclusive", false);
            }
            if !max_inclusive {
                r.set("max_inclusive", false);
            }
            r
        }
        QualityCheck::Regex { column, pattern } => r.with("column", column).with("pattern", pattern),
        QualityCheck::RowCount { min, max, max_change_pct } => r.with_opt("min", *min).with_opt("max", *max).with_opt("max_change_pct", *max_change_pct),
        QualityCheck::Freshness { column, max_age } => r.with("column", column).with("max_age", duration(*max_age)),
        QualityCheck::Referential { column, references, references_column } => {
            r.with("column", column).with("references", references.to_string()).with("references_column", references_column)
        }
        QualityCheck::Sql { assert } => r.with("assert", assert),
    }
}

/// A duration in the largest unit that divides it (`24h`, `90s`, `2w`).
pub fn duration(d: DurationSpec) -> String {
    let s = d.seconds;
    for (unit, factor) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s > 0 && s % factor == 0 {
            return format!("{}{unit}", s / factor);
        }
    }
    format!("{s}s")
}

/// `slo:`.
pub fn slo(s: &Slo) -> Yaml {
    let mut doc = Yaml::map();
    if let Some(max_age) = s.freshness {
        match &s.freshness_column {
            Some(column) => doc.set("freshness", Yaml::map().with("max_age", duration(max_age)).with("column", column)),
            None => doc.set("freshness", duration(max_age)),
        }
    }
    if let Some(c) = &s.completeness {
        doc.set("completeness", completeness(c));
    }
    doc = doc.with_opt("availability", s.availability);
    if s.target != DEFAULT_SLO_TARGET {
        doc.set("target", s.target);
    }
    if s.window != DEFAULT_SLO_WINDOW {
        doc.set("window", duration(s.window));
    }
    doc
}

/// `slo.completeness`.
pub fn completeness(c: &Completeness) -> Yaml {
    let m = match &c.measure {
        CompletenessMeasure::NonNull { column } => Yaml::map().with("column", column),
        CompletenessMeasure::UpstreamRows { upstream } => Yaml::map().with("upstream", upstream.to_string()),
    };
    m.with("min_ratio", c.min_ratio)
}

/// `refresh:`, or `None` for the default (manual).
pub fn refresh(r: &Refresh) -> Option<Yaml> {
    if r == &Refresh::default() {
        return None;
    }
    let mut doc = Yaml::map().with_opt("schedule", r.schedule.as_ref());
    if r.on_upstream_change {
        doc.set("on_upstream_change", true);
    }
    Some(doc)
}

/// `access:`.
pub fn access(a: &Access) -> Yaml {
    let mut doc = Yaml::map();
    if !a.readers.is_empty() {
        doc.set("readers", &a.readers);
    }
    doc = doc.with_opt("row_filter", a.row_filter.as_ref());
    if !a.masks.is_empty() {
        doc.set("masks", masks(a));
    }
    if !a.unmasked_for.is_empty() {
        doc.set("unmasked_for", &a.unmasked_for);
    }
    if a.discoverable {
        doc.set("discoverable", true);
    }
    doc
}

/// `access.masks`.
pub fn masks(a: &Access) -> Yaml {
    Yaml::Map(
        a.masks
            .iter()
            .map(|(column, mask)| {
                let value = match mask {
                    Mask::Partial { keep_first, keep_last } => {
                        Yaml::map().with("kind", "partial").with("keep_first", *keep_first).with("keep_last", *keep_last)
                    }
                    Mask::Sql { expr } => Yaml::map().with("kind", "sql").with("expr", expr),
                    other => Yaml::from(other.kind()),
                };
                (column.clone(), value)
            })
            .collect(),
    )
}

/// `output_ports:`, or `None` when every port is on (the default).
pub fn output_ports(p: &OutputPorts) -> Option<Yaml> {
    if p == &OutputPorts::default() {
        return None;
    }
    Some(
        Yaml::map()
            .with("sql", p.sql)
            .with("flight_sql", p.flight_sql)
            .with("postgres", p.postgres)
            .with("rest", p.rest)
            .with("file_export", p.file_export),
    )
}
