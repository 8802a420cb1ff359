//! `product.yaml` trust sections: quality rules, SLOs and refresh.

// Imports are shared by every section of the parser: see `mod.rs`.
use super::*;

pub(super) fn quality(d: &mut Decoder<'_>, map: &MarkedMappingNode, contract: Option<&Contract>) -> Vec<QualityRule> {
    let mut rules = Vec::new();
    for (field, node) in d.list(map, "", "quality") {
        let Some(kind) = (match node.as_mapping() {
            Some(m) => d.choice(m, &field, "rule", Some("not_null"), RULES),
            None => d.mapping(node, &field, &["rule"]).and(None),
        }) else {
            continue;
        };
        let allowed: &[&str] = match kind {
            "not_null" => &["column"],
            "unique" => &["column", "columns"],
            "accepted_values" => &["column", "values"],
            "range" => &["column", "min", "max", "min_inclusive", "max_inclusive"],
            "regex" => &["column", "pattern"],
            "row_count" => &["min", "max", "max_change_pct"],
            "freshness" => &["column", "max_age"],
            "referential" => &["column", "references", "references_column"],
            _ => &["assert"],
        };
        let all: Vec<&str> = ["rule", "name", "severity", "description"].iter().chain(allowed).copied().collect();
        let Some(r) = d.mapping(node, &field, &all) else { continue };
        let severity = d.choice(r, &field, "severity", None, &[("error", Severity::Error), ("warn", Severity::Warn)]).unwrap_or(Severity::Error);
        let check = match kind {
            "not_null" => column_field(d, r, &field, "column", contract).map(|column| QualityCheck::NotNull { column }),
            "unique" => {
                let columns = if Decoder::get(r, "columns").is_some() {
                    let cols = d.texts(r, &field, "columns");
                    if let (Some(contract), Some(node)) = (contract, Decoder::get(r, "columns")) {
                        for col in &cols {
                            check_column(d, &contract.columns, col, node.span(), &join(&field, "columns"));
                        }
                    }
                    cols
                } else {
                    column_field(d, r, &field, "column", contract).into_iter().collect()
                };
                (!columns.is_empty()).then_some(QualityCheck::Unique { columns })
            }
            "accepted_values" => {
                let column = column_field(d, r, &field, "column", contract);
                d.required(r, &field, "values", "[a, b]");
                let values = d.texts(r, &field, "values");
                column.map(|column| QualityCheck::AcceptedValues { column, values })
            }
            "range" => {
                let column = column_field(d, r, &field, "column", contract);
                let min = d.text(r, &field, "min");
                let max = d.text(r, &field, "max");
                if min.is_none() && max.is_none() {
                    d.report(DiagnosticCode::MissingField, r.span(), &field, "a range rule needs `min`, `max` or both".into(), Some("e.g. `min: 0`".into()));
                }
                let min_inclusive = d.boolean(r, &field, "min_inclusive").unwrap_or(true);
                let max_inclusive = d.boolean(r, &field, "max_inclusive").unwrap_or(true);
                column.map(|column| QualityCheck::Range { column, min, max, min_inclusive, max_inclusive })
            }
            "regex" => {
                let column = column_field(d, r, &field, "column", contract);
                let pattern = d.required_text(r, &field, "pattern", "'^[A-Z]{2}$'");
                column.zip(pattern).map(|(column, pattern)| QualityCheck::Regex { column, pattern })
            }
            "row_count" => {
                let count = |t: &str| t.parse::<u64>().map_err(|_| (format!("`{t}` is not a row count"), Some("use a whole number".into())));
                let min = d.parsed(r, &field, "min", None, DiagnosticCode::InvalidValue, count);
                let max = d.parsed(r, &field, "max", None, DiagnosticCode::InvalidValue, count);
                let max_change_pct = d.parsed(r, &field, "max_change_pct", None, DiagnosticCode::InvalidValue, |t| {
                    t.trim_end_matches('%').parse::<f64>().map_err(|_| (format!("`{t}` is not a percentage"), Some("e.g. `20`".into())))
                });
                Some(QualityCheck::RowCount { min, max, max_change_pct })
            }
            "freshness" => {
                let column = column_field(d, r, &field, "column", contract);
                let max_age = d.parsed(r, &field, "max_age", Some("24h"), DiagnosticCode::InvalidValue, parse_duration);
                column.zip(max_age).map(|(column, max_age)| QualityCheck::Freshness { column, max_age })
            }
            "referential" => {
                let column = column_field(d, r, &field, "column", contract);
                let references = d.parsed(r, &field, "references", Some("sales.customers"), DiagnosticCode::InvalidName, |t| {
                    t.parse::<ProductId>().map_err(name_error)
                });
                let references_column = d.required_text(r, &field, "references_column", "customer_id");
                match (column, references, references_column) {
                    (Some(column), Some(references), Some(references_column)) => {
                        Some(QualityCheck::Referential { column, references, references_column })
                    }
                    _ => None,
                }
            }
            _ => d.required_text(r, &field, "assert", "SELECT count(*) = 0 FROM this WHERE …").map(|assert| QualityCheck::Sql { assert }),
        };
        let Some(check) = check else { continue };
        let name = d.text(r, &field, "name").unwrap_or_else(|| match &check {
            QualityCheck::NotNull { column }
            | QualityCheck::AcceptedValues { column, .. }
            | QualityCheck::Range { column, .. }
            | QualityCheck::Regex { column, .. }
            | QualityCheck::Freshness { column, .. }
            | QualityCheck::Referential { column, .. } => format!("{kind}_{column}"),
            QualityCheck::Unique { columns } => format!("unique_{}", columns.join("_")),
            _ => format!("{kind}_{}", rules.len() + 1),
        });
        rules.push(QualityRule { name, severity, check });
    }
    rules
}

