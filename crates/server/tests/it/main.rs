//! The servers end to end, in process: the policy fixture mesh is applied, served on free
//! ports, and queried over HTTP (reqwest), Flight SQL (arrow-flight's client) and the Postgres
//! wire (`psql`). Python clients (psycopg, ADBC, pyarrow.flight) run the same matrix in
//! `tests/interop/check_serve.py`, from `.ci/run`.

mod access;
mod attacks;
mod cancellation;
mod copy;
mod flight_compat;
mod lifecycle;
mod limits;
mod not_before;
mod oidc_provider;
mod pg_catalog;
mod pg_compat;
mod portal;
mod portal_access;
mod portal_pages;
mod readiness;
mod revocation;
mod search;
mod sessions;
mod settings;
mod visibility;
mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetTables, ProstMessageExt};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use meshwork_auth::{Authenticator, OidcVerifier, issue_token};
use meshwork_catalog::CatalogStore;
use meshwork_core::descriptor::OidcConfig;
use meshwork_pipeline::{SilentObserver, apply, load_mesh};
use meshwork_query::{Governance, QueryEngine, QueryLimits, QuerySession};
use meshwork_server::{BoundAddresses, Gate, GateOptions, Listeners, PortalOptions};
use serde_json::{Value, json};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

const ISSUER: &str = "https://login.test.invalid/";
const AUDIENCE: &str = "meshwork-tests";
/// The portal's OIDC client id in the tests.
const PORTAL_CLIENT: &str = "meshwork-portal";

/// The policy fixture mesh, applied and served on free ports of 127.0.0.1.
struct Served {
    _dir: tempfile::TempDir,
    catalog: Arc<dyn CatalogStore>,
    at: BoundAddresses,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    tokens: std::collections::HashMap<&'static str, String>,
    gate: Arc<Gate>,
}

impl Served {
    async fn start(limits: QueryLimits, max_queries: u32) -> Served {
        Served::start_with(limits, max_queries, PortalOptions::default(), None).await
    }

    /// With portal settings, and OIDC tokens from `issuer` instead of the fixture issuer.
    async fn start_with(limits: QueryLimits, max_queries: u32, portal: PortalOptions, issuer: Option<String>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mesh");
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../query/tests/fixtures/mesh"), &root);
        let mesh = load_mesh(&root).unwrap_or_else(|d| panic!("{d:#?}"));
        let home = mesh.home();
        let catalog = home.open_catalog().await.unwrap();
        let report = apply(&mesh, catalog.as_ref(), &home.open_store().unwrap(), &SilentObserver).await.unwrap();
        assert!(!report.failed(), "{report:#?}");
        let oidc = OidcConfig {
            issuer: issuer.unwrap_or_else(|| ISSUER.into()),
            audiences: vec![AUDIENCE.into()],
            jwks: fixtures().join("oidc/jwks.json").display().to_string(),
            algorithms: vec!["RS256".into()],
            principal_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            attributes: [("region".to_owned(), "region".to_owned())].into(),
            client_id: Some(PORTAL_CLIENT.into()),
            client_secret_env: None,
        };
        let verifier = OidcVerifier::load(&oidc, &root).await.unwrap();
        let engine = Arc::new(QueryEngine::new(catalog.clone(), limits).await.unwrap());
        let gate = Arc::new(Gate::new(engine, Authenticator::new(catalog.clone(), Some(verifier)), GateOptions { max_queries_per_principal: max_queries, storage: Some(home.open_store().unwrap()), portal }));
        let any = "127.0.0.1:0".parse().unwrap();
        let (at, sockets) = meshwork_server::bind(&Listeners { http: any, flight_sql: any, postgres: any }).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = gate.clone();
        let done = tokio::spawn(async move {
            meshwork_server::serve(gate, sockets, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let mut tokens = std::collections::HashMap::new();
        for name in ["ana", "sam", "admin", "olga"] {
            tokens.insert(name, issue_token(catalog.as_ref(), name, None, None).await.unwrap().token);
        }
        Served { _dir: dir, catalog, at, stop: Some(stop), done, tokens, gate: shared }
    }

    fn token(&self, name: &str) -> &str {
        &self.tokens[name]
    }

    /// The served mesh repository.
    fn root(&self) -> PathBuf {
        self._dir.path().join("mesh")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.at.http)
    }

    /// What the CLI's query layer answers for `principal`: the reference for every interface.
    async fn reference(&self, principal: &str, sql: &str) -> String {
        let governance = Governance::load(self.catalog.as_ref()).await.unwrap();
        let session = QuerySession::open(self.catalog.clone(), &governance, governance.principal(principal).unwrap(), "test").await.unwrap();
        let (_, batches) = session.collect(sql).await.unwrap();
        csv(&batches)
    }

    async fn post_query(&self, token: Option<&str>, sql: &str, accept: &str) -> reqwest::Response {
        let mut request = reqwest::Client::new().post(self.url("/api/v1/query")).header("accept", accept).header("content-type", "application/json").body(json!({"sql": sql}).to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn flight(&self, token: &str) -> FlightSqlServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.at.flight_sql)).unwrap().connect().await.unwrap();
        let mut client = FlightSqlServiceClient::new(channel);
        client.set_token(token.to_owned());
        client
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), &mut self.done).await.expect("servers stop within the grace period").unwrap();
    }
}

