//! Every finding of every built-in governance rule, fired one at a time with its exact message,
//! each rule quiet on a good descriptor, and a rule that fails to evaluate refusing the product.

use expect_test::{Expect, expect};
use meshwork_core::descriptor::PolicyState;
use meshwork_policy::library::BUILTIN_POLICIES;
use meshwork_policy::{PolicyScope, PolicySet, PolicySource, PolicyStates};

use crate::{GOOD, all_enforced, builtins, check, domain, lines, mesh, product};

/// The findings of `policy` alone on GOOD edited by `edits` (each `from` replaced once by `to`),
/// with GOOD as the published version when `published`.
fn findings(policy: &str, edits: &[(&str, &str)], published: bool) -> String {
    let mut yaml = GOOD.to_owned();
    for (from, to) in edits {
        assert!(yaml.contains(from), "`{from}` is not in the descriptor");
        yaml = yaml.replacen(from, to, 1);
    }
    let previous = product(GOOD);
    let found = check(&builtins(), &all_enforced(), &product(&yaml), published.then_some(&previous));
    assert!(BUILTIN_POLICIES.iter().any(|b| b.name == policy), "`{policy}` is not a built-in");
    lines(&found.into_iter().filter(|v| v.policy == policy).collect::<Vec<_>>())
}

fn fires(policy: &str, edits: &[(&str, &str)], expected: Expect) {
    expected.assert_eq(&findings(policy, edits, false));
}

fn fires_against_published(policy: &str, edits: &[(&str, &str)], expected: Expect) {
    expected.assert_eq(&findings(policy, edits, true));
}

#[test]
fn every_builtin_is_quiet_on_a_good_descriptor_and_an_unchanged_republish() {
    for builtin in BUILTIN_POLICIES {
        assert_eq!(findings(builtin.name, &[], false), "", "{} on a first publish", builtin.name);
        assert_eq!(findings(builtin.name, &[], true), "", "{} on a republish", builtin.name);
    }
}

