//! `access.aggregate_only` in `product.yaml`: aggregate-only readers, the smallest group shown,
//! hidden columns, and differential privacy (mechanism, ε per answer, budget per window, bounds).

// Imports are shared by every section of the parser: see `mod.rs`.
use super::*;
use crate::aggregate::{AggregateOnly, Bounds, Finite, NoiseMechanism, Privacy};

const PATH: &str = "access.aggregate_only";
const PRIVACY: &str = "access.aggregate_only.privacy";

pub(super) fn aggregate_only(d: &mut Decoder<'_>, node: &Node, contract: Option<&Contract>) -> Option<AggregateOnly> {
    let map = d.mapping(node, PATH, &["readers", "min_group_size", "columns_hidden", "privacy"])?;
    let readers = principal_refs(d, map, PATH, "readers");
    if readers.is_empty() {
        d.report(
            DiagnosticCode::MissingField,
            map.span(),
            &join(PATH, "readers"),
            "`aggregate_only` names no readers".into(),
            Some("add `readers: [group:partners]`, the principals that may query the product only in aggregate".into()),
        );
    }
    let min_group_size = d
        .parsed(map, PATH, "min_group_size", None, DiagnosticCode::InvalidValue, |text| {
            text.parse::<u64>().ok().filter(|n| *n >= 2).ok_or_else(|| {
                (format!("`{text}` is not a group size of at least 2"), Some("a group of one row is that row: write e.g. `min_group_size: 25`".into()))
            })
        })
        .unwrap_or(AggregateOnly::DEFAULT_MIN_GROUP_SIZE);
    let mut columns_hidden = Vec::new();
    for (field, item) in d.list(map, PATH, "columns_hidden") {
        let Some(scalar) = d.scalar(item, &field, "a column name") else { continue };
        if let Some(contract) = contract
            && !check_column(d, &contract.columns, scalar.as_str(), scalar.span(), &field)
        {
            continue;
        }
        columns_hidden.push(scalar.as_str().to_owned());
    }
    let privacy = Decoder::get(map, "privacy").and_then(|node| privacy(d, node, contract, &columns_hidden));
    Some(AggregateOnly { readers, min_group_size, columns_hidden, privacy })
}

/// A positive finite number.
fn positive(text: &str) -> Result<Finite, (String, Option<String>)> {
    text.parse::<f64>()
        .ok()
        .and_then(Finite::new)
        .filter(|n| n.get() > 0.0)
        .ok_or_else(|| (format!("`{text}` is not a positive number"), Some("write e.g. `0.5`".into())))
}

