//! Decodes marked YAML nodes into descriptor values, collecting every problem instead of
//! stopping at the first, and keeping the line and column of each.

use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, Span};

use crate::diagnostic::{Diagnostic, DiagnosticCode, did_you_mean, one_of};

/// Decoding state for one file: its name and the problems found so far.
pub(crate) struct Decoder<'f> {
    file: &'f str,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Where each scalar field that was read sits, for diagnostics raised after parsing.
    pub(crate) positions: Positions,
}

/// Line and column of each field read from a file, by field path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions(std::collections::BTreeMap<String, (usize, usize)>);

impl Positions {
    /// The 1-based line and column of `field`, if it was read from the file.
    pub fn locate(&self, field: &str) -> Option<(usize, usize)> {
        self.0.get(field).copied()
    }

    /// The position of `field`, or of its nearest enclosing field that was read (`a.b[2].c` →
    /// `a.b[2]` → `a.b` → `a`): a missing field is reported where it should have been.
    pub fn locate_nearest(&self, field: &str) -> Option<(usize, usize)> {
        let mut current = field;
        loop {
            if let Some(found) = self.locate(current) {
                return Some(found);
            }
            let cut = current.rfind(['.', '['])?;
            current = &current[..cut];
        }
    }
}

/// Appends `key` to a dotted field path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Whether a scalar means "no value": YAML's empty value, `~` and `null`.
fn is_null(scalar: &MarkedScalarNode) -> bool {
    matches!(scalar.as_str(), "" | "~" | "null" | "Null" | "NULL") && scalar.may_coerce()
}

impl<'f> Decoder<'f> {
    pub(crate) fn new(file: &'f str) -> Self {
        Decoder { file, diagnostics: Vec::new(), positions: Positions::default() }
    }

