//! The scheduler against real meshes: cron with an injectable clock, upstream-change cascades,
//! retries, SLO evaluation, and webhook delivery to a real HTTP receiver.

mod cron;
mod openlineage;
mod refresh;
mod slo;
mod webhook;

use std::path::Path;
use std::sync::Arc;

use meshwork_catalog::SqlCatalog;
use meshwork_storage::ProductStore;

pub(crate) fn write(dir: &Path, path: &str, content: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A product reading a CSV file or other products, with an optional `refresh:` block.
pub(crate) fn product(dir: &Path, name: &str, inputs: &[&str], extra: &str) {
    let inputs: String = if inputs.is_empty() {
        format!("  - {{ name: raw, source: {{ kind: csv, path: data/{name}.csv }} }}\n")
    } else {
        inputs.iter().enumerate().map(|(i, p)| format!("  - {{ name: in{i}, product: d.{p} }}\n")).collect()
    };
    let transform = if inputs.matches("product:").count() > 1 {
        let parts: Vec<String> = (0..inputs.matches("product:").count()).map(|i| format!("SELECT id FROM in{i}")).collect();
        format!("transform: |\n  SELECT DISTINCT id FROM ({}) u\n", parts.join(" UNION ALL "))
    } else {
        String::new()
    };
    write(
        dir,
        &format!("domains/d/products/{name}/product.yaml"),
        &format!("name: {name}\ndomain: d\nversion: 1.0.0\nowner: group:d-team\ninputs:\n{inputs}{transform}contract:\n  columns:\n    - {{ name: id, type: bigint, nullable: false }}\n{extra}"),
    );
    if inputs.contains("kind: csv") {
        write(dir, &format!("data/{name}.csv"), "id\n1\n2\n");
    }
}

pub(crate) struct Mesh {
    pub _tmp: tempfile::TempDir,
    pub root: std::path::PathBuf,
    pub catalog: Arc<SqlCatalog>,
    pub store: ProductStore,
}

pub(crate) async fn open(tmp: tempfile::TempDir) -> Mesh {
    let root = tmp.path().to_path_buf();
    write(&root, "mesh.yaml", "name: m\n");
    write(&root, "domains/d/domain.yaml", "name: d\n");
    let catalog = Arc::new(SqlCatalog::open_sqlite(&root.join(".meshwork/catalog.db")).await.unwrap());
    let store = ProductStore::open(&root.join(".meshwork/data")).unwrap();
    Mesh { _tmp: tmp, root, catalog, store }
}

pub(crate) async fn apply(mesh: &Mesh) {
    let loaded = meshwork_pipeline::load_mesh(&mesh.root).unwrap_or_else(|d| panic!("{d:#?}"));
    let report = meshwork_pipeline::apply(&loaded, mesh.catalog.as_ref(), &mesh.store, &meshwork_pipeline::SilentObserver).await.unwrap();
    assert!(!report.failed(), "{report:#?}");
}
