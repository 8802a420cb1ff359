//! Reads the platform makes of products on behalf of a domain: building a derived product from
//! its input ports, and checking it (`referential` rules, SQL assertions that name products,
//! completeness against an upstream). They run as the domain's principal
//! ([`Principal::for_domain`]) in the same governed context as a consumer's query, so upstream
//! row filters and masks shape what the domain builds from, and a denied upstream is an error.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::prelude::{DataFrame, SessionContext};
use meshwork_catalog::CatalogStore;
use meshwork_core::id::ProductId;
use meshwork_core::principal::Principal;
use meshwork_policy::AccessDecision;

use crate::QueryError;
use crate::engine::QueryLimits;
use crate::governance::Governance;
use crate::governed::{Governed, Scope, governed_context};
use crate::strings::plain_strings;

/// What one read on behalf of a domain needs.
#[derive(Default)]
pub struct DomainReads {
    /// Input ports: unqualified table names that read a product (`orders` → `sales.orders`).
    pub ports: Vec<(String, ProductId)>,
    /// Products read by their qualified `domain.product` name (rules and assertions).
    pub products: Vec<ProductId>,
    /// The domain's own data, read in full and never rewritten: file inputs, and the staged
    /// data of the product being checked (`this`).
    pub tables: Vec<(String, Arc<dyn TableProvider>)>,
}

impl std::fmt::Debug for DomainReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainReads")
            .field("ports", &self.ports)
            .field("products", &self.products)
            .field(
                "tables",
                &self.tables.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A governed session of one domain over exactly the products it reads.
pub struct DomainSession {
    ctx: SessionContext,
    principal: Principal,
    decisions: BTreeMap<ProductId, AccessDecision>,
}

impl DomainSession {
    /// Decides access of a domain's `principal` ([`Principal::for_domain`]) to every product
    /// `reads` names, registers each through the policy rewrite, and the domain's own tables
    /// as they are. Fails with [`QueryError::NotReadable`] on the first product the domain may
    /// not read and [`QueryError::NotPublished`] on one that has no published version.
    pub async fn open(
        catalog: &dyn CatalogStore,
        governance: &Governance,
        principal: Principal,
        reads: &DomainReads,
    ) -> Result<DomainSession, QueryError> {
        let Governed { ctx, decisions, .. } = governed_context(
            catalog,
            governance,
            &principal,
            &QueryLimits::default(),
            None,
            Scope::Reads(reads),
        )
        .await?;
        Ok(DomainSession {
            ctx,
            principal,
            decisions,
        })
    }

    /// The domain's principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The decision on each product read, with the row filters and masks it applied.
    pub fn decisions(&self) -> &BTreeMap<ProductId, AccessDecision> {
        &self.decisions
    }

    /// The governed DataFusion context: everything planned in it passes the policy rewrite.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans a read-only statement; result strings are plain `Utf8`.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame, QueryError> {
        Ok(plain_strings(self.plan(sql).await?))
    }

    /// Plans a read-only statement as written (its output types are the scans' types), for
    /// callers that read the plan itself, such as column lineage.
    /// A domain's SQL is as untrusted as a consumer's: it is planned with the same length and
    /// nesting limits, on the planner thread.
    pub async fn plan(&self, sql: &str) -> Result<DataFrame, QueryError> {
        crate::limits::plan(&self.ctx, sql, crate::governed::read_only(), &QueryLimits::default(), crate::Placeholders::Numbered).await
    }
}
