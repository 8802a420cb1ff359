//! Reads of products that building and checking a product make, as the consuming product's
//! domain: each goes through the query layer's access decision and policy rewrite
//! ([`meshwork_query::DomainSession`]), and `validate`/`plan` report beforehand what each read
//! will get — refused, filtered or masked — from the descriptors about to be applied.

use std::collections::BTreeMap;

use meshwork_catalog::CatalogStore;
use meshwork_core::descriptor::{CompletenessMeasure, Mask, ProductDescriptor, QualityCheck};
use meshwork_core::id::ProductId;
use meshwork_core::mesh::ProductEntry;
use meshwork_core::principal::Principal;
use meshwork_policy::{AccessDecision, Authorizer, Violation};
use meshwork_query::{DomainReads, DomainSession, Governance, QueryError};

use crate::governance::Finding;
use crate::{LoadedMesh, PipelineError};

/// The pseudo-policy under which a refused read is reported; it is always enforced.
pub const INPUT_READABLE: &str = "input_readable";

/// Why a product reads another one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadPurpose {
    /// An input port of the transform.
    Input {
        /// The port name.
        port: String,
        /// Index in `inputs`.
        index: usize,
    },
    /// A quality rule (`referential`, or an SQL assertion naming the product).
    QualityRule {
        /// The rule's name.
        rule: String,
        /// Index in `quality`.
        index: usize,
    },
    /// The completeness SLO measured against the product's rows.
    Completeness,
}

impl ReadPurpose {
    /// The descriptor field that declares the read.
    pub fn field(&self) -> String {
        match self {
            ReadPurpose::Input { index, .. } => format!("inputs[{index}].product"),
            ReadPurpose::QualityRule { index, .. } => format!("quality[{index}]"),
            ReadPurpose::Completeness => "slo.completeness.upstream".into(),
        }
    }
}

impl std::fmt::Display for ReadPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadPurpose::Input { port, .. } => write!(f, "input `{port}`"),
            ReadPurpose::QualityRule { rule, .. } => write!(f, "quality rule `{rule}`"),
            ReadPurpose::Completeness => write!(f, "completeness SLO"),
        }
    }
}

/// What a read of `upstream` by a product of another domain (or a restricted one of its own)
/// will get.
#[derive(Debug, Clone, PartialEq)]
pub struct InputAccess {
    /// The product that reads.
    pub consumer: ProductId,
    /// Why it reads.
    pub purpose: ReadPurpose,
    /// The product read.
    pub upstream: ProductId,
    /// The outcome for the consumer's domain.
    pub outcome: ReadOutcome,
}

/// The access decision of a read, reduced to what shapes the data.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOutcome {
    /// The domain may not read the upstream: the product cannot be built or checked.
    Refused {
        /// Why, as the access decision says.
        reasons: Vec<String>,
    },
    /// Every row and every value, as stored.
    Full,
    /// Some rows or values are hidden from the domain.
    Restricted {
        /// Row filters, ANDed.
        row_filters: Vec<String>,
        /// Masks by column.
        masks: BTreeMap<String, Mask>,
        /// The aggregate-only rule, when the domain may read it only in aggregate: its build
        /// SQL must aggregate it like any aggregate-only reader's query.
        aggregate: Option<String>,
    },
}

impl ReadOutcome {
    /// The outcome of an access decision.
    pub fn of(decision: &AccessDecision) -> ReadOutcome {
        if !decision.allowed {
            ReadOutcome::Refused {
                reasons: decision.reasons.clone(),
            }
        } else if decision.row_filters.is_empty() && decision.masks.is_empty() && decision.aggregate.is_none() {
            ReadOutcome::Full
        } else {
            ReadOutcome::Restricted {
                row_filters: decision.row_filters.clone(),
                masks: decision.masks.clone(),
                aggregate: decision.aggregate.as_ref().map(|rule| rule.describe()),
            }
        }
    }

