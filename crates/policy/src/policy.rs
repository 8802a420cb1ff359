//! Policy sources, their compilation into regorus engines, and their rollout states.

use std::collections::BTreeMap;
use std::sync::Mutex;

use meshwork_core::descriptor::{DomainDescriptor, MeshConfig, PolicyState};
use meshwork_core::id::DomainName;

use crate::library::BUILTIN_POLICIES;

/// Why a policy could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The Rego text does not parse.
    #[error("{file}: {message}")]
    Syntax {
        /// The policy file.
        file: String,
        /// regorus' message, with line and column.
        message: String,
    },
    /// The package is outside the two policy namespaces.
    #[error("{file}: package `{package}` is neither a governance nor an access policy (hint: start the file with `package meshwork.governance.{name}` or `package meshwork.access.{name}`)")]
    Package {
        /// The policy file.
        file: String,
        /// The package the file declares.
        package: String,
        /// The policy's name, for the hint.
        name: String,
    },
}

/// Whether a policy is the guild's or one domain's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyScope {
    /// Applies to every product.
    Global,
    /// Applies to the products of one domain.
    Domain(DomainName),
}

/// What a policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Checks descriptors at validate, plan and apply time.
    Governance,
    /// Decides reads at query time.
    Access,
}

impl PolicyKind {
    /// `governance` or `access`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Governance => "governance",
            PolicyKind::Access => "access",
        }
    }
}

/// The text of one policy and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    /// File stem, or the built-in's name.
    pub name: String,
    /// Global or one domain's.
    pub scope: PolicyScope,
    /// Path relative to the mesh repository, or `builtin:<name>`.
    pub file: String,
    /// The Rego module.
    pub text: String,
}

impl PolicySource {
    /// The built-in library.
    pub fn builtins() -> Vec<PolicySource> {
        BUILTIN_POLICIES
            .iter()
            .map(|b| PolicySource { name: b.name.into(), scope: PolicyScope::Global, file: format!("builtin:{}", b.name), text: b.source.into() })
            .collect()
    }

    /// The name used in reports and `policies:` maps: `name` for global policies, `domain/name`
    /// for domain policies.
    pub fn id(&self) -> String {
        match &self.scope {
            PolicyScope::Global => self.name.clone(),
            PolicyScope::Domain(domain) => format!("{domain}/{}", self.name),
        }
    }

    /// Whether the policy ships with Meshwork.
    pub fn is_builtin(&self) -> bool {
        self.file.starts_with("builtin:")
    }
}

/// A compiled policy: its source, kind and an engine holding only its module.
#[derive(Debug)]
pub struct Policy {
    /// Where it came from.
    pub source: PolicySource,
    /// What it decides.
    pub kind: PolicyKind,
    /// Its package path, e.g. `data.meshwork.governance.owner_required`.
    pub package: String,
    /// State when no `policies:` map names it.
    pub default_state: PolicyState,
    /// Which of the rules Meshwork reads (`violations`, `deny`, `row_filters`, `masks`) the
    /// module declares; evaluating an undeclared rule is an error in regorus, not undefined.
    declared: Vec<&'static str>,
    // One engine per policy: modules cannot see or override each other. The lock makes a
    // compiled set shareable between concurrent queries; evaluation takes microseconds.
    engine: Mutex<regorus::Engine>,
}

impl Policy {
    /// Evaluates `rule` of this policy's package against `input`, as JSON; `None` when the rule
    /// is undefined for this input.
    pub(crate) fn eval(&self, input: &regorus::Value, rule: &str) -> Result<Option<serde_json::Value>, String> {
        if !self.declared.contains(&rule) {
            return Ok(None);
        }
        let mut engine = self.engine.lock().map_err(|_| "policy engine poisoned by an earlier panic".to_owned())?;
        engine.set_input(input.clone());
        let value = engine.eval_rule(format!("{}.{rule}", self.package)).map_err(|e| e.to_string())?;
        if value == regorus::Value::Undefined {
            return Ok(None);
        }
        serde_json::to_value(&value).map(Some).map_err(|e| e.to_string())
    }

