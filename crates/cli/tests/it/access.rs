//! `meshwork access …`: a principal who sees a discoverable product's card asks for access, an
//! owner approves, the grant makes it a reader (filters and masks still apply), and revocation
//! and expiry end it; hidden products stay not found.

use std::path::{Path, PathBuf};

use expect_test::expect;

use crate::{governed_mesh, meshwork, ok, stderr, write};

/// The governed tiny mesh with an owner (`sam`, a member of sales) and `sales.orders`
/// discoverable and filtered.
fn access_mesh() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = governed_mesh();
    write(&dir, "principals.yaml", "principals:\n  - { name: ana, groups: [analysts] }\n  - { name: olga }\n  - { name: sam, domains: [sales] }\n");
    let orders = dir.join("domains/sales/products/orders/product.yaml");
    let text = std::fs::read_to_string(&orders).unwrap().replace("access:\n", "access:\n  discoverable: true\n  row_filter: \"amount < 50\"\n");
    std::fs::write(&orders, text).unwrap();
    ok(&dir, &["apply"]);
    (tmp, dir)
}

const OLGA_QUERY: &str = "SELECT order_id, customer, amount FROM sales.orders ORDER BY 1";

fn olga_reads(dir: &Path) -> Result<String, String> {
    let output = meshwork(dir, &["--as", "olga", "query", OLGA_QUERY, "--format", "csv"]);
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => Err(stderr(&output)),
    }
}

const NOT_READABLE: &str = "error: table 'meshwork.sales.orders' not found (at line 1, column 40)\n";