fn csv(batches: &[RecordBatch]) -> String {
    let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(Vec::new());
    for batch in batches {
        writer.write(batch).unwrap();
    }
    String::from_utf8(writer.into_inner()).unwrap()
}

/// A JWT signed with `key` (a fixture file), with `claims` merged over valid defaults.
fn jwt(key: &str, claims: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut body = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now, "preferred_username": "sam"});
    for (k, v) in claims.as_object().unwrap() {
        body[k] = v.clone();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let pem = std::fs::read(fixtures().join("oidc").join(key)).unwrap();
    jsonwebtoken::encode(&header, &body, &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

const MATRIX: &[&str] = &[
    "SELECT order_id, region FROM sales.orders ORDER BY order_id",
    "SELECT customer_id, name, card, email, region FROM sales.customers ORDER BY customer_id",
    "SELECT count(*) AS n, sum(amount) AS total FROM sales.orders",
];

#[tokio::test]
async fn http_answers_like_the_cli_in_every_format() {
    let served = Served::start(QueryLimits::default(), 8).await;
    for principal in ["ana", "sam"] {
        for sql in MATRIX {
            let expected = served.reference(principal, sql).await;
            let csv_body = served.post_query(Some(served.token(principal)), sql, "text/csv").await;
            assert_eq!(csv_body.status(), 200);
            assert_eq!(csv_body.text().await.unwrap(), expected, "{principal}: {sql}");

            let arrow_body = served.post_query(Some(served.token(principal)), sql, "application/vnd.apache.arrow.stream").await;
            assert_eq!(arrow_body.headers()["content-type"], "application/vnd.apache.arrow.stream");
            let bytes = arrow_body.bytes().await.unwrap();
            let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None).unwrap();
            let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
            assert_eq!(csv(&batches), expected, "{principal}: {sql}");

            let json_body: Value = served.post_query(Some(served.token(principal)), sql, "application/json").await.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
            let rows = json_body["rows"].as_array().unwrap();
            assert_eq!(rows.len(), expected.lines().count() - 1, "{principal}: {sql}: {json_body}");
        }
    }
    // The row filter and masks hold: ana sees EU rows only and masked names.
    let ana: Value = served.post_query(Some(served.token("ana")), MATRIX[1], "application/json").await.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(ana["rows"][0]["name"], "A***********");
    assert!(ana["rows"].as_array().unwrap().iter().all(|r| r["region"] == "EU"));
    assert_eq!(ana["columns"][0]["name"], "customer_id");
    served.stop().await;
}

#[tokio::test]
async fn http_hides_what_the_caller_may_not_read() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let client = reqwest::Client::new();
    let list = |token: &str| client.get(served.url("/api/v1/products")).bearer_auth(token.to_owned()).send();
    let ana: Value = list(served.token("ana")).await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    let ids: Vec<&str> = ana.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["marketing.campaigns", "sales.customers", "sales.orders"]);
    let admin: Value = list(served.token("admin")).await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(admin.as_array().unwrap().len(), 4);
    // Search: word prefixes, domain and limit; ana never finds the ledger she may not read.
    let search = |query: &str, who: &str| {
        client.get(served.url(&format!("/api/v1/products?{query}"))).bearer_auth(served.token(who).to_owned()).send()
    };
    let ids_of = |v: Value| v.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let found = search("q=SALES%20ord", "ana").await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(ids_of(found), ["sales.orders"]);
    let found = search("domain=sales&limit=1", "ana").await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(ids_of(found), ["sales.customers"]);
    let found = search("q=ledger", "ana").await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(ids_of(found), Vec::<String>::new());
    let found = search("q=ledger", "admin").await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(ids_of(found), ["finance.ledger"]);

    // A denied product and a missing one answer alike.
    let hidden = client.get(served.url("/api/v1/products/finance.ledger")).bearer_auth(served.token("ana")).send().await.unwrap();
    let missing = client.get(served.url("/api/v1/products/finance.nope")).bearer_auth(served.token("ana")).send().await.unwrap();
    assert_eq!((hidden.status(), missing.status()), (reqwest::StatusCode::NOT_FOUND, reqwest::StatusCode::NOT_FOUND));
    let (hidden, missing): (Value, Value) = (hidden.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap(), missing.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap());
    assert_eq!(hidden["error"]["code"], "not_found");
    assert_eq!(hidden["error"]["message"].as_str().unwrap().replace("ledger", "X"), missing["error"]["message"].as_str().unwrap().replace("nope", "X"));
    let query = served.post_query(Some(served.token("ana")), "SELECT * FROM finance.ledger", "application/json").await;
    assert_eq!(query.status(), 404);
    let body: Value = query.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("not found"), "{body}");

    // Detail of a readable product: schema, versions, lineage; no table location for non-admins.
    let detail: Value = client.get(served.url("/api/v1/products/sales.orders")).bearer_auth(served.token("ana")).send().await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(detail["id"], "sales.orders");
    assert!(!detail["schema"].as_array().unwrap().is_empty());
    assert_eq!(detail["versions"].as_array().unwrap().len(), 1);
    assert!(detail["table_uri"].is_null());

    // The audit log is for administrators, and it recorded the queries with their interface.
    let refused = client.get(served.url("/api/v1/audit")).bearer_auth(served.token("ana")).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let audit: Value = client.get(served.url("/api/v1/audit?principal=ana")).bearer_auth(served.token("admin")).send().await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    let events = audit.as_array().unwrap();
    assert!(events.iter().any(|e| e["interface"] == "http" && e["outcome"] == "denied"), "{audit:#}");
    served.stop().await;
}