    /// Whether the policy applies to products of `domain`.
    pub fn applies_to(&self, domain: &DomainName) -> bool {
        match &self.source.scope {
            PolicyScope::Global => true,
            PolicyScope::Domain(d) => d == domain,
        }
    }
}

/// Every policy of a mesh, compiled.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    /// Compiles every source; reports every file that fails, not only the first.
    pub fn compile(sources: Vec<PolicySource>) -> Result<PolicySet, Vec<PolicyError>> {
        let mut policies = Vec::new();
        let mut errors = Vec::new();
        for source in sources {
            match compile_one(source) {
                Ok(policy) => policies.push(policy),
                Err(err) => errors.push(err),
            }
        }
        if errors.is_empty() { Ok(PolicySet { policies }) } else { Err(errors) }
    }

    /// The compiled policies, built-ins first.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy with id `id` (`name` or `domain/name`).
    pub fn get(&self, id: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.source.id() == id)
    }

    /// Checks the `policies:` maps of `mesh.yaml` and each `domain.yaml`: every name must be a
    /// policy, and a domain may raise a global policy's state for its products but never lower it.
    pub fn check_states(&self, mesh: &MeshConfig, domains: &[&DomainDescriptor]) -> Vec<StateProblem> {
        let mut problems = Vec::new();
        let global: Vec<&Policy> = self.policies.iter().filter(|p| p.source.scope == PolicyScope::Global).collect();
        for name in mesh.policies.keys() {
            if !global.iter().any(|p| &p.source.name == name) {
                problems.push(StateProblem::unknown(None, name, global.iter().map(|p| p.source.name.as_str())));
            }
        }
        let states = PolicyStates::new(mesh, domains.iter().copied());
        for domain in domains {
            for (name, state) in &domain.policies {
                let own = self.policies.iter().find(|p| p.source.scope == PolicyScope::Domain(domain.name.clone()) && &p.source.name == name);
                if own.is_some() {
                    continue;
                }
                match global.iter().find(|p| &p.source.name == name) {
                    Some(policy) => {
                        let base = states.base(policy);
                        if *state < base {
                            problems.push(StateProblem {
                                domain: Some(domain.name.clone()),
                                name: name.clone(),
                                message: format!(
                                    "domain `{}` cannot lower global policy `{name}` from `{}` to `{}`",
                                    domain.name,
                                    base.as_str(),
                                    state.as_str()
                                ),
                                hint: "domain policies may only add restrictions; change the state in `mesh.yaml` if the guild agrees".into(),
                            });
                        }
                    }
                    None => {
                        let names = self
                            .policies
                            .iter()
                            .filter(|p| p.source.scope == PolicyScope::Global || p.source.scope == PolicyScope::Domain(domain.name.clone()))
                            .map(|p| p.source.name.as_str());
                        problems.push(StateProblem::unknown(Some(domain.name.clone()), name, names));
                    }
                }
            }
        }
        problems
    }
}

/// A problem with a `policies:` map; the repository loader turns it into a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateProblem {
    /// The domain whose `domain.yaml` has the problem; `None` for `mesh.yaml`.
    pub domain: Option<DomainName>,
    /// The key in the `policies:` map.
    pub name: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl StateProblem {
    fn unknown<'a>(domain: Option<DomainName>, name: &str, known: impl Iterator<Item = &'a str> + Clone) -> StateProblem {
        let hint = match meshwork_core::diagnostic::did_you_mean(name, known.clone()) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("known policies are {}", meshwork_core::diagnostic::one_of(known)),
        };
        StateProblem { domain, name: name.into(), message: format!("there is no policy `{name}`"), hint }
    }
}

/// The rules Meshwork evaluates, by policy kind.
const RULES: &[&str] = &["violations", "deny", "row_filters", "masks", "aggregate_only"];

