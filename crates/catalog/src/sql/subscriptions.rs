//! Statements about subscriptions: who declared an interest in which product, and where its
//! events go.

use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;

use super::SqlCatalog;
use super::rows::{decode_all, json, product_id, timestamp};
use crate::{CatalogError, Result, Subscription, time};

#[derive(sqlx::FromRow)]
pub(super) struct SubscriptionRow {
    product_id: String,
    principal: String,
    webhook: Option<String>,
    events: String,
    secret: Option<String>,
    created_at: String,
    created_by: String,
    after_event: i64,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = CatalogError;

    fn try_from(row: SubscriptionRow) -> Result<Self> {
        let what = format!("subscriptions `{}` of `{}`", row.product_id, row.principal);
        Ok(Subscription {
            product: product_id(&format!("{what} product_id"), &row.product_id)?,
            events: json::<Vec<EventKind>>(&format!("{what} events"), &row.events)?,
            created_at: timestamp(&format!("{what} created_at"), &row.created_at)?,
            principal: row.principal,
            webhook: row.webhook,
            secret: row.secret,
            created_by: row.created_by,
            after_event: row.after_event,
        })
    }
}

impl SqlCatalog {
    pub(super) async fn upsert_subscription(&self, s: &Subscription) -> Result<()> {
        let events = serde_json::to_string(&s.events).map_err(|e| CatalogError::Corrupt(format!("subscription events: {e}")))?;
        sqlx::query(
            "INSERT INTO subscriptions (product_id, principal, webhook, events, secret, created_at, created_by, after_event) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (product_id, principal) DO UPDATE SET webhook = excluded.webhook, events = excluded.events, \
             secret = excluded.secret, created_at = excluded.created_at, created_by = excluded.created_by, after_event = excluded.after_event",
        )
        .bind(s.product.to_string())
        .bind(&s.principal)
        .bind(&s.webhook)
        .bind(events)
        .bind(&s.secret)
        .bind(time::format(&s.created_at))
        .bind(&s.created_by)
        .bind(s.after_event)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    pub(super) async fn delete_subscription(&self, product: &ProductId, principal: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM subscriptions WHERE product_id = $1 AND principal = $2")
            .bind(product.to_string())
            .bind(principal)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn subscription_rows(&self, product: Option<&ProductId>) -> Result<Vec<Subscription>> {
        let rows: Vec<SubscriptionRow> = sqlx::query_as(
            "SELECT * FROM subscriptions WHERE ($1 IS NULL OR product_id = $1) ORDER BY product_id, principal",
        )
        .bind(product.map(ToString::to_string))
        .fetch_all(&self.pool)
        .await?;
        decode_all(rows)
    }
}