#[tokio::test]
async fn every_credential_failure_is_unauthenticated_on_http() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let expired = issue_token(served.catalog.as_ref(), "ana", None, Some(chrono::Duration::seconds(-5))).await.unwrap().token;
    let revoked = issue_token(served.catalog.as_ref(), "ana", None, None).await.unwrap();
    served.catalog.revoke_token(&revoked.record.id).await.unwrap();
    let wrong_secret = format!("{}{}", &served.token("ana")[..served.token("ana").len() - 4], "0000");
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("malformed", Some("not a token".into())),
        ("wrong secret", Some(wrong_secret)),
        ("expired token", Some(expired)),
        ("revoked token", Some(revoked.token)),
        ("expired jwt", Some(jwt("signing_key.pem", json!({"exp": chrono::Utc::now().timestamp() - 3600})))),
        ("wrong audience", Some(jwt("signing_key.pem", json!({"aud": "someone-else"})))),
        ("wrong issuer", Some(jwt("signing_key.pem", json!({"iss": "https://evil.invalid/"})))),
        ("foreign key", Some(jwt("foreign_key.pem", json!({})))),
    ];
    for (case, token) in cases {
        let mut request = reqwest::Client::new().get(served.url("/api/v1/whoami"));
        if let Some(token) = &token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        assert_eq!(response.headers()["content-type"], "application/json", "{case}");
        let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: Value = response.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated", "{case}: {body}");
        // The body quotes the request id the response header carries.
        assert_eq!(body["error"]["request_id"], request_id.as_str(), "{case}: {body}");
    }
    // An id the client sends is the one the error quotes; a missing endpoint is a JSON 404 too.
    let response = reqwest::Client::new().get(served.url("/api/v1/nowhere")).header("x-request-id", "trace-42").send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!((body["error"]["code"].as_str(), body["error"]["request_id"].as_str()), (Some("not_found"), Some("trace-42")), "{body}");
    // A valid JWT maps its claims: a declared principal keeps its rights, an undeclared one
    // gets the token's groups and attributes.
    let sam: Value = reqwest::Client::new().get(served.url("/api/v1/whoami")).bearer_auth(jwt("signing_key.pem", json!({}))).send().await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(sam["name"], "sam");
    assert_eq!(sam["domains"], json!(["sales"]));
    let token = jwt("signing_key.pem", json!({"preferred_username": "zoe", "groups": ["analysts"], "region": "NA"}));
    let zoe: Value = reqwest::Client::new().get(served.url("/api/v1/whoami")).bearer_auth(&token).send().await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!((zoe["name"].as_str(), zoe["admin"].as_bool()), (Some("zoe"), Some(false)));
    assert_eq!(zoe["attributes"]["region"], "NA");
    let rows = served.post_query(Some(&token), "SELECT DISTINCT region FROM sales.orders", "text/csv").await.text().await.unwrap();
    assert_eq!(rows, "region\nNA\n");
    // Metrics count the refusals without naming anyone.
    let metrics = reqwest::get(served.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("meshwork_auth_failures_total{interface=\"http\",reason=\"revoked\"} 1"), "{metrics}");
    assert!(!metrics.contains("ana"));
    served.stop().await;
}

