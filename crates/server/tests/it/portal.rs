//! The web portal over HTTP, as a browser uses it: sign-in (API token and OIDC code flow) and
//! its cookie, pages that need a session, CSRF refusals, security headers, the SQL console as
//! the signed-in principal, session expiry and sign-out. Browser behaviour (htmx, the editor)
//! is covered by `tests/interop/check_portal.py` in a real Chromium.

use std::time::Duration;

use meshwork_query::QueryLimits;
use meshwork_server::{OidcClient, PortalOptions};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::Served;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Form bodies as a browser posts them (reqwest is built without its `form` feature).
pub(crate) trait FormBody {
    fn form_body(self, fields: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.header("content-type", "application/x-www-form-urlencoded").body(body)
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The value of the first `name=…` cookie set by `headers`, with its attributes.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

fn assert_secure_headers(headers: &HeaderMap, what: &str) {
    assert_eq!(headers["content-security-policy"], CSP, "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["referrer-policy"], "same-origin", "{what}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
}

/// A signed-in browser: its session cookie and the session's CSRF token.
pub(crate) struct Browser {
    session: String,
    pub(crate) csrf: String,
}

impl Browser {
    pub(crate) async fn sign_in(served: &Served, who: &str) -> Browser {
        let (status, headers, _) = sign_in_with(served, served.token(who), "/").await;
        assert_eq!(status, 303);
        let session = cookie_value(&set_cookie(&headers, "meshwork_session").expect("a session cookie"));
        let page = client().get(served.url("/")).header("cookie", format!("meshwork_session={session}")).send().await.unwrap().text().await.unwrap();
        Browser { csrf: csrf_field(&page), session }
    }

    pub(crate) fn cookie(&self) -> String {
        format!("meshwork_session={}", self.session)
    }

    pub(crate) async fn get(&self, served: &Served, path: &str) -> reqwest::Response {
        client().get(served.url(path)).header("cookie", self.cookie()).send().await.unwrap()
    }

    pub(crate) async fn post(&self, served: &Served, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        client().post(served.url(path)).header("cookie", self.cookie()).form_body(&fields).send().await.unwrap()
    }
}

/// Signs in through the form, as a browser does: the sign-in page's cookie and field, then the token.
async fn sign_in_with(served: &Served, token: &str, next: &str) -> (u16, HeaderMap, String) {
    let page = client().get(served.url(&format!("/signin?next={next}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let signin_cookie = cookie_value(&set_cookie(page.headers(), "meshwork_signin").expect("the sign-in form's cookie"));
    let csrf = csrf_field(&page.text().await.unwrap());
    let response = client()
        .post(served.url("/signin"))
        .header("cookie", format!("meshwork_signin={signin_cookie}"))
        .form_body(&[("token", token), ("next", next), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn signing_in_sets_a_session_cookie_that_every_page_needs() {
    let served = Served::start(QueryLimits::default(), 8).await;
    // Without a session, a page sends the browser to sign in and back.
    for path in ["/", "/console", "/console?sql=SELECT%201"] {
        let response = client().get(served.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{path}");
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        assert_eq!(location, format!("/signin?next={}", url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>()));
    }
    // A fragment asks htmx to send the whole page there.
    let fragment = client().post(served.url("/console/run")).header("hx-request", "true").form_body(&[("sql", "SELECT 1")]).send().await.unwrap();
    assert_eq!(fragment.status(), 401);
    assert!(fragment.headers()["hx-redirect"].to_str().unwrap().starts_with("/signin?next="));

    // A bad token is refused, and no session opens.
    let (status, headers, body) = sign_in_with(&served, "mw_0000000000000000_000000000000000000000000000000000000000000000000", "/").await;
    assert_eq!(status, 401);
    assert!(set_cookie(&headers, "meshwork_session").is_none());
    assert!(body.contains("The token was not accepted"), "{body}");
    let (status, _, body) = sign_in_with(&served, "not-a-token", "/").await;
    assert_eq!(status, 401);
    assert!(body.contains("That is not an API token"), "{body}");

    // A good one opens a session and goes where the user was going; elsewhere is never a target.
    let (status, headers, _) = sign_in_with(&served, served.token("ana"), "/console").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console");
    let cookie = set_cookie(&headers, "meshwork_session").unwrap();
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(attributes, ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=28800"], "{cookie}");
    for evil in ["https://evil.example/", "//evil.example/", "/\\evil.example"] {
        let (_, headers, _) = sign_in_with(&served, served.token("ana"), &url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()).await;
        assert_eq!(headers[LOCATION], "/", "{evil}");
    }
    // Only a hash of the session id is stored.
    let id = cookie_value(&cookie);
    let stored = served.catalog.portal_session(&id, chrono::Utc::now()).await.unwrap();
    assert!(stored.is_none(), "the catalog is keyed by the hash, not the id");

    let ana = Browser::sign_in(&served, "ana").await;
    let home = ana.get(&served, "/").await;
    assert_eq!(home.status(), 200);
    assert_secure_headers(home.headers(), "home");
    assert_eq!(home.headers()["cache-control"], "no-store");
    let html = home.text().await.unwrap();
    assert!(html.contains("Signed in as <strong>ana</strong>"), "{html}");
    assert!(html.contains(r#"<main id="main" tabindex="-1">"#), "{html}");
    assert!(!html.contains("style="), "no inline styles: {html}");
    served.stop().await;
}

#[tokio::test]
async fn behind_https_the_session_cookie_is_secure() {
    let portal = PortalOptions { public_url: Some("https://mesh.example.com".parse().unwrap()), ..PortalOptions::default() };
    let served = Served::start_with(QueryLimits::default(), 8, portal, None).await;
    let (_, headers, _) = sign_in_with(&served, served.token("sam"), "/").await;
    assert!(set_cookie(&headers, "meshwork_session").unwrap().ends_with("; Secure"), "{headers:?}");
    served.stop().await;
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token_and_this_site() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let ana = Browser::sign_in(&served, "ana").await;
    let run = |csrf: Option<&str>, headers: &[(&str, &str)]| {
        let mut request = client().post(served.url("/console/run")).header("cookie", ana.cookie()).header("hx-request", "true");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut form = vec![("sql", "SELECT 1 AS one")];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        request.form_body(&form).send()
    };
    // No token, a wrong one, or another session's: 403, and the page says why.
    let sam = Browser::sign_in(&served, "sam").await;
    for csrf in [None, Some("0".repeat(64).as_str()), Some(sam.csrf.as_str())] {
        let refused = run(csrf, &[]).await.unwrap();
        assert_eq!(refused.status(), 403, "{csrf:?}");
        assert_secure_headers(refused.headers(), "403");
        assert!(refused.text().await.unwrap().contains("security token is missing or out of date"));
    }
    // The token as a header (htmx) or a form field is accepted.
    assert_eq!(run(Some(ana.csrf.as_str()), &[]).await.unwrap().status(), 200);
    assert_eq!(run(None, &[("x-csrf-token", &ana.csrf)]).await.unwrap().status(), 200);
    // Even with the token, another site's request is refused.
    for header in [("origin", "https://evil.example"), ("origin", "null"), ("sec-fetch-site", "cross-site"), ("sec-fetch-site", "same-site")] {
        let refused = run(Some(ana.csrf.as_str()), &[header]).await.unwrap();
        assert_eq!(refused.status(), 403, "{header:?}");
    }
    let same_origin = format!("http://{}", served.at.http);
    assert_eq!(run(Some(ana.csrf.as_str()), &[("origin", same_origin.as_str()), ("sec-fetch-site", "same-origin")]).await.unwrap().status(), 200);
    // Sign-out is a state change too.
    let refused = client().post(served.url("/signout")).header("cookie", ana.cookie()).form_body(&[("x", "y")]).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    // The sign-in form has its own token.
    let refused = client().post(served.url("/signin")).form_body(&[("token", served.token("ana")), ("csrf", "x")]).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    served.stop().await;
}

#[tokio::test]
async fn pages_assets_and_errors_carry_the_security_headers() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let signin = client().get(served.url("/signin")).send().await.unwrap();
    assert_secure_headers(signin.headers(), "sign-in page");
    let html = signin.text().await.unwrap();
    // Assets are addressed by content version and cached for long.
    let css = html.split("href=\"").find_map(|s| s.strip_prefix("/assets/portal.css?v=")).unwrap().split('"').next().unwrap().to_owned();
    let asset = client().get(served.url(&format!("/assets/portal.css?v={css}"))).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_secure_headers(asset.headers(), "asset");
    assert_eq!(asset.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    for file in ["htmx.min.js", "portal.js", "pages.css", "htmx-LICENSE"] {
        assert_eq!(client().get(served.url(&format!("/assets/{file}"))).send().await.unwrap().status(), 200, "{file}");
    }
    // htmx is configured without inline styles or eval, in a meta tag (no inline script).
    assert!(html.contains("&quot;includeIndicatorStyles&quot;:false"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    let missing = client().get(served.url("/assets/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_secure_headers(missing.headers(), "404");
    served.stop().await;
}

#[tokio::test]
async fn the_console_runs_queries_as_the_signed_in_principal() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let sql = "SELECT order_id, region FROM sales.orders ORDER BY order_id";
    for who in ["ana", "sam"] {
        let browser = Browser::sign_in(&served, who).await;
        let page = browser.get(&served, "/console").await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<label for="sql">SQL query</label>"#), "{html}");
        let fragment = browser.post(&served, "/console/run", &[("sql", sql)]).await;
        assert_eq!(fragment.status(), 200);
        let html = fragment.text().await.unwrap();
        // The same rows as the query layer gives the principal: ana sees EU orders only.
        let expected = served.reference(who, sql).await;
        let rows: Vec<&str> = expected.lines().skip(1).collect();
        assert!(html.contains(&format!("Rows 1–{}", rows.len())), "{who}: {html}");
        for row in &rows {
            let (id, region) = row.split_once(',').unwrap();
            assert!(html.contains(&format!("<tr><td>{id}</td><td>{region}</td></tr>")), "{who}: {row} in {html}");
        }
        assert!(html.contains(r#"order_id<span class="type">Int64</span>"#), "{html}");
        // The download is the whole result, as the API gives it.
        let csv = browser.post(&served, "/console/download", &[("sql", sql), ("format", "csv")]).await;
        assert_eq!(csv.headers()["content-disposition"], "attachment; filename=\"result.csv\"");
        assert_eq!(csv.text().await.unwrap(), expected, "{who}");
        let parquet = browser.post(&served, "/console/download", &[("sql", sql), ("format", "parquet")]).await;
        assert_eq!(parquet.headers()["content-type"], "application/vnd.apache.parquet");
        let bytes = parquet.bytes().await.unwrap();
        let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
        let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(crate::csv(&batches), expected, "{who}");
    }
    // Every run is audited as the principal, on the portal interface.
    let audit = served.catalog.audit(&meshwork_catalog::AuditFilter { principal: Some("ana".into()), ..Default::default() }).await.unwrap();
    assert!(audit.iter().any(|e| e.interface == "portal" && e.statement.contains("sales.orders")), "{audit:#?}");

    let ana = Browser::sign_in(&served, "ana").await;
    // A product ana may not read is not found, exactly like one that does not exist.
    let hidden = ana.post(&served, "/console/run", &[("sql", "SELECT * FROM finance.ledger")]).await;
    let missing = ana.post(&served, "/console/run", &[("sql", "SELECT * FROM finance.nope")]).await;
    assert_eq!((hidden.status(), missing.status()), (reqwest::StatusCode::NOT_FOUND, reqwest::StatusCode::NOT_FOUND));
    let (hidden, missing) = (hidden.text().await.unwrap(), missing.text().await.unwrap());
    assert_eq!(hidden.replace("ledger", "X"), missing.replace("nope", "X"));
    // A download of it is refused the same way.
    let refused = ana.post(&served, "/console/download", &[("sql", "SELECT * FROM finance.ledger"), ("format", "csv")]).await;
    assert_eq!(refused.status(), 404);

    // Errors carry their position in the statement.
    let error = ana.post(&served, "/console/run", &[("sql", "SELECT order_id\nFROM sales.orders\nWHER order_id > 1")]).await;
    assert_eq!(error.status(), 400);
    let html = error.text().await.unwrap();
    assert!(html.contains(r#"data-sql-line="3" data-sql-column="#), "{html}");
    assert!(html.contains("At line 3, column"), "{html}");

    // Pages of 100 rows, computed again for each page.
    let numbers = "SELECT value FROM range(1, 251) ORDER BY value";
    let third = ana.post(&served, "/console/run", &[("sql", numbers), ("page", "3")]).await.text().await.unwrap();
    assert!(third.contains("Rows 201–250"), "{third}");
    assert!(third.contains("<td>250</td>") && !third.contains("<td>200</td>"), "{third}");
    assert!(third.contains("Previous page") && !third.contains("Next page"), "{third}");
    let first = ana.post(&served, "/console/run", &[("sql", numbers)]).await.text().await.unwrap();
    assert!(first.contains("Rows 1–100 (more follow)") && first.contains("Next page"), "{first}");
    // A page number past any result is an empty page, not an overflow.
    let far = ana.post(&served, "/console/run", &[("sql", numbers), ("page", "18446744073709551615")]).await;
    assert_eq!(far.status(), 200);
    assert!(far.text().await.unwrap().contains("No more rows"));
    served.stop().await;
}

#[tokio::test]
async fn a_running_console_query_can_be_cancelled_by_its_viewer_only() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let ana = Browser::sign_in(&served, "ana").await;
    let sam = Browser::sign_in(&served, "sam").await;
    let endless = "SELECT count(*) FROM range(1, 1000000000000) a WHERE a.value % 7 = 3";
    let run = {
        let (url, cookie, csrf) = (served.url("/console/run"), ana.cookie(), ana.csrf.clone());
        tokio::spawn(async move {
            client().post(url).header("cookie", cookie).header("hx-request", "true").form_body(&[("csrf", csrf.as_str()), ("sql", endless), ("query_id", "q1")]).send().await.unwrap().text().await.unwrap()
        })
    };
    // Another principal cannot cancel it.
    let mut cancelled = false;
    for _ in 0..200 {
        assert_eq!(sam.post(&served, "/console/cancel", &[("query_id", "q1")]).await.status(), 404);
        if ana.post(&served, "/console/cancel", &[("query_id", "q1")]).await.status() == 204 {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cancelled, "the run was registered");
    let html = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the run ends once cancelled").unwrap();
    assert!(html.contains("Query cancelled."), "{html}");
    served.stop().await;
}

#[tokio::test]
async fn sessions_end_at_expiry_sign_out_and_token_revocation() {
    let portal = PortalOptions { session_ttl: Duration::from_secs(1), ..PortalOptions::default() };
    let served = Served::start_with(QueryLimits::default(), 8, portal, None).await;
    let ana = Browser::sign_in(&served, "ana").await;
    assert_eq!(ana.get(&served, "/").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ana.get(&served, "/").await.status(), 303, "expired");
    served.stop().await;

    let served = Served::start(QueryLimits::default(), 8).await;
    let ana = Browser::sign_in(&served, "ana").await;
    let out = ana.post(&served, "/signout", &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()[LOCATION], "/signin");
    assert!(set_cookie(out.headers(), "meshwork_session").unwrap().contains("Max-Age=0"));
    assert_eq!(ana.get(&served, "/").await.status(), 303, "signed out");

    // Revoking the token a session was opened with ends the session at once.
    let sam = Browser::sign_in(&served, "sam").await;
    assert_eq!(sam.get(&served, "/console").await.status(), 200);
    let token_id = &served.token("sam")["mw_".len().."mw_".len() + 16];
    assert!(served.catalog.revoke_token(token_id).await.unwrap());
    assert_eq!(sam.get(&served, "/console").await.status(), 303, "revoked");
    served.stop().await;
}

#[tokio::test]
async fn oidc_sign_in_runs_the_authorization_code_flow_with_pkce() {
    let provider = crate::oidc_provider::Provider::start().await;
    let portal = PortalOptions { oidc_client: Some(OidcClient { client_id: crate::PORTAL_CLIENT.into(), client_secret: Some("s3cret".into()) }), ..PortalOptions::default() };
    let served = Served::start_with(QueryLimits::default(), 8, portal, Some(provider.issuer())).await;
    // The sign-in page offers it.
    let page = client().get(served.url("/signin")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("Sign in with {}", provider.issuer())), "{page}");

    let start = client().get(served.url("/signin/oidc?next=/console")).send().await.unwrap();
    assert_eq!(start.status(), 303);
    let flow = cookie_value(&set_cookie(start.headers(), "meshwork_oidc").unwrap());
    let authorize = start.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}authorize?", provider.issuer())), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("nonce="), "{authorize}");
    // The provider signs sam in and sends the browser back.
    let back = client().get(&authorize).send().await.unwrap();
    let callback = back.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&served.url("/signin/oidc/callback?")), "{callback}");

    // Without the flow cookie, or with another state, the callback is refused.
    assert_eq!(client().get(&callback).send().await.unwrap().status(), 403);
    let forged = callback.replace("state=", "state=x");
    assert_eq!(client().get(&forged).header("cookie", format!("meshwork_oidc={flow}")).send().await.unwrap().status(), 403);

    let done = client().get(&callback).header("cookie", format!("meshwork_oidc={flow}")).send().await.unwrap();
    assert_eq!(done.status(), 303, "{:?}", done.text().await);
    assert_eq!(done.headers()[LOCATION], "/console");
    let set = set_cookie(done.headers(), "meshwork_session").unwrap();
    // The session ends with the ID token (10 minutes here), not after the 8-hour session
    // lifetime: the provider is not asked again while it lasts.
    let max_age: i64 = set.split("Max-Age=").nth(1).and_then(|v| v.split(';').next()).unwrap().parse().unwrap();
    assert!((550..=600).contains(&max_age), "{set}");
    let session = cookie_value(&set);
    let console = client().get(served.url("/console")).header("cookie", format!("meshwork_session={session}")).send().await.unwrap().text().await.unwrap();
    assert!(console.contains("Signed in as <strong>sam</strong>"), "{console}");
    // The code was exchanged once, with the PKCE verifier and the client secret.
    assert_eq!(provider.exchanged(), 1);
    served.stop().await;
}

/// The link `meshwork up` prints signs its principal in once; a second click, an unknown code and
/// a revoked token get nowhere.
#[tokio::test]
async fn a_sign_in_link_opens_one_session_once() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let token_id = &served.token("ana")["mw_".len().."mw_".len() + 16];
    let code = served.gate.signin_links().issue("ana", token_id);
    let first = client().get(served.url(&format!("/signin/link?code={code}"))).send().await.unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()[LOCATION], "/");
    let set = set_cookie(first.headers(), "meshwork_session").expect("a session cookie");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
    let ana = Browser { session: cookie_value(&set), csrf: String::new() };
    let page = ana.get(&served, "/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("ana"), "signed in as ana");

    let again = client().get(served.url(&format!("/signin/link?code={code}"))).send().await.unwrap();
    assert_eq!(again.status(), 403, "a link is good once");
    assert!(set_cookie(again.headers(), "meshwork_session").is_none());
    assert!(again.text().await.unwrap().contains("already used or expired"));
    let unknown = client().get(served.url("/signin/link?code=nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 403);
    let none = client().get(served.url("/signin/link")).send().await.unwrap();
    assert_eq!(none.status(), 403);

    // The session stands on the token: revoking it ends the session opened by the link.
    assert!(served.catalog.revoke_token(token_id).await.unwrap());
    assert_eq!(ana.get(&served, "/").await.status(), 303);
    served.stop().await;
}
