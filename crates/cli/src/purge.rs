//! `meshwork product purge NAME`: deletes the data and catalog rows of a product that `apply`
//! unpublished after it left the repository.

use std::path::Path;
use std::time::Duration;

use meshwork_core::id::ProductId;

use crate::ReportFormat;
use crate::commands::{open_as, validated};

/// `meshwork product purge`.
pub async fn product_purge(dir: &Path, principal: Option<&str>, name: &str, lock_wait: Duration) -> anyhow::Result<()> {
    let (catalog, _governance, principal) = open_as(dir, principal).await?;
    // Refused before anything else, so a non-administrator learns nothing about the product.
    anyhow::ensure!(
        principal.admin,
        "`{}` may not purge products: only administrators may; run it as an administrator (`--as NAME`)",
        principal.name
    );
    let id: ProductId = name.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mesh = validated(dir, ReportFormat::Text, "product purge")?;
    let store = mesh.home().open_store()?;
    let purged = meshwork_pipeline::purge(&mesh, catalog.as_ref(), &store, &principal, &id, lock_wait).await?;
    let table = if purged.table_deleted { "its Delta table and catalog rows are deleted" } else { "it had no Delta table; its catalog rows are deleted" };
    println!("purged {} (last version {}): {table}; its audit and event history is kept", purged.product, purged.version);
    Ok(())
}