#[tokio::test]
async fn openapi_and_swagger_are_served() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let doc: Value = reqwest::get(served.url("/openapi.json")).await.unwrap().bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    for path in ["/api/v1/products", "/api/v1/products/{product}", "/api/v1/query", "/api/v1/audit", "/api/v1/whoami"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(doc["openapi"], "3.1.0");
    // OpenAPI requires a description on every response; generated clients name errors after them.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(!description.is_empty(), "{method} {path} {status} has no description");
            }
        }
    }
    let ui = reqwest::get(served.url("/docs/")).await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger-ui"));
    let bad = served.post_query(Some(served.token("ana")), "SELECT 1", "image/png").await;
    assert_eq!(bad.status(), 400);
    let unknown = reqwest::get(served.url("/api/v1/nothing")).await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.headers().contains_key("x-request-id"));
    served.stop().await;
}

#[tokio::test]
async fn flight_sql_streams_governed_results_and_binds_tickets() {
    let served = Served::start(QueryLimits::default(), 8).await;
    for principal in ["ana", "sam"] {
        let mut client = served.flight(served.token(principal)).await;
        for sql in MATRIX {
            let info = client.execute(sql.to_string(), None).await.unwrap();
            let ticket = info.endpoint[0].ticket.clone().unwrap();
            let batches: Vec<RecordBatch> = client.do_get(ticket).await.unwrap().try_collect().await.unwrap();
            assert_eq!(csv(&batches), served.reference(principal, sql).await, "{principal}: {sql}");
        }
    }
    // The handshake takes the token as a Basic password (what ADBC and JDBC send) and answers
    // with a bearer header the client uses afterwards.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", served.at.flight_sql)).unwrap().connect().await.unwrap();
    let mut handshaken = FlightSqlServiceClient::new(channel);
    handshaken.handshake("ana", served.token("ana")).await.unwrap();
    assert_eq!(handshaken.token().map(String::as_str), Some(served.token("ana")));
    let info = handshaken.execute(MATRIX[0].to_string(), None).await.unwrap();
    let batches: Vec<RecordBatch> = handshaken.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(csv(&batches), served.reference("ana", MATRIX[0]).await);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", served.at.flight_sql)).unwrap().connect().await.unwrap();
    let err = FlightSqlServiceClient::new(channel).handshake("ana", "wrong").await.unwrap_err().to_string();
    assert!(err.contains("nauthenticated"), "{err}");

    // A ticket is bound to the principal that planned it.
    let mut sam = served.flight(served.token("sam")).await;
    let info = sam.execute("SELECT * FROM sales.customers".into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut ana = served.flight(served.token("ana")).await;
    let replay = match ana.do_get(ticket.clone()).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
        Err(err) => Err(err),
    };
    let err = replay.expect_err("ana may not replay sam's ticket").to_string();
    assert!(err.contains("not found"), "{err}");
    // A forged ticket is refused too.
    let mut forged = ticket.ticket.to_vec();
    let last = forged.len() - 3;
    forged[last] ^= 1;
    let err = match sam.do_get(arrow_flight::Ticket { ticket: forged.into() }).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()).unwrap_err(),
        Err(err) => err,
    };
    assert!(err.to_string().contains("not found") || err.to_string().contains("decode"), "{err}");

    // Listings show only readable products.
    let info = ana.get_tables(CommandGetTables { include_schema: false, ..Default::default() }).await.unwrap();
    let batches: Vec<RecordBatch> = ana.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    let text = pretty_format_batches(&batches).unwrap().to_string();
    assert!(text.contains("customers") && !text.contains("ledger"), "{text}");

    // Unauthenticated calls fail before anything runs.
    let mut nobody = served.flight("mw_0000000000000000_000000000000000000000000000000000000000000000000").await;
    let err = nobody.execute("SELECT 1".into(), None).await.unwrap_err().to_string();
    assert!(err.contains("Unauthenticated") || err.contains("unauthenticated"), "{err}");
    let _ = CommandGetTables::default().as_any();
    served.stop().await;
}

