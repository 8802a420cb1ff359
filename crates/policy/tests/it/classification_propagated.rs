//! `classification_propagated`: a column carrying an unmasked pii or confidential upstream
//! column is classified at least as high; with `pii_masked`, a derived pii column is masked.

use std::collections::BTreeMap;
use std::sync::Arc;

use meshwork_core::descriptor::{DomainDescriptor, ProductDescriptor};
use meshwork_core::id::ProductId;
use meshwork_core::lineage::{ColumnLineage, ColumnSource, Derivation, ProductLineage};
use meshwork_core::parse::{parse_domain, parse_mesh_config, parse_product};
use meshwork_policy::{Authorizer, GovernanceInput, GovernanceLineage, PolicySet, PolicySource, PolicyStates};

/// `shop.orders`: `email` is pii and `amount` confidential; other domains read `email` hashed
/// unless the test lists them in `unmasked_for`.
fn orders(unmasked_for: &str) -> ProductDescriptor {
    let yaml = format!(
        "name: orders\ndomain: shop\nversion: 1.0.0\ninputs:\n  - {{ name: raw, source: {{ kind: csv, path: o.csv }} }}\ncontract:\n  columns:\n    - {{ name: order_id, type: bigint, classification: internal }}\n    - {{ name: email, type: string, classification: pii }}\n    - {{ name: amount, type: \"decimal(12,2)\", classification: confidential }}\naccess:\n  readers: [domain:growth]\n  masks: {{ email: hash }}\n  unmasked_for: [{unmasked_for}]\n"
    );
    parse_product("product.yaml", &yaml).unwrap_or_else(|d| panic!("{d:#?}")).value
}

/// `growth.order_emails` with the given contract columns (YAML flow maps) and access block.
fn derived(columns: &[&str], access: &str) -> ProductDescriptor {
    let columns: String = columns.iter().map(|c| format!("    - {c}\n")).collect();
    let yaml = format!(
        "name: order_emails\ndomain: growth\nversion: 1.0.0\ninputs:\n  - {{ name: orders, product: shop.orders }}\ntransform: SELECT 1\ncontract:\n  columns:\n{columns}{access}"
    );
    parse_product("product.yaml", &yaml).unwrap_or_else(|d| panic!("{d:#?}")).value
}

fn growth() -> DomainDescriptor {
    parse_domain("domain.yaml", "name: growth\nowners: [group:growth]\n").unwrap().value
}

/// Output column `name` taken from `orders.<column>` as `derivation`.
fn from_orders(name: &str, column: &str, derivation: Derivation, carries_value: bool) -> ColumnLineage {
    ColumnLineage {
        name: name.into(),
        sources: vec![ColumnSource {
            input: "orders".into(),
            product: Some("shop.orders".parse().unwrap()),
            column: column.into(),
            derivation,
            carries_value,
        }],
    }
}

/// The violations of `product` (policy, field, message), with `upstream` as `shop.orders`.
fn violations(product: &ProductDescriptor, upstream: &ProductDescriptor, lineage: Option<ProductLineage>) -> Vec<String> {
    let set = Arc::new(PolicySet::compile(PolicySource::builtins()).unwrap());
    let domain = growth();
    let states = PolicyStates::new(&parse_mesh_config("mesh.yaml", "name: m\n").unwrap().value, [&domain]);
    let authorizer = Authorizer::new(set.clone(), states.clone());
    let upstreams: BTreeMap<ProductId, &ProductDescriptor> = BTreeMap::from([(upstream.id(), upstream)]);
    let governed = match lineage {
        Some(lineage) => GovernanceLineage::resolve(&lineage, &domain, &upstreams, &authorizer),
        None => GovernanceLineage::Unknown("Schema error: No field named nope.".into()),
    };
    set.check_product(&states, GovernanceInput { product, previous: None, domain: Some(&domain), lineage: Some(&governed) })
        .into_iter()
        .filter(|v| v.policy == "classification_propagated" || v.policy == "pii_masked")
        .map(|v| format!("[{}] {} {}: {}", v.state.as_str(), v.policy, v.field.as_deref().unwrap_or("-"), v.message))
        .collect()
}

