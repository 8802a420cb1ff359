//! Rows as the SQL backends return them (`sqlx::FromRow`, plain text and numbers on every
//! backend) and their one decode into the typed records: a value this meshwork cannot read is
//! a [`CatalogError::Corrupt`] naming the table, the row and the field.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use meshwork_core::id::{DomainName, ProductId};

use crate::{
    ApiTokenRecord, AuditEvent, CatalogError, DeliveryRecord, DomainRecord, EventRecord, OutboxEvent, ProductRecord, QualityRun, Result,
    SloCheck, VersionRecord,
};

/// `text` parsed as a `T`, or `Corrupt` naming `what`.
pub(super) fn parsed<T: FromStr>(what: &str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| CatalogError::Corrupt(format!("{what}: bad value `{text}`: {e}")))
}

/// `text` decoded from JSON, or `Corrupt` naming `what`.
pub(super) fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| CatalogError::Corrupt(format!("{what}: {e}")))
}

/// A stored timestamp, or `Corrupt` naming `what`.
pub(super) fn timestamp(what: &str, text: &str) -> Result<DateTime<Utc>> {
    crate::time::parse(text).map_err(|e| CatalogError::Corrupt(format!("{what}: bad timestamp `{text}`: {e}")))
}

pub(super) fn optional_timestamp(what: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    text.map(|t| timestamp(what, t)).transpose()
}

pub(super) fn product_id(what: &str, text: &str) -> Result<ProductId> {
    parsed(what, text)
}

pub(super) fn domain_name(what: &str, text: &str) -> Result<DomainName> {
    DomainName::new(text).map_err(|e| CatalogError::Corrupt(format!("{what}: bad domain `{text}`: {e}")))
}

/// Counts and sizes are never negative; a negative one is corruption, not a wrap-around.
pub(super) fn unsigned(what: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| CatalogError::Corrupt(format!("{what}: negative value {value}")))
}

#[derive(sqlx::FromRow)]
pub(super) struct DomainRow {
    name: String,
    title: Option<String>,
    description: Option<String>,
    owners: String,
    principal: String,
}

impl TryFrom<DomainRow> for DomainRecord {
    type Error = CatalogError;