pub(super) fn slo(d: &mut Decoder<'_>, node: &Node, contract: Option<&Contract>) -> Option<Slo> {
    let map = d.mapping(node, "slo", &["freshness", "completeness", "availability", "target", "window"])?;
    let code = DiagnosticCode::InvalidValue;
    let (freshness, freshness_column) = match Decoder::get(map, "freshness") {
        Some(node) if node.as_mapping().is_some() => {
            let f = d.mapping(node, "slo.freshness", &["max_age", "column"])?;
            let max_age = d.parsed(f, "slo.freshness", "max_age", Some("24h"), code, parse_duration);
            let column = Decoder::get(f, "column").and_then(|_| column_field(d, f, "slo.freshness", "column", contract));
            (max_age, column)
        }
        _ => (d.parsed(map, "slo", "freshness", None, code, parse_duration), None),
    };
    let completeness = Decoder::get(map, "completeness").and_then(|node| {
        let c = d.mapping(node, "slo.completeness", &["column", "upstream", "min_ratio"])?;
        let measure = match (Decoder::get(c, "column"), Decoder::get(c, "upstream")) {
            (Some(_), None) => column_field(d, c, "slo.completeness", "column", contract).map(|column| CompletenessMeasure::NonNull { column }),
            (None, Some(_)) => d
                .parsed(c, "slo.completeness", "upstream", None, DiagnosticCode::InvalidName, |t| t.parse::<ProductId>().map_err(name_error))
                .map(|upstream| CompletenessMeasure::UpstreamRows { upstream }),
            _ => {
                d.report(
                    DiagnosticCode::MissingField,
                    c.span(),
                    "slo.completeness",
                    "completeness measures either a column's non-null ratio or the row count against an upstream product".into(),
                    Some("write exactly one of `column: email` or `upstream: sales.orders`".into()),
                );
                None
            }
        };
        let min_ratio = d.parsed(c, "slo.completeness", "min_ratio", Some("0.99"), code, |t| {
            t.parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| (format!("`{t}` is not a ratio"), Some("use a number from 0 to 1, e.g. `0.99`".into())))
        });
        Some(Completeness { measure: measure?, min_ratio: min_ratio? })
    });
    let percent = |t: &str| {
        t.trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .ok_or_else(|| (format!("`{t}` is not a percentage"), Some("a number above 0 and at most 100, e.g. `99.9`".into())))
    };
    let availability = d.parsed(map, "slo", "availability", None, code, percent);
    let target = d.parsed(map, "slo", "target", None, code, percent).unwrap_or(DEFAULT_SLO_TARGET);
    let window = d.parsed(map, "slo", "window", None, code, parse_duration).unwrap_or(DEFAULT_SLO_WINDOW);
    Some(Slo { freshness, freshness_column, completeness, availability, target, window })
}

pub(super) fn refresh(d: &mut Decoder<'_>, node: &Node) -> Option<Refresh> {
    let map = d.mapping(node, "refresh", &["schedule", "on_upstream_change"])?;
    let schedule = d.parsed(map, "refresh", "schedule", None, DiagnosticCode::InvalidValue, |t| {
        let fields = t.split_whitespace().count();
        let hint = || Some("write 5 fields (minute hour day month weekday), e.g. `0 6 * * *`, or 6 with seconds first".into());
        if fields != 5 && fields != 6 {
            return Err((format!("`{t}` is not a cron expression"), hint()));
        }
        match t.parse::<croner::Cron>() {
            Ok(_) => Ok(t.to_owned()),
            Err(e) => Err((format!("`{t}` is not a cron expression: {e}"), hint())),
        }
    });
    let on_upstream_change = d.boolean(map, "refresh", "on_upstream_change").unwrap_or(false);
    Some(Refresh { schedule, on_upstream_change })
}