#[test]
fn an_unmasked_pii_column_copied_or_lowered_must_be_classified_pii() {
    let product = derived(&["{ name: order_id, type: bigint, classification: internal }", "{ name: contact, type: string, classification: internal }"], "");
    let lineage = ProductLineage {
        columns: vec![from_orders("order_id", "order_id", Derivation::Copied, true), from_orders("contact", "email", Derivation::Computed, true)],
    };
    assert_eq!(
        violations(&product, &orders("domain:shop, domain:growth"), Some(lineage)),
        ["[enforce] classification_propagated contract.columns[1].classification: column `contact` is classified `internal` but carries the value of pii column `email` of `shop.orders` (computed through input `orders`); declare `classification: pii`, or have `shop.orders` mask `email` for domain `growth`"]
    );
}

#[test]
fn an_unclassified_column_carrying_a_confidential_sum_is_reported() {
    let product = derived(&["{ name: revenue, type: \"decimal(14,2)\" }"], "");
    let lineage = ProductLineage { columns: vec![from_orders("revenue", "amount", Derivation::Aggregated, true)] };
    assert_eq!(
        violations(&product, &orders("domain:shop"), Some(lineage)),
        ["[enforce] classification_propagated contract.columns[0].classification: column `revenue` has no classification but carries the value of confidential column `amount` of `shop.orders` (aggregated through input `orders`); declare `classification: confidential`, or have `shop.orders` mask `amount` for domain `growth`"]
    );
}

#[test]
fn masked_counted_and_equally_classified_sources_are_quiet() {
    let internal = derived(&["{ name: contact, type: string, classification: internal }"], "");
    // The domain reads `email` hashed: the derived column holds hashes, not e-mails.
    let copied = ProductLineage { columns: vec![from_orders("contact", "email", Derivation::Copied, true)] };
    assert_eq!(violations(&internal, &orders("domain:shop"), Some(copied)), Vec::<String>::new());
    // `count(email)` does not carry an e-mail.
    let counted = ProductLineage { columns: vec![from_orders("contact", "email", Derivation::Aggregated, false)] };
    assert_eq!(violations(&internal, &orders("domain:shop, domain:growth"), Some(counted)), Vec::<String>::new());
    // A confidential source into a pii column: pii ranks higher.
    let pii = derived(&["{ name: contact, type: string, classification: pii }"], "access:\n  masks: { contact: hash }\n");
    let amount = ProductLineage { columns: vec![from_orders("contact", "amount", Derivation::Computed, true)] };
    assert_eq!(violations(&pii, &orders("domain:shop"), Some(amount)), Vec::<String>::new());
}

#[test]
fn a_derived_pii_column_must_then_be_masked_outside_its_domain() {
    let lineage = || ProductLineage { columns: vec![from_orders("contact", "email", Derivation::Copied, true)] };
    let unmasked = orders("domain:shop, domain:growth");
    // Raising the classification moves the finding to `pii_masked`: the column needs a mask.
    let pii = derived(&["{ name: contact, type: string, classification: pii }"], "access:\n  readers: [\"*\"]\n");
    assert_eq!(
        violations(&pii, &unmasked, Some(lineage())),
        ["[enforce] pii_masked contract.columns[0].classification: pii column `contact` has no mask; add `access.masks.contact: hash` (or redact, null, partial)"]
    );
    let masked = derived(&["{ name: contact, type: string, classification: pii }"], "access:\n  readers: [\"*\"]\n  masks: { contact: redact }\n");
    assert_eq!(violations(&masked, &unmasked, Some(lineage())), Vec::<String>::new());
}

#[test]
fn a_transform_that_does_not_plan_is_reported_not_passed() {
    let product = derived(&["{ name: contact, type: string, classification: internal }"], "");
    assert_eq!(
        violations(&product, &orders("domain:shop"), None),
        ["[enforce] classification_propagated transform: cannot derive column lineage to check classifications: Schema error: No field named nope.; the transform must plan against its inputs' declared columns"]
    );
}
