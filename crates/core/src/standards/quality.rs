//! Quality rules as ODCS quality checks and back: library metrics where ODCS has one, SQL that
//! a third-party tool can run otherwise, and the Meshwork rule itself in a `meshworkRule`
//! custom property whenever the standard form would not read back as the same rule.

use crate::descriptor::{QualityCheck, QualityRule, Severity};
use crate::standards::Unmapped;
use crate::standards::fields::Fields;
use crate::standards::render::quality_rule;
use crate::standards::yaml::Yaml;

/// Where a check sits in an ODCS schema object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// Under the property (column) of that name.
    Column(String),
    /// Under the schema object (table).
    Table,
}

/// The custom property holding a rule that the standard form does not carry exactly.
pub const RULE_PROPERTY: &str = "meshworkRule";

/// The ODCS check of a rule at position `index`, and where it belongs.
pub fn export(rule: &QualityRule, index: usize) -> (Level, Yaml) {
    let (level, standard) = standard_form(rule);
    let mut fragment = quality_rule(rule, index);
    // The name is always kept in the custom value: the default depends on the position.
    fragment.set("name", &rule.name);
    let column = match &level {
        Level::Column(c) => Some(c.as_str()),
        Level::Table => None,
    };
    let exact = read_standard(&standard, column).is_ok_and(|back| same_rule(&back, &fragment));
    let standard = if exact {
        standard
    } else {
        standard.with("customProperties", vec![Yaml::map().with("property", RULE_PROPERTY).with("value", fragment)])
    };
    (level, standard)
}

/// Whether two rule fragments say the same, whatever their key order.
fn same_rule(a: &Yaml, b: &Yaml) -> bool {
    let sorted = |y: &Yaml| match y {
        Yaml::Map(e) => {
            let mut e = e.clone();
            e.sort_by(|x, y| x.0.cmp(&y.0));
            e
        }
        _ => Vec::new(),
    };
    sorted(a) == sorted(b)
}

fn severity(rule: &QualityRule) -> &'static str {
    match rule.severity {
        Severity::Error => "error",
        Severity::Warn => "warning",
    }
}

fn literal(value: &str) -> String {
    if value.parse::<f64>().is_ok() { value.to_owned() } else { format!("'{}'", value.replace('\'', "''")) }
}

