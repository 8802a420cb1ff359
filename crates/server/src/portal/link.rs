//! One-time sign-in links: `meshwork up` prints one so a new user is signed in to the portal by
//! a click, without pasting a token. A link is valid once, for a few minutes, and only in the
//! process that made it (kept in memory, never in the catalog); it opens an ordinary session on
//! an API token, so revoking the token ends that session as it ends any other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use meshwork_catalog::SessionCredential;
use serde::Deserialize;

use super::error::PortalError;
use super::session::{open_session, random_id};
use crate::gate::Gate;

/// How long a link may wait for its click.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// Links made and not yet used, by code.
#[derive(Debug, Default)]
pub struct SignInLinks {
    open: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug)]
struct Pending {
    principal: String,
    token_id: String,
    until: Instant,
}

impl SignInLinks {
    /// A code that signs `principal` in once with the rights of API token `token_id`.
    pub fn issue(&self, principal: &str, token_id: &str) -> String {
        let code = random_id();
        let mut open = self.open.lock().expect("sign-in links lock");
        let now = Instant::now();
        open.retain(|_, p| p.until > now);
        open.insert(code.clone(), Pending { principal: principal.to_owned(), token_id: token_id.to_owned(), until: now + LINK_TTL });
        code
    }

    /// The principal and token of `code`, once: the code is gone after this call, used or not.
    fn redeem(&self, code: &str) -> Option<(String, String)> {
        let pending = self.open.lock().expect("sign-in links lock").remove(code)?;
        (pending.until > Instant::now()).then_some((pending.principal, pending.token_id))
    }
}

/// `?code=` of a link.
#[derive(Deserialize)]
pub(super) struct LinkQuery {
    code: Option<String>,
}

/// `GET /signin/link?code=…`: a session for the link's principal, then the search page. An
/// unknown, used or expired code gets the sign-in page's refusal, saying how to sign in instead.
pub(super) async fn follow(State(gate): State<Arc<Gate>>, headers: HeaderMap, Query(query): Query<LinkQuery>) -> Result<Response, PortalError> {
    let Some((principal, token_id)) = query.code.as_deref().and_then(|code| gate.signin_links().redeem(code)) else {
        return Err(PortalError::Forbidden(
            "this sign-in link is unknown, already used or expired (links are good once, for 15 minutes); sign in with an API token instead".into(),
        ));
    };
    open_session(&gate, &headers, &principal, SessionCredential::ApiToken { token_id }, "/", None).await
}