fn privacy(d: &mut Decoder<'_>, node: &Node, contract: Option<&Contract>, hidden: &[String]) -> Option<Privacy> {
    let map = d.mapping(node, PRIVACY, &["mechanism", "epsilon", "delta", "budget", "window", "bounds"])?;
    let code = DiagnosticCode::InvalidValue;
    let mechanism = d
        .choice(map, PRIVACY, "mechanism", None, &[("laplace", NoiseMechanism::Laplace), ("gaussian", NoiseMechanism::Gaussian)])
        .unwrap_or(NoiseMechanism::Laplace);
    let epsilon = d.parsed(map, PRIVACY, "epsilon", Some("0.5"), code, positive);
    let budget = d.parsed(map, PRIVACY, "budget", Some("5"), code, positive);
    let window = d.parsed(map, PRIVACY, "window", None, code, parse_duration).unwrap_or(DurationSpec { seconds: 86_400 });
    let delta = d.parsed(map, PRIVACY, "delta", None, code, |text| {
        text.parse::<f64>().ok().and_then(Finite::new).filter(|n| n.get() > 0.0 && n.get() < 1e-3).ok_or_else(|| {
            (format!("`{text}` is not a δ between 0 and 0.001"), Some("δ is the chance the guarantee fails; write e.g. `1e-6`".into()))
        })
    });
    let at = |key: &str| Decoder::get(map, key).map(|n| n.span().clone()).unwrap_or_else(|| map.span().clone());
    if window.seconds == 0 {
        d.report(code, &at("window"), &join(PRIVACY, "window"), "a budget window of no time renews at once".into(), Some("write e.g. `window: 1d`".into()));
    }
    if let (Some(epsilon), Some(budget)) = (epsilon, budget)
        && budget < epsilon
    {
        d.report(
            code,
            &at("budget"),
            &join(PRIVACY, "budget"),
            format!("the budget {budget} is smaller than one answer's epsilon {epsilon}: no query could be answered"),
            Some(format!("raise `budget` to at least {epsilon}")),
        );
    }
    match (mechanism, delta) {
        (NoiseMechanism::Gaussian, None) => d.report(
            DiagnosticCode::MissingField,
            map.span(),
            &join(PRIVACY, "delta"),
            "gaussian noise needs `delta`".into(),
            Some("add `delta: 1e-6`, or use `mechanism: laplace`".into()),
        ),
        (NoiseMechanism::Laplace, Some(_)) => d.report(
            code,
            &at("delta"),
            &join(PRIVACY, "delta"),
            "`delta` applies to gaussian noise only; laplace noise is pure ε-differential privacy".into(),
            Some("remove `delta`, or write `mechanism: gaussian`".into()),
        ),
        _ => {}
    }
    if mechanism == NoiseMechanism::Gaussian
        && let Some(epsilon) = epsilon
        && epsilon.get() > 1.0
    {
        d.report(
            code,
            &at("epsilon"),
            &join(PRIVACY, "epsilon"),
            format!("gaussian noise is calibrated for ε ≤ 1 per answer, found {epsilon}"),
            Some("lower `epsilon`, or use `mechanism: laplace`".into()),
        );
    }
    let mut bounds = BTreeMap::new();
    if let Some(node) = Decoder::get(map, "bounds") {
        let field = join(PRIVACY, "bounds");
        let entries = node.as_mapping();
        if entries.is_none() {
            d.report(code, node.span(), &field, "`bounds` must map columns to their `[lower, upper]`".into(), Some("write e.g. `bounds: { salary: [0, 300000] }`".into()));
        }
        if let Some(entries) = entries {
            for (key, value) in entries.iter() {
                let column_field = join(&field, key.as_str());
                let column = key.as_str();
                if let Some(contract) = contract {
                    if !check_column(d, &contract.columns, column, key.span(), &column_field) {
                        continue;
                    }
                    let numeric = contract.column(column).is_some_and(|c| {
                        matches!(
                            c.data_type,
                            ColumnType::TinyInt | ColumnType::SmallInt | ColumnType::Int | ColumnType::BigInt | ColumnType::Float | ColumnType::Double | ColumnType::Decimal { .. }
                        )
                    });
                    if !numeric {
                        d.report(code, key.span(), &column_field, format!("`{column}` is not a numeric column; only numbers are summed"), Some("remove it from `bounds`".into()));
                        continue;
                    }
                }
                if hidden.iter().any(|h| h == column) {
                    d.report(
                        code,
                        key.span(),
                        &column_field,
                        format!("`{column}` is in `columns_hidden`, so it is never summed"),
                        Some(format!("remove `{column}` from `bounds` or from `columns_hidden`")),
                    );
                    continue;
                }
                let pair = value.as_sequence().filter(|s| s.len() == 2).map(|s| {
                    s.iter().map(|n| n.as_scalar().and_then(|n| n.as_str().parse::<f64>().ok()).and_then(Finite::new)).collect::<Vec<_>>()
                });
                match pair.as_deref() {
                    Some([Some(lower), Some(upper)]) if lower < upper => {
                        bounds.insert(column.to_owned(), Bounds { lower: *lower, upper: *upper });
                    }
                    _ => d.report(
                        code,
                        value.span(),
                        &column_field,
                        format!("the bounds of `{column}` must be two numbers, the smaller first"),
                        Some(format!("write e.g. `{column}: [0, 10000]`: each row's value is clamped into them")),
                    ),
                }
            }
        }
    }
    Some(Privacy { mechanism, epsilon: epsilon?, delta, budget: budget?, window, bounds })
}
