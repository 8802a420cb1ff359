//! Governance and access policies: built-in rules together on bad and good descriptors (each
//! finding alone in `builtins`), states, domain policies, and access decisions.

mod builtins;

use std::sync::Arc;

use meshwork_core::descriptor::{DomainDescriptor, MeshConfig, PolicyState, ProductDescriptor};
use meshwork_core::parse::{parse_domain, parse_mesh_config, parse_product};
use meshwork_core::principal::{Principal, parse_principals};
use meshwork_policy::{Authorizer, GovernanceInput, PolicyScope, PolicySet, PolicySource, PolicyStates, Violation};

/// A descriptor every built-in policy accepts.
const GOOD: &str = r#"
name: orders
domain: sales
version: 1.2.0
title: Orders
description: One row per order.
owner: group:sales-data
tags: [orders, revenue]
inputs:
  - { name: raw, source: { kind: csv, path: data/orders.csv } }
contract:
  columns:
    - { name: order_id, type: int, nullable: false, description: Order id, classification: internal }
    - { name: email, type: string, description: Buyer e-mail, classification: pii }
    - { name: amount, type: "decimal(10,2)", description: Total, classification: confidential }
access:
  readers: [group:analysts]
  masks: { email: hash }
  unmasked_for: [domain:sales]
"#;

fn product(yaml: &str) -> ProductDescriptor {
    parse_product("product.yaml", yaml).unwrap_or_else(|d| panic!("{d:#?}")).value
}

fn domain() -> DomainDescriptor {
    parse_domain("domain.yaml", "name: sales\nowners: [group:sales-data]\nmembers: [user:sam]\n").unwrap().value
}

fn mesh(yaml: &str) -> MeshConfig {
    parse_mesh_config("mesh.yaml", yaml).unwrap().value
}

fn builtins() -> PolicySet {
    PolicySet::compile(PolicySource::builtins()).unwrap()
}

fn check(set: &PolicySet, states: &PolicyStates, new: &ProductDescriptor, previous: Option<&ProductDescriptor>) -> Vec<Violation> {
    let domain = domain();
    set.check_product(states, GovernanceInput { product: new, previous, domain: Some(&domain), lineage: None })
}

/// `policy field: message` lines, for compact assertions.
fn lines(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("[{}] {} {}: {}", v.state.as_str(), v.policy, v.field.as_deref().unwrap_or("-"), v.message))
        .collect::<Vec<_>>()
        .join("\n")
}

fn all_enforced() -> PolicyStates {
    let names: Vec<String> = meshwork_policy::library::BUILTIN_POLICIES.iter().map(|b| format!("  {}: enforce", b.name)).collect();
    PolicyStates::new(&mesh(&format!("name: m\npolicies:\n{}\n", names.join("\n"))), [&domain()])
}

#[test]
fn a_good_descriptor_passes_every_builtin_policy() {
    let set = builtins();
    let good = product(GOOD);
    assert_eq!(lines(&check(&set, &all_enforced(), &good, None)), "");
    assert_eq!(lines(&check(&set, &all_enforced(), &good, Some(&good))), "");
}

#[test]
fn each_builtin_policy_fires_on_a_bad_descriptor() {
    let set = builtins();
    let states = all_enforced();
    let cases: &[(&str, &str, &str)] = &[
        ("owner_required", "owner: group:sales-data\n", ""),
        ("descriptions_required", "description: One row per order.\n", ""),
        ("descriptions_required", "description: Buyer e-mail, ", ""),
        ("classification_required", ", classification: confidential }", " }"),
        ("pii_masked", "  masks: { email: hash }\n", "  masks: {}\n"),
        ("pii_masked", "unmasked_for: [domain:sales]", "unmasked_for: [group:analysts]"),
        ("snake_case_names", "name: order_id,", "name: orderId,"),
        ("snake_case_names", "tags: [orders, revenue]", "tags: [orders, Revenue]"),
        ("semver_version", "version: 1.2.0", "version: v1.2"),
    ];
    for (policy, from, to) in cases {
        assert!(GOOD.contains(from), "{from}");
        let bad = product(&GOOD.replacen(from, to, 1));
        let found = check(&set, &states, &bad, None);
        assert!(found.iter().any(|v| v.policy == *policy && v.state == PolicyState::Enforce), "{policy} did not fire on `{to}`:\n{}", lines(&found));
        assert!(found.iter().all(|v| v.policy == *policy), "only {policy} should fire:\n{}", lines(&found));
    }
}