fn compile_one(source: PolicySource) -> Result<Policy, PolicyError> {
    let mut engine = regorus::Engine::new();
    // A built-in that errors (e.g. a regex that does not compile) is an evaluation failure,
    // which callers treat as deny, instead of silently being undefined.
    engine.set_strict_builtin_errors(true);
    let package = engine
        .add_policy(source.file.clone(), source.text.clone())
        .map_err(|e| PolicyError::Syntax { file: source.file.clone(), message: e.to_string() })?;
    let kind = if package.starts_with("data.meshwork.governance.") {
        PolicyKind::Governance
    } else if package.starts_with("data.meshwork.access.") {
        PolicyKind::Access
    } else {
        return Err(PolicyError::Package {
            file: source.file.clone(),
            package: package.trim_start_matches("data.").to_owned(),
            name: source.name.clone(),
        });
    };
    let default_state =
        BUILTIN_POLICIES.iter().find(|b| source.is_builtin() && b.name == source.name).map(|b| b.default_state).unwrap_or(PolicyState::Enforce);
    let declared = RULES
        .iter()
        .copied()
        // If regorus cannot tell, assume declared: evaluation then reports the real problem.
        .filter(|rule| engine.has_declared_rule_rooted_at(&source.file, rule).unwrap_or(true))
        .collect();
    Ok(Policy { source, kind, package, default_state, declared, engine: Mutex::new(engine) })
}

/// The effective state of each policy for each domain's products.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyStates {
    mesh: BTreeMap<String, PolicyState>,
    domains: BTreeMap<DomainName, BTreeMap<String, PolicyState>>,
}

impl PolicyStates {
    /// States from `mesh.yaml` and every `domain.yaml`.
    pub fn new<'a>(mesh: &MeshConfig, domains: impl IntoIterator<Item = &'a DomainDescriptor>) -> PolicyStates {
        PolicyStates {
            mesh: mesh.policies.clone(),
            domains: domains.into_iter().map(|d| (d.name.clone(), d.policies.clone())).collect(),
        }
    }

    /// States as stored in the catalog: `(domain or None, name, state)` rows.
    pub fn from_rows(rows: impl IntoIterator<Item = (Option<DomainName>, String, PolicyState)>) -> PolicyStates {
        let mut states = PolicyStates::default();
        for (domain, name, state) in rows {
            match domain {
                None => {
                    states.mesh.insert(name, state);
                }
                Some(domain) => {
                    states.domains.entry(domain).or_default().insert(name, state);
                }
            }
        }
        states
    }

    /// The rows to store in the catalog.
    pub fn rows(&self) -> Vec<(Option<DomainName>, String, PolicyState)> {
        let mesh = self.mesh.iter().map(|(n, s)| (None, n.clone(), *s));
        let domains = self.domains.iter().flat_map(|(d, m)| m.iter().map(move |(n, s)| (Some(d.clone()), n.clone(), *s)));
        mesh.chain(domains).collect()
    }

    /// The mesh-wide state of a global policy.
    fn base(&self, policy: &Policy) -> PolicyState {
        self.mesh.get(&policy.source.name).copied().unwrap_or(policy.default_state)
    }

    /// The state of `policy` for products of `domain`: `off` for another domain's policy; for a
    /// global policy the stricter of the mesh's state and the domain's.
    pub fn state(&self, policy: &Policy, domain: &DomainName) -> PolicyState {
        let overrides = self.domains.get(domain);
        match &policy.source.scope {
            PolicyScope::Domain(owner) if owner != domain => PolicyState::Off,
            PolicyScope::Domain(_) => overrides.and_then(|o| o.get(&policy.source.name)).copied().unwrap_or(policy.default_state),
            PolicyScope::Global => {
                let base = self.base(policy);
                let raised = overrides.and_then(|o| o.get(&policy.source.name)).copied().unwrap_or(base);
                base.max(raised)
            }
        }
    }
}
