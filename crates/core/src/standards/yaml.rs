//! An ordered YAML value for the standards documents: built in field order, written in block
//! style that YAML 1.1 and 1.2 readers (PyYAML, yaml-rust2) read back as the same value, and
//! read from text with every scalar typed as a YAML reader would.
//!
//! Why not serde: `serde_json` here does not keep key order and the workspace has no YAML
//! writer; the documents are small, so one value type with a careful scalar writer is simpler
//! than another dependency.

use marked_yaml::Node;

use crate::diagnostic::{Diagnostic, DiagnosticCode};

/// A YAML value whose mappings keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text.
    Str(String),
    /// A list.
    Seq(Vec<Yaml>),
    /// A mapping, in key order.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// An empty mapping, to fill with [`Yaml::with`].
    pub fn map() -> Yaml {
        Yaml::Map(Vec::new())
    }

    /// This mapping with `key` set to `value` (appended).
    pub fn with(mut self, key: &str, value: impl Into<Yaml>) -> Yaml {
        self.set(key, value);
        self
    }

    /// This mapping with `key` set when `value` is `Some`.
    pub fn with_opt<V: Into<Yaml>>(mut self, key: &str, value: Option<V>) -> Yaml {
        if let Some(value) = value {
            self.set(key, value);
        }
        self
    }

    /// This mapping with `key` set when `items` is not empty.
    pub fn with_seq(mut self, key: &str, items: Vec<Yaml>) -> Yaml {
        if !items.is_empty() {
            self.set(key, Yaml::Seq(items));
        }
        self
    }

    /// Sets `key` (replacing an existing entry in place).
    pub fn set(&mut self, key: &str, value: impl Into<Yaml>) {
        if let Yaml::Map(entries) = self {
            let value = value.into();
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key.to_owned(), value)),
            }
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a scalar as a reader would print it: strings as they are, numbers and
    /// booleans in their plain spelling.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A number as `f64` (also a number kept as text, like `99.90`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Yaml::Int(i) => Some(*i as f64),
            Yaml::Float(f) => Some(*f),
            Yaml::Str(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
            _ => None,
        }
    }

    /// The document as YAML text, ending with a newline.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        match self {
            Yaml::Map(entries) if !entries.is_empty() => write_entries(&mut out, entries, 0),
            Yaml::Seq(items) if !items.is_empty() => write_items(&mut out, items, 0),
            other => {
                out.push_str(&inline(other, 0));
                out.push('\n');
            }
        }
        out
    }
}

impl From<&str> for Yaml {
    fn from(s: &str) -> Yaml {
        Yaml::Str(s.to_owned())
    }
}
impl From<String> for Yaml {
    fn from(s: String) -> Yaml {
        Yaml::Str(s)
    }
}
impl From<&String> for Yaml {
    fn from(s: &String) -> Yaml {
        Yaml::Str(s.clone())
    }
}
impl From<bool> for Yaml {
    fn from(b: bool) -> Yaml {
        Yaml::Bool(b)
    }
}
impl From<i64> for Yaml {
    fn from(i: i64) -> Yaml {
        Yaml::Int(i)
    }
}
impl From<u64> for Yaml {
    fn from(i: u64) -> Yaml {
        i64::try_from(i).map(Yaml::Int).unwrap_or(Yaml::Float(i as f64))
    }
}
impl From<u32> for Yaml {
    fn from(i: u32) -> Yaml {
        Yaml::Int(i64::from(i))
    }
}
impl From<f64> for Yaml {
    /// Whole numbers stay floats in the value; the writer spells them without a fraction.
    fn from(f: f64) -> Yaml {
        Yaml::Float(f)
    }
}
impl From<Vec<Yaml>> for Yaml {
    fn from(items: Vec<Yaml>) -> Yaml {
        Yaml::Seq(items)
    }
}
impl From<Vec<String>> for Yaml {
    fn from(items: Vec<String>) -> Yaml {
        Yaml::Seq(items.into_iter().map(Yaml::Str).collect())
    }
}
impl From<&Vec<String>> for Yaml {
    fn from(items: &Vec<String>) -> Yaml {
        Yaml::Seq(items.iter().cloned().map(Yaml::Str).collect())
    }
}

fn indent(out: &mut String, level: usize) {
    out.extend(std::iter::repeat_n(' ', level));
}

fn is_block(value: &Yaml) -> bool {
    matches!(value, Yaml::Map(e) if !e.is_empty()) || matches!(value, Yaml::Seq(i) if !i.is_empty())
}

fn write_entries(out: &mut String, entries: &[(String, Yaml)], level: usize) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        out.push_str(&string_scalar(key, level));
        out.push(':');
        write_value(out, value, level + 2);
    }
}

fn write_items(out: &mut String, items: &[Yaml], level: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        out.push_str("- ");
        match item {
            Yaml::Map(entries) if !entries.is_empty() => write_entries(out, entries, level + 2),
            Yaml::Seq(inner) if !inner.is_empty() => write_items(out, inner, level + 2),
            other => {
                out.push_str(&inline(other, level + 2));
                out.push('\n');
            }
        }
    }
}

/// Writes what follows `key:` (the value on the same line, or a block on the next ones).
fn write_value(out: &mut String, value: &Yaml, level: usize) {
    if is_block(value) {
        out.push('\n');
        indent(out, level);
        match value {
            Yaml::Map(entries) => write_entries(out, entries, level),
            Yaml::Seq(items) => write_items(out, items, level),
            _ => unreachable!("checked by is_block"),
        }
    } else {
        out.push(' ');
        out.push_str(&inline(value, level));
        out.push('\n');
    }
}