#[test]
fn owner_required() {
    fires(
        "owner_required",
        &[("owner: group:sales-data\n", "")],
        expect![[r#"[enforce] owner_required owner: the product has no owner; add `owner: group:<team>` so consumers know who answers for it"#]],
    );
}

#[test]
fn descriptions_required() {
    fires(
        "descriptions_required",
        &[("description: One row per order.\n", "")],
        expect![[r#"[enforce] descriptions_required description: the product has no description; say what one row means and what the product is for"#]],
    );
    fires(
        "descriptions_required",
        &[("description: Total, ", "")],
        expect![[r#"[enforce] descriptions_required contract.columns[2].description: column `amount` has no description"#]],
    );
}

#[test]
fn classification_required() {
    fires(
        "classification_required",
        &[(", classification: internal }", " }")],
        expect![[r#"[enforce] classification_required contract.columns[0].classification: column `order_id` has no classification; add `classification: public|internal|confidential|pii`"#]],
    );
}

#[test]
fn pii_masked() {
    fires(
        "pii_masked",
        &[("  masks: { email: hash }\n", "  masks: {}\n")],
        expect![[r#"[enforce] pii_masked contract.columns[1].classification: pii column `email` has no mask; add `access.masks.email: hash` (or redact, null, partial)"#]],
    );
    // Regression: this message once had five verbs for four arguments, so the rule failed to
    // evaluate and its own finding was never shown.
    fires(
        "pii_masked",
        &[("unmasked_for: [domain:sales]", "unmasked_for: [domain:sales, group:analysts]")],
        expect![[r#"[enforce] pii_masked access.unmasked_for: `group:analysts` is outside domain `sales` but would see pii column `email` unmasked; list only `domain:sales` or its owners and members"#]],
    );
    fires(
        "pii_masked",
        &[
            ("classification: confidential }", "classification: pii }"),
            ("masks: { email: hash }", "masks: { email: hash, amount: hash }"),
            ("unmasked_for: [domain:sales]", "unmasked_for: [user:olga]"),
        ],
        expect![[r#"[enforce] pii_masked access.unmasked_for: `user:olga` is outside domain `sales` but would see pii columns `email`, `amount` unmasked; list only `domain:sales` or its owners and members"#]],
    );
    // The domain's declared owners and members are inside it.
    fires("pii_masked", &[("unmasked_for: [domain:sales]", "unmasked_for: [domain:sales, group:sales-data, user:sam]")], expect![[""]]);
    // Without pii columns anyone may see the columns unmasked.
    fires("pii_masked", &[("classification: pii", "classification: confidential"), ("unmasked_for: [domain:sales]", "unmasked_for: [group:analysts]")], expect![[""]]);
}

#[test]
fn snake_case_names() {
    fires(
        "snake_case_names",
        &[("name: order_id,", "name: orderId,")],
        expect![[r#"[enforce] snake_case_names contract.columns[0].name: column `orderId` is not snake_case; SQL lowercases unquoted names, so consumers would have to quote it"#]],
    );
    fires(
        "snake_case_names",
        &[("tags: [orders, revenue]", "tags: [orders, Revenue]")],
        expect![[r#"[enforce] snake_case_names tags[1]: tag `Revenue` is not snake_case"#]],
    );
}

#[test]
fn semver_version() {
    fires(
        "semver_version",
        &[("version: 1.2.0", "version: v1.2")],
        expect![[r#"[enforce] semver_version version: `v1.2` is not a semantic version; write MAJOR.MINOR.PATCH, e.g. `1.0.0`"#]],
    );
}

#[test]
fn breaking_change_major_bump() {
    let minor = ("version: 1.2.0", "version: 1.3.0");
    fires_against_published(
        "breaking_change_major_bump",
        &[minor, ("    - { name: amount, type: \"decimal(10,2)\", description: Total, classification: confidential }\n", "")],
        expect![[r#"[enforce] breaking_change_major_bump version: column `amount` was removed (or renamed) without a major version bump (1.2.0 -> 1.3.0); release it as 2.0.0 or keep the contract compatible"#]],
    );
    fires_against_published(
        "breaking_change_major_bump",
        &[minor, ("type: \"decimal(10,2)\"", "type: \"decimal(8,2)\"")],
        expect![[r#"[enforce] breaking_change_major_bump version: column `amount` changed type from decimal(10,2) to decimal(8,2) without a major version bump (1.2.0 -> 1.3.0); release it as 2.0.0 or keep the contract compatible"#]],
    );
    fires_against_published(
        "breaking_change_major_bump",
        &[minor, ("name: email, type: string,", "name: email, type: string, nullable: false,")],
        expect![[r#"[enforce] breaking_change_major_bump version: column `email` became non-nullable without a major version bump (1.2.0 -> 1.3.0); release it as 2.0.0 or keep the contract compatible"#]],
    );
    // A major bump, and widening or adding columns, are quiet.
    fires_against_published("breaking_change_major_bump", &[("version: 1.2.0", "version: 2.0.0"), ("type: \"decimal(10,2)\"", "type: \"decimal(8,2)\"")], expect![[""]]);
    fires_against_published("breaking_change_major_bump", &[minor, ("name: order_id, type: int", "name: order_id, type: bigint")], expect![[""]]);
}

#[test]
fn a_rule_that_fails_to_evaluate_refuses_the_product_even_in_warn_state() {
    let mut sources = PolicySource::builtins();
    sources.push(PolicySource {
        name: "broken".into(),
        scope: PolicyScope::Global,
        file: "policies/broken.rego".into(),
        // Two verbs, one argument: an evaluation error under strict built-in errors.
        text: "package meshwork.governance.broken\n\nviolations contains sprintf(\"%s %s\", [input.product.name])\n".into(),
    });
    sources.push(PolicySource {
        name: "malformed".into(),
        scope: PolicyScope::Global,
        file: "policies/malformed.rego".into(),
        text: "package meshwork.governance.malformed\n\nviolations := 42\n".into(),
    });
    let set = PolicySet::compile(sources).unwrap();
    let warn = PolicyStates::new(&mesh("name: m\npolicies:\n  broken: warn\n  malformed: warn\n"), [&domain()]);
    let found = check(&set, &warn, &product(GOOD), None);
    assert!(found.iter().all(|v| v.blocks() && v.state == PolicyState::Enforce), "{}", lines(&found));
    expect![[r#"
        [enforce] broken -: policy evaluation failed at policies/broken.rego:3:38: no argument specified for format verb 1; the product is refused until the policy is fixed in `policies/broken.rego` or set `off`
        [enforce] malformed -: `violations` must be a set of {"field", "message"} objects, found 42; the product is refused until the policy is fixed in `policies/malformed.rego` or set `off`"#]]
    .assert_eq(&lines(&found));
    // `off` is the way out: the policy is not evaluated at all.
    let off = PolicyStates::new(&mesh("name: m\npolicies:\n  broken: off\n  malformed: off\n"), [&domain()]);
    assert_eq!(lines(&check(&set, &off, &product(GOOD), None)), "");
}