fn standard_form(rule: &QualityRule) -> (Level, Yaml) {
    let base = |kind: &str| Yaml::map().with("name", &rule.name).with("type", kind);
    let sql = |dimension: &str, query: String, op: &str, value: Yaml| {
        base("sql").with("dimension", dimension).with("query", query).with(op, value).with("severity", severity(rule))
    };
    let library = |dimension: &str, metric: &str| base("library").with("dimension", dimension).with("metric", metric);
    let column = |c: &String| Level::Column(c.clone());
    match &rule.check {
        QualityCheck::NotNull { column: c } => {
            (column(c), library("completeness", "nullValues").with("mustBe", 0i64).with("severity", severity(rule)))
        }
        QualityCheck::Unique { columns } if columns.len() == 1 => {
            (column(&columns[0]), library("uniqueness", "duplicateValues").with("mustBe", 0i64).with("severity", severity(rule)))
        }
        QualityCheck::Unique { columns } => (
            Level::Table,
            library("uniqueness", "duplicateValues")
                .with("arguments", Yaml::map().with("properties", columns))
                .with("mustBe", 0i64)
                .with("severity", severity(rule)),
        ),
        QualityCheck::AcceptedValues { column: c, values } => (
            column(c),
            library("conformity", "invalidValues")
                .with("arguments", Yaml::map().with("validValues", values))
                .with("mustBe", 0i64)
                .with("severity", severity(rule)),
        ),
        QualityCheck::Regex { column: c, pattern } => (
            column(c),
            library("conformity", "invalidValues")
                .with("arguments", Yaml::map().with("pattern", pattern))
                .with("mustBe", 0i64)
                .with("severity", severity(rule)),
        ),
        QualityCheck::RowCount { min, max, max_change_pct: None } => {
            let check = library("completeness", "rowCount");
            let check = match (min, max) {
                (Some(min), Some(max)) => check.with("mustBeBetween", vec![Yaml::from(*min), Yaml::from(*max)]),
                (Some(min), None) => check.with("mustBeGreaterOrEqualTo", *min),
                (None, Some(max)) => check.with("mustBeLessOrEqualTo", *max),
                (None, None) => check.with("mustBeGreaterOrEqualTo", 0i64),
            };
            (Level::Table, check.with("severity", severity(rule)))
        }
        QualityCheck::RowCount { max_change_pct: Some(pct), .. } => {
            let text = format!("The row count changes by at most {pct}% against the previous published version.");
            (Level::Table, base("text").with("dimension", "completeness").with("description", text).with("severity", severity(rule)))
        }
        QualityCheck::Range { column: c, min, max, min_inclusive, max_inclusive } => {
            let mut outside = Vec::new();
            if let Some(min) = min {
                outside.push(format!("{c} {} {}", if *min_inclusive { "<" } else { "<=" }, literal(min)));
            }
            if let Some(max) = max {
                outside.push(format!("{c} {} {}", if *max_inclusive { ">" } else { ">=" }, literal(max)));
            }
            let query = format!("SELECT COUNT(*) FROM {{object}} WHERE {}", outside.join(" OR "));
            (column(c), sql("conformity", query, "mustBe", Yaml::Int(0)))
        }
        QualityCheck::Freshness { column: c, max_age } => {
            let query = format!("SELECT COUNT(*) FROM {{object}} WHERE {c} >= now() - INTERVAL '{} seconds'", max_age.seconds);
            (column(c), sql("timeliness", query, "mustBeGreaterThan", Yaml::Int(0)))
        }
        QualityCheck::Referential { column: c, references, references_column } => {
            let query = format!("SELECT COUNT(*) FROM {{object}} WHERE {c} IS NOT NULL AND {c} NOT IN (SELECT {references_column} FROM {references})");
            (column(c), sql("consistency", query, "mustBe", Yaml::Int(0)))
        }
        QualityCheck::Sql { assert } => (Level::Table, sql("consistency", to_placeholders(assert), "mustBe", Yaml::Bool(true))),
    }
}

/// A quality check read as a `product.yaml` rule (with its name), or why it cannot be.
/// Only the fields of the standard form are looked at; see [`import`] for the report.
fn read_standard(check: &Yaml, column: Option<&str>) -> Result<Yaml, String> {
    import_fields(Fields::new(check, ""), column, &mut Vec::new())
}

/// Reads one ODCS quality check at `path` as a `product.yaml` rule, reporting the fields it
/// does not map; `None` when the check as a whole has no Meshwork equivalent (reported too).
pub fn import(check: &Yaml, path: &str, column: Option<&str>, report: &mut Vec<Unmapped>) -> Option<Yaml> {
    let mut fields = Fields::new(check, path);
    if let Some(rule) = fields.custom(RULE_PROPERTY) {
        fields.take_all();
        fields.finish(report);
        return Some(rule.clone());
    }
    match import_fields(fields, column, report) {
        Ok(rule) => Some(rule),
        Err(reason) => {
            report.push(Unmapped::new(path, reason));
            None
        }
    }
}

