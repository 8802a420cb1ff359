//! `product.yaml` access policy (readers, row filters, masks, discoverability) and output ports;
//! `access.aggregate_only` is in `aggregate.rs`.

// Imports are shared by every section of the parser: see `mod.rs`.
use super::*;

pub(super) fn access(d: &mut Decoder<'_>, node: &Node, contract: Option<&Contract>) -> Option<Access> {
    let map = d.mapping(node, "access", &["readers", "row_filter", "masks", "unmasked_for", "discoverable", "aggregate_only"])?;
    let readers = principal_refs(d, map, "access", "readers");
    let row_filter = d.text(map, "access", "row_filter");
    let unmasked_for = principal_refs(d, map, "access", "unmasked_for");
    let mut masks = BTreeMap::new();
    if let Some(node) = Decoder::get(map, "masks") {
        match node.as_mapping() {
            Some(m) => {
                for (key, value) in m.iter() {
                    let field = join("access.masks", key.as_str());
                    if let Some(contract) = contract {
                        check_column(d, &contract.columns, key.as_str(), key.span(), &field);
                    }
                    if let Some(mask) = mask(d, value, &field) {
                        let column = contract.and_then(|c| c.column(key.as_str()));
                        if let Some(column) = column
                            && matches!(mask, Mask::Redact | Mask::Partial { .. })
                            && column.data_type != ColumnType::String
                        {
                            d.report(
                                DiagnosticCode::InvalidValue,
                                key.span(),
                                &field,
                                format!("mask `{}` needs a string column, but `{}` is {}", mask.kind(), key.as_str(), column.data_type),
                                Some("use `hash` or `null` for columns of other types".into()),
                            );
                        }
                        masks.insert(key.as_str().to_owned(), mask);
                    }
                }
            }
            None => {
                d.mapping(node, "access.masks", &[]);
            }
        }
    }
    let discoverable = d.boolean(map, "access", "discoverable").unwrap_or(false);
    let aggregate_only = Decoder::get(map, "aggregate_only").and_then(|node| aggregate_only(d, node, contract));
    Some(Access { readers, row_filter, masks, unmasked_for, discoverable, aggregate_only })
}

pub(super) const MASK_KINDS: &[(&str, &str)] = &[("hash", "hash"), ("redact", "redact"), ("null", "null"), ("partial", "partial"), ("sql", "sql")];

pub(super) fn mask(d: &mut Decoder<'_>, node: &Node, field: &str) -> Option<Mask> {
    let kind = if let Some(scalar) = node.as_scalar() {
        let text = scalar.as_str();
        match MASK_KINDS.iter().find(|(k, _)| *k == text) {
            Some((k, _)) if *k != "sql" => *k,
            _ => {
                d.report(
                    DiagnosticCode::InvalidValue,
                    scalar.span(),
                    field,
                    format!("unknown mask `{text}`, expected one of `hash`, `redact`, `null` or `partial`"),
                    Some("for a SQL expression write `{ kind: sql, expr: \"…\" }`".into()),
                );
                return None;
            }
        }
    } else {
        let m = d.mapping(node, field, &["kind", "keep_first", "keep_last", "expr"])?;
        let kind = d.choice(m, field, "kind", Some("partial"), MASK_KINDS)?;
        let count = |t: &str| t.parse::<u32>().map_err(|_| (format!("`{t}` is not a character count"), None));
        if kind == "partial" {
            let keep_first = d.parsed(m, field, "keep_first", None, DiagnosticCode::InvalidValue, count).unwrap_or(0);
            let keep_last = d.parsed(m, field, "keep_last", None, DiagnosticCode::InvalidValue, count).unwrap_or(4);
            return Some(Mask::Partial { keep_first, keep_last });
        }
        if kind == "sql" {
            return d.required_text(m, field, "expr", "'***'").map(|expr| Mask::Sql { expr });
        }
        kind
    };
    Some(match kind {
        "hash" => Mask::Hash,
        "redact" => Mask::Redact,
        "null" => Mask::Null,
        _ => Mask::Partial { keep_first: 0, keep_last: 4 },
    })
}

pub(super) fn output_ports(d: &mut Decoder<'_>, node: &Node) -> Option<OutputPorts> {
    let map = d.mapping(node, "output_ports", &["sql", "flight_sql", "postgres", "rest", "file_export"])?;
    let mut ports = OutputPorts::default();
    for (key, slot) in [
        ("sql", &mut ports.sql),
        ("flight_sql", &mut ports.flight_sql),
        ("postgres", &mut ports.postgres),
        ("rest", &mut ports.rest),
        ("file_export", &mut ports.file_export),
    ] {
        if let Some(value) = d.boolean(map, "output_ports", key) {
            *slot = value;
        }
    }
    Some(ports)
}
