//! Scaffolds mesh repositories: a minimal commented skeleton, or the example mesh of three
//! domains with deterministic, realistically distributed generated data.

#![deny(missing_docs)]

mod data;
mod files;

use std::path::Path;

pub use data::ExampleData;

/// Errors of scaffolding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The directory already holds a mesh repository.
    #[error("`{0}` already holds a `mesh.yaml`; choose an empty directory, or delete it first")]
    AlreadyAMesh(String),
    /// A file could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
}

/// Size and seed of the example data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleOptions {
    /// Number of orders to generate (customers are a fifth of that, at least 50).
    pub orders: usize,
    /// Seed of the generator: the same seed gives byte-identical files.
    pub seed: u64,
}

impl Default for ExampleOptions {
    fn default() -> Self {
        ExampleOptions { orders: 120_000, seed: 42 }
    }
}

/// What [`write_example`] generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleSummary {
    /// Customers written.
    pub customers: usize,
    /// Orders written (including a few test orders the transform drops).
    pub orders: usize,
    /// Campaigns written.
    pub campaigns: usize,
    /// Products declared.
    pub products: usize,
}

fn write(dir: &Path, relative: &str, content: &str) -> Result<(), ScaffoldError> {
    let path = dir.join(relative);
    let fail = |source| ScaffoldError::Write { path: path.display().to_string(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::write(&path, content).map_err(fail)
}

fn refuse_existing(dir: &Path) -> Result<(), ScaffoldError> {
    if dir.join("mesh.yaml").exists() {
        return Err(ScaffoldError::AlreadyAMesh(dir.display().to_string()));
    }
    Ok(())
}

/// Writes a minimal, commented mesh repository with one domain and one product into `dir`.
pub fn write_skeleton(dir: &Path, name: &str) -> Result<(), ScaffoldError> {
    refuse_existing(dir)?;
    for (path, content) in files::skeleton(name) {
        write(dir, path, &content)?;
    }
    Ok(())
}

/// Writes the example mesh (domains sales, marketing and finance, seven products, generated
/// data) into `dir`.
pub fn write_example(dir: &Path, options: &ExampleOptions) -> Result<ExampleSummary, ScaffoldError> {
    refuse_existing(dir)?;
    let data = ExampleData::generate(options);
    for (path, content) in files::example_descriptors() {
        write(dir, path, content)?;
    }
    write(dir, "data/sales/customers.csv", &data.customers_csv())?;
    for (year, csv) in data.orders_csv_by_year() {
        write(dir, &format!("data/sales/orders/orders_{year}.csv"), &csv)?;
    }
    write(dir, "data/marketing/campaigns.ndjson", &data.campaigns_ndjson())?;
    Ok(ExampleSummary {
        customers: data.customers.len(),
        orders: data.orders.len(),
        campaigns: data.campaigns.len(),
        products: files::example_descriptors().iter().filter(|(p, _)| p.ends_with("product.yaml")).count(),
    })
}