#[test]
fn violations_name_the_field_and_say_what_to_do() {
    let set = builtins();
    let bad = product(&GOOD.replace("owner: group:sales-data\n", "").replace("description: Buyer e-mail, ", "").replace("  masks: { email: hash }\n", ""));
    expect_test::expect![[r#"
        [enforce] owner_required owner: the product has no owner; add `owner: group:<team>` so consumers know who answers for it
        [enforce] descriptions_required contract.columns[1].description: column `email` has no description
        [enforce] pii_masked contract.columns[1].classification: pii column `email` has no mask; add `access.masks.email: hash` (or redact, null, partial)"#]]
    .assert_eq(&lines(&check(&set, &all_enforced(), &bad, None)));
}

#[test]
fn breaking_contract_changes_need_a_major_version() {
    let set = builtins();
    let states = all_enforced();
    let previous = product(GOOD);
    let cases = [
        ("    - { name: amount, type: \"decimal(10,2)\", description: Total, classification: confidential }\n", "", "column `amount` was removed"),
        ("name: order_id, type: int", "name: order_key, type: int", "column `order_id` was removed (or renamed)"),
        ("type: \"decimal(10,2)\"", "type: \"decimal(8,2)\"", "column `amount` changed type from decimal(10,2) to decimal(8,2)"),
        ("name: order_id, type: int", "name: order_id, type: smallint", "changed type from int to smallint"),
        ("name: email, type: string,", "name: email, type: string, nullable: false,", "column `email` became non-nullable"),
    ];
    for (from, to, expected) in cases {
        let minor = product(&GOOD.replacen(from, to, 1).replace("version: 1.2.0", "version: 1.3.0"));
        let found = check(&set, &states, &minor, Some(&previous));
        let text = lines(&found);
        assert!(text.contains(expected) && text.contains("release it as 2.0.0"), "{expected}:\n{text}");
        let major = product(&GOOD.replacen(from, to, 1).replace("version: 1.2.0", "version: 2.0.0"));
        assert_eq!(lines(&check(&set, &states, &major, Some(&previous))), "", "a major bump allows `{to}`");
    }
    // Widening and adding columns are compatible.
    let compatible = product(
        &GOOD
            .replace("name: order_id, type: int", "name: order_id, type: bigint")
            .replace("type: \"decimal(10,2)\"", "type: \"decimal(14,2)\"")
            .replace("version: 1.2.0", "version: 1.3.0"),
    );
    assert_eq!(lines(&check(&set, &states, &compatible, Some(&previous))), "");
}

/// The policy decides on the diff it is given (`input.changes`) and nothing else: every
/// breaking change outside access needs a major version; narrowing access never waits for one;
/// compatible changes pass.
#[test]
fn the_major_bump_policy_decides_on_the_contract_diff() {
    let set = builtins();
    let states = all_enforced();
    let base = GOOD.replace("access:\n", "quality:\n  - { rule: not_null, column: email }\nslo: { freshness: 24h }\naccess:\n");
    let previous = product(&base);
    let cases = [
        ("  - { rule: not_null, column: email }\n", "  - { rule: not_null, column: email, severity: warn }\n", true),
        ("slo: { freshness: 24h }", "slo: { freshness: 48h }", true),
        ("slo: { freshness: 24h }", "slo: { freshness: 12h }", false),
        ("readers: [group:analysts]", "readers: []", false),
        ("masks: { email: hash }", "masks: { email: hash, amount: \"null\" }", false),
        ("unmasked_for: [domain:sales]", "unmasked_for: []", false),
        ("description: One row per order.", "description: Orders.", false),
    ];
    for (from, to, refused) in cases {
        assert!(base.contains(from), "{from}");
        let next = product(&base.replacen(from, to, 1).replace("version: 1.2.0", "version: 1.3.0"));
        let changes = meshwork_core::contract_diff::diff(&previous, &next);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let text = lines(&check(&set, &states, &next, Some(&previous)));
        assert_eq!(text.contains("breaking_change_major_bump"), refused, "`{from}` -> `{to}`: {text}");
        if refused {
            assert!(text.contains(&changes[0].detail), "the policy quotes the diff: {text}");
        }
    }
}

#[test]
fn warn_reports_enforce_blocks_off_skips() {
    let set = builtins();
    let bad = product(&GOOD.replace("owner: group:sales-data\n", ""));
    for (state, expected) in [("warn", Some(PolicyState::Warn)), ("enforce", Some(PolicyState::Enforce)), ("off", None)] {
        let states = PolicyStates::new(&mesh(&format!("name: m\npolicies:\n  owner_required: {state}\n")), [&domain()]);
        let found = check(&set, &states, &bad, None);
        assert_eq!(found.first().map(|v| v.state), expected, "{state}");
        assert_eq!(found.first().map(Violation::blocks), expected.map(|s| s == PolicyState::Enforce));
    }
    // Defaults: descriptions and classifications warn, the rest enforce.
    let unset = PolicyStates::new(&mesh("name: m\n"), [&domain()]);
    let no_description = product(&GOOD.replace("description: One row per order.\n", ""));
    assert_eq!(check(&set, &unset, &no_description, None)[0].state, PolicyState::Warn);
}

#[test]
fn a_domain_can_tighten_a_global_policy_but_never_loosen_it() {
    let mut sources = PolicySource::builtins();
    // A domain module declaring the same package as a global policy, trying to redefine its rule.
    sources.push(PolicySource {
        name: "owner_required".into(),
        scope: PolicyScope::Domain(meshwork_core::id::DomainName::new("sales").unwrap()),
        file: "domains/sales/policies/owner_required.rego".into(),
        text: "package meshwork.governance.owner_required\n\nviolations := set()\n".into(),
    });
    let set = PolicySet::compile(sources).unwrap();
    let bad = product(&GOOD.replace("owner: group:sales-data\n", ""));
    let states = PolicyStates::new(&mesh("name: m\n"), [&domain()]);
    let found = check(&set, &states, &bad, None);
    assert!(found.iter().any(|v| v.policy == "owner_required"), "the global rule still fires: {}", lines(&found));

    // `off` for a global policy in domain.yaml is refused; raising `warn` to `enforce` is fine.
    let config = mesh("name: m\n");
    let lowering = parse_domain("domain.yaml", "name: sales\npolicies:\n  semver_version: off\n  descriptions_required: enforce\n").unwrap().value;
    let problems = set.check_states(&config, &[&lowering]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].message, "domain `sales` cannot lower global policy `semver_version` from `enforce` to `off`");
    let raised = PolicyStates::new(&config, [&lowering]);
    let no_description = product(&GOOD.replace("description: One row per order.\n", ""));
    let found = check(&set, &raised, &no_description, None);
    assert!(found.iter().any(|v| v.policy == "descriptions_required" && v.state == PolicyState::Enforce), "{}", lines(&found));
    // The lowering itself has no effect even if reported and ignored.
    let bad_version = product(&GOOD.replace("version: 1.2.0", "version: two"));
    assert!(check(&set, &raised, &bad_version, None).iter().any(|v| v.policy == "semver_version" && v.blocks()));

    // Unknown policy names are reported with a suggestion.
    let problems = set.check_states(&mesh("name: m\npolicies:\n  owner_requried: warn\n"), &[]);
    assert_eq!(problems[0].hint, "did you mean `owner_required`?");
}

#[test]
fn custom_policies_compile_from_text_and_bad_ones_are_reported() {
    let mut sources = PolicySource::builtins();
    sources.push(PolicySource {
        name: "no_drafts".into(),
        scope: PolicyScope::Global,
        file: "policies/no_drafts.rego".into(),
        text: "package meshwork.governance.no_drafts\n\nviolations contains {\"field\": \"status\", \"message\": \"drafts cannot be published\"} if input.product.status == \"draft\"\n".into(),
    });
    let set = PolicySet::compile(sources).unwrap();
    let draft = product(&GOOD.replace("version: 1.2.0", "version: 1.2.0\nstatus: draft"));
    let found = check(&set, &PolicyStates::new(&mesh("name: m\n"), [&domain()]), &draft, None);
    assert_eq!(lines(&found), "[enforce] no_drafts status: drafts cannot be published");

    let broken = PolicySet::compile(vec![PolicySource {
        name: "broken".into(),
        scope: PolicyScope::Global,
        file: "policies/broken.rego".into(),
        text: "package meshwork.governance.broken\n\nviolations contains x if {\n".into(),
    }])
    .unwrap_err();
    assert!(broken[0].to_string().starts_with("policies/broken.rego:"), "{}", broken[0]);
    let wrong_package = PolicySet::compile(vec![PolicySource {
        name: "p".into(),
        scope: PolicyScope::Global,
        file: "policies/p.rego".into(),
        text: "package acme.p\n\nallow := true\n".into(),
    }])
    .unwrap_err();
    assert!(wrong_package[0].to_string().contains("start the file with `package meshwork.governance.p`"), "{}", wrong_package[0]);
}

fn principals() -> Vec<Principal> {
    let text = "principals:\n  - { name: ana, groups: [analysts], attributes: { region: EU } }\n  - { name: sam, domains: [sales] }\n  - { name: olga }\n  - { name: carl, groups: [analysts, contractors] }\n  - { name: root, admin: true }\n";
    parse_principals("principals.yaml", text).unwrap().value
}

fn who(name: &str) -> Principal {
    principals().into_iter().find(|p| p.name == name).unwrap()
}

#[test]
fn access_decisions_follow_readers_masks_and_access_policies() {
    let mut sources = PolicySource::builtins();
    sources.push(PolicySource {
        name: "contractors".into(),
        scope: PolicyScope::Global,
        file: "policies/contractors.rego".into(),
        text: r#"package meshwork.access.contractors

masks[column.name] := "null" if {
	"contractors" in input.principal.groups
	some column in input.product.contract.columns
	column.classification == "pii"
}

row_filters contains "amount < 100" if "contractors" in input.principal.groups

deny contains "no confidential data for interns" if "interns" in input.principal.groups
"#
        .into(),
    });
    let authorizer = Authorizer::new(Arc::new(PolicySet::compile(sources).unwrap()), PolicyStates::default());
    let orders = product(&GOOD.replace("access:\n", "access:\n  row_filter: \"region = principal.attr('region')\"\n"));

    let ana = authorizer.decide(&who("ana"), &orders);
    assert!(ana.allowed);
    assert_eq!(ana.row_filters, vec!["region = principal.attr('region')".to_owned()]);
    assert_eq!(ana.masks.keys().collect::<Vec<_>>(), ["email"]);

    // The owning domain reads and sees unmasked values; the row filter still applies.
    let sam = authorizer.decide(&who("sam"), &orders);
    assert!(sam.allowed && sam.masks.is_empty() && sam.row_filters.len() == 1);

    // Not a reader: denied, with the reason kept for the audit log.
    let olga = authorizer.decide(&who("olga"), &orders);
    assert!(!olga.allowed);
    assert_eq!(olga.reasons, ["`olga` is not a reader of `sales.orders`"]);

    // The access policy makes the contractor's mask stricter and adds a filter.
    let carl = authorizer.decide(&who("carl"), &orders);
    assert!(carl.allowed);
    assert_eq!(carl.masks["email"], meshwork_core::descriptor::Mask::Null);
    assert_eq!(carl.row_filters.len(), 2);
    assert!(carl.policies.contains(&"contractors".to_owned()));

    // Administrators see every product, but masks and filters still apply: no silent bypass.
    let root = authorizer.decide(&who("root"), &orders);
    assert!(root.allowed && root.masks.contains_key("email") && root.row_filters.len() == 1);

    // Without an access block only the owning domain reads: deny by default.
    let closed = product(&GOOD.split("access:").next().unwrap().replace("classification: pii", "classification: internal"));
    assert!(!authorizer.decide(&who("ana"), &closed).allowed);
    assert!(authorizer.decide(&who("sam"), &closed).allowed);
}

#[test]
fn a_failing_access_policy_denies() {
    let mut sources = PolicySource::builtins();
    sources.push(PolicySource {
        name: "broken".into(),
        scope: PolicyScope::Global,
        file: "policies/broken.rego".into(),
        // Division by zero is an evaluation error under strict built-in errors.
        text: "package meshwork.access.broken\n\ndeny contains msg if {\n\tx := 1 / 0\n\tmsg := sprintf(\"%v\", [x])\n}\n\nmasks := \"not an object\"\n".into(),
    });
    let authorizer = Authorizer::new(Arc::new(PolicySet::compile(sources).unwrap()), PolicyStates::default());
    let decision = authorizer.decide(&who("ana"), &product(GOOD));
    assert!(!decision.allowed);
    assert!(decision.reasons[0].starts_with("access policy `broken` failed to evaluate"), "{:?}", decision.reasons);
}

#[test]
fn a_grant_makes_a_reader_until_it_ends_and_never_unmasks() {
    use std::time::{Duration, SystemTime};
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let hour = Duration::from_secs(3600);
    let orders = product(&GOOD.replace("access:\n", "access:\n  row_filter: \"amount < 100\"\n"));
    let id = orders.id();
    let grants = meshwork_policy::Grants::new([(id.clone(), "olga".to_owned(), Some(now + hour)), (id.clone(), "carl".to_owned(), None)]);
    let authorizer = Authorizer::new(Arc::new(builtins()), PolicyStates::default()).with_grants(grants);

    // Before its end the grant makes olga a reader: the row filter and the mask apply as to
    // any reader (olga is not in `unmasked_for`).
    let olga = authorizer.decide_at(&who("olga"), &orders, now);
    assert!(olga.allowed, "{:?}", olga.reasons);
    assert_eq!(olga.row_filters, ["amount < 100"]);
    assert_eq!(olga.masks.keys().collect::<Vec<_>>(), ["email"]);

    // At the end instant it no longer counts, without anything being reloaded.
    let later = authorizer.decide_at(&who("olga"), &orders, now + hour);
    assert!(!later.allowed);
    assert_eq!(later.reasons, ["`olga` is not a reader of `sales.orders`"]);

    // A grant is for its principal and its product only.
    let other = product(&GOOD.replace("name: orders", "name: refunds"));
    assert!(!authorizer.decide_at(&who("olga"), &other, now).allowed);

    // A revoked grant is not given to the authorizer at all: olga is back to no access.
    let revoked = Authorizer::new(Arc::new(builtins()), PolicyStates::default()).with_grants(meshwork_policy::Grants::new([(id.clone(), "carl".to_owned(), None)]));
    assert!(!revoked.decide_at(&who("olga"), &orders, now).allowed);

    // The earliest end is what cached decisions must not outlive.
    assert_eq!(authorizer.grants().next_end(None, now), Some(now + hour));
    assert_eq!(authorizer.grants().next_end(Some("carl"), now), None);
    assert_eq!(authorizer.grants().next_end(None, now + hour), None);
}

mod classification_propagated;
