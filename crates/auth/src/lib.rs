//! Meshwork's authentication: who is calling, from the credential a client presents.
//!
//! Two kinds of credential, accepted the same way on every interface (HTTP `Authorization:
//! Bearer`, Flight SQL handshake or `authorization` header, Postgres wire password):
//! - **API tokens** `mw_<id>_<secret>`, issued by `meshwork token create`. The catalog keeps
//!   only an Argon2id hash of the secret; verification is constant-time (the `argon2` crate's
//!   `verify_password`). A verified token is remembered by a SHA-256 digest for the life of the
//!   process so Argon2 runs once per token, not per request; expiry is checked on every request,
//!   and revocation against the catalog's record of the token, read again whenever the
//!   catalog's generation moved (every revocation moves it) or the caller does not say which
//!   generation it read.
//! - **OIDC/JWT bearer tokens**, validated against a JWKS (file or URL) with the configured
//!   issuer, audiences and algorithm allow-list; expiry is required, and a token is refused
//!   before its `nbf` (not before) time, with the same 30 s leeway as expiry. Claims map to the principal
//!   name, groups and attributes.
//!
//! [`Authenticator::authenticate`] is total: every failure is an [`AuthError`], which servers
//! report as "unauthenticated" without further detail than the class of failure.

#![deny(missing_docs)]

mod jwt;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use meshwork_catalog::CatalogStore;
use meshwork_core::principal::Principal;

pub use jwt::OidcVerifier;
pub use token::{IssuedToken, TOKEN_PREFIX, issue_token, parse_expiry};

/// Why a credential was refused. Messages are safe to show to the caller.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was presented.
    #[error("authentication required: present an API token (`meshwork token create`) or an OIDC bearer token")]
    Missing,
    /// The credential is not a well-formed API token or JWT.
    #[error("malformed credential: expected an API token `mw_…` or a JWT")]
    Malformed,
    /// The API token is unknown or its secret does not match.
    #[error("invalid token")]
    Invalid,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The JWT's `nbf` (not before) is in the future.
    #[error("the token is not valid yet: its `nbf` (not before) time is in the future; use it from that time on, or check the clocks of the issuer and the server")]
    NotYetValid,
    /// The API token was revoked.
    #[error("the token has been revoked")]
    Revoked,
    /// A JWT failed validation (signature, issuer, audience, algorithm, claims).
    #[error("invalid bearer token: {0}")]
    Jwt(String),
    /// JWTs are not accepted because `auth.oidc` is not configured.
    #[error("bearer JWTs are not accepted: `auth.oidc` is not configured in `mesh.yaml`")]
    OidcDisabled,
    /// The token names a principal the mesh no longer declares.
    #[error("the token's principal is no longer declared")]
    UnknownPrincipal,
    /// The catalog or the JWKS could not be read; the caller is not authenticated.
    #[error("authentication is unavailable: {0}")]
    Unavailable(String),
}

/// Errors of issuing and managing tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The metadata store failed.
    #[error(transparent)]
    Catalog(#[from] meshwork_catalog::CatalogError),
    /// `--expires` could not be read.
    #[error("invalid expiry `{0}`: write a duration like `30d`, `12h` or `90m`, or `never`")]
    Expiry(String),
    /// Hashing failed.
    #[error("cannot hash the token: {0}")]
    Hash(String),
}

/// A credential as presented by a client, before checking.
#[derive(Clone, Copy)]
pub struct Credential<'a>(pub Option<&'a str>);

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.write_str(if self.0.is_some() { "Credential(..)" } else { "Credential(None)" })
    }
}

impl<'a> Credential<'a> {
    /// The credential in an HTTP-style `Authorization` header value (`Bearer …`); `None` for
    /// a missing header.
    pub fn from_authorization(header: Option<&'a str>) -> Credential<'a> {
        Credential(header.map(|h| {
            let h = h.trim();
            match h.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                _ => h,
            }
        }))
    }
}

/// Who the caller is, and how they proved it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The principal the caller acts as.
    pub principal: Principal,
    /// `token:<id>` for API tokens, `oidc:<issuer>` for JWTs.
    pub method: String,
}

/// Resolves credentials to principals. Cheap to share: clone the `Arc`.
pub struct Authenticator {
    catalog: Arc<dyn CatalogStore>,
    oidc: Option<OidcVerifier>,
    /// SHA-256 of a verified API token → its id (so Argon2 runs once per token) and its record
    /// as last read, with the catalog generation it was read at.
    verified: Mutex<HashMap<[u8; 32], token::Verified>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("oidc", &self.oidc.is_some()).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over the catalog's API tokens and, if given, OIDC tokens.
    pub fn new(catalog: Arc<dyn CatalogStore>, oidc: Option<OidcVerifier>) -> Authenticator {
        Authenticator { catalog, oidc, verified: Mutex::new(HashMap::new()) }
    }

