//! What an apply or refresh reports: each product's outcome, the report of the whole run, the
//! observers that follow its progress, and the one audit event written from the report.

use std::collections::BTreeMap;
use std::time::Duration;

use meshwork_catalog::{AuditEvent, AuditOutcome, AuditProduct, QualityRun, VersionRecord};
use meshwork_core::id::ProductId;
use meshwork_policy::AccessDecision;

use crate::apply::ApplyOptions;
use crate::governance::Finding;
use crate::unpublish::Removal;
use crate::{LoadedMesh, PipelineError};

/// What happened to one product during an apply.
#[derive(Debug)]
pub enum ProductOutcome {
    /// A new version was published.
    Published {
        /// The recorded version.
        version: VersionRecord,
        /// Time spent building and publishing.
        elapsed: Duration,
        /// The quality run that admitted it (it may carry `warn` failures).
        quality: Box<QualityRun>,
        /// The access decision on each other product its build and checks read, as its domain.
        reads: BTreeMap<ProductId, AccessDecision>,
    },
    /// A quality rule of severity `error` failed on the staged data: nothing was published and
    /// the previous version stays current.
    QualityFailed {
        /// The recorded run with the failing rules and their samples.
        quality: Box<QualityRun>,
        /// Time spent before failing.
        elapsed: Duration,
    },
    /// Descriptor and inputs are unchanged since the current version; nothing was written.
    Unchanged {
        /// The current version.
        version: VersionRecord,
    },
    /// The build or publish failed; the previous version stays current.
    Failed {
        /// Why.
        error: PipelineError,
        /// Time spent before failing.
        elapsed: Duration,
    },
    /// Not attempted because an upstream product failed.
    Blocked {
        /// The failed upstream product.
        upstream: ProductId,
    },
    /// Not attempted because an enforced governance policy is violated; the previous version
    /// stays current.
    Refused {
        /// The blocking violations.
        findings: Vec<Finding>,
    },
    /// Past its sunset date and no longer served: not built; its published data is kept until
    /// `meshwork product purge`.
    Sunset {
        /// The first day it was no longer served.
        since: chrono::NaiveDate,
        /// The version it served last, if it was ever published.
        version: Option<VersionRecord>,
    },
    /// No longer in the repository: taken out of service, its data kept until purged.
    Unpublished {
        /// Deleted, or moved to another domain.
        removal: Removal,
        /// The version it served until now.
        version: Option<VersionRecord>,
    },
}

impl ProductOutcome {
    /// Whether this outcome makes the apply fail.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            ProductOutcome::Failed { .. } | ProductOutcome::QualityFailed { .. } | ProductOutcome::Blocked { .. } | ProductOutcome::Refused { .. }
        )
    }

    /// One word for summaries and the audit log.
    pub fn keyword(&self) -> &'static str {
        match self {
            ProductOutcome::Published { .. } => "published",
            ProductOutcome::Unchanged { .. } => "unchanged",
            ProductOutcome::Failed { .. } => "failed",
            ProductOutcome::QualityFailed { .. } => "quality_failed",
            ProductOutcome::Blocked { .. } => "blocked",
            ProductOutcome::Refused { .. } => "refused",
            ProductOutcome::Unpublished { .. } => "unpublished",
            ProductOutcome::Sunset { .. } => "sunset",
        }
    }
}

/// The outcome of every product, in build order.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Outcomes in build order.
    pub outcomes: Vec<(ProductId, ProductOutcome)>,
    /// Wall time of the whole apply.
    pub elapsed: Duration,
    /// Every governance violation found, warnings included.
    pub findings: Vec<Finding>,
}

impl ApplyReport {
    /// Whether any product failed or was blocked.
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|(_, o)| o.is_failure())
    }
}

/// Receives progress of an apply, e.g. to draw progress bars. Called from the apply's task.
pub trait ApplyObserver: Sync {
    /// A product's build starts.
    fn started(&self, _id: &ProductId) {}
    /// A product's rows are built and about to be committed.
    fn built(&self, _id: &ProductId, _rows: u64) {}
    /// A product is done.
    fn finished(&self, _id: &ProductId, _outcome: &ProductOutcome) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct SilentObserver;

impl ApplyObserver for SilentObserver {}

/// The audit event of an apply or refresh: every product's outcome and each upstream read a build
/// made as its product's domain.
pub(crate) fn apply_audit_event(mesh: &LoadedMesh, report: &ApplyReport, options: &ApplyOptions) -> AuditEvent {
    let products = report
        .outcomes
        .iter()
        .map(|(id, outcome)| AuditProduct {
            product: id.to_string(),
            decision: outcome.keyword().into(),
            policies: report.findings.iter().filter(|f| &f.violation.product == id).map(|f| f.violation.policy.clone()).collect(),
            row_filters: 0,
            masks: Vec::new(),
            reasons: match outcome {
                ProductOutcome::Failed { error, .. } => vec![error.to_string()],
                ProductOutcome::QualityFailed { quality, .. } => quality
                    .results
                    .iter()
                    .filter(|r| r.status != "passed" && r.severity == "error")
                    .map(|r| format!("quality rule `{}`: {}", r.name, r.message))
                    .collect(),
                ProductOutcome::Blocked { upstream } => vec![format!("upstream `{upstream}` failed")],
                ProductOutcome::Refused { findings } => findings.iter().map(|f| format!("{}: {}", f.violation.policy, f.violation.message)).collect(),
                ProductOutcome::Unpublished { removal, .. } => vec![removal.describe()],
                _ => Vec::new(),
            },
            decision_us: 0,
            as_of: Vec::new(),
            aggregate: None,
            epsilon: None,
        })
        .chain(report.outcomes.iter().flat_map(|(id, outcome)| {
            // Each upstream read a build or its checks made as the product's domain.
            let reads = match outcome {
                ProductOutcome::Published { reads, .. } => reads.iter().collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            reads
                .into_iter()
                .map(move |(upstream, decision)| AuditProduct {
                    product: upstream.to_string(),
                    decision: if decision.allowed {
                        "allow".into()
                    } else {
                        "deny".into()
                    },
                    policies: decision.policies.clone(),
                    row_filters: decision.row_filters.len(),
                    masks: decision
                        .masks
                        .iter()
                        .map(|(c, m)| format!("{c}:{}", m.kind()))
                        .collect(),
                    reasons: vec![format!("read by `{id}` as domain `{}`", id.domain)],
                    decision_us: decision.elapsed.as_micros() as u64,
                    as_of: Vec::new(),
                    aggregate: None,
                    epsilon: None,
                })
        }))
        .collect();
    let published = report.outcomes.iter().filter(|(_, o)| matches!(o, ProductOutcome::Published { .. })).count();
    AuditEvent {
        id: 0,
        at: chrono::Utc::now(),
        principal: meshwork_core::principal::LOCAL_ADMIN.into(),
        interface: if options.trigger.is_manual() { "cli".into() } else { "scheduler".into() },
        action: if options.only.is_some() { "refresh".into() } else { "apply".into() },
        statement: match &options.only {
            Some(only) => format!("refresh {} ({})", only.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "), options.trigger),
            None => format!("apply {}", mesh.root.display()),
        },
        products,
        rows: Some(published as u64),
        duration_ms: report.elapsed.as_secs_f64() * 1000.0,
        outcome: if report.failed() { AuditOutcome::Error } else { AuditOutcome::Ok },
        error: None,
    }
}

