//! Portal sessions on each backend: stored by the hash of their id, read only until they
//! expire, closed at sign-out, and pruned once expired.

use chrono::{Duration, SubsecRound, Utc};
use meshwork_catalog::{CatalogStore, PortalSession, SessionCredential};
use meshwork_core::principal::{Principal, PrincipalKind};

use super::Backend;

fn session(id_hash: &str, credential: SessionCredential, lifetime: Duration) -> PortalSession {
    let now = Utc::now().trunc_subsecs(0);
    PortalSession { id_hash: id_hash.into(), principal: "alice".into(), credential, created_at: now, expires_at: now + lifetime }
}

#[tokio::test]
async fn a_portal_session_is_read_until_it_expires_or_is_closed() {
    for backend in Backend::all().await {
        let catalog = backend.open().await;
        let token = session("a1", SessionCredential::ApiToken { token_id: "0123456789abcdef".into() }, Duration::hours(8));
        let oidc_principal = Principal {
            name: "bob@example.com".into(),
            kind: PrincipalKind::User,
            groups: ["analysts".to_owned()].into(),
            domains: Default::default(),
            attributes: [("region".to_owned(), "eu".to_owned())].into(),
            admin: false,
        };
        let oidc = session("b2", SessionCredential::Oidc { issuer: "https://login.example.com/".into(), principal: oidc_principal }, Duration::hours(1));
        let expired = session("c3", SessionCredential::ApiToken { token_id: "fedcba9876543210".into() }, Duration::seconds(-1));
        for s in [&token, &oidc, &expired] {
            catalog.open_portal_session(s).await.unwrap();
        }
        let now = Utc::now();
        assert_eq!(catalog.portal_session("a1", now).await.unwrap().as_ref(), Some(&token), "{}", backend.name);
        assert_eq!(catalog.portal_session("b2", now).await.unwrap().as_ref(), Some(&oidc), "{}", backend.name);
        // An expired session reads as no session, before it is pruned.
        assert_eq!(catalog.portal_session("c3", now).await.unwrap(), None, "{}", backend.name);
        assert_eq!(catalog.portal_session("nope", now).await.unwrap(), None, "{}", backend.name);
        // Read later, the token session has expired too.
        assert_eq!(catalog.portal_session("a1", now + Duration::hours(9)).await.unwrap(), None, "{}", backend.name);
        assert_eq!(catalog.prune_portal_sessions(now).await.unwrap(), 1, "{}: only the expired one", backend.name);
        assert!(catalog.close_portal_session("a1").await.unwrap());
        assert!(!catalog.close_portal_session("a1").await.unwrap(), "{}: closed once", backend.name);
        assert_eq!(catalog.portal_session("a1", now).await.unwrap(), None, "{}", backend.name);
        // A second handle (another replica) sees the same sessions.
        let other = backend.open().await;
        assert_eq!(other.portal_session("b2", now).await.unwrap().as_ref(), Some(&oidc), "{}", backend.name);
        backend.finish().await;
    }
}