fn import_fields(mut f: Fields<'_>, column: Option<&str>, report: &mut Vec<Unmapped>) -> Result<Yaml, String> {
    let name = f.text("name");
    let _ = f.take("dimension");
    if f.text("unit").is_some_and(|u| u != "rows") {
        f.take_all();
        return Err("checks measured in percent have no Meshwork rule".into());
    }
    let severity = match f.text("severity").map(|s| s.to_ascii_lowercase()) {
        None => "error",
        Some(s) if matches!(s.as_str(), "error" | "critical" | "high" | "blocker") => "error",
        Some(_) => "warn",
    };
    let kind = f.text("type").unwrap_or_else(|| "library".into());
    let ops = ["mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo", "mustBeLessThan", "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween"];
    let op = ops.iter().find_map(|op| f.take(op).map(|v| (*op, v.clone())));
    let rule = match kind.as_str() {
        "library" => {
            let metric = f.text("metric").or_else(|| f.text("rule")).ok_or("a library check without `metric`")?;
            let args = f.take("arguments").cloned().unwrap_or(Yaml::map());
            let zero = matches!(&op, Some(("mustBe", v)) if v.as_f64() == Some(0.0));
            let arg = |k: &str| args.get(k);
            let only = |keys: &[&str]| match &args {
                Yaml::Map(e) => e.iter().all(|(k, _)| keys.contains(&k.as_str())),
                _ => false,
            };
            match (metric.as_str(), column) {
                ("nullValues", Some(c)) if zero && only(&[]) => Yaml::map().with("rule", "not_null").with("column", c),
                ("duplicateValues", Some(c)) if zero && only(&[]) => Yaml::map().with("rule", "unique").with("column", c),
                ("duplicateValues", None) if zero && only(&["properties"]) => {
                    let cols = arg("properties").ok_or("`duplicateValues` on a table needs `arguments.properties`")?.clone();
                    match &cols {
                        Yaml::Seq(items) if items.len() == 1 => Yaml::map().with("rule", "unique").with("column", items[0].clone()),
                        _ => Yaml::map().with("rule", "unique").with("columns", cols),
                    }
                }
                ("invalidValues", Some(c)) if zero && only(&["validValues"]) => {
                    let values = match arg("validValues") {
                        Some(Yaml::Seq(items)) => items.iter().map(|v| v.scalar_text().map(Yaml::Str).ok_or("`validValues` must be scalars")).collect::<Result<Vec<_>, _>>()?,
                        _ => return Err("`invalidValues` needs `arguments.validValues` or `arguments.pattern`".into()),
                    };
                    Yaml::map().with("rule", "accepted_values").with("column", c).with("values", values)
                }
                ("invalidValues", Some(c)) if zero && only(&["pattern"]) => {
                    let pattern = arg("pattern").and_then(Yaml::scalar_text).ok_or("`arguments.pattern` must be text")?;
                    Yaml::map().with("rule", "regex").with("column", c).with("pattern", pattern)
                }
                ("rowCount", None) if only(&[]) => {
                    let n = |v: &Yaml| match v.as_f64() {
                        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Ok(f as i64),
                        _ => Err("a row count bound must be a whole number".to_owned()),
                    };
                    let (min, max) = match &op {
                        Some(("mustBe", v)) => (Some(n(v)?), Some(n(v)?)),
                        Some(("mustBeGreaterOrEqualTo", v)) => (Some(n(v)?), None),
                        Some(("mustBeGreaterThan", v)) => (Some(n(v)? + 1), None),
                        Some(("mustBeLessOrEqualTo", v)) => (None, Some(n(v)?)),
                        Some(("mustBeLessThan", v)) => (None, Some((n(v)? - 1).max(0))),
                        Some(("mustBeBetween", Yaml::Seq(b))) if b.len() == 2 => (Some(n(&b[0])?), Some(n(&b[1])?)),
                        _ => return Err("this `rowCount` comparison has no Meshwork rule".into()),
                    };
                    Yaml::map().with("rule", "row_count").with_opt("min", min).with_opt("max", max)
                }
                (metric, _) => return Err(format!("library metric `{metric}` with this threshold has no Meshwork rule")),
            }
        }
        "sql" => {
            let query = f.text("query").ok_or("an SQL check without `query`")?;
            let query = from_placeholders(&query, column);
            let assert = match &op {
                Some(("mustBe", Yaml::Bool(true))) => query,
                Some((op, value)) => {
                    let sql_op = match *op {
                        "mustBe" => "=",
                        "mustNotBe" => "<>",
                        "mustBeGreaterThan" => ">",
                        "mustBeGreaterOrEqualTo" => ">=",
                        "mustBeLessThan" => "<",
                        "mustBeLessOrEqualTo" => "<=",
                        "mustBeBetween" | "mustNotBeBetween" => {
                            let Yaml::Seq(b) = value else { return Err("a range needs two numbers".into()) };
                            let (lo, hi) = (b.first().and_then(Yaml::scalar_text).unwrap_or_default(), b.get(1).and_then(Yaml::scalar_text).unwrap_or_default());
                            let not = if *op == "mustNotBeBetween" { "NOT " } else { "" };
                            f.finish(report);
                            return Ok(named(Yaml::map().with("rule", "sql").with("assert", format!("SELECT ({}) {not}BETWEEN {lo} AND {hi}", query.trim().trim_end_matches(';'))), name, severity));
                        }
                        _ => unreachable!("listed above"),
                    };
                    let value = value.scalar_text().ok_or("the threshold must be a number")?;
                    format!("SELECT ({}) {sql_op} {value}", query.trim().trim_end_matches(';'))
                }
                None => return Err("an SQL check without a threshold (`mustBe`, …)".into()),
            };
            Yaml::map().with("rule", "sql").with("assert", assert)
        }
        other => {
            f.take_all();
            return Err(format!("`{other}` checks are not executable by Meshwork"));
        }
    };
    f.finish(report);
    Ok(named(rule, name, severity))
}