    /// One line: `refused`, `full`, or `only in aggregate (…); filtered by …; masked: col (hash), …`.
    pub fn describe(&self) -> String {
        match self {
            ReadOutcome::Refused { reasons } => format!("refused ({})", reasons.join("; ")),
            ReadOutcome::Full => "full (no filter, no mask)".into(),
            ReadOutcome::Restricted { row_filters, masks, aggregate } => {
                let mut parts = Vec::new();
                if let Some(rule) = aggregate {
                    parts.push(format!("only in aggregate ({rule})"));
                }
                if !row_filters.is_empty() {
                    parts.push(format!(
                        "filtered by {}",
                        row_filters
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(" AND ")
                    ));
                }
                if !masks.is_empty() {
                    parts.push(format!(
                        "masked: {}",
                        masks
                            .iter()
                            .map(|(c, m)| format!("`{c}` ({})", m.kind()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                parts.join("; ")
            }
        }
    }
}

/// Every product `descriptor` reads besides its own staged data, with why: input ports,
/// `referential` rules, SQL assertions that name products, and a completeness SLO.
pub fn product_reads(descriptor: &ProductDescriptor) -> Vec<(ReadPurpose, ProductId)> {
    let mut reads = Vec::new();
    for (index, input) in descriptor.inputs.iter().enumerate() {
        if let meshwork_core::descriptor::InputSource::Product { product } = &input.source {
            reads.push((
                ReadPurpose::Input {
                    port: input.name.to_string(),
                    index,
                },
                product.clone(),
            ));
        }
    }
    for (index, rule) in descriptor.quality.iter().enumerate() {
        let purpose = || ReadPurpose::QualityRule {
            rule: rule.name.clone(),
            index,
        };
        match &rule.check {
            QualityCheck::Referential { references, .. } => {
                reads.push((purpose(), references.clone()))
            }
            QualityCheck::Sql { assert } => {
                for id in assertion_products(assert) {
                    reads.push((purpose(), id));
                }
            }
            _ => {}
        }
    }
    if let Some(slo) = &descriptor.slo
        && let Some(completeness) = &slo.completeness
        && let CompletenessMeasure::UpstreamRows { upstream } = &completeness.measure
    {
        reads.push((ReadPurpose::Completeness, upstream.clone()));
    }
    reads
}

/// The products an SQL assertion names as `domain.product`; SQL that does not parse names none
/// (its rule reports the parse error).
pub fn assertion_products(sql: &str) -> Vec<ProductId> {
    let mut out = Vec::new();
    let Ok(statements) = datafusion::sql::parser::DFParser::parse_sql(sql) else {
        return out;
    };
    for statement in statements {
        let Ok((tables, _ctes)) =
            datafusion::sql::resolve::resolve_table_references(&statement, true)
        else {
            continue;
        };
        for table in tables {
            if let Some(schema) = table.schema()
                && let Ok(id) = format!("{schema}.{}", table.table()).parse::<ProductId>()
                && !out.contains(&id)
            {
                out.push(id);
            }
        }
    }
    out
}

/// The principal `consumer`'s builds and checks read as.
pub fn domain_principal(
    mesh: &LoadedMesh,
    consumer: &ProductDescriptor,
) -> Result<Principal, PipelineError> {
    mesh.repo
        .domains
        .get(&consumer.domain)
        .map(|d| Principal::for_domain(&d.descriptor))
        .ok_or_else(|| {
            PipelineError::Internal(format!(
                "domain `{}` of `{}` is not loaded",
                consumer.domain,
                consumer.id()
            ))
        })
}

/// What every read of another product in the mesh will get, decided on the descriptors and
/// policies about to be applied. Reads within a domain are listed only when restricted.
pub fn input_access(mesh: &LoadedMesh) -> Vec<InputAccess> {
    let authorizer = Authorizer::new(mesh.policies.clone(), mesh.states.clone());
    let mut out = Vec::new();
    for (id, entry) in &mesh.repo.products {
        let Ok(principal) = domain_principal(mesh, &entry.descriptor) else {
            continue;
        };
        for (purpose, upstream) in product_reads(&entry.descriptor) {
            // A missing upstream is a reference error `validate` reports on its own.
            let Some(upstream_entry) = mesh.repo.products.get(&upstream) else {
                continue;
            };
            let outcome =
                ReadOutcome::of(&authorizer.decide(&principal, &upstream_entry.descriptor));
            if upstream.domain != id.domain || outcome != ReadOutcome::Full {
                out.push(InputAccess {
                    consumer: id.clone(),
                    purpose,
                    upstream,
                    outcome,
                });
            }
        }
    }
    out
}

/// The findings for refused reads: an enforced error on the consuming product, naming the
/// upstream, the consuming domain, the upstream's `access.readers` line and the fix.
pub fn refused_reads(mesh: &LoadedMesh, access: &[InputAccess]) -> Vec<Finding> {
    let mut out = Vec::new();
    for read in access {
        let ReadOutcome::Refused { reasons } = &read.outcome else {
            continue;
        };
        let Some(entry) = mesh.repo.products.get(&read.consumer) else {
            continue;
        };
        let field = read.purpose.field();
        let position = entry.positions.locate_nearest(&field);
        let message = refusal_message(
            mesh,
            &read.consumer,
            &read.upstream,
            &read.purpose.to_string(),
            reasons,
        );
        out.push(Finding {
            file: entry.file.clone(),
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            violation: Violation {
                policy: INPUT_READABLE.into(),
                state: meshwork_core::descriptor::PolicyState::Enforce,
                product: read.consumer.clone(),
                field: Some(field),
                message,
            },
        });
    }
    out
}

/// `domain `d` may not read `u` (…): reasons; `file:line` `access.readers: …`; fix.
fn refusal_message(
    mesh: &LoadedMesh,
    consumer: &ProductId,
    upstream: &ProductId,
    purpose: &str,
    reasons: &[String],
) -> String {
    let domain = &consumer.domain;
    let mut message = format!(
        "domain `{domain}` may not read `{upstream}` ({purpose}): {}",
        reasons.join("; ")
    );
    if let Some(entry) = mesh.repo.products.get(upstream) {
        message.push_str(&format!("; {}", readers_line(entry)));
    }
    message.push_str(&format!(
        "; ask the owners of `{upstream}` to add `domain:{domain}` to `access.readers`, or stop reading it"
    ));
    message
}

/// `file:line: access.readers: [a, b]` of a product, or that it has none.
fn readers_line(entry: &ProductEntry) -> String {
    match entry.descriptor.access.as_ref() {
        Some(access) => {
            let at = entry
                .positions
                .locate_nearest("access.readers")
                .map(|(l, _)| format!(":{l}"))
                .unwrap_or_default();
            format!(
                "`{}{at}` has `access.readers: [{}]`",
                entry.file,
                access.readers.join(", ")
            )
        }
        None => format!(
            "`{}` has no `access` block, so only its own domain reads it",
            entry.file
        ),
    }
}

/// Opens the governed session `consumer`'s domain reads `reads` in. A refused upstream is
/// [`PipelineError::UpstreamDenied`], explained like `validate` explains it.
pub(crate) async fn domain_session(
    mesh: &LoadedMesh,
    consumer: &ProductDescriptor,
    catalog: &dyn CatalogStore,
    governance: &Governance,
    reads: &DomainReads,
) -> Result<DomainSession, PipelineError> {
    let principal = domain_principal(mesh, consumer)?;
    DomainSession::open(catalog, governance, principal, reads)
        .await
        .map_err(|err| match err {
            QueryError::NotPublished(id) => PipelineError::UpstreamMissing(id.to_string()),
            QueryError::NotReadable {
                product, reasons, ..
            } => {
                let purpose = product_reads(consumer)
                    .into_iter()
                    .find(|(_, id)| id == &product)
                    .map(|(purpose, _)| purpose.to_string())
                    .unwrap_or_else(|| "a read".into());
                PipelineError::UpstreamDenied {
                    message: refusal_message(mesh, &consumer.id(), &product, &purpose, &reasons),
                }
            }
            other => PipelineError::Query(other),
        })
}
