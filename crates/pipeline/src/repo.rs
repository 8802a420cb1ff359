//! Loads a mesh repository from disk into a checked [`MeshRepo`], collecting every problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshwork_core::descriptor::MeshConfig;
use meshwork_core::diagnostic::{Diagnostic, DiagnosticCode};
use meshwork_core::mesh::{DomainEntry, MeshRepo, ProductEntry};
use meshwork_core::parse::{parse_domain, parse_mesh_config, parse_product};
use meshwork_core::principal::{Principal, parse_principals, resolve_principals};
use meshwork_policy::{PolicySet, PolicyStates};

/// The name of the mesh configuration file at the repository root.
pub const MESH_FILE: &str = "mesh.yaml";

/// The file declaring users and services, at the repository root (optional).
pub const PRINCIPALS_FILE: &str = "principals.yaml";

/// A mesh repository on disk together with its parsed content.
#[derive(Debug, Clone)]
pub struct LoadedMesh {
    /// Absolute path of the repository root.
    pub root: PathBuf,
    /// What it declares.
    pub repo: MeshRepo,
    /// Principals with the domain memberships the domains grant, plus the local admin.
    pub principals: Vec<Principal>,
    /// Built-in, global and domain policies, compiled.
    pub policies: Arc<PolicySet>,
    /// Policy states from `mesh.yaml` and the domains.
    pub states: PolicyStates,
}

impl LoadedMesh {
    /// The repository's root and configuration, to reach its stores.
    pub fn home(&self) -> crate::MeshHome {
        crate::MeshHome { root: self.root.clone(), config: self.repo.config.clone() }
    }

    /// Resolves a path written in a descriptor, relative to the repository root.
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

fn read(root: &Path, path: &Path, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(err) => {
            diagnostics.push(Diagnostic::new(DiagnosticCode::Syntax, relative(root, path), format!("cannot read file: {err}")));
            None
        }
    }
}

/// Subdirectories of `dir`, sorted by name so that diagnostics come out in a stable order.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Reads and parses every descriptor under `root`, then runs the cross-file checks.
/// Returns the repository, or every problem found in it.
pub fn load_mesh(root: &Path) -> Result<LoadedMesh, Vec<Diagnostic>> {
    load_mesh_with(root, true)
}

