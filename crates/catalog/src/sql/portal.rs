//! Statements about portal sessions: opened at sign-in, read on every portal request, closed at
//! sign-out, pruned once expired.

use chrono::{DateTime, Utc};

use super::SqlCatalog;
use super::rows::{json, timestamp};
use crate::{CatalogError, PortalSession, Result, SessionCredential, time};

#[derive(sqlx::FromRow)]
struct PortalSessionRow {
    id_hash: String,
    principal: String,
    credential: String,
    created_at: String,
    expires_at: String,
}

impl TryFrom<PortalSessionRow> for PortalSession {
    type Error = CatalogError;

    fn try_from(row: PortalSessionRow) -> Result<Self> {
        // The hash is not a secret, but a short prefix is enough to name the row.
        let what = format!("portal_sessions `{}…`", row.id_hash.get(..8).unwrap_or(&row.id_hash));
        Ok(PortalSession {
            credential: json::<SessionCredential>(&format!("{what} credential"), &row.credential)?,
            created_at: timestamp(&format!("{what} created_at"), &row.created_at)?,
            expires_at: timestamp(&format!("{what} expires_at"), &row.expires_at)?,
            id_hash: row.id_hash,
            principal: row.principal,
        })
    }
}

impl SqlCatalog {
    pub(super) async fn insert_portal_session(&self, session: &PortalSession) -> Result<()> {
        let credential = serde_json::to_string(&session.credential).map_err(|e| CatalogError::Corrupt(format!("portal session credential: {e}")))?;
        sqlx::query("INSERT INTO portal_sessions (id_hash, principal, credential, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&session.id_hash)
            .bind(&session.principal)
            .bind(credential)
            .bind(time::format(&session.created_at))
            .bind(time::format(&session.expires_at))
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }

    pub(super) async fn portal_session_row(&self, id_hash: &str, now: DateTime<Utc>) -> Result<Option<PortalSession>> {
        // Timestamps are fixed-width RFC 3339 text, so text order is time order.
        let row: Option<PortalSessionRow> = sqlx::query_as("SELECT * FROM portal_sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash)
            .bind(time::format(&now))
            .fetch_optional(&self.pool)
            .await?;
        row.map(PortalSession::try_from).transpose()
    }

    pub(super) async fn delete_portal_session(&self, id_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM portal_sessions WHERE id_hash = $1").bind(id_hash).execute(&mut *self.write_conn().await?).await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_expired_portal_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1").bind(time::format(&now)).execute(&mut *self.write_conn().await?).await?;
        Ok(done.rows_affected())
    }
}
