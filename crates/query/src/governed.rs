//! The governed DataFusion context that every read of product data plans in: access decided per
//! product, readable products registered, denied ones absent, and the policy rewrite installed
//! as the first analyzer rule. Consumer sessions ([`crate::QuerySession`]) and the platform's
//! reads on behalf of a domain ([`crate::DomainSession`]) are both built here, so a derived
//! product is built from exactly what a query of its domain would return.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::optimizer::Analyzer;
use datafusion::prelude::{SessionConfig, SessionContext};
use meshwork_catalog::{CatalogStore, ProductRecord};
use meshwork_core::id::ProductId;
use meshwork_core::lifecycle::{Deprecation, Lifecycle};
use meshwork_core::principal::Principal;
use meshwork_policy::{AccessDecision, AggregateRule};
use meshwork_storage::ProductStore;

use crate::aggregate::AggregateOnlyRule;
use crate::engine::{QueryLimits, TableCache};
use crate::privacy::NoiseSource;
use crate::governance::Governance;
use crate::guard::{ProductGuard, ProductTable};
use crate::rewrite::{Journal, MeshQueryPlanner, PolicyRule};
use crate::schema::{self, DomainSchema, FILE_TABLE_FUNCTIONS, MeshCatalog, RefusedTableFunction};
use crate::{CATALOG_NAME, QueryError};

/// Which products a governed context decides on and registers.
pub(crate) enum Scope<'a> {
    /// Every published product, as `domain.product`, and their earlier publications as
    /// `domain."product@N"` (a consumer's session; the catalog opens the history).
    Published(Arc<dyn CatalogStore>),
    /// Only what one read on behalf of a domain needs.
    Reads(&'a crate::domain::DomainReads),
}

/// A governed context and what was decided while building it.
pub(crate) struct Governed {
    pub(crate) ctx: SessionContext,
    pub(crate) journal: Arc<Journal>,
    pub(crate) decisions: BTreeMap<ProductId, AccessDecision>,
    /// Table locations, scrubbed from EXPLAIN output shown to non-admins.
    pub(crate) locations: Vec<String>,
    /// The deprecated products registered, with what their readers are told.
    pub(crate) deprecated: BTreeMap<ProductId, Deprecation>,
}