    fn try_from(row: DomainRow) -> Result<Self> {
        let what = format!("domains `{}`", row.name);
        Ok(DomainRecord {
            name: domain_name(&what, &row.name)?,
            title: row.title,
            description: row.description,
            owners: json(&format!("{what} owners"), &row.owners)?,
            principal: json(&format!("{what} principal"), &row.principal)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ProductRow {
    id: String,
    version: String,
    title: Option<String>,
    description: Option<String>,
    owner: Option<String>,
    status: String,
    tags: String,
    descriptor: String,
    descriptor_hash: String,
    table_uri: String,
    updated_at: String,
}

impl TryFrom<ProductRow> for ProductRecord {
    type Error = CatalogError;

    fn try_from(row: ProductRow) -> Result<Self> {
        let what = format!("products `{}`", row.id);
        Ok(ProductRecord {
            id: product_id(&what, &row.id)?,
            version: row.version,
            title: row.title,
            description: row.description,
            owner: row.owner,
            status: parsed(&format!("{what} status"), &row.status)?,
            tags: json(&format!("{what} tags"), &row.tags)?,
            descriptor: json(&format!("{what} descriptor (written by a newer meshwork?)"), &row.descriptor)?,
            descriptor_hash: row.descriptor_hash,
            table_uri: row.table_uri,
            updated_at: timestamp(&format!("{what} updated_at"), &row.updated_at)?,
        })
    }
}

/// The columns [`VersionRow`] reads, in the order `product_versions` is written.
pub(super) const VERSION_COLUMNS: &str =
    "product_id, seq, version, delta_version, schema_json, row_count, descriptor_hash, input_fingerprint, published_at, watermark, remote";

#[derive(sqlx::FromRow)]
pub(super) struct VersionRow {
    product_id: String,
    seq: i64,
    version: String,
    delta_version: i64,
    schema_json: String,
    row_count: i64,
    descriptor_hash: String,
    input_fingerprint: String,
    published_at: String,
    watermark: Option<String>,
    remote: Option<String>,
}

impl TryFrom<VersionRow> for VersionRecord {
    type Error = CatalogError;

    fn try_from(row: VersionRow) -> Result<Self> {
        let what = format!("product_versions `{}` {}", row.product_id, row.seq);
        Ok(VersionRecord {
            product: product_id(&what, &row.product_id)?,
            seq: row.seq,
            version: row.version,
            delta_version: row.delta_version,
            schema: json(&format!("{what} schema_json"), &row.schema_json)?,
            row_count: row.row_count,
            descriptor_hash: row.descriptor_hash,
            input_fingerprint: row.input_fingerprint,
            published_at: timestamp(&format!("{what} published_at"), &row.published_at)?,
            watermark: row.watermark.as_deref().map(|w| json(&format!("{what} watermark"), w)).transpose()?,
            remote: row.remote.as_deref().map(|r| json(&format!("{what} remote"), r)).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: i64,
    at: String,
    principal: String,
    interface: String,
    action: String,
    statement: String,
    products: String,
    rows_returned: Option<i64>,
    duration_ms: f64,
    outcome: String,
    error: Option<String>,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = CatalogError;

    fn try_from(row: AuditRow) -> Result<Self> {
        let what = format!("audit_events {}", row.id);
        Ok(AuditEvent {
            id: row.id,
            at: timestamp(&format!("{what} at"), &row.at)?,
            principal: row.principal,
            interface: row.interface,
            action: row.action,
            statement: row.statement,
            products: json(&format!("{what} products"), &row.products)?,
            rows: row.rows_returned.map(|r| unsigned(&format!("{what} rows_returned"), r)).transpose()?,
            duration_ms: row.duration_ms,
            outcome: parsed(&format!("{what} outcome"), &row.outcome)?,
            error: row.error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    id: String,
    principal: String,
    description: Option<String>,
    hash: String,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
}

impl TryFrom<TokenRow> for ApiTokenRecord {
    type Error = CatalogError;

    fn try_from(row: TokenRow) -> Result<Self> {
        let what = format!("api_tokens `{}`", row.id);
        Ok(ApiTokenRecord {
            created_at: timestamp(&format!("{what} created_at"), &row.created_at)?,
            expires_at: optional_timestamp(&format!("{what} expires_at"), row.expires_at.as_deref())?,
            revoked_at: optional_timestamp(&format!("{what} revoked_at"), row.revoked_at.as_deref())?,
            id: row.id,
            principal: row.principal,
            description: row.description,
            hash: row.hash,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct QualityRunRow {
    id: i64,
    product_id: String,
    at: String,
    trigger_kind: String,
    outcome: String,
    published_seq: Option<i64>,
    row_count: i64,
    build_ms: f64,
    stage_ms: f64,
    quality_ms: f64,
    results: String,
}

impl TryFrom<QualityRunRow> for QualityRun {
    type Error = CatalogError;

    fn try_from(row: QualityRunRow) -> Result<Self> {
        let what = format!("quality_runs {}", row.id);
        Ok(QualityRun {
            id: row.id,
            product: Some(product_id(&what, &row.product_id)?),
            at: timestamp(&format!("{what} at"), &row.at)?,
            trigger: parsed(&format!("{what} trigger_kind"), &row.trigger_kind)?,
            outcome: parsed(&format!("{what} outcome"), &row.outcome)?,
            published_seq: row.published_seq,
            row_count: unsigned(&format!("{what} row_count"), row.row_count)?,
            build_ms: row.build_ms,
            stage_ms: row.stage_ms,
            quality_ms: row.quality_ms,
            results: json(&format!("{what} results"), &row.results)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    id: i64,
    at: String,
    kind: String,
    product_id: Option<String>,
    payload: String,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = CatalogError;

    fn try_from(row: EventRow) -> Result<Self> {
        let what = format!("events {}", row.id);
        Ok(EventRecord {
            id: row.id,
            at: timestamp(&format!("{what} at"), &row.at)?,
            kind: parsed(&format!("{what} kind"), &row.kind)?,
            product: row.product_id.as_deref().map(|p| product_id(&what, p)).transpose()?,
            payload: json(&format!("{what} payload"), &row.payload)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SloRow {
    id: i64,
    product_id: String,
    objective: String,
    at: String,
    status: String,
    value: Option<f64>,
    threshold: f64,
    budget_remaining: Option<f64>,
    message: String,
}

impl TryFrom<SloRow> for SloCheck {
    type Error = CatalogError;

    fn try_from(row: SloRow) -> Result<Self> {
        let what = format!("slo_checks {}", row.id);
        Ok(SloCheck {
            product: product_id(&what, &row.product_id)?,
            objective: parsed(&format!("{what} objective"), &row.objective)?,
            at: timestamp(&format!("{what} at"), &row.at)?,
            status: parsed(&format!("{what} status"), &row.status)?,
            value: row.value,
            threshold: row.threshold,
            budget_remaining: row.budget_remaining,
            message: row.message,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    id: i64,
    webhook: String,
    event_id: i64,
    attempt: i64,
    at: String,
    status: Option<i64>,
    outcome: String,
    error: Option<String>,
}

impl TryFrom<DeliveryRow> for DeliveryRecord {
    type Error = CatalogError;

    fn try_from(row: DeliveryRow) -> Result<Self> {
        let what = format!("webhook_deliveries {}", row.id);
        let attempt = u32::try_from(row.attempt).map_err(|_| CatalogError::Corrupt(format!("{what} attempt: bad value {}", row.attempt)))?;
        let status = row
            .status
            .map(|s| u16::try_from(s).map_err(|_| CatalogError::Corrupt(format!("{what} status: bad value {s}"))))
            .transpose()?;
        Ok(DeliveryRecord {
            webhook: row.webhook,
            event_id: row.event_id,
            attempt,
            at: timestamp(&format!("{what} at"), &row.at)?,
            status,
            outcome: parsed(&format!("{what} outcome"), &row.outcome)?,
            error: row.error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    id: i64,
    at: String,
    event: String,
}

impl TryFrom<OutboxRow> for OutboxEvent {
    type Error = CatalogError;

    fn try_from(row: OutboxRow) -> Result<Self> {
        let what = format!("openlineage_outbox {}", row.id);
        Ok(OutboxEvent { id: row.id, at: timestamp(&format!("{what} at"), &row.at)?, event: json(&format!("{what} event"), &row.event)? })
    }
}

/// Decodes every row.
pub(super) fn decode_all<R, T: TryFrom<R, Error = CatalogError>>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}
