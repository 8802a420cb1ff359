//! Access at query time: the descriptor's `access` block and the access policies decide, for one
//! principal and one product, whether it is readable and with which row filters and masks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use meshwork_core::aggregate::{AggregateOnly, Privacy};
use meshwork_core::descriptor::{Mask, PolicyState, ProductDescriptor};
use meshwork_core::id::ProductId;
use meshwork_core::principal::Principal;
use serde_json::{Value, json};

use crate::governance::product_document;
use crate::policy::{PolicyKind, PolicySet, PolicyStates};

/// The outcome of [`Authorizer::decide`] for one principal and one product.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessDecision {
    /// The product.
    pub product: ProductId,
    /// Whether the principal may read it; a denied product is invisible.
    pub allowed: bool,
    /// Why it was denied (empty when allowed).
    pub reasons: Vec<String>,
    /// Row filters to apply, ANDed: SQL over the product's columns and `principal.*` helpers.
    pub row_filters: Vec<String>,
    /// Masks to apply by column.
    pub masks: BTreeMap<String, Mask>,
    /// Policies that contributed a restriction (`descriptor` for the access block).
    pub policies: Vec<String>,
    /// What `warn`-state policies would have done.
    pub warnings: Vec<String>,
    /// Time spent deciding.
    pub elapsed: Duration,
    /// The access policy that failed to evaluate and its error, when that caused the deny;
    /// `validate` reports it against the policy file.
    pub failure: Option<(String, String)>,
    /// When set, the principal reads the product only in aggregate, under this rule.
    pub aggregate: Option<AggregateRule>,
}

/// How an aggregate-only reader reads a product: every query must aggregate it, every group
/// shown stands for at least `min_group_size` of its rows, hidden columns are never used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRule {
    /// Rows of the product behind every group shown.
    pub min_group_size: u64,
    /// Columns the reader may not use at all.
    pub hidden: BTreeSet<String>,
    /// Columns that identify rows, whose `min` and `max` would return one row's value: those
    /// classified `pii` and the primary key.
    pub identifying: BTreeSet<String>,
    /// The primary key when it is one column: the only column whose distinct values may be
    /// counted exactly (each stands for one row, so the count is the group's size).
    pub key: Option<String>,
    /// Differentially private answers, when the descriptor asks for them.
    pub privacy: Option<Privacy>,
    /// What made the read aggregate-only: `descriptor` (`access.aggregate_only`) and the ids
    /// of access policies that asked for it.
    pub sources: Vec<String>,
}

/// The columns of `product` that identify rows: classified `pii`, or in the primary key.
fn identifying(product: &ProductDescriptor) -> BTreeSet<String> {
    let contract = &product.contract;
    let pii = contract.columns.iter().filter(|c| c.classification == Some(meshwork_core::descriptor::Classification::Pii)).map(|c| c.name.clone());
    pii.chain(contract.primary_key.iter().cloned()).collect()
}

/// The primary key of `product` when it is a single column.
fn single_key(product: &ProductDescriptor) -> Option<String> {
    match product.contract.primary_key.as_slice() {
        [key] => Some(key.clone()),
        _ => None,
    }
}

impl AggregateRule {
    fn from_descriptor(rule: &AggregateOnly, product: &ProductDescriptor) -> AggregateRule {
        AggregateRule {
            min_group_size: rule.min_group_size,
            hidden: rule.columns_hidden.iter().cloned().collect(),
            identifying: identifying(product),
            key: single_key(product),
            privacy: rule.privacy.clone(),
            sources: vec!["descriptor".into()],
        }
    }