    /// The OIDC verifier, when `auth.oidc` is configured.
    pub fn oidc(&self) -> Option<&OidcVerifier> {
        self.oidc.as_ref()
    }

    /// Checks `credential` and returns who it belongs to. `principals` are the declared ones
    /// (from the last apply); an API token's principal must be among them; a JWT's principal is
    /// the declared one of that name, with the token's groups added, or else a principal made
    /// from the claims alone (never an administrator).
    pub async fn authenticate(&self, credential: Credential<'_>, principals: &[Principal]) -> Result<Identity, AuthError> {
        self.authenticate_at(credential, principals, None).await
    }

    /// [`Authenticator::authenticate`] by a caller that read the catalog's `generation` just
    /// before (the generation `principals` come from): an API token's record read at that same
    /// generation is not read again. Every revocation moves the generation, so a revoked token
    /// is refused on the first request after it as before.
    pub async fn authenticate_at(&self, credential: Credential<'_>, principals: &[Principal], generation: Option<i64>) -> Result<Identity, AuthError> {
        let text = credential.0.map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(AuthError::Missing);
        }
        if text.starts_with(TOKEN_PREFIX) {
            let record = token::verify(self.catalog.as_ref(), &self.verified, text, generation).await?;
            let principal = principals.iter().find(|p| p.name == record.principal).cloned().ok_or(AuthError::UnknownPrincipal)?;
            return Ok(Identity { principal, method: format!("token:{}", record.id) });
        }
        if text.split('.').count() == 3 {
            let Some(oidc) = &self.oidc else { return Err(AuthError::OidcDisabled) };
            let mut principal = oidc.verify(text, principals).await?;
            if !principals.iter().any(|p| p.name == principal.name) {
                principal = self.with_owned_domains(principal).await?;
            }
            return Ok(Identity { principal, method: format!("oidc:{}", oidc.issuer()) });
        }
        Err(AuthError::Malformed)
    }

    /// Who a portal session belongs to, checked again as on every request: the token it was
    /// opened with must still be valid (not revoked, not expired) and its principal declared; an
    /// OIDC session's principal is what the mesh declares now plus the claims it signed in with,
    /// or the principal its claims made when the mesh does not declare it.
    pub async fn resume(&self, session: &meshwork_catalog::PortalSession, principals: &[Principal]) -> Result<Identity, AuthError> {
        match &session.credential {
            meshwork_catalog::SessionCredential::ApiToken { token_id } => {
                let record = self.catalog.token(token_id).await.map_err(|e| AuthError::Unavailable(e.to_string()))?.ok_or(AuthError::Revoked)?;
                if record.revoked_at.is_some() {
                    return Err(AuthError::Revoked);
                }
                if record.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
                    return Err(AuthError::Expired);
                }
                if record.principal != session.principal {
                    return Err(AuthError::Invalid);
                }
                let principal = principals.iter().find(|p| p.name == record.principal).cloned().ok_or(AuthError::UnknownPrincipal)?;
                Ok(Identity { principal, method: format!("token:{}", record.id) })
            }
            meshwork_catalog::SessionCredential::Oidc { issuer, principal } => {
                let Some(oidc) = &self.oidc else { return Err(AuthError::OidcDisabled) };
                if oidc.issuer() != issuer {
                    return Err(AuthError::Jwt("the session's issuer is no longer configured".into()));
                }
                // As for a bearer JWT with the same claims: a principal the mesh no longer
                // declares keeps only what its claims say.
                let principal = match principals.iter().find(|p| p.name == principal.name) {
                    Some(declared) => jwt::merge_claims(declared, principal),
                    None => self.with_owned_domains(principal.clone()).await?,
                };
                Ok(Identity { principal, method: format!("oidc:{issuer}") })
            }
        }
    }

    /// An undeclared principal is a member of the domains whose owners name it or one of its
    /// groups, as a declared one would be after `apply`.
    async fn with_owned_domains(&self, mut principal: Principal) -> Result<Principal, AuthError> {
        principal.domains.clear();
        let domains = self.catalog.domains().await.map_err(|e| AuthError::Unavailable(e.to_string()))?;
        for domain in domains {
            if domain.owners.iter().any(|r| !r.starts_with("domain:") && r != "*" && principal.matches(r)) {
                principal.domains.insert(domain.name);
            }
        }
        Ok(principal)
    }
}