#[test]
fn a_request_approved_grants_reading_until_revoked_with_filters_and_masks_kept() {
    let (_tmp, dir) = access_mesh();
    assert_eq!(olga_reads(&dir), Err(NOT_READABLE.into()));

    // olga sees the card of the discoverable product and asks; a second request is refused.
    expect![[r#"
        access request 1 for sales.orders is pending; the owners of domain `sales` decide it (`meshwork access list` shows its state)
    "#]]
    .assert_eq(&ok(&dir, &["--as", "olga", "access", "request", "sales.orders", "--purpose", "refund analysis"]));
    let again = meshwork(&dir, &["--as", "olga", "access", "request", "sales.orders", "--purpose", "again"]);
    assert_eq!(
        stderr(&again),
        "error: `olga` already has a pending access request for `sales.orders` (#1); wait for its owners' answer or withdraw it first\n"
    );
    let no_purpose = meshwork(&dir, &["--as", "olga", "access", "request", "sales.orders", "--purpose", "  "]);
    assert!(stderr(&no_purpose).starts_with("error: an access request needs a purpose"), "{}", stderr(&no_purpose));
    let reader = meshwork(&dir, &["--as", "ana", "access", "request", "sales.orders", "--purpose", "x"]);
    assert_eq!(stderr(&reader), "error: `ana` already reads `sales.orders`; there is nothing to request\n");

    // Nobody decides their own request; a reader who does not own the product does not see it.
    let own = meshwork(&dir, &["--as", "olga", "access", "approve", "1"]);
    assert_eq!(stderr(&own), "error: `olga` may not decide their own access request `1`: that is for the owners of `sales.orders`\n");
    let not_owner = meshwork(&dir, &["--as", "ana", "access", "approve", "1"]);
    assert_eq!(stderr(&not_owner), "error: access request `1` not found (hint: `meshwork access list` shows the requests you may decide)\n");
    assert_eq!(ok(&dir, &["--as", "ana", "access", "list"]), "no access requests\n");
    assert_eq!(olga_reads(&dir), Err(NOT_READABLE.into()));

    // The owner sees it pending and approves.
    let pending = ok(&dir, &["--as", "sam", "access", "list", "--status", "pending"]);
    assert!(pending.contains("sales.orders") && pending.contains("olga") && pending.contains("refund analysis"), "{pending}");
    let approved = ok(&dir, &["--as", "sam", "access", "approve", "1", "--comment", "ok"]);
    assert_eq!(approved, "approved request 1: `olga` reads sales.orders by grant 1 with no end date\n");

    // olga now reads, through the row filter and the mask, as any reader would.
    expect![[r#"
        order_id,customer,amount
        1,***,10.50
        2,***,20.00
        3,***,5.25
    "#]]
    .assert_eq(&olga_reads(&dir).unwrap());
    let shown = ok(&dir, &["--as", "sam", "product", "show", "sales.orders"]);
    assert!(shown.contains("grants (readers by approved access requests):") && shown.contains("olga"), "{shown}");
    let json: serde_json::Value = serde_json::from_str(&ok(&dir, &["--as", "olga", "product", "show", "sales.orders", "--format", "json"])).unwrap();
    assert_eq!(json["grants"][0]["principal"], "olga", "{json:#}");
    let json: serde_json::Value = serde_json::from_str(&ok(&dir, &["--as", "ana", "product", "show", "sales.orders", "--format", "json"])).unwrap();
    assert_eq!(json["grants"], serde_json::json!([]), "a non-owner sees only its own grants");

    // An owner tightening `readers` sees who still reads by grant.
    let orders = dir.join("domains/sales/products/orders/product.yaml");
    let published = std::fs::read_to_string(&orders).unwrap();
    std::fs::write(&orders, published.replace("readers: [group:analysts, domain:marketing]", "readers: [domain:marketing]")).unwrap();
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains("`group:analysts` may no longer read the product"), "{plan}");
    assert!(plan.contains("  still reads by grant: olga (grant 1) (`meshwork access revoke` ends a grant)\n"), "{plan}");
    let plan: serde_json::Value = serde_json::from_str(&ok(&dir, &["plan", "--format", "json"])).unwrap();
    let item = plan["products"].as_array().unwrap().iter().find(|p| p["product"] == "sales.orders").unwrap().clone();
    assert_eq!(item["grants"][0]["principal"], "olga", "{item:#}");
    std::fs::write(&orders, published).unwrap();

    // A decided request is decided once.
    let twice = meshwork(&dir, &["--as", "sam", "access", "deny", "1", "--comment", "no"]);
    assert_eq!(stderr(&twice), "error: access request `1` is already approved; only pending requests are decided\n");

    // Revoking ends it at once.
    assert_eq!(ok(&dir, &["--as", "sam", "access", "revoke", "sales.orders", "olga"]), "revoked grant 1: `olga` no longer reads sales.orders by it\n");
    let all = ok(&dir, &["--as", "sam", "access", "grants", "--all", "--format", "json"]);
    assert!(all.contains(r#""revoked_by": "sam""#), "the revocation is sam's, not the grantee's: {all}");
    assert_eq!(olga_reads(&dir), Err(NOT_READABLE.into()));
    assert_eq!(ok(&dir, &["--as", "sam", "access", "grants"]), "no grants\n");
    let all = ok(&dir, &["--as", "sam", "access", "grants", "--all"]);
    assert!(all.contains("revoked"), "{all}");

    // Deny needs a comment and makes no grant.
    ok(&dir, &["--as", "olga", "access", "request", "sales.orders", "--purpose", "once more"]);
    let bare = meshwork(&dir, &["--as", "sam", "access", "deny", "2", "--comment", " "]);
    assert!(stderr(&bare).starts_with("error: denying an access request needs a comment"), "{}", stderr(&bare));
    assert_eq!(ok(&dir, &["--as", "sam", "access", "deny", "2", "--comment", "use the aggregate"]), "denied request 2 of `olga` for sales.orders\n");
    assert_eq!(olga_reads(&dir), Err(NOT_READABLE.into()));

    // Every step is an event and audited.
    let events = ok(&dir, &["events", "--product", "sales.orders", "--format", "json"]);
    for kind in ["access.requested", "access.approved", "access.revoked", "access.denied"] {
        assert!(events.contains(kind), "{kind} missing: {events}");
    }
    let audit = ok(&dir, &["audit", "--principal", "sam", "--format", "json"]);
    assert!(audit.contains("access.approve") && audit.contains("access.revoke") && audit.contains("access.deny"), "{audit}");
}

#[test]
fn a_grant_with_an_end_stops_counting_by_itself() {
    let (_tmp, dir) = access_mesh();
    ok(&dir, &["--as", "olga", "access", "request", "sales.orders", "--purpose", "a quick look", "--until", "4s"]);
    let approved = ok(&dir, &["--as", "sam", "access", "approve", "1"]);
    assert!(approved.starts_with("approved request 1: `olga` reads sales.orders by grant 1 until "), "{approved}");
    let rows = olga_reads(&dir).expect("olga reads before the end");
    assert_eq!(rows.lines().count(), 4, "{rows}");
    // Wait past the end: nothing is written to the catalog, the decision compares with the clock.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(olga_reads(&dir), Err(NOT_READABLE.into()));
    let grants = ok(&dir, &["--as", "sam", "access", "grants", "--all", "--format", "json"]);
    let grants: serde_json::Value = serde_json::from_str(&grants).unwrap();
    assert_eq!(grants[0]["revoked_at"], serde_json::Value::Null);
    // Listing recorded the expiry, once.
    let events = ok(&dir, &["events", "--product", "sales.orders", "--format", "json"]);
    assert_eq!(events.matches("access.expired").count(), 1, "{events}");
    ok(&dir, &["--as", "sam", "access", "grants"]);
    let events = ok(&dir, &["events", "--product", "sales.orders", "--format", "json"]);
    assert_eq!(events.matches("access.expired").count(), 1, "{events}");

    let past = meshwork(&dir, &["--as", "olga", "access", "request", "sales.orders", "--purpose", "x", "--until", "2020-01-01"]);
    assert!(stderr(&past).starts_with("error: `until` 2020-01-02T00:00:00.000000Z is not in the future"), "{}", stderr(&past));
}

#[test]
fn a_hidden_product_cannot_be_requested_nor_told_apart_from_a_missing_one() {
    let (_tmp, dir) = access_mesh();
    // marketing.campaigns has no access block: hidden from olga.
    let hidden = meshwork(&dir, &["--as", "olga", "access", "request", "marketing.campaigns", "--purpose", "x"]);
    let missing = meshwork(&dir, &["--as", "olga", "access", "request", "marketing.nothing", "--purpose", "x"]);
    assert_eq!(stderr(&hidden).replace("campaigns", "X"), stderr(&missing).replace("nothing", "X"));
    assert_eq!(stderr(&hidden), "error: product `marketing.campaigns` not found (hint: `meshwork product list` lists the products you can read)\n");
    let grants = meshwork(&dir, &["--as", "olga", "access", "grants", "--product", "marketing.campaigns"]);
    assert_eq!(stderr(&grants), stderr(&hidden));
    let revoke = meshwork(&dir, &["--as", "olga", "access", "revoke", "marketing.campaigns", "ana"]);
    assert!(stderr(&revoke).contains("not found"), "{}", stderr(&revoke));
}
