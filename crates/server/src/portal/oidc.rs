//! Sign-in with the OIDC authorization-code flow (with PKCE), when `auth.oidc.client_id` is set.
//!
//! `/signin/oidc` reads the provider's discovery document, keeps state, nonce and the PKCE
//! verifier in a short-lived cookie signed by this server, and sends the browser to the
//! provider's authorization endpoint. `/signin/oidc/callback` checks the state against the
//! cookie, exchanges the code at the token endpoint (with the verifier), validates the ID token
//! with the same JWKS, issuer and algorithms as bearer JWTs (audience: the client id; the nonce
//! must match), and opens a session for the principal its claims make.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use meshwork_catalog::SessionCredential;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::PortalError;
use super::session::{open_session, random_id, secure_attribute, set_cookie};
use super::viewer::{constant_time_eq, cookie, same_site};
use crate::error::ServeError;
use crate::gate::{Gate, OidcClient};

/// The cookie carrying a sign-in in progress.
const FLOW_COOKIE: &str = "meshwork_oidc";
/// How long a sign-in at the provider may take.
const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// How long the provider's endpoints may take to answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the callback needs to finish a sign-in, signed so the browser cannot change it.
#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    /// Unix seconds after which the flow is refused.
    expires: i64,
}

/// The parts of the provider's discovery document the flow uses.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
pub(super) struct Start {
    next: Option<String>,
}

/// `GET /signin/oidc`.
pub(super) async fn start(State(gate): State<Arc<Gate>>, headers: HeaderMap, Query(query): Query<Start>) -> Result<Response, PortalError> {
    let (client, issuer) = configured(&gate)?;
    let discovery = discover(&issuer).await?;
    let flow = Flow {
        state: random_id(),
        nonce: random_id(),
        verifier: random_id(),
        next: same_site(query.next.as_deref().unwrap_or("/")).to_owned(),
        expires: chrono::Utc::now().timestamp() + FLOW_LIFETIME.as_secs() as i64,
    };
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(flow.verifier.as_bytes()));
    let mut target = url::Url::parse(&discovery.authorization_endpoint).map_err(|e| provider_error(format!("the authorization endpoint is not a URL: {e}")))?;
    target
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &redirect_uri(&gate, &headers))
        .append_pair("scope", "openid profile email")
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut response = Redirect::to(target.as_str()).into_response();
    // SameSite=Lax: the provider sends the browser back with a top-level GET from its own site.
    set_cookie(
        response.headers_mut(),
        &format!("{FLOW_COOKIE}={}; Path=/signin/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}", sign(&gate, &flow)?, FLOW_LIFETIME.as_secs(), secure_attribute(&gate, &headers)),
    );
    Ok(response)
}

/// The provider's answer.
#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /signin/oidc/callback`.
pub(super) async fn callback(State(gate): State<Arc<Gate>>, headers: HeaderMap, Query(answer): Query<Callback>) -> Result<Response, PortalError> {
    let (client, issuer) = configured(&gate)?;
    if let Some(error) = answer.error {
        let detail = answer.error_description.map(|d| format!(": {d}")).unwrap_or_default();
        return Err(PortalError::Forbidden(format!("the identity provider refused the sign-in (`{error}`{detail}); try again or sign in with an API token")));
    }
    let flow = cookie(&headers, FLOW_COOKIE).and_then(|text| verify(&gate, &text)).ok_or_else(|| {
        PortalError::Forbidden("this sign-in was not started here or took longer than 10 minutes; start again from the sign-in page".into())
    })?;
    let state = answer.state.unwrap_or_default();
    if !constant_time_eq(state.as_bytes(), flow.state.as_bytes()) {
        return Err(PortalError::Forbidden("the sign-in's `state` does not match; start again from the sign-in page".into()));
    }
    let code = answer.code.ok_or_else(|| PortalError::BadRequest("the identity provider sent no `code`".into()))?;
    let discovery = discover(&issuer).await?;
    let id_token = exchange(&discovery, &client, &code, &flow.verifier, &redirect_uri(&gate, &headers)).await?;
    let oidc = gate.authenticator().oidc().ok_or_else(|| PortalError::NotFound)?;
    let (principal, expires) = match oidc.verify_id_token(&id_token, &client.client_id, &flow.nonce).await {
        Ok(principal) => principal,
        Err(reason) => {
            tracing::info!(%reason, "OIDC sign-in refused");
            return Err(PortalError::Forbidden(format!("the identity provider's ID token was refused: {reason}")));
        }
    };
    let name = principal.name.clone();
    // The provider is not asked again while the session lasts, so it lasts no longer than the ID
    // token it was opened with: a user disabled at the provider, or moved out of a group, is
    // signed out when that token would have expired.
    let mut response = open_session(&gate, &headers, &name, SessionCredential::Oidc { issuer: oidc.issuer().to_owned(), principal }, &flow.next, expires).await?;
    set_cookie(response.headers_mut(), &format!("{FLOW_COOKIE}=; Path=/signin/oidc; HttpOnly; SameSite=Lax; Max-Age=0"));
    Ok(response)
}

