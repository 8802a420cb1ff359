//! Statements about access requests and grants. Every transition appends its lifecycle event in
//! the same transaction, and those that change who reads (approve, revoke) move the generation
//! so servers reload governance at once.

use chrono::{DateTime, Utc};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use serde_json::json;
use sqlx::AnyConnection;

use super::rows::{decode_all, optional_timestamp, parsed, product_id, timestamp};
use super::{SqlCatalog, bump_generation, insert_event};
use crate::{
    AccessDecisionRecord, AccessRequest, AccessRequestFilter, AccessRequestId, AccessRequestStatus, CatalogError, Grant, GrantId, NewAccessRequest, NewEvent,
    Result, time,
};

#[derive(sqlx::FromRow)]
pub(super) struct AccessRequestRow {
    id: i64,
    product_id: String,
    principal: String,
    purpose: String,
    until: Option<String>,
    status: String,
    created_at: String,
    decided_at: Option<String>,
    decided_by: Option<String>,
    comment: Option<String>,
}

impl TryFrom<AccessRequestRow> for AccessRequest {
    type Error = CatalogError;

    fn try_from(row: AccessRequestRow) -> Result<Self> {
        let what = format!("access_requests `{}`", row.id);
        Ok(AccessRequest {
            id: AccessRequestId(row.id),
            product: product_id(&format!("{what} product_id"), &row.product_id)?,
            until: optional_timestamp(&format!("{what} until"), row.until.as_deref())?,
            status: parsed(&format!("{what} status"), &row.status)?,
            created_at: timestamp(&format!("{what} created_at"), &row.created_at)?,
            decided_at: optional_timestamp(&format!("{what} decided_at"), row.decided_at.as_deref())?,
            principal: row.principal,
            purpose: row.purpose,
            decided_by: row.decided_by,
            comment: row.comment,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct GrantRow {
    id: i64,
    product_id: String,
    principal: String,
    request_id: Option<i64>,
    granted_by: String,
    purpose: String,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    revoked_by: Option<String>,
}

impl TryFrom<GrantRow> for Grant {
    type Error = CatalogError;

    fn try_from(row: GrantRow) -> Result<Self> {
        let what = format!("grants `{}`", row.id);
        Ok(Grant {
            id: GrantId(row.id),
            product: product_id(&format!("{what} product_id"), &row.product_id)?,
            request: row.request_id.map(AccessRequestId),
            created_at: timestamp(&format!("{what} created_at"), &row.created_at)?,
            expires_at: optional_timestamp(&format!("{what} expires_at"), row.expires_at.as_deref())?,
            revoked_at: optional_timestamp(&format!("{what} revoked_at"), row.revoked_at.as_deref())?,
            principal: row.principal,
            granted_by: row.granted_by,
            purpose: row.purpose,
            revoked_by: row.revoked_by,
        })
    }
}

const GRANT_COLUMNS: &str = "id, product_id, principal, request_id, granted_by, purpose, created_at, expires_at, revoked_at, revoked_by";

/// The lifecycle event of a request's transition; subscribers and webhooks see these fields.
fn request_event(kind: EventKind, request: &AccessRequest, grant: Option<&Grant>) -> NewEvent {
    NewEvent {
        kind,
        product: Some(request.product.clone()),
        payload: json!({
            "request": request.id,
            "principal": request.principal,
            "purpose": request.purpose,
            "until": request.until.as_ref().map(time::format),
            "status": request.status,
            "by": request.decided_by,
            "comment": request.comment,
            "grant": grant.map(|g| g.id),
        }),
    }
}

/// The lifecycle event of a grant ending.
fn grant_event(kind: EventKind, grant: &Grant) -> NewEvent {
    NewEvent {
        kind,
        product: Some(grant.product.clone()),
        payload: json!({
            "grant": grant.id,
            "request": grant.request,
            "principal": grant.principal,
            "expires_at": grant.expires_at.as_ref().map(time::format),
            "by": grant.revoked_by,
        }),
    }
}

async fn request_row(conn: &mut AnyConnection, id: AccessRequestId) -> Result<Option<AccessRequest>> {
    let row: Option<AccessRequestRow> = sqlx::query_as("SELECT * FROM access_requests WHERE id = $1").bind(id.0).fetch_optional(&mut *conn).await?;
    row.map(AccessRequest::try_from).transpose()
}

impl SqlCatalog {
    pub(super) async fn insert_access_request(&self, request: &NewAccessRequest) -> Result<Option<AccessRequest>> {
        let mut tx = self.write_tx().await?;
        let pending: Option<(i64,)> = sqlx::query_as("SELECT id FROM access_requests WHERE product_id = $1 AND principal = $2 AND status = 'pending'")
            .bind(request.product.to_string())
            .bind(&request.principal)
            .fetch_optional(&mut *tx)
            .await?;
        if pending.is_some() {
            return Ok(None);
        }
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO access_requests (product_id, principal, purpose, until, status, created_at) VALUES ($1, $2, $3, $4, 'pending', $5) RETURNING id",
        )
        .bind(request.product.to_string())
        .bind(&request.principal)
        .bind(&request.purpose)
        .bind(request.until.as_ref().map(time::format))
        .bind(time::format(&request.created_at))
        .fetch_one(&mut *tx)
        .await;
        let id = match inserted {
            Ok(id) => AccessRequestId(id),
            // Another process made the same request between the check and the insert: the
            // index on pending requests keeps it to one.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stored = request_row(&mut tx, id).await?.ok_or_else(|| CatalogError::Corrupt(format!("access request `{id}` vanished while it was made")))?;
        insert_event(&mut tx, &request_event(EventKind::AccessRequested, &stored, None)).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    pub(super) async fn access_request_row(&self, id: AccessRequestId) -> Result<Option<AccessRequest>> {
        let mut conn = self.pool.acquire().await?;
        request_row(&mut conn, id).await
    }

    pub(super) async fn access_request_rows(&self, filter: &AccessRequestFilter) -> Result<Vec<AccessRequest>> {
        let rows: Vec<AccessRequestRow> = sqlx::query_as(
            "SELECT * FROM access_requests WHERE ($1 IS NULL OR product_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR principal = $3) ORDER BY id",
        )
        .bind(filter.product.as_ref().map(ToString::to_string))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.principal.as_deref())
        .fetch_all(&self.pool)
        .await?;
        decode_all(rows)
    }

    pub(super) async fn decide_access_request_row(&self, id: AccessRequestId, decision: &AccessDecisionRecord) -> Result<Option<(AccessRequest, Option<Grant>)>> {
        let status = if decision.approve { AccessRequestStatus::Approved } else { AccessRequestStatus::Denied };
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query("UPDATE access_requests SET status = $1, decided_at = $2, decided_by = $3, comment = $4 WHERE id = $5 AND status = 'pending'")
            .bind(status.as_str())
            .bind(time::format(&decision.at))
            .bind(&decision.by)
            .bind(decision.comment.as_deref())
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let request = request_row(&mut tx, id).await?.ok_or_else(|| CatalogError::Corrupt(format!("access request `{id}` vanished while it was decided")))?;
        let grant = if decision.approve {
            let grant_id: i64 = sqlx::query_scalar(
                "INSERT INTO grants (product_id, principal, request_id, granted_by, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(request.product.to_string())
            .bind(&request.principal)
            .bind(id.0)
            .bind(&decision.by)
            .bind(&request.purpose)
            .bind(time::format(&decision.at))
            .bind(request.until.as_ref().map(time::format))
            .fetch_one(&mut *tx)
            .await?;
            let row: GrantRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))).bind(grant_id).fetch_one(&mut *tx).await?;
            Some(Grant::try_from(row)?)
        } else {
            None
        };
        let kind = if decision.approve { EventKind::AccessApproved } else { EventKind::AccessDenied };
        insert_event(&mut tx, &request_event(kind, &request, grant.as_ref())).await?;
        if grant.is_some() {
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(Some((request, grant)))
    }

    pub(super) async fn withdraw_access_request_row(&self, id: AccessRequestId, at: DateTime<Utc>) -> Result<Option<AccessRequest>> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query("UPDATE access_requests SET status = 'withdrawn', decided_at = $1, decided_by = principal WHERE id = $2 AND status = 'pending'")
            .bind(time::format(&at))
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let request = request_row(&mut tx, id).await?.ok_or_else(|| CatalogError::Corrupt(format!("access request `{id}` vanished while it was withdrawn")))?;
        insert_event(&mut tx, &request_event(EventKind::AccessWithdrawn, &request, None)).await?;
        tx.commit().await?;
        Ok(Some(request))
    }

    pub(super) async fn grant_rows(&self, product: Option<&ProductId>) -> Result<Vec<Grant>> {
        let rows: Vec<GrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {GRANT_COLUMNS} FROM grants WHERE ($1 IS NULL OR product_id = $1) ORDER BY id")))
            .bind(product.map(ToString::to_string))
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }

    pub(super) async fn open_grant_rows(&self, at: DateTime<Utc>) -> Result<Vec<Grant>> {
        let rows: Vec<GrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) ORDER BY id"
        )))
        .bind(time::format(&at))
        .fetch_all(&self.pool)
        .await?;
        decode_all(rows)
    }

    pub(super) async fn revoke_grant_row(&self, id: GrantId, by: &str, at: DateTime<Utc>) -> Result<Option<Grant>> {
        let mut tx = self.write_tx().await?;
        let stamp = time::format(&at);
        let changed = sqlx::query("UPDATE grants SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)")
            .bind(&stamp)
            .bind(by)
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let row: GrantRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))).bind(id.0).fetch_one(&mut *tx).await?;
        let grant = Grant::try_from(row)?;
        insert_event(&mut tx, &grant_event(EventKind::AccessRevoked, &grant)).await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(grant))
    }

    pub(super) async fn record_grant_expiry_rows(&self, at: DateTime<Utc>) -> Result<Vec<Grant>> {
        let mut tx = self.write_tx().await?;
        // The update claims the rows, so two processes recording at once record each grant once.
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE grants SET expiry_recorded = 1 WHERE expiry_recorded = 0 AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1 RETURNING id",
        )
        .bind(time::format(&at))
        .fetch_all(&mut *tx)
        .await?;
        let mut expired = Vec::with_capacity(ids.len());
        for id in ids {
            let row: GrantRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))).bind(id).fetch_one(&mut *tx).await?;
            let grant = Grant::try_from(row)?;
            insert_event(&mut tx, &grant_event(EventKind::AccessExpired, &grant)).await?;
            expired.push(grant);
        }
        tx.commit().await?;
        expired.sort_by_key(|g| g.id);
        Ok(expired)
    }
}
