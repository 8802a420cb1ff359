//! Parsers for `mesh.yaml`, `domain.yaml` and `product.yaml` that report every problem in a file
//! at once, each with its line, column, field path and a hint.

// One import list for every section (each `use super::*`): they share most of it.
use std::collections::{BTreeMap, HashSet};

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;

use crate::column_type::ColumnType;
use crate::descriptor::*;
use crate::diagnostic::{Diagnostic, DiagnosticCode, did_you_mean, one_of};
use crate::event::EventKind;
use crate::id::{DomainName, NameError, ProductId, ProductName, check_identifier, check_name};
use crate::yaml::{Decoder, Positions, join};

mod access;
mod aggregate;
mod cluster;
mod domain;
mod mesh;
mod openlineage;
mod product;
mod rules;

use access::*;
use aggregate::*;
use cluster::*;
use domain::*;
use mesh::*;
use openlineage::*;
use product::*;
use rules::*;

pub use domain::parse_domain;
pub use mesh::parse_mesh_config;
pub use product::parse_product;

/// Result of parsing one file: the value with the position of its fields, or every problem found.
pub type Parsed<T> = Result<Located<T>, Vec<Diagnostic>>;

/// A parsed value and where its fields sit in the file.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Positions of the fields, for diagnostics raised by later checks.
    pub positions: Positions,
}

fn finish<T>(decoder: Decoder<'_>, value: Option<T>) -> Parsed<T> {
    match value {
        Some(value) if decoder.diagnostics.is_empty() => Ok(Located { value, positions: decoder.positions }),
        _ => Err(decoder.diagnostics),
    }
}

fn name_error(err: NameError) -> (String, Option<String>) {
    match err {
        NameError::Invalid(name) => (
            format!("`{name}` is not a valid name"),
            Some(format!("use snake_case: a lowercase letter, then lowercase letters, digits or `_`, e.g. `{}`", snake_case(&name))),
        ),
        NameError::NotQualified(text) => {
            (format!("`{text}` is not a product address"), Some("write it as `domain.product`, e.g. `sales.orders`".into()))
        }
    }
}

/// A best-effort snake_case spelling of `name`, for hints.
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_owned();
    if out.starts_with(|c: char| c.is_ascii_lowercase()) { out } else { format!("p_{out}") }
}

/// Parses a duration like `90s`, `15m`, `24h`, `7d` or `2w`.
pub fn parse_duration(text: &str) -> Result<DurationSpec, (String, Option<String>)> {
    let bad = || (format!("invalid duration `{text}`"), Some("write a whole number and a unit `s`, `m`, `h`, `d` or `w`, e.g. `24h`".into()));
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    Ok(DurationSpec { seconds: number * factor })
}

fn parse_port(text: &str) -> Result<u16, (String, Option<String>)> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| (format!("`{text}` is not a TCP port"), Some("use a number from 1 to 65535".into())))
}

/// Parses a size like `512MiB`, `2GiB`, `64MB` or a number of bytes.
pub fn parse_bytes(text: &str) -> Result<u64, (String, Option<String>)> {
    let bad = || (format!("invalid size `{text}`"), Some("write a number and a unit `KiB`, `MiB`, `GiB` (or `KB`, `MB`, `GB`), e.g. `512MiB`".into()));
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    number.checked_mul(factor).filter(|n| *n > 0).ok_or_else(bad)
}
