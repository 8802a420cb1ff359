//! Product evolution through the binary: a new major with the previous one kept side by side
//! (`marketing.campaigns_v1`), deprecation warned on every query, the sunset that stops serving
//! it while keeping its data, `product purge`, and subscriptions named by `plan` and
//! `product consumers`.

use super::{meshwork, ok, stderr, stdout, tiny_mesh, write};

/// The `product` and `result` of each product of an `apply --format json` report.
fn results(report: &str) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_str(report).unwrap();
    report["products"].as_array().unwrap().iter().map(|p| format!("{} {}", p["product"].as_str().unwrap(), p["result"].as_str().unwrap())).collect()
}

fn edit(dir: &std::path::Path, path: &str, edit: impl Fn(String) -> String) {
    let path = dir.join(path);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
}

fn event_kinds(dir: &std::path::Path, product: &str) -> Vec<String> {
    let events: serde_json::Value = serde_json::from_str(&ok(dir, &["events", "--product", product, "--format", "json"])).unwrap();
    events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

const CAMPAIGNS: &str = "domains/marketing/products/campaigns/product.yaml";

#[test]
fn a_new_major_keeps_the_previous_one_served_with_warnings_until_its_sunset_then_purge() {
    let (_tmp, dir) = tiny_mesh();
    write(&dir, "principals.yaml", "principals:\n  - { name: ana, groups: [analysts] }\n  - { name: olga }\n");
    edit(&dir, CAMPAIGNS, |text| format!("{text}access:\n  readers: [group:analysts, domain:marketing]\n"));
    ok(&dir, &["apply"]);

    // ana reads campaigns and subscribes to it.
    assert_eq!(ok(&dir, &["--as", "ana", "query", "--format", "csv", "SELECT count(*) AS n FROM marketing.campaigns"]), "n\n3\n");
    let subscribed = ok(&dir, &["--as", "ana", "subscribe", "marketing.campaigns"]);
    assert_eq!(subscribed, "`ana` is subscribed to marketing.campaigns\n");
    // Subscribing someone else is for owners; olga may not even see the product.
    let other = meshwork(&dir, &["--as", "ana", "subscribe", "marketing.campaigns", "--principal", "olga"]);
    assert_eq!(other.status.code(), Some(1));
    assert!(stderr(&other).contains("subscribing someone else is for the product's owners and administrators"), "{}", stderr(&other));
    let hidden = meshwork(&dir, &["--as", "olga", "subscribe", "marketing.campaigns"]);
    assert!(stderr(&hidden).contains("product `marketing.campaigns` not found"), "{}", stderr(&hidden));
    let bad_hook = meshwork(&dir, &["--as", "ana", "subscribe", "marketing.campaigns", "--webhook", "https://user:pw@hooks.example.com/x"]);
    assert!(stderr(&bad_hook).contains("carries credentials; remove them"), "{}", stderr(&bad_hook));
    assert!(!stderr(&bad_hook).contains("pw"), "the secret is not echoed: {}", stderr(&bad_hook));

    // Major 2 drops `budget`; major 1 is kept as `campaigns_v1`, deprecated, and
    // `marketing.roi` moves its input there.
    let v1 = std::fs::read_to_string(dir.join(CAMPAIGNS)).unwrap().replace("name: campaigns\n", "name: campaigns_v1\n")
        + "status: deprecated\nsunset: 2099-12-31\nsuccessor: marketing.campaigns\n";
    write(&dir, "domains/marketing/products/campaigns_v1/product.yaml", &v1);
    edit(&dir, CAMPAIGNS, |text| text.replace("version: 1.0.0", "version: 2.0.0").replace("    - { name: budget, type: \"decimal(10,2)\" }\n", ""));
    write(&dir, "domains/marketing/products/campaigns/transform.sql", "SELECT code FROM raw\n");
    edit(&dir, "domains/marketing/products/roi/product.yaml", |text| text.replace("product: marketing.campaigns }", "product: marketing.campaigns_v1 }"));
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains("major 1 -> 2: major 1 stays served side by side as `marketing.campaigns_v1`"), "{plan}");
    assert!(plan.contains("breaking    column `budget` was removed (or renamed)"), "{plan}");
    assert!(plan.contains("read in the last 30 days by: ana (cli, 1 queries)"), "{plan}");
    assert!(plan.contains("subscribed: ana"), "{plan}");
    assert_eq!(
        results(&ok(&dir, &["apply", "--format", "json"])),
        ["marketing.campaigns published", "marketing.campaigns_v1 published", "sales.orders unchanged", "marketing.roi published"]
    );

    // Both majors are served: the new one without `budget`, the kept one with it and a warning.
    let warning = "warning: `marketing.campaigns_v1` is deprecated and is no longer served from 2099-12-31; move to `marketing.campaigns`\n";
    let read = meshwork(&dir, &["--as", "ana", "query", "--format", "csv", "SELECT sum(budget) AS b FROM marketing.campaigns_v1"]);
    assert_eq!((stdout(&read).as_str(), stderr(&read).as_str()), ("b\n65.50\n", warning));
    let new = meshwork(&dir, &["--as", "ana", "query", "--format", "csv", "SELECT count(*) AS n FROM marketing.campaigns"]);
    assert_eq!((stdout(&new).as_str(), stderr(&new).as_str()), ("n\n3\n", ""));
    assert!(stderr(&meshwork(&dir, &["--as", "ana", "query", "SELECT budget FROM marketing.campaigns"])).contains("budget"));
    assert_eq!(
        ok(&dir, &["query", "--format", "csv", "SELECT code, budget FROM marketing.roi ORDER BY code"]),
        "code,budget\nAUTUMN,5.50\nSPRING,10.00\nSUMMER,50.00\n",
        "roi is built from major 1"
    );
    // Each major has its own versions; consumers of the product name both majors' readers.
    assert!(ok(&dir, &["product", "versions", "marketing.campaigns_v1"]).contains("1.0.0"));
    let consumers: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "consumers", "marketing.campaigns", "--format", "json"])).unwrap();
    let readers: Vec<String> = consumers["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {} {}", r["principal"].as_str().unwrap(), r["product"].as_str().unwrap(), r["major"]))
        .collect();
    assert!(readers.contains(&"ana marketing.campaigns 2".to_owned()), "{readers:?}");
    assert!(readers.contains(&"ana marketing.campaigns_v1 1".to_owned()), "{readers:?}");
    assert_eq!(consumers["subscribers"][0]["principal"], "ana", "{consumers}");
    assert_eq!(consumers["products"], serde_json::json!([]), "roi reads major 1 now: {consumers}");
    let text = ok(&dir, &["product", "consumers", "marketing.campaigns"]);
    assert!(text.contains("subscribers:") && text.contains("ana "), "{text}");

    // The sunset passes: the publication carrying it is the last; the product that still reads
    // it fails with the successor named, and keeps its previous version.
    edit(&dir, "domains/marketing/products/campaigns_v1/product.yaml", |text| text.replace("sunset: 2099-12-31", "sunset: 2020-01-01"));
    let applied = meshwork(&dir, &["apply", "--format", "json"]);
    assert_eq!(applied.status.code(), Some(1), "{}", stderr(&applied));
    let report: serde_json::Value = serde_json::from_str(&stdout(&applied)).unwrap();
    let roi = report["products"].as_array().unwrap().iter().find(|p| p["product"] == "marketing.roi").unwrap().clone();
    assert_eq!(roi["result"], "failed", "{report}");
    assert!(
        roi["error"].as_str().unwrap().contains(
            "`marketing.campaigns_v1` is no longer served since its sunset on 2020-01-01; read its successor `marketing.campaigns` (hint: change the input port to read the successor)"
        ),
        "{roi}"
    );
    assert_eq!(ok(&dir, &["query", "--format", "csv", "SELECT count(*) AS n FROM marketing.roi"]), "n\n3\n", "roi keeps its version");

    // Not served: a principal who could read it is told where to go; anyone else sees a
    // missing table.
    let gone = meshwork(&dir, &["--as", "ana", "query", "SELECT * FROM marketing.campaigns_v1"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("`marketing.campaigns_v1` is no longer served since its sunset on 2020-01-01; read its successor `marketing.campaigns`"),
        "{}",
        stderr(&gone)
    );
    let missing = meshwork(&dir, &["--as", "olga", "query", "SELECT * FROM marketing.campaigns_v1"]);
    assert_eq!(stderr(&missing), "error: table 'meshwork.marketing.campaigns_v1' not found (at line 1, column 15)\n");
    let gone_then = meshwork(&dir, &["--as", "ana", "query", "SELECT * FROM marketing.\"campaigns_v1@1\""]);
    assert!(stderr(&gone_then).contains("no longer served since its sunset"), "time travel too: {}", stderr(&gone_then));
    // Its data is kept, and apply builds it no more.
    let table = dir.join(".meshwork/data/marketing/campaigns_v1");
    assert!(table.join("_delta_log").is_dir());
    std::fs::remove_dir_all(dir.join("domains/marketing/products/roi")).unwrap();
    assert_eq!(
        results(&ok(&dir, &["apply", "--format", "json"])),
        ["marketing.campaigns unchanged", "marketing.campaigns_v1 sunset", "sales.orders unchanged", "marketing.roi unpublished"]
    );
    let kinds = event_kinds(&dir, "marketing.campaigns_v1");
    assert!(kinds.contains(&"product.deprecated".to_owned()) && kinds.contains(&"product.sunset".to_owned()), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "product.sunset").count(), 1, "recorded once: {kinds:?}");

    // Purge deletes the data, for administrators only, even while the repository still
    // declares the sunset product; apply does not bring it back.
    let refused = meshwork(&dir, &["--as", "ana", "product", "purge", "marketing.campaigns_v1"]);
    assert_eq!(refused.status.code(), Some(1));
    let purged = ok(&dir, &["product", "purge", "marketing.campaigns_v1"]);
    assert!(purged.starts_with("purged marketing.campaigns_v1 (last version 1.0.0)"), "{purged}");
    assert!(!table.exists());
    assert_eq!(results(&ok(&dir, &["apply", "--format", "json"])), ["marketing.campaigns unchanged", "marketing.campaigns_v1 sunset", "sales.orders unchanged"]);
    assert!(!ok(&dir, &["product", "list"]).contains("campaigns_v1"));
    // A product still served cannot be purged.
    let served = meshwork(&dir, &["product", "purge", "marketing.campaigns"]);
    assert!(stderr(&served).contains("is still in the mesh repository"), "{}", stderr(&served));

    // Withdrawing the subscription.
    assert_eq!(ok(&dir, &["--as", "ana", "unsubscribe", "marketing.campaigns"]), "`ana` is no longer subscribed to marketing.campaigns\n");
    assert_eq!(ok(&dir, &["--as", "ana", "subscriptions"]), "no subscriptions\n");
}

#[test]
fn a_kept_major_must_carry_its_major_and_sit_beside_a_newer_one() {
    let (_tmp, dir) = tiny_mesh();
    let v1 = std::fs::read_to_string(dir.join(CAMPAIGNS)).unwrap().replace("name: campaigns\n", "name: campaigns_v1\n").replace("version: 1.0.0", "version: 2.0.0");
    write(&dir, "domains/marketing/products/campaigns_v1/product.yaml", &v1);
    let output = meshwork(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(3), "{}{}", stdout(&output), stderr(&output));
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        text.contains("version: `campaigns_v1` keeps major 1 of `marketing.campaigns`, but its version `2.0.0` is not a 1.x version (hint: set `version: 1.<minor>.<patch>`, or rename the product)"),
        "{text}"
    );
    assert!(
        text.contains("name: `campaigns_v1` keeps major 1 of `marketing.campaigns` side by side, but `marketing.campaigns` is at version `1.0.0`, not a newer major (hint: publish `marketing.campaigns` as 2.0.0 or later, or remove `campaigns_v1`)"),
        "{text}"
    );
}