    /// The rule in one line (`groups of at least 25 rows; hidden: `email`; by descriptor`), for
    /// errors, audit events and listings.
    pub fn describe(&self) -> String {
        let mut text = format!("groups of at least {} rows", self.min_group_size);
        if !self.hidden.is_empty() {
            text.push_str(&format!("; hidden: {}", self.hidden.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")));
        }
        if let Some(privacy) = &self.privacy {
            text.push_str(&format!("; {} noise, ε {} per answer, budget {} per {}", privacy.mechanism, privacy.epsilon, privacy.budget, privacy.window));
        }
        text.push_str(&format!("; by {}", self.sources.join(", ")));
        text
    }
}

impl AccessDecision {
    /// A denial of `product` for one `reason`, with nothing else decided: no filters, masks,
    /// policies or warnings, and no time spent. For callers that must refuse a product before
    /// [`Authorizer::decide`] can run, e.g. when its stored descriptor cannot be read; the
    /// reason is kept for the audit log.
    pub fn deny(product: ProductId, reason: impl Into<String>) -> AccessDecision {
        AccessDecision {
            product,
            allowed: false,
            reasons: vec![reason.into()],
            row_filters: Vec::new(),
            masks: BTreeMap::new(),
            policies: Vec::new(),
            warnings: Vec::new(),
            elapsed: Duration::ZERO,
            failure: None,
            aggregate: None,
        }
    }

    /// The decision with the time since `started` as its `elapsed`.
    fn timed(mut self, started: Instant) -> AccessDecision {
        self.elapsed = started.elapsed();
        self
    }
}

/// Decides reads. Cheap to clone; shared by every query of a session or server.
#[derive(Debug, Clone)]
pub struct Authorizer {
    policies: Arc<PolicySet>,
    states: PolicyStates,
    inputs: Arc<InputCache>,
    grants: Arc<Grants>,
}

/// Read access given to principals one product at a time by approved access requests. A grant
/// only makes its principal a reader: row filters, masks and access policies apply to them as
/// to any reader (a grant never unmasks). Each grant counts until its end, compared with the
/// clock at every decision, so an expiry needs no catalog write to take effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    by_product: HashMap<ProductId, Vec<(String, Option<SystemTime>)>>,
}

impl Grants {
    /// Grants of `(product, principal name, end)`; a revoked grant is simply not given.
    pub fn new(grants: impl IntoIterator<Item = (ProductId, String, Option<SystemTime>)>) -> Grants {
        let mut by_product: HashMap<ProductId, Vec<(String, Option<SystemTime>)>> = HashMap::new();
        for (product, principal, end) in grants {
            by_product.entry(product).or_default().push((principal, end));
        }
        Grants { by_product }
    }

    /// Whether `principal` (a principal name) reads `product` by a grant at `now`.
    pub fn active(&self, principal: &str, product: &ProductId, now: SystemTime) -> bool {
        self.by_product.get(product).is_some_and(|grants| grants.iter().any(|(who, end)| who == principal && end.is_none_or(|end| now < end)))
    }

    /// The earliest end of `principal`'s grants after `now` (every principal's when `None`):
    /// what was decided from these grants holds until then at most.
    pub fn next_end(&self, principal: Option<&str>, now: SystemTime) -> Option<SystemTime> {
        self.by_product
            .values()
            .flatten()
            .filter(|(who, _)| principal.is_none_or(|p| p == who))
            .filter_map(|(_, end)| *end)
            .filter(|end| *end > now)
            .min()
    }
}

/// Policy input documents already built, reused while the principal and the descriptor are
/// unchanged (each compared in full, so an edited descriptor never meets a stale document).
/// Building `input.product` from a descriptor is most of the cost of a decision; with the
/// cache a decision is the policies' evaluation alone (docs/benchmarks.md).
#[derive(Debug, Default)]
struct InputCache {
    products: Mutex<HashMap<ProductId, (ProductDescriptor, regorus::Value)>>,
    principals: Mutex<HashMap<String, (Principal, regorus::Value)>>,
}

/// Entries kept per map before it is emptied: bounds memory on catalogs of 100k products.
const INPUT_CACHE_ENTRIES: usize = 10_000;

impl InputCache {
    /// `{"principal": …, "product": …}` as regorus reads it.
    fn input(&self, principal: &Principal, product: &ProductDescriptor) -> Result<regorus::Value, String> {
        let principal_doc = cached(&self.principals, principal.name.clone(), principal, || principal_json(principal))?;
        let product_doc = cached(&self.products, product.id(), product, || product_document(product))?;
        let mut input = regorus::Value::new_object();
        let map = input.as_object_mut().map_err(|e| e.to_string())?;
        map.insert(regorus::Value::from("principal"), principal_doc);
        map.insert(regorus::Value::from("product"), product_doc);
        Ok(input)
    }
}

/// The document of `value` from `cache`, built by `build` when missing or made for a different
/// value under the same key.
fn cached<K: std::hash::Hash + Eq, T: Clone + PartialEq>(
    cache: &Mutex<HashMap<K, (T, regorus::Value)>>,
    key: K,
    value: &T,
    build: impl FnOnce() -> Value,
) -> Result<regorus::Value, String> {
    let mut map = cache.lock().map_err(|_| "policy input cache poisoned by an earlier panic".to_owned())?;
    if let Some((seen, doc)) = map.get(&key)
        && seen == value
    {
        return Ok(doc.clone());
    }
    let doc = serde_json::from_value::<regorus::Value>(build()).map_err(|e| format!("policy input could not be built: {e}"))?;
    if map.len() >= INPUT_CACHE_ENTRIES {
        map.clear();
    }
    map.insert(key, (value.clone(), doc.clone()));
    Ok(doc)
}

/// The `input.principal` document of access policies.
pub fn principal_json(principal: &Principal) -> Value {
    json!({
        "name": principal.name,
        "kind": principal.kind.as_str(),
        "groups": principal.groups,
        "domains": principal.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "attributes": principal.attributes,
        "admin": principal.admin,
    })
}

impl Authorizer {
    /// An authorizer over compiled policies and their states.
    pub fn new(policies: Arc<PolicySet>, states: PolicyStates) -> Authorizer {
        Authorizer { policies, states, inputs: Arc::default(), grants: Arc::default() }
    }