/// The portal's OIDC client and the issuer, or "not found" when OIDC sign-in is not offered.
fn configured(gate: &Gate) -> Result<(OidcClient, String), PortalError> {
    let client = gate.options().portal.oidc_client.clone().ok_or(PortalError::NotFound)?;
    let issuer = gate.authenticator().oidc().ok_or(PortalError::NotFound)?.issuer().to_owned();
    Ok((client, issuer))
}

/// Where the provider sends the browser back: under `server.public_url`, or this request's host.
fn redirect_uri(gate: &Gate, headers: &HeaderMap) -> String {
    if let Some(public) = &gate.options().portal.public_url {
        return format!("{}/signin/oidc/callback", public.as_str().trim_end_matches('/'));
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if secure_attribute(gate, headers).is_empty() { "http" } else { "https" };
    format!("{scheme}://{host}/signin/oidc/callback")
}

fn provider_error(message: String) -> PortalError {
    tracing::warn!(%message, "OIDC provider");
    PortalError::Serve(ServeError::Internal(format!("the identity provider cannot be used: {message}")))
}

fn http_client() -> Result<reqwest::Client, PortalError> {
    reqwest::Client::builder()
        .timeout(PROVIDER_TIMEOUT)
        // The provider's answers are read, never followed elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| provider_error(e.to_string()))
}

async fn discover(issuer: &str) -> Result<Discovery, PortalError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let document: Discovery = http_client()?
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| provider_error(format!("cannot read `{url}`: {e}")))?
        .bytes()
        .await
        .map_err(|e| provider_error(format!("cannot read `{url}`: {e}")))
        .and_then(|body| serde_json::from_slice(&body).map_err(|e| provider_error(format!("`{url}` is not a discovery document: {e}"))))?;
    // The discovery document must be the configured issuer's (OIDC Discovery §4.3).
    if document.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(provider_error(format!("`{url}` names issuer `{}`, not `{issuer}`", document.issuer)));
    }
    Ok(document)
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct Tokens {
    id_token: Option<String>,
}

async fn exchange(discovery: &Discovery, client: &OidcClient, code: &str, verifier: &str, redirect_uri: &str) -> Result<String, PortalError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", client.client_id.as_str()),
        ("code_verifier", verifier),
    ];
    if let Some(secret) = &client.client_secret {
        form.push(("client_secret", secret.as_str()));
    }
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let response = http_client()?
        .post(&discovery.token_endpoint)
        .header(axum::http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(axum::http::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| provider_error(format!("the token endpoint did not answer: {e}")))?;
    if !response.status().is_success() {
        let status = response.status();
        tracing::info!(%status, "OIDC token endpoint refused the code");
        return Err(PortalError::Forbidden(format!("the identity provider did not accept the sign-in code ({status}); start again from the sign-in page")));
    }
    let body = response.bytes().await.map_err(|e| provider_error(format!("the token endpoint's answer broke off: {e}")))?;
    let tokens: Tokens = serde_json::from_slice(&body).map_err(|e| provider_error(format!("the token endpoint's answer is not JSON: {e}")))?;
    tokens.id_token.ok_or_else(|| provider_error("the token endpoint returned no `id_token` (is `openid` an allowed scope of the client?)".into()))
}

/// `base64url(json).base64url(hmac)`, keyed by the server's per-process key.
fn sign(gate: &Gate, flow: &Flow) -> Result<String, PortalError> {
    let json = serde_json::to_vec(flow).map_err(|e| PortalError::Serve(ServeError::Internal(e.to_string())))?;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let mut mac = Hmac::<Sha256>::new_from_slice(gate.ticket_key()).expect("HMAC takes any key length");
    mac.update(b"meshwork portal oidc flow\0");
    mac.update(payload.as_bytes());
    Ok(format!("{payload}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())))
}

fn verify(gate: &Gate, text: &str) -> Option<Flow> {
    let (payload, signature) = text.split_once('.')?;
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(gate.ticket_key()).expect("HMAC takes any key length");
    mac.update(b"meshwork portal oidc flow\0");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature).ok()?;
    let flow: Flow = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (flow.expires > chrono::Utc::now().timestamp()).then_some(flow)
}
