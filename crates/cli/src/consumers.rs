//! `meshwork product consumers`: who depends on a product — the products built from it, and,
//! from the audit log, the principals who queried it, per interface, over a window. For the
//! people who decide whether a change or a deprecation is safe: administrators, the product's
//! owner and members of its domain.

use std::path::Path;

use anyhow::ensure;
use meshwork_catalog::ProductReader;

use crate::commands::{open_as, visible_product};
use crate::ReportFormat;
use crate::output::text_table;

/// `meshwork product consumers NAME [--window 30d]`.
pub async fn product_consumers(dir: &Path, principal: Option<&str>, name: &str, window: std::time::Duration, format: ReportFormat) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let (id, descriptor) = visible_product(catalog.as_ref(), &governance, &principal, name).await?;
    ensure!(
        meshwork_query::is_owner(&principal, &descriptor),
        "`meshwork product consumers {id}` is for the product's owner, members of domain `{}` and administrators; `{}` is none of them",
        id.domain,
        principal.name
    );
    let since = chrono::Utc::now() - chrono::Duration::from_std(window)?;
    let readers: Vec<ProductReader> = catalog.readers(&id, since).await?;
    // Like every lineage answer, only products the caller may read are named.
    let records = catalog.products().await?;
    let (_, built) = meshwork_query::visible_lineage(catalog.as_ref(), &governance.visible(&principal, &records), &id).await?;
    let products: Vec<String> = built.iter().map(ToString::to_string).collect();
    let days = window.as_secs() as f64 / 86_400.0;
    if format == ReportFormat::Json {
        let json = serde_json::json!({ "product": id.to_string(), "window_days": days, "products": products, "readers": readers });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if products.is_empty() {
        println!("{id}: no product is built from it");
    } else {
        println!("{id}: built into {}", products.join(", "));
    }
    if readers.is_empty() {
        println!("no audited query read it in the last {days} days");
        return Ok(());
    }
    println!("read in the last {days} days by:");
    let rows: Vec<Vec<String>> =
        readers.iter().map(|r| vec![r.principal.clone(), r.interface.clone(), r.queries.to_string(), meshwork_catalog::time::format(&r.last_read)]).collect();
    print!("{}", text_table(&["PRINCIPAL", "INTERFACE", "QUERIES", "LAST READ"], &rows));
    Ok(())
}