fn named(rule: Yaml, name: Option<String>, severity: &str) -> Yaml {
    let Yaml::Map(mut entries) = rule else { return rule };
    let mut head = vec![entries.remove(0)];
    if let Some(name) = name {
        head.push(("name".into(), Yaml::Str(name)));
    }
    if severity == "warn" {
        head.push(("severity".into(), Yaml::from("warn")));
    }
    head.extend(entries);
    Yaml::Map(head)
}

/// SQL over Meshwork's `this` written with ODCS's `{object}` placeholder: every bare word
/// `this` outside strings, quoted names and comments.
pub fn to_placeholders(sql: &str) -> String {
    map_words(sql, |word| if word == "this" { Some("{object}".into()) } else { None })
}

/// SQL with ODCS placeholders (`{object}`, `${table}`, `{property}`, …) written over `this`
/// and the column.
pub fn from_placeholders(sql: &str, column: Option<&str>) -> String {
    let mut out = sql.to_owned();
    for table in ["object", "model", "table"] {
        out = out.replace(&format!("${{{table}}}"), "this").replace(&format!("{{{table}}}"), "this");
    }
    if let Some(column) = column {
        for col in ["property", "column", "field"] {
            out = out.replace(&format!("${{{col}}}"), column).replace(&format!("{{{col}}}"), column);
        }
    }
    out
}

fn map_words(sql: &str, replace: impl Fn(&str) -> Option<String>) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let skip_to = |end: &str, from: usize| {
            let rest: String = chars[from..].iter().collect();
            rest.find(end).map(|at| from + rest[..at].chars().count() + end.chars().count()).unwrap_or(chars.len())
        };
        let next = if c == '\'' || c == '"' {
            skip_to(&c.to_string(), i + 1)
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            skip_to("\n", i)
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            skip_to("*/", i + 2)
        } else if c.is_alphabetic() || c == '_' {
            let mut end = i;
            while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            let word: String = chars[i..end].iter().collect();
            let after_dot = i > 0 && chars[i - 1] == '.';
            match replace(&word).filter(|_| !after_dot) {
                Some(new) => out.push_str(&new),
                None => out.push_str(&word),
            }
            i = end;
            continue;
        } else {
            i + 1
        };
        out.extend(&chars[i..next]);
        i = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_skip_strings_and_qualified_names() {
        let sql = "SELECT count(*) = 0 FROM this WHERE note <> 'this' AND t.this > 0 -- this\n";
        let odcs = to_placeholders(sql);
        assert_eq!(odcs, "SELECT count(*) = 0 FROM {object} WHERE note <> 'this' AND t.this > 0 -- this\n");
        assert_eq!(from_placeholders(&odcs, None), sql);
    }
}