    /// The authorizer with `grants` making their principals readers.
    pub fn with_grants(mut self, grants: Grants) -> Authorizer {
        self.grants = Arc::new(grants);
        self
    }

    /// The grants it honours.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// [`Authorizer::decide_at`] now.
    pub fn decide(&self, principal: &Principal, product: &ProductDescriptor) -> AccessDecision {
        self.decide_at(principal, product, SystemTime::now())
    }

    /// The compiled policies it decides with (governance policies included), for listings.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The state of every policy per domain, as applied.
    pub fn states(&self) -> &PolicyStates {
        &self.states
    }

    /// Decides whether `principal` may read `product`, and what it sees. Total: a policy that
    /// fails to evaluate, or returns something malformed, denies.
    ///
    /// - Readers: the owning domain's members always read; administrators read every product;
    ///   others must match `access.readers` (without an `access` block, only the owning domain
    ///   reads: deny by default) or hold a grant active at `now`.
    /// - Row filter: the descriptor's filter applies to everyone, administrators included; a
    ///   filter that should spare someone says so itself (`OR principal.in_group('auditors')`).
    /// - Masks: the descriptor's masks apply unless the principal matches `unmasked_for`.
    /// - Access policies (`enforce`) add denials, filters and masks; a mask on an already masked
    ///   column keeps the stricter of the two. `warn` policies are only reported.
    pub fn decide_at(&self, principal: &Principal, product: &ProductDescriptor, now: SystemTime) -> AccessDecision {
        let started = Instant::now();
        let id = product.id();
        let access = product.access.as_ref();
        let own_domain = principal.in_domain(&product.domain);
        let reader = own_domain
            || principal.admin
            || access.is_some_and(|a| a.readers.iter().any(|r| principal.matches(r)))
            || self.grants.active(&principal.name, &id, now);
        let aggregate_only = access.and_then(|a| a.aggregate_only.as_ref());
        let aggregate = match aggregate_only {
            Some(rule) if !reader && rule.readers.iter().any(|r| principal.matches(r)) => Some(AggregateRule::from_descriptor(rule, product)),
            _ => None,
        };
        if !reader && aggregate.is_none() {
            return AccessDecision::deny(id.clone(), format!("`{}` is not a reader of `{id}`", principal.name)).timed(started);
        }
        let mut decision = AccessDecision {
            product: id.clone(),
            allowed: true,
            reasons: Vec::new(),
            row_filters: Vec::new(),
            masks: BTreeMap::new(),
            policies: Vec::new(),
            warnings: Vec::new(),
            elapsed: Duration::ZERO,
            failure: None,
            aggregate,
        };
        if decision.aggregate.is_some() {
            decision.policies.push("descriptor".into());
        }
        if let Some(access) = access {
            let mut restricted = false;
            if let Some(filter) = &access.row_filter {
                decision.row_filters.push(filter.clone());
                restricted = true;
            }
            if !access.unmasked_for.iter().any(|r| principal.matches(r)) {
                for (column, mask) in &access.masks {
                    decision.masks.insert(column.clone(), mask.clone());
                    restricted = true;
                }
            }
            if restricted && decision.aggregate.is_none() {
                decision.policies.push("descriptor".into());
            }
        }

        let access_policies: Vec<_> = self
            .policies
            .policies()
            .iter()
            .filter(|p| p.kind == PolicyKind::Access && p.applies_to(&product.domain))
            .map(|p| (p, self.states.state(p, &product.domain)))
            .filter(|(_, state)| *state != PolicyState::Off)
            .collect();
        if !access_policies.is_empty() {
            let input = match self.inputs.input(principal, product) {
                Ok(input) => input,
                Err(err) => return AccessDecision::deny(id, err).timed(started),
            };
            for (policy, state) in access_policies {
                let policy_id = policy.source.id();
                let outcome = evaluate(policy, &input);
                let effect = match outcome {
                    Ok(effect) => effect,
                    Err(err) => {
                        let mut denied = AccessDecision::deny(id, format!("access policy `{policy_id}` failed to evaluate: {err}"));
                        denied.failure = Some((policy_id, err));
                        return denied.timed(started);
                    }
                };
                if effect.is_empty() {
                    continue;
                }
                if state == PolicyState::Warn {
                    decision.warnings.push(format!("access policy `{policy_id}` (warn) would apply: {}", effect.describe()));
                    continue;
                }
                decision.policies.push(policy_id.clone());
                if !effect.deny.is_empty() {
                    decision.allowed = false;
                    decision.reasons.extend(effect.deny);
                }
                decision.row_filters.extend(effect.row_filters);
                if let Some((min_group_size, hidden)) = effect.aggregate {
                    // A policy asking for aggregate-only reads makes any reader one, under the
                    // descriptor's own settings too; the stricter of each applies.
                    let rule = decision.aggregate.get_or_insert_with(|| match aggregate_only {
                        Some(rule) => AggregateRule::from_descriptor(rule, product),
                        None => AggregateRule {
                            min_group_size: 0,
                            hidden: BTreeSet::new(),
                            identifying: identifying(product),
                            key: single_key(product),
                            privacy: None,
                            sources: Vec::new(),
                        },
                    });
                    rule.min_group_size = rule.min_group_size.max(min_group_size);
                    rule.hidden.extend(hidden.into_iter().filter(|c| product.contract.column(c).is_some()));
                    rule.sources.push(policy_id.clone());
                }
                for (column, mask) in effect.masks {
                    if product.contract.column(&column).is_none() {
                        continue;
                    }
                    match decision.masks.get(&column) {
                        Some(existing) if existing.strictness() >= mask.strictness() => {}
                        _ => {
                            decision.masks.insert(column, mask);
                        }
                    }
                }
            }
        }
        if !decision.allowed {
            decision.row_filters.clear();
            decision.masks.clear();
            decision.aggregate = None;
        }
        decision.elapsed = started.elapsed();
        decision
    }
}

/// What one access policy asked for.
#[derive(Debug, Default)]
struct Effect {
    deny: Vec<String>,
    row_filters: Vec<String>,
    masks: Vec<(String, Mask)>,
    /// `aggregate_only`: the smallest group and the hidden columns it asks for.
    aggregate: Option<(u64, Vec<String>)>,
}

impl Effect {
    fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.row_filters.is_empty() && self.masks.is_empty() && self.aggregate.is_none()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.deny.is_empty() {
            parts.push(format!("deny ({})", self.deny.join("; ")));
        }
        for filter in &self.row_filters {
            parts.push(format!("row filter `{filter}`"));
        }
        for (column, mask) in &self.masks {
            parts.push(format!("mask `{column}` with {}", mask.kind()));
        }
        if let Some((min_group_size, _)) = &self.aggregate {
            parts.push(format!("aggregate-only reads (groups of at least {min_group_size} rows)"));
        }
        parts.join(", ")
    }
}

