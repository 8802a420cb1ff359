//! OIDC/JWT bearer tokens: JWKS loading (file or URL), validation, claims → principal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use meshwork_core::descriptor::OidcConfig;
use meshwork_core::principal::{Principal, PrincipalKind};
use serde_json::Value;

use crate::AuthError;

/// A key set is re-read at most this often when a token names a key it does not have (key
/// rotation), so a flood of bad tokens cannot turn into a flood of JWKS fetches.
const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// Where the keys come from.
#[derive(Debug, Clone)]
enum JwksSource {
    File(PathBuf),
    Url(String),
}

/// Validates bearer JWTs for one OIDC issuer.
#[derive(Debug)]
pub struct OidcVerifier {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    source: JwksSource,
    keys: RwLock<(JwkSet, Instant)>,
}

impl OidcVerifier {
    /// Loads the key set named by `config.jwks`, relative to `root` for files. Fails with a
    /// message naming the file or URL if the keys cannot be read.
    pub async fn load(config: &OidcConfig, root: &std::path::Path) -> Result<OidcVerifier, AuthError> {
        let source = if config.jwks.starts_with("https://") || config.jwks.starts_with("http://") {
            JwksSource::Url(config.jwks.clone())
        } else {
            JwksSource::File(root.join(&config.jwks))
        };
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| a.parse::<Algorithm>().map_err(|_| AuthError::Unavailable(format!("unsupported JWT algorithm `{a}` in `auth.oidc.algorithms`"))))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = fetch(&source).await?;
        Ok(OidcVerifier { config: config.clone(), algorithms, source, keys: RwLock::new((keys, Instant::now())) })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Validates `token` and maps its claims to a principal.
    pub(crate) async fn verify(&self, token: &str, principals: &[Principal]) -> Result<Principal, AuthError> {
        let claims = self.claims(token, &self.config.audiences).await?;
        let claimed = self.claimed(&claims)?;
        match principals.iter().find(|p| p.name == claimed.name) {
            Some(declared) => Ok(merge_claims(declared, &claimed)),
            None => Ok(claimed),
        }
    }

    /// Validates an ID token of the authorization-code flow: signed by the issuer's keys, for
    /// `client_id`, carrying the `nonce` the sign-in started with. Returns the principal its
    /// claims make, before the mesh's declarations are added.
    pub async fn verify_id_token(&self, token: &str, client_id: &str, nonce: &str) -> Result<(Principal, Option<chrono::DateTime<chrono::Utc>>), AuthError> {
        let claims = self.claims(token, &[client_id.to_owned()]).await?;
        let matches = claims.get("nonce").and_then(Value::as_str).is_some_and(|n| n.len() == nonce.len() && n.bytes().zip(nonce.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0);
        if !matches {
            return Err(AuthError::Jwt("the ID token's `nonce` is not the sign-in's".into()));
        }
        let expires = claims.get("exp").and_then(Value::as_i64).and_then(|exp| chrono::DateTime::from_timestamp(exp, 0));
        Ok((self.claimed(&claims)?, expires))
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The validated claims of `token` for one of `audiences`.
    async fn claims(&self, token: &str, audiences: &[String]) -> Result<serde_json::Map<String, Value>, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::Jwt(format!("algorithm `{:?}` is not accepted", header.alg)));
        }
        let key = match self.key(header.kid.as_deref(), header.alg) {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.key(header.kid.as_deref(), header.alg).ok_or_else(|| AuthError::Jwt("no key in the JWKS matches the token's `kid`".into()))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // `nbf` is checked like `exp`, with the same leeway for clock skew: a token minted for
        // later is not valid yet.
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            jsonwebtoken::errors::ErrorKind::InvalidAudience => AuthError::Jwt("wrong audience".into()),
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => AuthError::Jwt("wrong issuer".into()),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::Jwt("bad signature".into()),
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) => AuthError::Jwt(format!("missing `{claim}` claim")),
            _ => AuthError::Jwt(e.to_string()),
        })?;
        Ok(data.claims)
    }

    fn key(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().expect("jwks lock");
        let usable = |jwk: &&Jwk| {
            jwk.common.key_algorithm.is_none_or(|a| a.to_string() == format!("{alg:?}"))
                && jwk.common.public_key_use.as_ref().is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature)
        };
        let jwk = match kid {
            Some(kid) => keys.0.keys.iter().filter(usable).find(|k| k.common.key_id.as_deref() == Some(kid)),
            // Without a `kid`, only an unambiguous key set can be used.
            None => {
                let mut candidates = keys.0.keys.iter().filter(usable);
                let first = candidates.next();
                if candidates.next().is_some() { None } else { first }
            }
        }?;
        DecodingKey::from_jwk(jwk).ok()
    }

    async fn refresh(&self) -> Result<(), AuthError> {
        if self.keys.read().expect("jwks lock").1.elapsed() < REFRESH_INTERVAL {
            return Ok(());
        }
        let keys = fetch(&self.source).await?;
        *self.keys.write().expect("jwks lock") = (keys, Instant::now());
        Ok(())
    }

    /// The principal the claims alone make: name, groups, attributes.
    fn claimed(&self, claims: &serde_json::Map<String, Value>) -> Result<Principal, AuthError> {
        let name = match claims.get(&self.config.principal_claim) {
            Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
            _ => return Err(AuthError::Jwt(format!("missing `{}` claim naming the principal", self.config.principal_claim))),
        };
        let groups: BTreeSet<String> = match claims.get(&self.config.groups_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
            _ => BTreeSet::new(),
        };
        let mut attributes = BTreeMap::new();
        for (attribute, claim) in &self.config.attributes {
            match claims.get(claim) {
                Some(Value::String(v)) => {
                    attributes.insert(attribute.clone(), v.clone());
                }
                Some(v @ (Value::Number(_) | Value::Bool(_))) => {
                    attributes.insert(attribute.clone(), v.to_string());
                }
                _ => {}
            }
        }
        Ok(Principal { name, kind: PrincipalKind::User, groups, domains: BTreeSet::new(), attributes, admin: false })
    }
}

async fn fetch(source: &JwksSource) -> Result<JwkSet, AuthError> {
    let (text, origin) = match source {
        JwksSource::File(path) => (
            tokio::fs::read_to_string(path).await.map_err(|e| AuthError::Unavailable(format!("cannot read JWKS file `{}`: {e}", path.display())))?,
            path.display().to_string(),
        ),
        JwksSource::Url(url) => {
            let response = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .and_then(|c| Ok(c.get(url)))
                .map_err(|e| AuthError::Unavailable(e.to_string()))?
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| AuthError::Unavailable(format!("cannot fetch JWKS `{url}`: {e}")))?;
            (response.text().await.map_err(|e| AuthError::Unavailable(format!("cannot fetch JWKS `{url}`: {e}")))?, url.clone())
        }
    };
    serde_json::from_str(&text).map_err(|e| AuthError::Unavailable(format!("`{origin}` is not a JWKS (a JSON object with `keys`): {e}")))
}

/// A declared principal keeps what the mesh says about it (admin, domains); a token's claims may
/// add groups and attributes, never remove them.
pub(crate) fn merge_claims(declared: &Principal, claimed: &Principal) -> Principal {
    let mut principal = declared.clone();
    principal.groups.extend(claimed.groups.iter().cloned());
    for (k, v) in &claimed.attributes {
        principal.attributes.entry(k.clone()).or_insert_with(|| v.clone());
    }
    principal
}
