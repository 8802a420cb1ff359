//! A small OpenID Connect provider for the portal's sign-in tests: discovery, an authorization
//! endpoint that signs `sam` in at once, and a token endpoint that checks the code, the PKCE
//! verifier, the redirect address and the client, then returns an ID token signed with the
//! fixture key the served mesh trusts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

/// What an authorization request left for the token request to check.
struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct Book {
    issuer: String,
    grants: HashMap<String, Grant>,
    exchanged: usize,
}

type Shared = Arc<Mutex<Book>>;

pub struct Provider {
    shared: Shared,
}

impl Provider {
    pub async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}/", listener.local_addr().unwrap());
        let shared: Shared = Arc::new(Mutex::new(Book { issuer, ..Book::default() }));
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Provider { shared }
    }

    pub fn issuer(&self) -> String {
        self.shared.lock().unwrap().issuer.clone()
    }

    /// Codes exchanged for tokens.
    pub fn exchanged(&self) -> usize {
        self.shared.lock().unwrap().exchanged
    }
}

async fn discovery(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let issuer = shared.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}authorize"),
        "token_endpoint": format!("{issuer}token"),
        "jwks_uri": format!("{issuer}jwks.json"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn authorize(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], crate::PORTAL_CLIENT);
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["scope"].split(' ').any(|s| s == "openid"));
    let code = format!("code-{}", query["state"].len());
    let redirect = format!("{}?code={code}&state={}", query["redirect_uri"], query["state"]);
    shared.lock().unwrap().grants.insert(code, Grant { nonce: query["nonce"].clone(), challenge: query["code_challenge"].clone(), redirect_uri: query["redirect_uri"].clone() });
    Redirect::to(&redirect).into_response()
}

async fn token(State(shared): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut provider = shared.lock().unwrap();
    let refuse = |why: &str| (axum::http::StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": why}))).into_response();
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") || form.get("client_id").map(String::as_str) != Some(crate::PORTAL_CLIENT) || form.get("client_secret").map(String::as_str) != Some("s3cret") {
        return refuse("client");
    }
    // A code is good once.
    let Some(grant) = form.get("code").and_then(|code| provider.grants.remove(code)) else { return refuse("code") };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != grant.challenge || form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return refuse("pkce or redirect_uri");
    }
    provider.exchanged += 1;
    let id_token = crate::jwt("signing_key.pem", json!({"iss": provider.issuer, "aud": crate::PORTAL_CLIENT, "nonce": grant.nonce, "preferred_username": "sam"}));
    Json(json!({"access_token": "opaque", "token_type": "Bearer", "id_token": id_token})).into_response()
}
