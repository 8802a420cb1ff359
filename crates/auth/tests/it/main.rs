//! API tokens against a real SQLite catalog: issue, verify, refuse. JWTs are tested end to end
//! by the server crate, whose fixtures hold a signing key.

use std::sync::Arc;

use meshwork_auth::{AuthError, Authenticator, Credential, issue_token, parse_expiry};
use meshwork_catalog::{CatalogStore, SqlCatalog};
use meshwork_core::principal::Principal;

async fn catalog() -> (tempfile::TempDir, Arc<dyn CatalogStore>) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SqlCatalog::open_sqlite(&dir.path().join("catalog.db")).await.unwrap();
    (dir, Arc::new(catalog))
}

fn principals() -> Vec<Principal> {
    let mut ana = Principal::local_admin();
    ana.name = "ana".into();
    ana.admin = false;
    vec![Principal::local_admin(), ana]
}

#[tokio::test]
async fn an_issued_token_authenticates_its_principal_and_only_its_hash_is_stored() {
    let (_dir, catalog) = catalog().await;
    let issued = issue_token(catalog.as_ref(), "ana", Some("test".into()), parse_expiry("30d").unwrap()).await.unwrap();
    let stored = catalog.token(&issued.record.id).await.unwrap().unwrap();
    assert!(stored.hash.starts_with("$argon2id$"), "{}", stored.hash);
    assert!(!stored.hash.contains(&issued.token[20..]));
    let auth = Authenticator::new(catalog.clone(), None);
    for _ in 0..2 {
        // The second time comes from the verified-token cache; the result is the same.
        let who = auth.authenticate(Credential::from_authorization(Some(&format!("Bearer {}", issued.token))), &principals()).await.unwrap();
        assert_eq!(who.principal.name, "ana");
        assert_eq!(who.method, format!("token:{}", issued.record.id));
    }
}

#[tokio::test]
async fn bad_credentials_are_refused_with_their_class() {
    let (_dir, catalog) = catalog().await;
    let auth = Authenticator::new(catalog.clone(), None);
    let good = issue_token(catalog.as_ref(), "ana", None, None).await.unwrap();
    let expired = issue_token(catalog.as_ref(), "ana", None, Some(chrono::Duration::seconds(-1))).await.unwrap();
    let revoked = issue_token(catalog.as_ref(), "ana", None, None).await.unwrap();
    let orphan = issue_token(catalog.as_ref(), "gone", None, None).await.unwrap();
    // Verified once, then revoked: the cache must not keep it alive.
    auth.authenticate(Credential(Some(&revoked.token)), &principals()).await.unwrap();
    assert!(catalog.revoke_token(&revoked.record.id).await.unwrap());
    let wrong_secret = format!("{}{}", &good.token[..good.token.len() - 1], if good.token.ends_with('0') { '1' } else { '0' });
    let unknown_id = format!("mw_{}_{}", "f".repeat(16), &good.token[20..]);
    let cases: Vec<(Option<&str>, AuthError)> = vec![
        (None, AuthError::Missing),
        (Some(""), AuthError::Missing),
        (Some("   "), AuthError::Missing),
        (Some("hunter2"), AuthError::Malformed),
        (Some("mw_short_secret"), AuthError::Malformed),
        (Some(&wrong_secret), AuthError::Invalid),
        (Some(&unknown_id), AuthError::Invalid),
        (Some(&expired.token), AuthError::Expired),
        (Some(&revoked.token), AuthError::Revoked),
        (Some(&orphan.token), AuthError::UnknownPrincipal),
        (Some("aaa.bbb.ccc"), AuthError::OidcDisabled),
    ];
    for (credential, expected) in cases {
        let err = auth.authenticate(Credential(credential), &principals()).await.unwrap_err();
        assert_eq!(err, expected, "{credential:?}");
    }
}

#[test]
fn expiry_accepts_durations_and_never() {
    assert_eq!(parse_expiry("never").unwrap(), None);
    assert_eq!(parse_expiry("12h").unwrap(), Some(chrono::Duration::hours(12)));
    assert_eq!(parse_expiry("soon").unwrap_err().to_string(), "invalid expiry `soon`: write a duration like `30d`, `12h` or `90m`, or `never`");
}

#[test]
fn credentials_never_print_their_secret() {
    assert_eq!(format!("{:?}", Credential(Some("mw_secret"))), "Credential(..)");
    assert_eq!(Credential::from_authorization(Some("Bearer abc ")).0, Some("abc"));
    assert_eq!(Credential::from_authorization(Some("bearer abc")).0, Some("abc"));
    assert_eq!(Credential::from_authorization(None).0, None);
}

/// A server passes the catalog generation it read: a token's record read at that generation is
/// used again, and a revocation moves the generation, so the next request is refused at once.
#[tokio::test]
async fn a_revocation_moves_the_generation_and_the_next_request_is_refused() {
    let (_dir, catalog) = catalog().await;
    let auth = Authenticator::new(catalog.clone(), None);
    let issued = issue_token(catalog.as_ref(), "ana", None, None).await.unwrap();
    let before = catalog.generation().await.unwrap();
    for _ in 0..2 {
        let who = auth.authenticate_at(Credential(Some(&issued.token)), &principals(), Some(before)).await.unwrap();
        assert_eq!(who.principal.name, "ana");
    }
    assert!(catalog.revoke_token(&issued.record.id).await.unwrap());
    let after = catalog.generation().await.unwrap();
    assert!(after > before, "revoking moves the generation: {before} → {after}");
    let refused = auth.authenticate_at(Credential(Some(&issued.token)), &principals(), Some(after)).await.unwrap_err();
    assert_eq!(refused, AuthError::Revoked);
    // Revoking again changes nothing, not even the generation.
    assert!(!catalog.revoke_token(&issued.record.id).await.unwrap());
    assert_eq!(catalog.generation().await.unwrap(), after);
    // An expired token is refused from the remembered record too (expiry is the clock's).
    // Five seconds, not one: hashing the secret (Argon2id, unoptimised in tests) on a loaded
    // machine took more than a second between issuing and the first check.
    let issued_at = std::time::Instant::now();
    let short = issue_token(catalog.as_ref(), "ana", None, Some(chrono::Duration::seconds(5))).await.unwrap();
    auth.authenticate_at(Credential(Some(&short.token)), &principals(), Some(after)).await.unwrap();
    tokio::time::sleep((issued_at + std::time::Duration::from_millis(5200)).saturating_duration_since(std::time::Instant::now())).await;
    let refused = auth.authenticate_at(Credential(Some(&short.token)), &principals(), Some(after)).await.unwrap_err();
    assert_eq!(refused, AuthError::Expired);
}
