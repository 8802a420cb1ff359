//! The closed sets the catalog's records use (triggers, outcomes, statuses), typed once here
//! and stored, sent and shown as the same keywords they always were.

use meshwork_core::keyword_enum;

keyword_enum! {
    /// What started a build.
    pub enum Trigger ("trigger") {
        /// `meshwork apply`.
        Apply => "apply",
        /// `meshwork refresh` or the refresh API.
        Refresh => "refresh",
        /// A product's `refresh.schedule`.
        Schedule => "schedule",
        /// A cascade: an upstream product was published.
        Upstream => "upstream",
    }
}

impl Trigger {
    /// Whether a person started it (audited as `cli`), not the scheduler.
    pub fn is_manual(self) -> bool {
        matches!(self, Trigger::Apply | Trigger::Refresh)
    }
}

keyword_enum! {
    /// How one quality rule came out.
    pub enum RuleStatus ("rule status") {
        /// No row breaks it.
        Passed => "passed",
        /// Some rows (or groups, or values) break it.
        Failed => "failed",
        /// It could not be evaluated.
        Error => "error",
    }
}

keyword_enum! {
    /// How one quality run came out.
    pub enum RunOutcome ("quality outcome") {
        /// Every rule passed.
        Passed => "passed",
        /// Only `warn` rules failed; published.
        Warned => "warned",
        /// An `error` rule failed or could not be evaluated; nothing was published.
        Failed => "failed",
    }
}

keyword_enum! {
    /// A service level objective.
    pub enum Objective ("objective") {
        /// Age of the newest data.
        Freshness => "freshness",
        /// Rows or non-null values against the expectation.
        Completeness => "completeness",
        /// Share of queries that succeeded.
        Availability => "availability",
    }
}

keyword_enum! {
    /// The result of one SLO evaluation.
    pub enum SloStatus ("slo status") {
        /// Met with budget to spare.
        Met => "met",
        /// Met now, but the error budget is nearly spent.
        AtRisk => "at_risk",
        /// Not met.
        Violated => "violated",
        /// Could not be measured.
        Unknown => "unknown",
    }
}

keyword_enum! {
    /// How an audited action ended.
    pub enum AuditOutcome ("audit outcome") {
        /// It succeeded.
        Ok => "ok",
        /// It failed with an error.
        Error => "error",
        /// Access was denied.
        Denied => "denied",
        /// The client cancelled or disconnected.
        Cancelled => "cancelled",
        /// A streamed query audited before its first row and not yet finished.
        Running => "running",
        /// Refused over the concurrency limit.
        Refused => "refused",
    }
}

keyword_enum! {
    /// What became of one webhook delivery attempt.
    pub enum DeliveryOutcome ("delivery outcome") {
        /// The endpoint answered 2xx.
        Delivered => "delivered",
        /// It failed and will be tried again.
        Retrying => "retrying",
        /// It failed for the last time.
        Failed => "failed",
    }
}