    /// The file being decoded.
    pub(crate) fn file(&self) -> &'f str {
        self.file
    }

    /// Parses `text` into a top-level mapping, reporting a syntax error with its position.
    pub(crate) fn load(&mut self, text: &str) -> Option<Node> {
        let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
        match marked_yaml::parse_yaml_with_options(0, text, options) {
            Ok(node) => Some(node),
            Err(err) => {
                use marked_yaml::LoadError;
                let (marker, message, hint) = match &err {
                    LoadError::TopLevelMustBeMapping(m) => {
                        (Some(*m), "the file must be a YAML mapping of fields".to_owned(), Some("start with `name: …`".to_owned()))
                    }
                    LoadError::DuplicateKey(inner) => (
                        inner.key.span().start().copied(),
                        format!("field `{}` is given twice", inner.key.as_str()),
                        Some("keep one of them".to_owned()),
                    ),
                    LoadError::ScanError(m, scan) => (Some(*m), format!("invalid YAML: {scan}"), None),
                    LoadError::TopLevelMustBeSequence(m)
                    | LoadError::UnexpectedAnchor(m)
                    | LoadError::MappingKeyMustBeScalar(m)
                    | LoadError::UnexpectedTag(m) => (Some(*m), format!("invalid YAML: {err}"), None),
                };
                let mut diagnostic = Diagnostic::new(DiagnosticCode::Syntax, self.file, message);
                if let Some(marker) = marker {
                    diagnostic = diagnostic.at(marker.line(), marker.column());
                }
                if let Some(hint) = hint {
                    diagnostic = diagnostic.hint(hint);
                }
                self.diagnostics.push(diagnostic);
                None
            }
        }
    }

    /// Records a problem at `span`.
    pub(crate) fn report(&mut self, code: DiagnosticCode, span: &Span, field: &str, message: String, hint: Option<String>) {
        let mut diagnostic = Diagnostic::new(code, self.file, message).field(field);
        if let Some(start) = span.start() {
            diagnostic = diagnostic.at(start.line(), start.column());
        }
        diagnostic.hint = hint;
        self.diagnostics.push(diagnostic);
    }

    /// Checks that `node` is a mapping whose keys are all in `allowed`, reporting any other key
    /// with the closest allowed one as a hint.
    pub(crate) fn mapping<'n>(&mut self, node: &'n Node, field: &str, allowed: &[&str]) -> Option<&'n MarkedMappingNode> {
        let Some(map) = node.as_mapping() else {
            let what = if field.is_empty() { "the file".to_owned() } else { format!("`{field}`") };
            self.report(
                DiagnosticCode::InvalidValue,
                node.span(),
                field,
                format!("{what} must be a mapping of fields"),
                Some(format!("expected fields {}", one_of(allowed.iter().copied()))),
            );
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                let hint = match did_you_mean(key.as_str(), allowed.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("expected one of {}", one_of(allowed.iter().copied())),
                };
                self.report(
                    DiagnosticCode::UnknownField,
                    key.span(),
                    &join(field, key.as_str()),
                    format!("unknown field `{}`", key.as_str()),
                    Some(hint),
                );
            }
        }
        Some(map)
    }

    /// The value of `key`, or `None` when it is absent or null.
    pub(crate) fn get<'n>(map: &'n MarkedMappingNode, key: &str) -> Option<&'n Node> {
        match map.get_node(key) {
            Some(Node::Scalar(scalar)) if is_null(scalar) => None,
            other => other,
        }
    }

    /// The value of a required `key`; reports it missing.
    pub(crate) fn required<'n>(&mut self, map: &'n MarkedMappingNode, path: &str, key: &str, example: &str) -> Option<&'n Node> {
        let node = Self::get(map, key);
        if node.is_none() {
            self.report(
                DiagnosticCode::MissingField,
                map.span(),
                &join(path, key),
                format!("missing required field `{key}`"),
                Some(format!("add `{key}: {example}`")),
            );
        }
        node
    }

    /// Records where `field` sits, for diagnostics raised after parsing.
    pub(crate) fn mark(&mut self, field: &str, node: &Node) {
        if let Some(start) = node.span().start() {
            self.positions.0.insert(field.to_owned(), (start.line(), start.column()));
        }
    }

    /// Checks that `node` is a scalar.
    pub(crate) fn scalar<'n>(&mut self, node: &'n Node, field: &str, expected: &str) -> Option<&'n MarkedScalarNode> {
        let scalar = node.as_scalar();
        self.mark(field, node);
        if scalar.is_none() {
            let found = if node.as_mapping().is_some() { "a mapping" } else { "a list" };
            self.report(DiagnosticCode::InvalidValue, node.span(), field, format!("expected {expected}, found {found}"), None);
        }
        scalar
    }

    /// An optional text field.
    pub(crate) fn text(&mut self, map: &MarkedMappingNode, path: &str, key: &str) -> Option<String> {
        let node = Self::get(map, key)?;
        self.scalar(node, &join(path, key), "text").map(|s| s.as_str().to_owned())
    }

    /// A required text field.
    pub(crate) fn required_text(&mut self, map: &MarkedMappingNode, path: &str, key: &str, example: &str) -> Option<String> {
        let node = self.required(map, path, key, example)?;
        self.scalar(node, &join(path, key), "text").map(|s| s.as_str().to_owned())
    }

    /// A field parsed by `parse`, which returns a message and an optional hint on failure.
    pub(crate) fn parsed<T>(
        &mut self,
        map: &MarkedMappingNode,
        path: &str,
        key: &str,
        required: Option<&str>,
        code: DiagnosticCode,
        parse: impl FnOnce(&str) -> Result<T, (String, Option<String>)>,
    ) -> Option<T> {
        let field = join(path, key);
        let node = match required {
            Some(example) => self.required(map, path, key, example)?,
            None => Self::get(map, key)?,
        };
        let scalar = self.scalar(node, &field, "a single value")?;
        match parse(scalar.as_str()) {
            Ok(value) => Some(value),
            Err((message, hint)) => {
                self.report(code, scalar.span(), &field, message, hint);
                None
            }
        }
    }

    /// An optional boolean field.
    pub(crate) fn boolean(&mut self, map: &MarkedMappingNode, path: &str, key: &str) -> Option<bool> {
        self.parsed(map, path, key, None, DiagnosticCode::InvalidValue, |text| match text {
            "true" | "True" | "TRUE" | "yes" => Ok(true),
            "false" | "False" | "FALSE" | "no" => Ok(false),
            other => Err((format!("expected `true` or `false`, found `{other}`"), None)),
        })
    }

    /// A value that must be one of `choices`.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        map: &MarkedMappingNode,
        path: &str,
        key: &str,
        required: Option<&str>,
        choices: &[(&str, T)],
    ) -> Option<T> {
        self.parsed(map, path, key, required, DiagnosticCode::InvalidValue, |text| {
            choices.iter().find(|(name, _)| *name == text).map(|(_, value)| *value).ok_or_else(|| {
                let names = choices.iter().map(|(name, _)| *name);
                let hint = did_you_mean(text, names.clone()).map(|close| format!("did you mean `{close}`?"));
                (format!("unknown value `{text}`, expected one of {}", one_of(names)), hint)
            })
        })
    }

    /// The items of a list field, with their field paths; a missing field is an empty list.
    pub(crate) fn list<'n>(&mut self, map: &'n MarkedMappingNode, path: &str, key: &str) -> Vec<(String, &'n Node)> {
        let field = join(path, key);
        let Some(node) = Self::get(map, key) else { return Vec::new() };
        self.mark(&field, node);
        match node.as_sequence() {
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_field = format!("{field}[{i}]");
                    self.mark(&item_field, item);
                    (item_field, item)
                })
                .collect(),
            None => {
                self.report(
                    DiagnosticCode::InvalidValue,
                    node.span(),
                    &field,
                    format!("`{key}` must be a list"),
                    Some(format!("write it as `{key}: [a, b]` or one `- item` per line")),
                );
                Vec::new()
            }
        }
    }

    /// A list of texts.
    pub(crate) fn texts(&mut self, map: &MarkedMappingNode, path: &str, key: &str) -> Vec<String> {
        let items = self.list(map, path, key);
        items
            .into_iter()
            .filter_map(|(field, node)| self.scalar(node, &field, "text").map(|s| s.as_str().to_owned()))
            .collect()
    }
}
