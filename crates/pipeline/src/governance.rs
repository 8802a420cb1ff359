//! Governance at publish time: loading the mesh's policies and principals, and checking every
//! product's new descriptor against its published one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use meshwork_catalog::{CatalogStore, GovernanceSnapshot, PolicyRecord, PolicyStateRecord};
use meshwork_core::descriptor::{DomainDescriptor, PolicyState, ProductDescriptor};
use meshwork_core::mesh::ProductEntry;
use meshwork_core::diagnostic::{Diagnostic, DiagnosticCode};
use meshwork_core::id::{DomainName, ProductId, check_name};
use meshwork_policy::{Authorizer, GovernanceInput, GovernanceLineage, PolicyError, PolicyScope, PolicySet, PolicySource, PolicyStates, Violation};

use crate::declared::DeclaredPlanner;
use crate::{LoadedMesh, PipelineError};

/// The directory of global policies, at the repository root.
pub const POLICY_DIR: &str = "policies";

/// Reads the built-in library, `policies/*.rego` and `domains/<d>/policies/*.rego`.
pub(crate) fn policy_sources(root: &Path, domains: &[String], diagnostics: &mut Vec<Diagnostic>) -> Vec<PolicySource> {
    let mut sources = PolicySource::builtins();
    let mut read_dir = |dir: &Path, scope: PolicyScope, rel_dir: String| {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "rego")).collect();
        files.sort();
        for path in files {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let rel = format!("{rel_dir}/{}", path.file_name().unwrap_or_default().to_string_lossy());
            if check_name(&stem).is_err() {
                diagnostics.push(
                    Diagnostic::new(DiagnosticCode::InvalidName, &rel, format!("policy file name `{stem}` is not a valid policy name"))
                        .hint("name policy files in snake_case, e.g. `no_test_data.rego`: the name is used in `policies:` maps"),
                );
                continue;
            }
            if scope == PolicyScope::Global && sources.iter().any(|s| s.scope == PolicyScope::Global && s.name == stem) {
                diagnostics.push(
                    Diagnostic::new(DiagnosticCode::Duplicate, &rel, format!("policy `{stem}` is already a built-in policy"))
                        .hint("rename the file; built-ins are switched with `policies:` in `mesh.yaml`, not replaced"),
                );
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push(PolicySource { name: stem, scope: scope.clone(), file: rel, text }),
                Err(err) => diagnostics.push(Diagnostic::new(DiagnosticCode::Syntax, &rel, format!("cannot read policy file: {err}"))),
            }
        }
    };
    read_dir(&root.join(POLICY_DIR), PolicyScope::Global, POLICY_DIR.to_owned());
    for domain in domains {
        if let Ok(name) = DomainName::new(domain.as_str()) {
            read_dir(&root.join("domains").join(domain).join("policies"), PolicyScope::Domain(name), format!("domains/{domain}/policies"));
        }
    }
    sources
}

/// A Rego compile error as a diagnostic, with the line and column regorus reports.
pub(crate) fn policy_diagnostic(err: &PolicyError) -> Diagnostic {
    match err {
        PolicyError::Syntax { file, message } => {
            // regorus reports `--> file:line:col`, the source line with a caret, then `error: …`.
            let position = message.lines().find_map(|l| l.trim().strip_prefix("--> ")).and_then(|location| {
                let mut parts = location.rsplitn(3, ':');
                let column = parts.next()?.trim().parse::<usize>().ok()?;
                let line = parts.next()?.trim().parse::<usize>().ok()?;
                Some((line, column))
            });
            let text = message
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error:"))
                .map(|t| t.trim().to_owned())
                .unwrap_or_else(|| message.trim().to_owned());
            Diagnostic::new(DiagnosticCode::Syntax, file, format!("invalid Rego: {text}"))
                .at_position(position)
                .hint("see https://www.openpolicyagent.org/docs/policy-language for the syntax")
        }
        PolicyError::Package { file, package, name } => Diagnostic::new(
            DiagnosticCode::InvalidValue,
            file,
            format!("package `{package}` is neither a governance nor an access policy"),
        )
        .at(1, 1)
        .hint(format!("start the file with `package meshwork.governance.{name}` or `package meshwork.access.{name}`")),
    }
}