fn evaluate(policy: &crate::policy::Policy, input: &regorus::Value) -> Result<Effect, String> {
    let mut effect = Effect::default();
    match policy.eval(input, "deny")? {
        None => {}
        Some(Value::Array(items)) => {
            effect.deny = items.into_iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect();
        }
        Some(Value::Bool(true)) => effect.deny.push(format!("denied by access policy `{}`", policy.source.id())),
        Some(Value::Bool(false)) => {}
        Some(other) => return Err(format!("`deny` must be a set of messages, found {other}")),
    }
    match policy.eval(input, "row_filters")? {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(sql) => effect.row_filters.push(sql),
                    other => return Err(format!("`row_filters` must hold SQL strings, found {other}")),
                }
            }
        }
        Some(other) => return Err(format!("`row_filters` must be a set of SQL strings, found {other}")),
    }
    match policy.eval(input, "masks")? {
        None => {}
        Some(Value::Object(map)) => {
            for (column, spec) in map {
                effect.masks.push((column, mask_from_json(&spec)?));
            }
        }
        Some(other) => return Err(format!("`masks` must be an object of column to mask, found {other}")),
    }
    effect.aggregate = aggregate_from_json(policy.eval(input, "aggregate_only")?)?;
    Ok(effect)
}

/// `aggregate_only` as an access policy writes it: `true`, or an object with `min_group_size`
/// (default [`AggregateOnly::DEFAULT_MIN_GROUP_SIZE`]) and `columns_hidden`.
fn aggregate_from_json(value: Option<Value>) -> Result<Option<(u64, Vec<String>)>, String> {
    let map = match value {
        None | Some(Value::Bool(false)) => return Ok(None),
        Some(Value::Bool(true)) => return Ok(Some((AggregateOnly::DEFAULT_MIN_GROUP_SIZE, Vec::new()))),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("`aggregate_only` must be true or an object with `min_group_size` and `columns_hidden`, found {other}")),
    };
    if let Some(key) = map.keys().find(|k| !matches!(k.as_str(), "min_group_size" | "columns_hidden")) {
        return Err(format!("`aggregate_only` has an unknown field `{key}`; expected `min_group_size` or `columns_hidden`"));
    }
    let min_group_size = match map.get("min_group_size") {
        None => AggregateOnly::DEFAULT_MIN_GROUP_SIZE,
        Some(n) => n.as_u64().filter(|n| *n >= 2).ok_or_else(|| format!("`aggregate_only.min_group_size` must be a whole number of at least 2, found {n}"))?,
    };
    let hidden = match map.get("columns_hidden") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("`aggregate_only.columns_hidden` must hold column names, found {v}")))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("`aggregate_only.columns_hidden` must be a list of column names, found {other}")),
    };
    Ok(Some((min_group_size, hidden)))
}

