//! `product show --format json` names only the inputs the caller may also see.

use crate::{governed_mesh, ok};

#[test]
fn product_show_names_only_visible_inputs() {
    let (_tmp, dir) = governed_mesh();
    // Everyone may read marketing.roi; olga may read neither of its inputs.
    let roi = dir.join("domains/marketing/products/roi/product.yaml");
    let text = std::fs::read_to_string(&roi).unwrap();
    std::fs::write(&roi, format!("{text}access:\n  readers: [\"*\"]\n")).unwrap();
    ok(&dir, &["apply"]);

    let shown: serde_json::Value = serde_json::from_str(&ok(&dir, &["--as", "olga", "product", "show", "marketing.roi", "--format", "json"])).unwrap();
    assert_eq!(shown["descriptor"]["inputs"], serde_json::json!([]), "{shown:#}");
    assert_eq!(shown["upstream"], serde_json::json!([]), "{shown:#}");
    assert!(!shown.to_string().contains("sales.orders") && !shown.to_string().contains("marketing.campaigns"), "{shown}");

    // ana reads sales.orders (an analyst) but not marketing.campaigns.
    let shown: serde_json::Value = serde_json::from_str(&ok(&dir, &["--as", "ana", "product", "show", "marketing.roi", "--format", "json"])).unwrap();
    let inputs: Vec<&str> = shown["descriptor"]["inputs"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["orders"], "{shown:#}");

    // The administrator sees both.
    let shown: serde_json::Value = serde_json::from_str(&ok(&dir, &["product", "show", "marketing.roi", "--format", "json"])).unwrap();
    let inputs: Vec<&str> = shown["descriptor"]["inputs"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["campaigns", "orders"], "{shown:#}");
}
