//! `meshwork catalog`: the metadata store's schema version, its explicit upgrade, and a
//! consistent copy of the embedded SQLite file.

use std::path::Path;

use meshwork_catalog::{Backend, Location, OpenMode, SqlCatalog};

use crate::commands::open_home;

/// `meshwork catalog status`: where the catalog is and whether its schema is this build's.
pub async fn status(dir: &Path) -> anyhow::Result<()> {
    let home = open_home(dir)?;
    let location = home.catalog_location()?;
    // Opened without upgrading, so an outdated schema is reported, not changed.
    let catalog = match SqlCatalog::open_with(&location, OpenMode::Refuse).await {
        Err(meshwork_catalog::CatalogError::Outdated { applied, known }) => {
            println!("{location}: schema version {applied}, this meshwork's is {known}: run `meshwork catalog migrate`");
            return Ok(());
        }
        other => other?,
    };
    let status = catalog.migration_status().await?;
    println!("{location}: {} catalog, schema version {} (current)", backend_name(catalog.backend()), status.applied);
    Ok(())
}

/// `meshwork catalog migrate`: upgrades the schema to this build's. Safe to run from several
/// machines at once: PostgreSQL migrations hold an advisory lock.
pub async fn migrate(dir: &Path) -> anyhow::Result<()> {
    let home = open_home(dir)?;
    let location = home.catalog_location()?;
    let catalog = SqlCatalog::open_with(&location, OpenMode::Upgrade).await?;
    let status = catalog.migrate().await?;
    println!("{location}: schema version {} (current)", status.applied);
    Ok(())
}

/// `meshwork catalog backup FILE`: a consistent copy of the embedded SQLite catalog, taken while
/// servers keep running. PostgreSQL catalogs are backed up with PostgreSQL's own tools.
pub async fn backup(dir: &Path, target: &Path) -> anyhow::Result<()> {
    let home = open_home(dir)?;
    let location = home.catalog_location()?;
    if let Location::Postgres { url, .. } = &location {
        anyhow::bail!("the catalog is in PostgreSQL (`{url}`): back it up with `pg_dump --format=custom` and restore it with `pg_restore` (see docs/deployment.md)");
    }
    anyhow::ensure!(!target.exists(), "`{}` already exists; choose a new file so no backup is overwritten", target.display());
    let catalog = SqlCatalog::open(&location).await?;
    catalog.backup_to(target).await?;
    println!("backed up {location} to `{}`; restore by stopping meshwork and copying it to `{}`", target.display(), match &location {
        Location::Sqlite(path) => path.display().to_string(),
        Location::Postgres { .. } => unreachable!("refused above"),
    });
    Ok(())
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    }
}