#[tokio::test]
async fn runaway_queries_fail_and_the_server_keeps_serving() {
    let limits = QueryLimits { memory_bytes: Some(64 << 20), timeout: Some(Duration::from_secs(3)), ..Default::default() };
    let served = Served::start(limits, 1).await;
    let token = served.token("sam");
    // Runs forever: stopped by the time limit.
    let slow = served.post_query(Some(token), "SELECT count(*) FROM generate_series(1, 1000000000000)", "application/json").await;
    let body: Value = slow.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    // Needs far more memory than allowed: stopped by the memory pool.
    let big = served.post_query(Some(token), "SELECT * FROM generate_series(1, 200000000) ORDER BY 1 DESC", "application/json").await;
    let body: Value = big.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "resources_exhausted", "{body}");

    // One query at a time for sam: a second one is refused while the first streams.
    let held = served.post_query(Some(token), "SELECT * FROM generate_series(1, 100000000)", "text/csv").await;
    assert_eq!(held.status(), 200);
    let refused = served.post_query(Some(token), "SELECT 1", "application/json").await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.bytes().await.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("too many queries"), "{body}");
    // Other principals are not affected.
    assert_eq!(served.post_query(Some(served.token("ana")), "SELECT 1 AS one", "text/csv").await.text().await.unwrap(), "one\n1\n");
    drop(held);
    // The cancelled stream released its slot; sam can query again.
    let mut answer = String::new();
    for _ in 0..50 {
        let response = served.post_query(Some(token), "SELECT 1 AS one", "text/csv").await;
        if response.status() == 200 {
            answer = response.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, "one\n1\n");
    let audit = served.catalog.audit(&meshwork_catalog::AuditFilter { principal: Some("sam".into()), ..Default::default() }).await.unwrap();
    assert!(audit.iter().any(|e| e.outcome == "cancelled"), "{audit:#?}");
    served.stop().await;
}

