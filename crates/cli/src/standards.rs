//! `meshwork export` and `meshwork import`: products as Bitol ODCS contracts and ODPS products,
//! and such files (Meshwork's or anyone's) as product descriptors in the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::{DomainName, ProductId};
use meshwork_core::standards::import::{Document, import};
use meshwork_core::standards::{Serving, odcs, odps, yaml};

use crate::commands::{open_as, print_diagnostics, visible_product};
use crate::{EXIT_INVALID, ReportFormat, Reported};

/// The open standard a product is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StandardFormat {
    /// Bitol Open Data Contract Standard v3.1.0 (the product's contract).
    Odcs,
    /// Bitol Open Data Product Standard v1.0.0 (the product, its ports and their contracts).
    Odps,
}

/// `meshwork export NAME --format odcs|odps`: from the catalog's published descriptor as the
/// caller may see it (a hidden product reads as not found; inputs naming products the caller
/// cannot see are left out), or with `--repo` from the repository's working copy.
pub async fn export(dir: &Path, principal: Option<&str>, name: &str, format: StandardFormat, from_repo: bool, output: Option<&Path>) -> anyhow::Result<()> {
    let (descriptor, versions, table_uri, config) = if from_repo {
        if let Some(principal) = principal {
            anyhow::bail!("`--as {principal}` does not apply with `--repo`: the repository is read as it is on disk; drop one of them");
        }
        let mesh = meshwork_pipeline::validate(dir).map_err(|diagnostics| {
            print_diagnostics(&diagnostics, ReportFormat::Text);
            Reported(EXIT_INVALID)
        })?;
        let id: ProductId = name.parse().map_err(|_| anyhow::anyhow!("`{name}` is not a product address; write it as `domain.product`, e.g. `sales.orders`"))?;
        let entry = mesh.repo.products.get(&id).with_context(|| format!("product `{id}` is not in the repository; `meshwork validate` lists what it declares"))?;
        let versions = mesh.repo.products.iter().map(|(id, e)| (id.clone(), e.descriptor.version.clone())).collect();
        (entry.descriptor.clone(), versions, None, mesh.repo.config.clone())
    } else {
        let (catalog, governance, principal) = open_as(dir, principal).await?;
        let (id, descriptor) = visible_product(catalog.as_ref(), &governance, &principal, name).await?;
        let products = catalog.products().await?;
        let visible = governance.visible(&principal, &products);
        let versions: BTreeMap<ProductId, String> = visible.iter().map(|p| (p.id.clone(), p.version.clone())).collect();
        // A virtual product has no Delta table to point a reader at.
        let stored = descriptor.storage.is_copy();
        let table_uri = if principal.admin && stored { visible.iter().find(|p| p.id == id).map(|p| p.table_uri.clone()) } else { None };
        let descriptor = descriptor.without_hidden_products(|p| versions.contains_key(p));
        let config = meshwork_pipeline::MeshHome::open(dir).map_err(|_| anyhow::anyhow!("no mesh repository at `{}`", dir.display()))?.config;
        (descriptor, versions, table_uri, config)
    };
    let text = document(&descriptor, format, &versions, &config.server, table_uri);
    match output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// The document of `descriptor` in `format`, naming the servers of `server`.
fn document(
    descriptor: &ProductDescriptor,
    format: StandardFormat,
    versions: &BTreeMap<ProductId, String>,
    server: &meshwork_core::descriptor::ServerConfig,
    table_uri: Option<String>,
) -> String {
    // A server bound to every interface is reached on this host by clients here.
    let host = if matches!(server.bind.as_str(), "0.0.0.0" | "::" | "[::]") { "localhost".to_owned() } else { server.bind.clone() };
    let serving = Serving {
        host,
        postgres_port: server.postgres_port,
        flight_sql_port: server.flight_sql_port,
        http_port: server.http_port,
        database: meshwork_query::CATALOG_NAME.to_owned(),
        table_uri,
    };
    match format {
        StandardFormat::Odcs => odcs::export(descriptor, &serving).to_text(),
        StandardFormat::Odps => odps::export(descriptor, versions).to_text(),
    }
}

/// `meshwork import FILE… [--domain D] [--force]`.
pub fn import_files(dir: &Path, files: &[PathBuf], domain: Option<&str>, force: bool, format: ReportFormat) -> anyhow::Result<()> {
    let root = meshwork_pipeline::MeshHome::open(dir)
        .map_err(|diagnostics| {
            print_diagnostics(&diagnostics, ReportFormat::Text);
            Reported(EXIT_INVALID)
        })?
        .root;
    let domain = domain
        .map(|d| DomainName::new(d).map_err(|_| anyhow::anyhow!("`{d}` is not a domain name; use snake_case, e.g. `sales`")))
        .transpose()?;
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let shown = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read `{shown}`"))?;
        match yaml::parse(&shown, &text) {
            Ok(value) => documents.push(Document { file: shown, value }),
            Err(diagnostic) => problems.push(diagnostic),
        }
    }
    let mut imported = import(&documents, domain.as_ref());
    problems.append(&mut imported.errors);
    for product in &imported.products {
        let descriptor_file = root.join(&product.files[0].path);
        if descriptor_file.exists() && !force {
            problems.push(
                meshwork_core::diagnostic::Diagnostic::new(
                    meshwork_core::diagnostic::DiagnosticCode::Duplicate,
                    &product.files[0].path,
                    format!("product `{}` already exists in the repository", product.id),
                )
                .hint("pass `--force` to replace it, or import it under another domain with `--domain`"),
            );
        }
    }
    if !problems.is_empty() {
        print_diagnostics(&problems, format);
        return Err(Reported(EXIT_INVALID).into());
    }
    let mut written = Vec::new();
    for product in &imported.products {
        let domain_file = format!("domains/{}/domain.yaml", product.id.domain);
        if !root.join(&domain_file).exists() {
            write(&root, &domain_file, &format!("name: {}\n", product.id.domain))?;
            written.push(domain_file);
        }
        for file in &product.files {
            write(&root, &file.path, &file.content)?;
            written.push(file.path.clone());
        }
    }
    match format {
        ReportFormat::Json => {
            let value = serde_json::json!({
                "products": imported.products.iter().map(|p| p.id.to_string()).collect::<Vec<_>>(),
                "written": written,
                "unmapped": imported.unmapped,
            });
            println!("{}", serde_json::to_string_pretty(&value).expect("json"));
        }
        ReportFormat::Text => {
            for product in &imported.products {
                println!("imported {} -> {}", product.id, product.files[0].path);
            }
            for file in written.iter().filter(|f| !imported.products.iter().any(|p| &p.files[0].path == *f)) {
                println!("wrote    {file}");
            }
            if !imported.unmapped.is_empty() {
                println!("not mapped ({}):", imported.unmapped.len());
                for u in &imported.unmapped {
                    println!("  {u}");
                }
            }
            println!("next: meshwork validate");
        }
    }
    Ok(())
}

fn write(root: &Path, relative: &str, content: &str) -> anyhow::Result<()> {
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    std::fs::write(&path, content).with_context(|| format!("cannot write `{relative}`"))
}