/// Runs every access decision the mesh can produce (each declared principal on each product) so
/// that an access policy which fails to evaluate is reported against its file by `validate`,
/// instead of silently denying products to everyone at query time.
pub(crate) fn check_access_policies(
    policies: &std::sync::Arc<PolicySet>,
    states: &PolicyStates,
    principals: &[meshwork_core::principal::Principal],
    products: &[&ProductDescriptor],
) -> Vec<Diagnostic> {
    let authorizer = Authorizer::new(policies.clone(), states.clone());
    let mut failed: BTreeMap<String, (String, String, ProductId)> = BTreeMap::new();
    for principal in principals {
        for product in products {
            if let Some((policy, error)) = authorizer.decide(principal, product).failure {
                failed.entry(policy).or_insert_with(|| (error, principal.name.clone(), product.id()));
            }
        }
    }
    failed
        .into_iter()
        .map(|(policy, (error, principal, product))| {
            let file = policies.get(&policy).map(|p| p.source.file.clone()).unwrap_or(policy.clone());
            Diagnostic::new(
                DiagnosticCode::InvalidValue,
                file,
                format!("access policy `{policy}` fails to evaluate (for `{principal}` on `{product}`): {error}"),
            )
            .hint("a failing access policy denies every product it applies to; `masks` is an object of column to mask, `deny` and `row_filters` are sets")
        })
        .collect()
}

/// A policy violation with the place in the repository it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The violation.
    pub violation: Violation,
    /// The product's descriptor file.
    pub file: String,
    /// 1-based line of the field (or its nearest enclosing field), if known.
    pub line: Option<usize>,
    /// 1-based column, if known.
    pub column: Option<usize>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        let v = &self.violation;
        write!(f, ": ")?;
        if let Some(field) = &v.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "[{}] policy `{}` on `{}`: {}", v.state.as_str(), v.policy, v.product, v.message)
    }
}

/// Descriptors of the currently published versions, for rules about changes.
pub async fn published_descriptors(catalog: &dyn CatalogStore) -> Result<BTreeMap<ProductId, ProductDescriptor>, PipelineError> {
    let mut out = BTreeMap::new();
    for record in catalog.products().await? {
        out.insert(record.id, record.descriptor);
    }
    Ok(out)
}

/// Evaluates every governance policy on every product, against its published descriptor.
pub fn check_governance(mesh: &LoadedMesh, published: &BTreeMap<ProductId, ProductDescriptor>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let planner = DeclaredPlanner::default();
    let authorizer = Authorizer::new(mesh.policies.clone(), mesh.states.clone());
    for (id, entry) in &mesh.repo.products {
        let domain = mesh.repo.domains.get(&entry.descriptor.domain).map(|d| &d.descriptor);
        let lineage = domain.and_then(|domain| governance_lineage(mesh, entry, domain, &planner, &authorizer));
        let input = GovernanceInput { product: &entry.descriptor, previous: published.get(id), domain, lineage: lineage.as_ref() };
        for violation in mesh.policies.check_product(&mesh.states, input) {
            let position = violation.field.as_deref().and_then(|f| entry.positions.locate_nearest(f)).or_else(|| entry.positions.locate_nearest("name"));
            findings.push(Finding { file: entry.file.clone(), line: position.map(|p| p.0), column: position.map(|p| p.1), violation });
        }
    }
    // A product whose domain may not read one of its upstreams cannot be built or checked.
    findings.extend(crate::upstream::refused_reads(
        mesh,
        &crate::upstream::input_access(mesh),
    ));
    findings
}

/// The column lineage of a product that reads other products, planned against the declared
/// schemas of its inputs and joined with what its domain reads of each upstream. Products that
/// read only files get none: classifications propagate from upstream contracts.
fn governance_lineage(
    mesh: &LoadedMesh,
    entry: &ProductEntry,
    domain: &DomainDescriptor,
    planner: &DeclaredPlanner,
    authorizer: &Authorizer,
) -> Option<GovernanceLineage> {
    let upstream: BTreeMap<ProductId, &ProductDescriptor> =
        entry.descriptor.upstream().filter_map(|id| mesh.repo.products.get(id).map(|p| (id.clone(), &p.descriptor))).collect();
    if upstream.is_empty() {
        return None;
    }
    Some(match planner.lineage(mesh, entry) {
        Ok(lineage) => GovernanceLineage::resolve(&lineage, domain, &upstream, authorizer),
        Err(error) => GovernanceLineage::Unknown(error),
    })
}

/// What queries need of this repository's governance, for the catalog.
pub fn governance_snapshot(mesh: &LoadedMesh) -> GovernanceSnapshot {
    GovernanceSnapshot {
        principals: mesh.principals.clone(),
        policies: mesh
            .policies
            .policies()
            .iter()
            .map(|p| PolicyRecord {
                name: p.source.name.clone(),
                domain: match &p.source.scope {
                    PolicyScope::Global => None,
                    PolicyScope::Domain(d) => Some(d.clone()),
                },
                file: p.source.file.clone(),
                source: p.source.text.clone(),
            })
            .collect(),
        states: mesh.states.rows().into_iter().map(|(domain, name, state)| PolicyStateRecord { domain, name, state }).collect(),
    }
}

/// Whether any finding blocks `id`.
pub fn blocks(findings: &[Finding], id: &ProductId) -> bool {
    findings.iter().any(|f| &f.violation.product == id && f.violation.state == PolicyState::Enforce)
}