/// Runs `psql -c command` with `token` as password, off the async workers.
async fn psql(port: u16, token: &str, command: &str) -> (String, String) {
    let (token, command) = (token.to_owned(), command.to_owned());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "whoever", "-d", "meshwork", "-X", "-A", "-t", "-c", &command])
            .env("PGPASSWORD", token)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql is installed (postgresql-client)");
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn psql_lists_and_queries_as_the_token_principal() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let port = served.at.postgres.port();
    let (tables, err) = psql(port, served.token("ana"), "\\dt sales.*").await;
    assert!(tables.contains("customers") && tables.contains("orders"), "{tables}{err}");
    let (hidden, _) = psql(port, served.token("ana"), "\\dt finance.*").await;
    assert!(!hidden.contains("ledger"), "{hidden}");
    let (rows, err) = psql(port, served.token("ana"), "SELECT order_id, region FROM sales.orders ORDER BY order_id").await;
    assert_eq!(rows, "101|EU\n102|EU\n104|EU\n", "{err}");
    let (out, err) = psql(port, "mw_bad", "SELECT 1").await;
    assert!(out.is_empty() && err.contains("unauthenticated"), "{out}{err}");
    served.stop().await;
}

#[tokio::test]
async fn jwks_is_fetched_from_a_url() {
    // A local identity provider serving the fixture key set.
    let jwks = std::fs::read_to_string(fixtures().join("oidc/jwks.json")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/.well-known/jwks.json", axum::routing::get(move || async move { jwks }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = OidcConfig {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        jwks: format!("http://{addr}/.well-known/jwks.json"),
        algorithms: vec!["RS256".into()],
        principal_claim: "preferred_username".into(),
        groups_claim: "groups".into(),
        attributes: Default::default(),
        client_id: None,
        client_secret_env: None,
    };
    let verifier = OidcVerifier::load(&config, Path::new(".")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let catalog: Arc<dyn CatalogStore> = Arc::new(meshwork_catalog::SqlCatalog::open_sqlite(&dir.path().join("c.db")).await.unwrap());
    let auth = Authenticator::new(catalog, Some(verifier));
    let token = jwt("signing_key.pem", json!({"preferred_username": "zoe", "groups": "analysts readers"}));
    let who = auth.authenticate(meshwork_auth::Credential(Some(&token)), &[]).await.unwrap();
    assert_eq!(who.principal.name, "zoe");
    assert_eq!(who.principal.groups.iter().map(String::as_str).collect::<Vec<_>>(), ["analysts", "readers"]);
    assert_eq!(who.method, format!("oidc:{ISSUER}"));
    // A key set that cannot be fetched is an error naming the URL.
    let missing = OidcConfig { jwks: format!("http://{addr}/nope.json"), ..config };
    let err = OidcVerifier::load(&missing, Path::new(".")).await.unwrap_err().to_string();
    assert!(err.contains(&format!("cannot fetch JWKS `http://{addr}/nope.json`")), "{err}");
}

/// The event feed, quality history and SLO endpoints answer only about readable products.
#[tokio::test]
async fn events_quality_and_slo_endpoints_follow_visibility() {
    let served = Served::start(QueryLimits::default(), 8).await;
    let client = reqwest::Client::new();
    let get = |path: &str, who: &str| {
        let request = client.get(served.url(path)).bearer_auth(served.token(who).to_owned());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).unwrap())
        }
    };
    // The apply published four products: four events, but ana may read three of them.
    let (status, admin) = get("/api/v1/events?after=0", "admin").await;
    assert_eq!(status, 200);
    let kinds: Vec<(&str, &str)> = admin["events"].as_array().unwrap().iter().map(|e| (e["kind"].as_str().unwrap(), e["product"].as_str().unwrap())).collect();
    assert_eq!(kinds.len(), 4, "{admin:#}");
    assert!(kinds.iter().all(|(k, _)| *k == "product.published"));
    let (_, ana) = get("/api/v1/events?after=0", "ana").await;
    let products: Vec<&str> = ana["events"].as_array().unwrap().iter().map(|e| e["product"].as_str().unwrap()).collect();
    assert!(!products.contains(&"finance.ledger") && products.len() == 3, "{ana:#}");
    assert_eq!(ana["next_cursor"], admin["next_cursor"], "hidden events still move the cursor");
    // Following the feed: nothing new after the cursor; then a new event appears.
    let cursor = admin["next_cursor"].as_i64().unwrap();
    let (_, empty) = get(&format!("/api/v1/events?after={cursor}"), "ana").await;
    assert_eq!((empty["events"].as_array().unwrap().len(), empty["next_cursor"].as_i64().unwrap()), (0, cursor));
    served
        .catalog
        .append_events(&[meshwork_catalog::NewEvent { kind: "product.slo_violated".parse().unwrap(), product: Some("sales.orders".parse().unwrap()), payload: json!({"objective": "freshness"}) }])
        .await
        .unwrap();
    let (_, next) = get(&format!("/api/v1/events?after={cursor}&kind=product.slo_violated"), "ana").await;
    assert_eq!(next["events"][0]["payload"]["objective"], "freshness");
    let (status, bad) = get("/api/v1/events?kind=product.exploded", "ana").await;
    assert_eq!(status, 400);
    assert!(bad["error"]["message"].as_str().unwrap().contains("unknown event kind `product.exploded`; kinds are product.published"), "{bad}");

    // Quality history and SLOs: readable products answer, hidden ones are not found.
    let (status, quality) = get("/api/v1/products/sales.orders/quality", "ana").await;
    assert_eq!(status, 200);
    assert_eq!(quality["runs"][0]["outcome"], "passed", "{quality:#}");
    let (status, slo) = get("/api/v1/products/sales.orders/slo", "ana").await;
    assert_eq!(status, 200);
    assert!(slo["objectives"].as_array().unwrap().is_empty(), "not evaluated yet: {slo:#}");
    for path in ["/api/v1/products/finance.ledger/quality", "/api/v1/products/finance.ledger/slo"] {
        let (status, body) = get(path, "ana").await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{path}");
    }
    let (_, detail) = get("/api/v1/products/sales.orders", "ana").await;
    assert_eq!(detail["latest_quality_run"]["outcome"], "passed");

    // Consumers: readers from the audit log, for the product's stewards only.
    let queried = served.post_query(Some(served.token("ana")), "SELECT count(*) AS n FROM sales.orders", "application/json").await;
    assert_eq!(queried.status().as_u16(), 200);
    queried.bytes().await.unwrap();
    let (status, consumers) = get("/api/v1/products/sales.orders/consumers?window_days=1", "sam").await;
    assert_eq!(status, 200, "{consumers}");
    assert_eq!(consumers["window_days"].as_f64(), Some(1.0));
    let readers: Vec<(&str, &str)> = consumers["readers"].as_array().unwrap().iter().map(|r| (r["principal"].as_str().unwrap(), r["interface"].as_str().unwrap())).collect();
    assert!(readers.contains(&("ana", "http")), "{consumers:#}");
    let (status, refused) = get("/api/v1/products/sales.orders/consumers", "ana").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (404, Some("not_found")), "a reader who is not a steward: {refused}");
    served.stop().await;
}

mod unpublish;
