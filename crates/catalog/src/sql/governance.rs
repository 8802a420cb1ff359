//! What governance needs at query time (principals, policies, their states), the mask salt,
//! the generation counter and the named settings background work keeps.

use meshwork_core::descriptor::PolicyState;
use meshwork_core::id::DomainName;
use rand::Rng;

use super::rows::{domain_name, json, parsed};
use super::{SqlCatalog, bump_generation};
use crate::{CatalogError, GovernanceSnapshot, PolicyRecord, PolicyStateRecord, Result};

impl SqlCatalog {
    pub(super) async fn replace_governance_rows(&self, snapshot: &GovernanceSnapshot) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM principals").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM policies").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM policy_states").execute(&mut *tx).await?;
        for principal in &snapshot.principals {
            sqlx::query("INSERT INTO principals (name, definition) VALUES ($1, $2)")
                .bind(&principal.name)
                .bind(serde_json::to_string(principal).expect("principals serialize"))
                .execute(&mut *tx)
                .await?;
        }
        for policy in &snapshot.policies {
            let id = match &policy.domain {
                Some(d) => format!("{d}/{}", policy.name),
                None => policy.name.clone(),
            };
            sqlx::query("INSERT INTO policies (id, name, domain, file, source) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(&policy.name)
                .bind(policy.domain.as_ref().map(DomainName::as_str))
                .bind(&policy.file)
                .bind(&policy.source)
                .execute(&mut *tx)
                .await?;
        }
        for state in &snapshot.states {
            // '' stands for mesh.yaml: a NULL would not take part in the primary key.
            sqlx::query("INSERT INTO policy_states (domain, name, state) VALUES ($1, $2, $3)")
                .bind(state.domain.as_ref().map(DomainName::as_str).unwrap_or(""))
                .bind(&state.name)
                .bind(state.state.as_str())
                .execute(&mut *tx)
                .await?;
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn governance_rows(&self) -> Result<GovernanceSnapshot> {
        let mut snapshot = GovernanceSnapshot::default();
        let principals: Vec<(String, String)> = sqlx::query_as("SELECT name, definition FROM principals ORDER BY name").fetch_all(&self.pool).await?;
        for (name, definition) in principals {
            snapshot.principals.push(json(&format!("principals `{name}`"), &definition)?);
        }
        let policies: Vec<(String, Option<String>, String, String)> =
            sqlx::query_as("SELECT name, domain, file, source FROM policies ORDER BY domain IS NOT NULL, domain, id").fetch_all(&self.pool).await?;
        for (name, domain, file, source) in policies {
            let domain = domain.map(|d| domain_name(&format!("policies `{name}`"), &d)).transpose()?;
            snapshot.policies.push(PolicyRecord { name, domain, file, source });
        }
        let states: Vec<(String, String, String)> =
            sqlx::query_as("SELECT domain, name, state FROM policy_states ORDER BY domain, name").fetch_all(&self.pool).await?;
        for (domain, name, state) in states {
            let what = format!("policy_states `{name}`");
            snapshot.states.push(PolicyStateRecord {
                domain: if domain.is_empty() { None } else { Some(domain_name(&what, &domain)?) },
                state: parsed::<PolicyState>(&what, &state)?,
                name,
            });
        }
        Ok(snapshot)
    }

    pub(super) async fn mask_salt_value(&self) -> Result<String> {
        // 32 bytes from a CSPRNG seeded by the OS; ON CONFLICT keeps the first salt when two
        // processes (or replicas) race, and both then read that one.
        let candidate = hex::encode(rand::rng().random::<[u8; 32]>());
        sqlx::query("INSERT INTO settings (key, value) VALUES ('mask_salt', $1) ON CONFLICT (key) DO NOTHING")
            .bind(candidate)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = 'mask_salt'").fetch_one(&self.pool).await?)
    }

    pub(super) async fn generation_value(&self) -> Result<i64> {
        let value: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'generation'").fetch_one(&self.pool).await?;
        value.parse().map_err(|_| CatalogError::Corrupt(format!("settings `generation`: bad value `{value}`")))
    }

    pub(super) async fn setting_value(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await?)
    }

    pub(super) async fn set_setting_value(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }
}
