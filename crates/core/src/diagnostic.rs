//! Diagnostics: errors in a mesh repository, each pointing at a file, a position and a field.

use std::fmt;

/// What kind of problem a [`Diagnostic`] reports; stable names for `--format json` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticCode {
    /// The file is not valid YAML or cannot be read.
    Syntax,
    /// A field that the descriptor format does not know.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A value of the wrong shape or out of its allowed set.
    InvalidValue,
    /// A name that does not follow the naming rules.
    InvalidName,
    /// A version that is not semantic versioning.
    InvalidVersion,
    /// A reference to a domain, product, file or column that does not exist.
    MissingReference,
    /// Two things declared with the same name.
    Duplicate,
    /// Products that depend on each other in a loop.
    DependencyCycle,
}

impl DiagnosticCode {
    /// The snake_case name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticCode::Syntax => "syntax",
            DiagnosticCode::UnknownField => "unknown_field",
            DiagnosticCode::MissingField => "missing_field",
            DiagnosticCode::InvalidValue => "invalid_value",
            DiagnosticCode::InvalidName => "invalid_name",
            DiagnosticCode::InvalidVersion => "invalid_version",
            DiagnosticCode::MissingReference => "missing_reference",
            DiagnosticCode::Duplicate => "duplicate",
            DiagnosticCode::DependencyCycle => "dependency_cycle",
        }
    }
}

/// One problem found in a mesh repository.
///
/// Rendered as `file:line:column: field: message (hint: …)`, the shape compilers use, so editors
/// and terminals can jump to the spot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// The kind of problem.
    pub code: DiagnosticCode,
    /// Path of the file, relative to the mesh repository root.
    pub file: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// 1-based column, where known.
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `contract.columns[2].type`; empty for the whole file.
    pub field: String,
    /// What is wrong, lowercase, naming the user's input in backticks.
    pub message: String,
    /// How to fix it, where there is something useful to say.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic about `file` with no position yet.
    pub fn new(code: DiagnosticCode, file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            file: file.into(),
            line: None,
            column: None,
            field: String::new(),
            message: message.into(),
            hint: None,
        }
    }

    /// Sets the 1-based line and column.
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// Sets the line and column when they are known.
    pub fn at_position(self, position: Option<(usize, usize)>) -> Self {
        match position {
            Some((line, column)) => self.at(line, column),
            None => self,
        }
    }

    /// Sets the field path.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Suggests the candidate closest to `input`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(input, c), c))
        .filter(|(distance, c)| *distance <= (c.len().max(input.len()) / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// Formats `candidates` as `` `a`, `b` or `c` `` for messages.
pub fn one_of<'a>(candidates: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}
