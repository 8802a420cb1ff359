//! Lifecycle event kinds: what the event log records, webhooks deliver and
//! `notifications.webhooks[].events` filters on.

crate::keyword_enum! {
    /// A kind of lifecycle event.
    pub enum EventKind ("event kind") {
        /// A new version was published.
        Published => "product.published",
        /// A new version changed the output schema.
        SchemaChanged => "product.schema_changed",
        /// A version was published with `status: deprecated`.
        Deprecated => "product.deprecated",
        /// A deprecated product reached its sunset date and is no longer served; its data is
        /// kept until `meshwork product purge`.
        Sunset => "product.sunset",
        /// A build failed an `error` quality rule; nothing was published.
        QualityFailed => "product.quality_failed",
        /// A build published with failed `warn` rules.
        QualityWarned => "product.quality_warned",
        /// A scheduled or cascaded refresh failed.
        RefreshFailed => "product.refresh_failed",
        /// An SLO went from met to violated.
        SloViolated => "product.slo_violated",
        /// A violated SLO is met again.
        SloRecovered => "product.slo_recovered",
        /// The product was taken out of service.
        Unpublished => "product.unpublished",
        /// An unpublished product's catalog rows were deleted.
        Purged => "product.purged",
        /// A principal asked for access to the product (see docs/portal.md, "Access requests").
        AccessRequested => "access.requested",
        /// An owner approved an access request: a grant now makes the requester a reader.
        AccessApproved => "access.approved",
        /// An owner denied an access request.
        AccessDenied => "access.denied",
        /// The requester withdrew a pending access request.
        AccessWithdrawn => "access.withdrawn",
        /// An owner revoked a grant before it expired.
        AccessRevoked => "access.revoked",
        /// A grant reached its end date (recorded once, after the fact: the grant stopped
        /// counting at the instant itself).
        AccessExpired => "access.expired",
    }
}

impl EventKind {
    /// Every keyword, in declaration order (for messages and completion).
    pub fn keywords() -> impl Iterator<Item = &'static str> {
        EventKind::ALL.iter().map(|k| k.as_str())
    }

    /// The kind named `name`, or the message naming it and the kinds there are.
    pub fn named(name: &str) -> Result<EventKind, String> {
        name.parse().map_err(|_| format!("unknown event kind `{name}`; kinds are {}", EventKind::keywords().collect::<Vec<_>>().join(", ")))
    }
}