/// [`load_mesh`], optionally without requiring every input glob to match a file. The
/// scheduler loads this way, so one product's missing source fails that product's refresh (a
/// read error when it builds) instead of every refresh of the mesh.
pub fn load_mesh_with(root: &Path, require_input_files: bool) -> Result<LoadedMesh, Vec<Diagnostic>> {
    let root = root.canonicalize().map_err(|err| {
        vec![Diagnostic::new(DiagnosticCode::Syntax, root.display().to_string(), format!("cannot open the mesh repository: {err}"))
            .hint("pass the directory that holds `mesh.yaml`, or create one with `meshwork init DIR`")]
    })?;
    let mut diagnostics = Vec::new();
    let mesh_path = root.join(MESH_FILE);
    let mut mesh_positions = meshwork_core::Positions::default();
    let config: Option<MeshConfig> = if mesh_path.is_file() {
        read(&root, &mesh_path, &mut diagnostics).and_then(|text| match parse_mesh_config(MESH_FILE, &text) {
            Ok(located) => {
                mesh_positions = located.positions;
                Some(located.value)
            }
            Err(found) => {
                diagnostics.extend(found);
                None
            }
        })
    } else {
        diagnostics.push(crate::home::no_mesh(&root));
        None
    };

    let mut domains = BTreeMap::new();
    let mut products = BTreeMap::new();
    let mut unparsed = std::collections::BTreeSet::new();
    for domain_dir in subdirs(&root.join("domains")) {
        let dir_name = domain_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let domain_file = domain_dir.join("domain.yaml");
        let rel = relative(&root, &domain_file);
        if !domain_file.is_file() {
            diagnostics.push(
                Diagnostic::new(DiagnosticCode::MissingReference, &rel, format!("domain directory `domains/{dir_name}` has no `domain.yaml`"))
                    .hint(format!("create it with at least `name: {dir_name}`")),
            );
        } else if let Some(text) = read(&root, &domain_file, &mut diagnostics) {
            match parse_domain(&rel, &text) {
                Ok(located) => {
                    let entry = DomainEntry { descriptor: located.value, file: rel, dir_name: dir_name.clone(), positions: located.positions };
                    domains.insert(entry.descriptor.name.clone(), entry);
                }
                Err(found) => diagnostics.extend(found),
            }
        }
        for product_dir in subdirs(&domain_dir.join("products")) {
            let product_file = product_dir.join("product.yaml");
            let rel = relative(&root, &product_file);
            if !product_file.is_file() {
                diagnostics.push(
                    Diagnostic::new(DiagnosticCode::MissingReference, &rel, "product directory has no `product.yaml`")
                        .hint("create it, or remove the directory"),
                );
                continue;
            }
            let Some(text) = read(&root, &product_file, &mut diagnostics) else { continue };
            let mut located = match parse_product(&rel, &text) {
                Ok(located) => located,
                Err(found) => {
                    diagnostics.extend(found);
                    let product_name = product_dir.file_name().unwrap_or_default().to_string_lossy();
                    if let Ok(id) = format!("{dir_name}.{product_name}").parse() {
                        unparsed.insert(id);
                    }
                    continue;
                }
            };
            let descriptor = &mut located.value;
            // An omitted transform with a `transform.sql` beside the descriptor uses that file.
            if descriptor.transform.is_none() && product_dir.join("transform.sql").is_file() {
                descriptor.transform = Some(meshwork_core::descriptor::Transform { file: Some("transform.sql".into()), sql: String::new() });
            }
            if let Some(transform) = &mut descriptor.transform
                && let Some(file) = &transform.file
            {
                let sql_path = product_dir.join(file);
                match std::fs::read_to_string(&sql_path) {
                    Ok(sql) => transform.sql = sql,
                    Err(err) => {
                        diagnostics.push(
                            Diagnostic::new(
                                DiagnosticCode::MissingReference,
                                &rel,
                                format!("cannot read transform file `{}`: {err}", relative(&root, &sql_path)),
                            )
                            .field("transform")
                            .at_position(located.positions.locate("transform"))
                            .hint("the path is relative to the product directory"),
                        );
                    }
                }
            }
            // Input files must exist: a glob must match at least one file.
            for (i, input) in located.value.inputs.iter().enumerate().filter(|_| require_input_files) {
                let Some(path) = input.source.path() else { continue };
                if crate::ingest::expand_glob(&root, path).map(|files| files.is_empty()).unwrap_or(true) {
                    let field = format!("inputs[{i}].source.path");
                    diagnostics.push(
                        Diagnostic::new(DiagnosticCode::MissingReference, &rel, format!("no file matches `{path}`"))
                            .field(&field)
                            .at_position(located.positions.locate(&field))
                            .hint("paths are relative to the mesh repository root; globs like `data/orders/*.csv` are allowed"),
                    );
                }
            }
            let entry = ProductEntry {
                file: rel,
                dir_domain: dir_name.clone(),
                dir_name: product_dir.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                positions: located.positions,
                descriptor: located.value,
            };
            diagnostics.extend(crate::validate::check_transform(&entry));
            diagnostics.extend(crate::validate::check_access_sql(&entry));
            let id = entry.descriptor.id();
            if let Some(previous) = products.get(&id) {
                let previous: &ProductEntry = previous;
                diagnostics.push(
                    Diagnostic::new(DiagnosticCode::Duplicate, &entry.file, format!("product `{id}` is also declared in `{}`", previous.file))
                        .field("name")
                        .hint("product names must be unique within their domain"),
                );
                continue;
            }
            products.insert(id, entry);
        }
    }
    // Cross-file checks run even when `mesh.yaml` is broken: they do not read it.
    let config_ok = config.is_some();
    let config = config.unwrap_or_else(|| MeshConfig {
        name: String::new(),
        description: None,
        storage: meshwork_core::descriptor::StorageLocation::default(),
        metadata: Default::default(),
        server: Default::default(),
        auth: Default::default(),
        scheduler: Default::default(),
        notifications: Default::default(),
        openlineage: None,
        policies: Default::default(),
        connections: Default::default(),
        flight_endpoints: Default::default(),
        cluster: None,
    });
    let repo = MeshRepo { config, domains, products, unparsed };
    diagnostics.extend(repo.check());
    // Connection names are checked only against a `mesh.yaml` that parsed: a broken one has
    // its own errors, and every reference would otherwise look dangling.
    if config_ok {
        diagnostics.extend(repo.check_connections());
    }

    let mut declared = Vec::new();
    let principals_path = root.join(PRINCIPALS_FILE);
    if principals_path.is_file()
        && let Some(text) = read(&root, &principals_path, &mut diagnostics)
    {
        match parse_principals(PRINCIPALS_FILE, &text) {
            Ok(located) => declared = located.value,
            Err(found) => diagnostics.extend(found),
        }
    }
    let domain_descriptors: Vec<_> = repo.domains.values().map(|d| d.descriptor.clone()).collect();
    let principals = resolve_principals(&declared, &domain_descriptors);

    let domain_dirs: Vec<String> =
        subdirs(&root.join("domains")).iter().map(|d| d.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    let sources = crate::governance::policy_sources(&root, &domain_dirs, &mut diagnostics);
    let (policies, compiled) = match PolicySet::compile(sources) {
        Ok(set) => (set, true),
        Err(errors) => {
            diagnostics.extend(errors.iter().map(crate::governance::policy_diagnostic));
            (PolicySet::default(), false)
        }
    };
    let domain_refs: Vec<_> = repo.domains.values().map(|d| &d.descriptor).collect();
    // With a policy that does not compile, state names cannot be checked without false alarms.
    let problems = if compiled { policies.check_states(&repo.config, &domain_refs) } else { Vec::new() };
    for problem in problems {
        let field = format!("policies.{}", problem.name);
        let (file, position) = match &problem.domain {
            None => (MESH_FILE.to_owned(), mesh_positions.locate(&field)),
            Some(d) => match repo.domains.get(d) {
                Some(entry) => (entry.file.clone(), entry.positions.locate(&field)),
                None => (format!("domains/{d}/domain.yaml"), None),
            },
        };
        diagnostics.push(Diagnostic::new(DiagnosticCode::InvalidValue, file, problem.message).field(field).at_position(position).hint(problem.hint));
    }
    let states = PolicyStates::new(&repo.config, repo.domains.values().map(|d| &d.descriptor));
    let policies = Arc::new(policies);
    if compiled {
        let products: Vec<_> = repo.products.values().map(|p| &p.descriptor).collect();
        diagnostics.extend(crate::governance::check_access_policies(&policies, &states, &principals, &products));
    }
    // Report in reading order: by file, then by position.
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    if diagnostics.is_empty() && config_ok {
        Ok(LoadedMesh { root, repo, principals, policies, states })
    } else {
        Err(diagnostics)
    }
}
