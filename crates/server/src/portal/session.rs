//! Signing in with an API token, signing out, and the session cookie.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use maud::html;
use meshwork_auth::{Credential, TOKEN_PREFIX};
use meshwork_catalog::{PortalSession, SessionCredential};
use serde::Deserialize;

use super::error::PortalError;
use super::layout::{self, Nav};
use super::viewer::{SESSION_COOKIE, Viewer, constant_time_eq, cookie, same_site, session_hash};
use crate::gate::Gate;

/// The sign-in form's own CSRF cookie (double submit): there is no session to bind a token to yet.
const SIGNIN_COOKIE: &str = "meshwork_signin";

/// `?next=` of the sign-in page.
#[derive(Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

/// `GET /signin`.
pub(super) async fn signin_page(State(gate): State<Arc<Gate>>, headers: HeaderMap, Query(query): Query<Next>) -> Response {
    let next = same_site(query.next.as_deref().unwrap_or("/")).to_owned();
    signin_form(&gate, &headers, &next, None, StatusCode::OK)
}

fn signin_form(gate: &Gate, headers: &HeaderMap, next: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let token = random_id();
    let oidc = oidc_offered(gate);
    let body = html! {
        div .signin {
            h1 { "Sign in" }
            @if let Some(problem) = problem {
                div .banner.error role="alert" { p { (problem) } }
            }
            form method="post" action="/signin" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                div .field {
                    label for="token" { "API token" }
                    input #token type="password" name="token" required autocomplete="off" spellcheck="false" aria-describedby="token-hint";
                    p #token-hint .hint { "A token from " code { "meshwork token create --principal NAME" } "; it starts with " code { (TOKEN_PREFIX) } "." }
                }
                button type="submit" { "Sign in" }
            }
            @if let Some(issuer) = oidc {
                p .or { "or" }
                a .button.secondary href={ "/signin/oidc?next=" (encode(next)) } { "Sign in with " (issuer) }
            }
        }
    };
    let mut response = (status, layout::page("Sign in", None, Nav::None, body)).into_response();
    set_cookie(response.headers_mut(), &format!("{SIGNIN_COOKIE}={token}; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=3600{}", secure_attribute(gate, headers)));
    response
}

/// The issuer offered for OIDC sign-in, when the portal has an OIDC client and OIDC is configured.
pub(super) fn oidc_offered(gate: &Gate) -> Option<String> {
    gate.options().portal.oidc_client.as_ref()?;
    gate.authenticator().oidc().map(|o| o.issuer().to_owned())
}

/// The sign-in form.
#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /signin`: an API token for a session.
pub(super) async fn signin(State(gate): State<Arc<Gate>>, headers: HeaderMap, Form(form): Form<SignIn>) -> Result<Response, PortalError> {
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return Err(PortalError::Forbidden("the sign-in form's security token is missing or out of date; reload the sign-in page and try again".into()));
    }
    let next = same_site(&form.next).to_owned();
    let token = form.token.trim();
    if !token.starts_with(TOKEN_PREFIX) {
        let problem = format!("That is not an API token: paste a token starting with `{TOKEN_PREFIX}`.");
        return Ok(signin_form(&gate, &headers, &next, Some(&problem), StatusCode::UNAUTHORIZED));
    }
    let identity = match gate.authenticate(Credential(Some(token)), "portal").await {
        Ok(identity) => identity,
        Err(crate::error::ServeError::Unauthenticated(reason)) => {
            let problem = format!("The token was not accepted: {reason}.");
            return Ok(signin_form(&gate, &headers, &next, Some(&problem), StatusCode::UNAUTHORIZED));
        }
        Err(other) => return Err(other.into()),
    };
    let token_id = identity.method.strip_prefix("token:").unwrap_or_default().to_owned();
    open_session(&gate, &headers, &identity.principal.name, SessionCredential::ApiToken { token_id }, &next, None).await
}

/// Opens a session for `principal` and answers with its cookie and a redirect to `next`.
/// The session ends after `server.session_ttl`, or at `not_after` when that is earlier (an OIDC
/// session at its ID token's expiry).
pub(super) async fn open_session(gate: &Gate, headers: &HeaderMap, principal: &str, credential: SessionCredential, next: &str, not_after: Option<chrono::DateTime<chrono::Utc>>) -> Result<Response, PortalError> {
    let catalog = gate.engine().catalog();
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0);
    let ttl = gate.options().portal.session_ttl;
    let id = random_id();
    let session = PortalSession {
        id_hash: session_hash(&id),
        principal: principal.to_owned(),
        credential,
        created_at: now,
        expires_at: {
            let full = now + chrono::Duration::seconds(ttl.as_secs() as i64);
            not_after.map_or(full, |cap| cap.min(full))
        },
    };
    // Expired sessions are deleted as new ones open, so the table stays as small as the
    // number of people signed in.
    catalog.prune_portal_sessions(now).await?;
    catalog.open_portal_session(&session).await?;
    tracing::info!(principal, "portal sign-in");
    let mut response = Redirect::to(same_site(next)).into_response();
    let secure = secure_attribute(gate, headers);
    let max_age = (session.expires_at - now).num_seconds().max(0);
    set_cookie(response.headers_mut(), &format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"));
    set_cookie(response.headers_mut(), &format!("{SIGNIN_COOKIE}=; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=0{secure}"));
    Ok(response)
}

/// `POST /signout`: ends the session (the viewer extractor checked its CSRF token).
pub(super) async fn signout(State(gate): State<Arc<Gate>>, headers: HeaderMap, viewer: Viewer) -> Result<Response, PortalError> {
    gate.engine().catalog().close_portal_session(&viewer.session).await?;
    tracing::info!(principal = %viewer.identity.principal.name, "portal sign-out");
    let mut response = Redirect::to("/signin").into_response();
    set_cookie(response.headers_mut(), &format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}", secure_attribute(&gate, &headers)));
    Ok(response)
}

/// `; Secure` when users reach the portal over HTTPS: `server.public_url` says so, or the proxy
/// in front says `X-Forwarded-Proto: https` (which can only make the cookie stricter).
pub(super) fn secure_attribute(gate: &Gate, headers: &HeaderMap) -> &'static str {
    let public = gate.options().portal.public_url.as_ref().is_some_and(|u| u.scheme() == "https");
    let forwarded = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if public || forwarded { "; Secure" } else { "" }
}

pub(super) fn set_cookie(headers: &mut HeaderMap, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.append(header::SET_COOKIE, value);
    }
}

/// 32 random bytes, base64url: session ids, the sign-in form's token, OIDC state and nonce.
pub(super) fn random_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
