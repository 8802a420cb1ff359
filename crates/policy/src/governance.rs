//! Governance at publish time: every governance policy on a product's new and published
//! descriptors.

use meshwork_core::column_type::ColumnType;
use meshwork_core::descriptor::{DomainDescriptor, PolicyState, ProductDescriptor};
use meshwork_core::id::ProductId;
use serde_json::{Value, json};

use crate::lineage::GovernanceLineage;
use crate::policy::{PolicyKind, PolicySet, PolicyStates};

/// What a governance policy sees of one product.
#[derive(Debug, Clone, Copy)]
pub struct GovernanceInput<'a> {
    /// The descriptor about to be published.
    pub product: &'a ProductDescriptor,
    /// The descriptor of the currently published version, if any: rules about changes compare
    /// the two.
    pub previous: Option<&'a ProductDescriptor>,
    /// The owning domain.
    pub domain: Option<&'a DomainDescriptor>,
    /// The product's column lineage with what its domain reads of each source, when it was
    /// derived (products that read other products); `input.lineage` in Rego.
    pub lineage: Option<&'a GovernanceLineage>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The policy's id (`name` or `domain/name`).
    pub policy: String,
    /// `warn` (reported) or `enforce` (blocks the product).
    pub state: PolicyState,
    /// The product.
    pub product: ProductId,
    /// Field path in `product.yaml`, when the policy names one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Violation {
    /// Whether the violation blocks publishing.
    pub fn blocks(&self) -> bool {
        self.state == PolicyState::Enforce
    }
}

impl PolicySet {
    /// Evaluates every governance policy that is not `off` for the product's domain.
    ///
    /// A policy that fails to evaluate, or yields something other than violations, is reported
    /// as an `enforce` violation whatever its state: nobody can tell whether the product
    /// complies, so it is refused until the policy is fixed (or switched `off`), like a failing
    /// access policy denies. Failure never passes, not even as a warning.
    pub fn check_product(&self, states: &PolicyStates, input: GovernanceInput<'_>) -> Vec<Violation> {
        let id = input.product.id();
        let document = governance_document(input);
        let value = serde_json::from_value::<regorus::Value>(document).expect("a JSON tree is a valid policy input");
        let mut out = Vec::new();
        for policy in self.policies().iter().filter(|p| p.kind == PolicyKind::Governance) {
            let state = states.state(policy, &input.product.domain);
            if state == PolicyState::Off {
                continue;
            }
            let violation = |field: Option<String>, message: String| Violation {
                policy: policy.source.id(),
                state,
                product: id.clone(),
                field,
                message,
            };
            let failure = |message: String| Violation {
                policy: policy.source.id(),
                state: PolicyState::Enforce,
                product: id.clone(),
                field: None,
                message: format!("{message}; the product is refused until the policy is fixed in `{}` or set `off`", policy.source.file),
            };
            match policy.eval(&value, "violations") {
                Ok(None) => {}
                Ok(Some(Value::Array(items))) => {
                    for item in items {
                        match item {
                            Value::String(message) => out.push(violation(None, message)),
                            Value::Object(map) => {
                                let field = map.get("field").and_then(Value::as_str).map(str::to_owned);
                                let message = map.get("message").and_then(Value::as_str).map(str::to_owned);
                                out.push(violation(field, message.unwrap_or_else(|| Value::Object(map).to_string())));
                            }
                            other => out.push(violation(None, other.to_string())),
                        }
                    }
                }
                Ok(Some(other)) => {
                    out.push(failure(format!("`violations` must be a set of {{\"field\", \"message\"}} objects, found {other}")))
                }
                Err(err) => out.push(failure(format!("policy evaluation failed at {}", one_line(&err)))),
            }
        }
        out
    }
}

/// regorus reports an evaluation error over several lines, with an excerpt of the source; a
/// violation's message is one line: `<file>:<line>:<column>: <message>`.
fn one_line(error: &str) -> String {
    let location = error.lines().find_map(|l| l.trim().strip_prefix("--> ")).map(str::trim);
    let message = error.lines().rev().find_map(|l| l.trim().strip_prefix("error: "));
    match (location, message) {
        (Some(location), Some(message)) => format!("{location}: {message}"),
        _ => error.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// The `input` document of governance policies: `product`, `previous` and `changes` (the typed
/// diff of `meshwork_core::contract_diff`, each change with `kind`, `subject`, `detail` and
/// `breaking`; both absent for a first publish), `domain` and `lineage` (absent when not
/// derived). Absent optional fields are left out rather than `null`, so Rego's
/// `not input.product.owner` means what it reads.
pub(crate) fn governance_document(input: GovernanceInput<'_>) -> Value {
    let mut doc = serde_json::Map::new();
    doc.insert("product".into(), product_document(input.product));
    if let Some(previous) = input.previous {
        doc.insert("previous".into(), product_document(previous));
        let changes = meshwork_core::contract_diff::diff(previous, input.product);
        doc.insert("changes".into(), serde_json::to_value(changes).expect("changes serialize"));
    }
    let domain = match input.domain {
        Some(d) => json!({ "name": d.name.as_str(), "owners": d.owners, "members": d.members }),
        None => json!({ "name": input.product.domain.as_str(), "owners": [], "members": [] }),
    };
    doc.insert("domain".into(), domain);
    if let Some(lineage) = input.lineage {
        doc.insert("lineage".into(), lineage.document());
    }
    Value::Object(doc)
}

/// A descriptor as policies see it: its serde form without nulls, plus `id` and a structured
/// `type_info` per column so rules can reason about widening.
pub(crate) fn product_document(product: &ProductDescriptor) -> Value {
    let mut value = serde_json::to_value(product).expect("descriptors serialize");
    strip_nulls(&mut value);
    if let Value::Object(map) = &mut value {
        map.insert("id".into(), Value::String(product.id().to_string()));
        if let Some(Value::Array(columns)) = map.get_mut("contract").and_then(|c| c.get_mut("columns")) {
            for (column, declared) in columns.iter_mut().zip(&product.contract.columns) {
                if let Value::Object(c) = column {
                    c.insert("type_info".into(), type_info(declared.data_type));
                }
            }
        }
    }
    value
}

fn type_info(t: ColumnType) -> Value {
    match t {
        ColumnType::TinyInt => json!({"family": "integer", "bits": 8}),
        ColumnType::SmallInt => json!({"family": "integer", "bits": 16}),
        ColumnType::Int => json!({"family": "integer", "bits": 32}),
        ColumnType::BigInt => json!({"family": "integer", "bits": 64}),
        ColumnType::Float => json!({"family": "float", "bits": 32}),
        ColumnType::Double => json!({"family": "float", "bits": 64}),
        ColumnType::Decimal { precision, scale } => json!({"family": "decimal", "precision": precision, "scale": scale}),
        ColumnType::Boolean => json!({"family": "boolean"}),
        ColumnType::String => json!({"family": "string"}),
        ColumnType::Binary => json!({"family": "binary"}),
        ColumnType::Date => json!({"family": "date"}),
        ColumnType::Timestamp => json!({"family": "timestamp"}),
    }
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