/// A mask as an access policy writes it: `"hash"`, `"redact"`, `"null"`, `"partial"`, or an
/// object `{"kind": "partial", "keep_last": 4}` / `{"kind": "sql", "expr": "…"}`.
fn mask_from_json(spec: &Value) -> Result<Mask, String> {
    let (kind, map) = match spec {
        Value::String(kind) => (kind.as_str(), None),
        Value::Object(map) => (map.get("kind").and_then(Value::as_str).unwrap_or(""), Some(map)),
        other => return Err(format!("a mask must be a kind or an object with `kind`, found {other}")),
    };
    let count = |key: &str, default: u32| -> u32 {
        map.and_then(|m| m.get(key)).and_then(Value::as_u64).map(|n| n.min(u32::MAX as u64) as u32).unwrap_or(default)
    };
    Ok(match kind {
        "hash" => Mask::Hash,
        "redact" => Mask::Redact,
        "null" => Mask::Null,
        "partial" => Mask::Partial { keep_first: count("keep_first", 0), keep_last: count("keep_last", 4) },
        "sql" => match map.and_then(|m| m.get("expr")).and_then(Value::as_str) {
            Some(expr) => Mask::Sql { expr: expr.to_owned() },
            None => return Err("a `sql` mask needs an `expr`".into()),
        },
        other => return Err(format!("unknown mask kind `{other}`, expected hash, redact, null, partial or sql")),
    })
}
