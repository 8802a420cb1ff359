//! API tokens: issuing (random id and secret, Argon2id hash stored) and verifying.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use meshwork_catalog::{ApiTokenRecord, CatalogStore};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{AuthError, TokenError};

/// Every API token starts with this, so it is told apart from a JWT and found by secret scanners.
pub const TOKEN_PREFIX: &str = "mw_";

/// A newly issued token: the full text, shown once, and what was stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// `mw_<id>_<secret>`; the secret is not stored anywhere.
    pub token: String,
    /// The stored record (hash only).
    pub record: ApiTokenRecord,
}

/// Reads `--expires`: a duration like `30d`, or `never`.
pub fn parse_expiry(text: &str) -> Result<Option<chrono::Duration>, TokenError> {
    if text == "never" {
        return Ok(None);
    }
    let spec = meshwork_core::parse::parse_duration(text).map_err(|_| TokenError::Expiry(text.to_owned()))?;
    let seconds = i64::try_from(spec.seconds).map_err(|_| TokenError::Expiry(text.to_owned()))?;
    Ok(Some(chrono::Duration::seconds(seconds)))
}

/// Issues a token for `principal`, valid for `lifetime` (forever if `None`).
pub async fn issue_token(
    catalog: &dyn CatalogStore,
    principal: &str,
    description: Option<String>,
    lifetime: Option<chrono::Duration>,
) -> Result<IssuedToken, TokenError> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let (id, secret) = (hex::encode(id), hex::encode(secret));
    let hash = hash_secret(&secret)?;
    // Whole seconds: expiry is shown and compared to the second.
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0);
    let record = ApiTokenRecord {
        id: id.clone(),
        principal: principal.to_owned(),
        description,
        hash,
        created_at: now,
        expires_at: lifetime.map(|l| now + l),
        revoked_at: None,
    };
    catalog.create_token(&record).await?;
    Ok(IssuedToken { token: format!("{TOKEN_PREFIX}{id}_{secret}"), record })
}

fn hash_secret(secret: &str) -> Result<String, TokenError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| TokenError::Hash(e.to_string()))?;
    // Argon2::default() is Argon2id v19 with OWASP's recommended parameters.
    Argon2::default().hash_password(secret.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| TokenError::Hash(e.to_string()))
}

/// A token whose secret Argon2 verified, with its catalog record as read at one catalog
/// generation.
pub(crate) struct Verified {
    id: String,
    read: Option<(i64, ApiTokenRecord)>,
}

/// Checks an API token: known id, matching secret (Argon2id, constant time), not revoked, not
/// expired. Returns the stored record.
///
/// `generation` is the catalog generation the caller read just before, if it did: a record read
/// at that same generation is used again instead of read (every revocation moves the
/// generation, in the same transaction), so a request costs no token read while no token was
/// revoked; expiry is checked against the clock every time.
pub(crate) async fn verify(
    catalog: &dyn CatalogStore,
    verified: &Mutex<HashMap<[u8; 32], Verified>>,
    text: &str,
    generation: Option<i64>,
) -> Result<ApiTokenRecord, AuthError> {
    let body = text.strip_prefix(TOKEN_PREFIX).ok_or(AuthError::Malformed)?;
    let (id, secret) = body.split_once('_').ok_or(AuthError::Malformed)?;
    if id.len() != 16 || secret.len() != 48 || !id.bytes().chain(secret.bytes()).all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Malformed);
    }
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let remembered = generation.and_then(|generation| {
        let verified = verified.lock().expect("token cache lock");
        let known = verified.get(&digest).filter(|v| v.id == id)?;
        known.read.as_ref().filter(|(at, _)| *at == generation).map(|(_, record)| record.clone())
    });
    let record = match remembered {
        Some(record) => record,
        None => {
            let record = catalog.token(id).await.map_err(|e| AuthError::Unavailable(e.to_string()))?.ok_or(AuthError::Invalid)?;
            let known = verified.lock().expect("token cache lock").get(&digest).is_some_and(|cached| cached.id == id);
            if !known {
                // Argon2 is CPU-bound for tens of milliseconds: keep it off the async workers.
                let secret = secret.to_owned();
                let stored = record.hash.clone();
                let checked = tokio::task::spawn_blocking(move || {
                    PasswordHash::new(&stored).map(|hash| Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok())
                })
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
                match checked {
                    Ok(true) => {}
                    Ok(false) => return Err(AuthError::Invalid),
                    Err(_) => return Err(AuthError::Unavailable(format!("stored hash of token `{id}` is unreadable"))),
                }
            }
            let read = generation.map(|generation| (generation, record.clone()));
            verified.lock().expect("token cache lock").insert(digest, Verified { id: id.to_owned(), read });
            record
        }
    };
    // Revocation (read at the current generation) and expiry apply to every request at once.
    if record.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if record.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(AuthError::Expired);
    }
    Ok(record)
}