fn inline(value: &Yaml, level: usize) -> String {
    match value {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Int(i) => i.to_string(),
        Yaml::Float(f) if f.is_finite() => f.to_string(),
        Yaml::Float(f) if f.is_nan() => ".nan".into(),
        Yaml::Float(f) => if *f > 0.0 { ".inf" } else { "-.inf" }.into(),
        Yaml::Str(s) => string_scalar(s, level),
        Yaml::Seq(_) => "[]".into(),
        Yaml::Map(_) => "{}".into(),
    }
}

/// A string as a plain scalar when every YAML 1.1 and 1.2 reader reads it back as that same
/// string, as a literal block when it has several clean lines, else double-quoted.
fn string_scalar(s: &str, level: usize) -> String {
    if is_plain_safe(s) {
        return s.to_owned();
    }
    if let Some(block) = literal_block(s, level) {
        return block;
    }
    serde_json::to_string(s).expect("a string serializes")
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    // A leading digit could read as a number, a date or a sexagesimal in YAML 1.1.
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/' || first == '(') {
        return false;
    }
    let reserved = ["true", "false", "yes", "no", "on", "off", "null", "y", "n"];
    if reserved.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || " _-./(),;'=<>+@$%^*?!~".contains(c);
    s.chars().all(allowed) && !s.ends_with(' ') && !s.contains(": ") && !s.contains(" #") && !s.ends_with(':')
}

fn literal_block(s: &str, level: usize) -> Option<String> {
    let body = s.strip_suffix('\n');
    let (text, chomp) = match body {
        Some(body) if !body.ends_with('\n') => (body, "|"),
        Some(_) => return None,
        None => (s, "|-"),
    };
    let clean = text.contains('\n')
        && !text.starts_with([' ', '\n'])
        && text.lines().all(|line| !line.ends_with([' ', '\t']) && line.chars().all(|c| c == '\t' || !c.is_control()));
    if !clean {
        return None;
    }
    let mut out = String::from(chomp);
    for line in text.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(&mut out, level);
            out.push_str(line);
        }
    }
    Some(out)
}

/// Reads a YAML document into a [`Yaml`] value: unquoted scalars become booleans, numbers and
/// nulls as a YAML reader types them; quoted ones stay text.
pub fn parse(file: &str, text: &str) -> Result<Yaml, Diagnostic> {
    let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
    match marked_yaml::parse_yaml_with_options(0, text, options) {
        Ok(node) => Ok(from_node(&node)),
        Err(err) => Err(Diagnostic::new(DiagnosticCode::Syntax, file, format!("invalid YAML: {err}"))
            .hint("a contract or product file is a YAML mapping, e.g. `apiVersion: v3.1.0`")),
    }
}

fn from_node(node: &Node) -> Yaml {
    match node {
        Node::Scalar(scalar) => {
            let text = scalar.as_str();
            if !scalar.may_coerce() {
                return Yaml::Str(text.to_owned());
            }
            match text {
                "" | "~" | "null" | "Null" | "NULL" => Yaml::Null,
                "true" | "True" | "TRUE" => Yaml::Bool(true),
                "false" | "False" | "FALSE" => Yaml::Bool(false),
                // A number whose text would not be written back the same (`1.0`, `007`) keeps
                // its text: it is most likely a version or a code; `as_f64` still reads it.
                _ => match (text.parse::<i64>(), text.parse::<f64>()) {
                    (Ok(i), _) if i.to_string() == text => Yaml::Int(i),
                    (_, Ok(f)) if f.to_string() == text => Yaml::Float(f),
                    _ => Yaml::Str(text.to_owned()),
                },
            }
        }
        Node::Sequence(items) => Yaml::Seq(items.iter().map(from_node).collect()),
        Node::Mapping(map) => Yaml::Map(map.iter().map(|(k, v)| (k.as_str().to_owned(), from_node(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads() {
        let doc = Yaml::map()
            .with("version", "1.0.0")
            .with("title", "Web shop: orders")
            .with("flag", "yes")
            .with("sql", "SELECT 1\nFROM t\n")
            .with("inline", "SELECT 1\n  FROM t")
            .with("n", 3i64)
            .with("ratio", 0.99)
            .with("whole", 1.0)
            .with("empty", Yaml::Seq(vec![]))
            .with("list", vec![Yaml::map().with("a", "b").with("c", vec![Yaml::from("x")]), Yaml::from("plain")]);
        let text = doc.to_text();
        let back = parse("t.yaml", &text).unwrap();
        assert_eq!(back.get("version"), Some(&Yaml::from("1.0.0")));
        assert_eq!(back.get("title"), Some(&Yaml::from("Web shop: orders")));
        assert_eq!(back.get("flag"), Some(&Yaml::from("yes")));
        assert_eq!(back.get("sql"), Some(&Yaml::from("SELECT 1\nFROM t\n")));
        assert_eq!(back.get("inline"), Some(&Yaml::from("SELECT 1\n  FROM t")));
        assert_eq!(back.get("n"), Some(&Yaml::Int(3)));
        assert_eq!(back.get("ratio"), Some(&Yaml::Float(0.99)));
        assert_eq!(back.get("whole"), Some(&Yaml::Int(1)));
        let typed = parse("t.yaml", "version: 1.0\ncode: 007\nratio: 0.5\nn: -3\n").unwrap();
        assert_eq!(typed.get("version"), Some(&Yaml::from("1.0")));
        assert_eq!(typed.get("code"), Some(&Yaml::from("007")));
        assert_eq!(typed.get("ratio"), Some(&Yaml::Float(0.5)));
        assert_eq!(typed.get("n"), Some(&Yaml::Int(-3)));
        assert_eq!(back.get("list").unwrap(), doc.get("list").unwrap());
        assert!(text.contains("sql: |\n  SELECT 1\n  FROM t\n"), "{text}");
    }
}