/// Statement options of every governed read: queries only, no DDL, DML or session changes.
pub(crate) fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// Builds the governed context of `principal` over the products `scope` names.
pub(crate) async fn governed_context(
    catalog: &dyn CatalogStore,
    governance: &Governance,
    principal: &Principal,
    limits: &QueryLimits,
    tables: Option<&TableCache>,
    scope: Scope<'_>,
) -> Result<Governed, QueryError> {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG_NAME, schema::DEFAULT_SCHEMA)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true);
    // Spans let errors point at the position in the user's SQL.
    config.options_mut().sql_parser.collect_spans = true;
    let mut config = crate::tuning::tuned(config);
    if limits.cluster.is_some() {
        config = crate::distributed::for_cluster(config);
    }
    let runtime = limits.runtime_env(tables)?;
    let journal = Arc::new(Journal::default());
    // A plain session (same configuration and runtime) to open tables and plan guard
    // expressions in.
    let probe = SessionStateBuilder::new()
        .with_config(config.clone())
        .with_runtime_env(runtime.clone())
        .with_default_features()
        .build();

    // The products to decide on, each with the names it is registered under: its own
    // `domain.product`, and for a domain's reads the input ports that read it.
    let mut wanted: Vec<(ProductRecord, Vec<String>, bool)> = Vec::new();
    // Every published product's current version in one round trip, not one per product.
    let mut current = BTreeMap::new();
    match &scope {
        Scope::Published(_) => {
            current = catalog.current_versions().await?;
            for product in catalog.products().await? {
                wanted.push((product, Vec::new(), true));
            }
        }
        Scope::Reads(reads) => {
            let mut ids: BTreeMap<ProductId, (Vec<String>, bool)> = BTreeMap::new();
            for (port, id) in &reads.ports {
                ids.entry(id.clone()).or_default().0.push(port.clone());
            }
            for id in &reads.products {
                ids.entry(id.clone()).or_default().1 = true;
            }
            for (id, (ports, qualified)) in ids {
                let product = catalog
                    .product(&id)
                    .await?
                    .ok_or_else(|| QueryError::NotPublished(id.clone()))?;
                wanted.push((product, ports, qualified));
            }
        }
    }

    let mut decisions = BTreeMap::new();
    let mut domains: BTreeMap<String, DomainSchema> = BTreeMap::new();
    let mut public: BTreeMap<String, Arc<dyn TableProvider>> = BTreeMap::new();
    let mut locations = Vec::new();
    let mut guard_map = HashMap::new();
    let mut deprecated = BTreeMap::new();
    let today = chrono::Utc::now().date_naive();
    let history = match &scope {
        Scope::Published(catalog) => Some(Arc::new(crate::history::History { catalog: catalog.clone(), runtime: runtime.clone(), journal: journal.clone() })),
        Scope::Reads(_) => None,
    };
    for (product, ports, qualified) in wanted {
        let version = match current.remove(&product.id) {
            Some(version) => Some(version),
            None if matches!(scope, Scope::Published(_)) => None,
            None => catalog.current_version(&product.id).await?,
        };
        let Some(version) = version else {
            if matches!(scope, Scope::Reads(_)) {
                return Err(QueryError::NotPublished(product.id.clone()));
            }
            continue;
        };
        let mut decision = governance.decide_stored(principal, &product);
        if matches!(scope, Scope::Reads(_)) && decision.aggregate.as_ref().is_some_and(|a| a.privacy.is_some()) {
            // Noisy answers are paid from a principal's budget, per question; a build would
            // publish them for every reader of the derived product, unpaid.
            return Err(QueryError::NotReadable {
                product: product.id.clone(),
                principal: principal.name.clone(),
                reasons: vec!["it answers only with differentially private noise, which a derived product cannot be built from".into()],
            });
        }
        // A product past its sunset is not served, whoever asks; one who may read it is told
        // where to go instead, anyone else gets the answer of a missing product.
        let lifecycle = product.descriptor.lifecycle(today);
        if let Lifecycle::Sunset(deprecation) = &lifecycle {
            if let Scope::Reads(_) = scope {
                return Err(QueryError::NoLongerServed(deprecation.clone()));
            }
            let domain = domains.entry(product.id.domain.to_string()).or_insert_with(|| empty_domain(&product.id, &journal, &history));
            if decision.allowed {
                domain.sunset.insert(product.id.name.to_string(), deprecation.clone());
            } else {
                domain.denied.push(product.id.name.to_string());
            }
            decisions.insert(product.id.clone(), decision);
            continue;
        }
        if let (Lifecycle::Deprecated(deprecation), true) = (&lifecycle, decision.allowed) {
            deprecated.insert(product.id.clone(), deprecation.clone());
        }
        let mut registered: Option<Arc<dyn TableProvider>> = None;
        if decision.allowed {
            let inner: Arc<dyn TableProvider> = match crate::remote::virtual_table(&version) {
                // A virtual product is read from its database by the query; nothing is opened now.
                Some(remote) => remote,
                None => {
                    let url = url::Url::parse(&product.table_uri).map_err(|e| DataFusionError::Plan(format!("product `{}` has a bad table location: {e}", product.id)))?;
                    let table = match tables {
                        Some(cache) => cache.open(&url, version.delta_version).await?,
                        None => ProductStore::open_table_at(&url, version.delta_version).await?,
                    };
                    locations.push(product.table_uri.clone());
                    if let Ok(path) = url.to_file_path() {
                        locations.push(path.display().to_string());
                    }
                    ProductStore::table_provider(&table, &probe).await?
                }
            };
            match ProductGuard::build(
                &probe,
                &inner.schema(),
                &decision,
                principal,
                &governance.salt,
            ) {
                Ok(guard) => {
                    let exact_filters = version.remote.is_some() && guard.is_open();
                    guard_map.insert(product.id.clone(), guard);
                    registered = Some(Arc::new(ProductTable {
                        id: product.id.clone(),
                        inner,
                        published_rows: u64::try_from(version.row_count).unwrap_or(0),
                        exact_filters,
                    }));
                }
                // Failure to build what the policy asks for means deny.
                Err(reason) => {
                    decision.allowed = false;
                    decision.reasons.push(reason);
                }
            }
        }
        if let Scope::Reads(_) = scope
            && !decision.allowed
        {
            return Err(QueryError::NotReadable {
                product: product.id.clone(),
                principal: principal.name.clone(),
                reasons: decision.reasons,
            });
        }
        if qualified {
            let domain = domains.entry(product.id.domain.to_string()).or_insert_with(|| empty_domain(&product.id, &journal, &history));
            match &registered {
                Some(table) => {
                    domain
                        .visible
                        .insert(product.id.name.to_string(), table.clone());
                    if let Some((_, tables)) = &mut domain.history {
                        tables.insert(product.id.name.to_string(), product.table_uri.clone());
                    }
                }
                None => domain.denied.push(product.id.name.to_string()),
            }
        }
        if let Some(table) = &registered {
            for port in &ports {
                public.insert(port.clone(), table.clone());
            }
        }
        decisions.insert(product.id.clone(), decision);
    }
    // A successor is named only to a principal who may read it: otherwise the warning would tell
    // that a product it may not see exists.
    let readable = |id: &ProductId| decisions.get(id).is_some_and(|d: &AccessDecision| d.allowed);
    for deprecation in deprecated.values_mut().chain(domains.values_mut().flat_map(|d| d.sunset.values_mut())) {
        if deprecation.successor.as_ref().is_some_and(|s| !readable(s)) {
            deprecation.successor = None;
        }
    }
    if let Scope::Reads(reads) = &scope {
        for (name, table) in &reads.tables {
            public.insert(name.clone(), table.clone());
        }
    }
    let guards = Arc::new(guard_map);
    let aggregate_rules: HashMap<String, (ProductId, AggregateRule)> = decisions
        .iter()
        .filter_map(|(id, d)| d.aggregate.clone().filter(|_| d.allowed).map(|rule| (id.to_string(), (id.clone(), rule))))
        .collect();
    let noise = Arc::new(match limits.noise_seed {
        Some(seed) => NoiseSource::seeded(seed),
        None => NoiseSource::from_entropy(),
    });

    let policy_rule = Arc::new(PolicyRule {
        guards,
        journal: journal.clone(),
    });
    let mut analyzer_rules: Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> =
        vec![policy_rule];
    analyzer_rules.extend(Analyzer::new().rules);
    // After type coercion, so the casts it adds are checked like the user's own.
    analyzer_rules.push(Arc::new(AggregateOnlyRule { rules: Arc::new(aggregate_rules), journal: journal.clone(), noise }));
    // After type coercion, which puts the casts of literals in place.
    analyzer_rules.push(Arc::new(crate::literals::LiteralRule));
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_analyzer_rules(analyzer_rules)
        .with_physical_optimizer_rules(crate::tuning::physical_rules())
        .with_query_planner(Arc::new(MeshQueryPlanner))
        .with_optimizer_rule(Arc::new(crate::remote::aggregate::RemoteAggregateRule))
        .build();
    for name in FILE_TABLE_FUNCTIONS {
        state.register_udtf(name, Arc::new(RefusedTableFunction(name)));
    }
    crate::bounded::install(&mut state, limits)?;
    let ctx = SessionContext::new_with_state(state);
    let mesh_catalog = MeshCatalog::new(
        domains
            .into_iter()
            .map(|(name, schema)| (name, Arc::new(schema)))
            .collect(),
        public,
    );
    ctx.register_catalog(CATALOG_NAME, Arc::new(mesh_catalog));
    Ok(Governed {
        ctx,
        journal,
        decisions,
        locations,
        deprecated,
    })
}

/// The schema of `id`'s domain before any of its products is added.
fn empty_domain(id: &ProductId, journal: &Arc<Journal>, history: &Option<Arc<crate::history::History>>) -> DomainSchema {
    DomainSchema {
        domain: id.domain.clone(),
        visible: BTreeMap::new(),
        denied: Vec::new(),
        sunset: BTreeMap::new(),
        journal: journal.clone(),
        history: history.clone().map(|h| (h, BTreeMap::new())),
    }
}
