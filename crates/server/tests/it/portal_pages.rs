//! The portal's product, domain and governance pages through real HTTP with a session cookie:
//! what each viewer is shown of masks and row filters, and that products hidden from a viewer
//! are never named or counted (lineage, column lineage, domain counts, governance findings).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use meshwork_auth::{Authenticator, issue_token};
use meshwork_catalog::{CatalogStore, Objective, SloCheck, SloStatus};
use meshwork_pipeline::{SilentObserver, apply, load_mesh};
use meshwork_query::{QueryEngine, QueryLimits};
use meshwork_server::{BoundAddresses, Gate, GateOptions, Listeners};

use super::copy_dir;

/// The policy fixture mesh with a lineage chain across domains, served:
/// `finance.payroll` (readable by the marketing domain only) → `marketing.spend` (with
/// `marketing.campaigns`) → `marketing.spend_report`, both readable by everyone. `ana` (an EU
/// analyst) reads the marketing products but not `finance.payroll` nor `finance.ledger`.
/// Governance: `classification_required` warns mesh-wide, `descriptions_required` warns in
/// finance only.
struct Portal {
    _dir: tempfile::TempDir,
    at: BoundAddresses,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    catalog: Arc<dyn CatalogStore>,
}

const FILES: &[(&str, &str)] = &[
    ("data/payroll.csv", "entry_id,amount\n1,100.00\n2,250.00\n"),
    (
        "domains/finance/domain.yaml",
        "name: finance\nowners: [group:finance-data]\npolicies:\n  descriptions_required: warn\n",
    ),
    (
        "domains/finance/products/payroll/product.yaml",
        r#"name: payroll
domain: finance
version: 1.0.0
owner: group:finance-data
inputs:
  - { name: raw, source: { kind: csv, path: data/payroll.csv } }
contract:
  columns:
    - { name: entry_id, type: bigint }
    - { name: amount, type: "decimal(10,2)" }
access:
  readers: [domain:marketing]
"#,
    ),
    (
        "domains/marketing/products/spend/product.yaml",
        r#"name: spend
domain: marketing
version: 1.0.0
title: Campaign spend
owner: group:marketing-data
inputs:
  - name: campaigns
    product: marketing.campaigns
  - name: costs
    product: finance.payroll
transform: transform.sql
contract:
  columns:
    - { name: campaign_id, type: bigint }
    - { name: code, type: string }
    - { name: amount, type: "decimal(10,2)" }
access:
  readers: ["*"]
"#,
    ),
    (
        "domains/marketing/products/spend/transform.sql",
        "SELECT c.campaign_id, c.code, k.amount FROM campaigns c JOIN costs k ON k.entry_id = c.campaign_id\n",
    ),
    (
        "domains/marketing/products/spend_report/product.yaml",
        r#"name: spend_report
domain: marketing
version: 1.0.0
owner: group:marketing-data
inputs:
  - name: spend
    product: marketing.spend
contract:
  columns:
    - { name: campaign_id, type: bigint }
    - { name: code, type: string }
    - { name: amount, type: "decimal(10,2)" }
access:
  readers: ["*"]
slo:
  freshness: 24h
"#,
    ),
    (
        "mesh.yaml",
        "name: portal-pages\npolicies:\n  descriptions_required: \"off\"\n  classification_required: warn\n",
    ),
];

impl Portal {
    async fn start() -> Portal {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mesh");
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../query/tests/fixtures/mesh"), &root);
        for (path, text) in FILES {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mesh = load_mesh(&root).unwrap_or_else(|d| panic!("{d:#?}"));
        let home = mesh.home();
        let catalog = home.open_catalog().await.unwrap();
        let report = apply(&mesh, catalog.as_ref(), &home.open_store().unwrap(), &SilentObserver).await.unwrap();
        assert!(!report.failed(), "{report:#?}");
        let engine = Arc::new(QueryEngine::new(catalog.clone(), QueryLimits::default()).await.unwrap());
        let options = GateOptions { max_queries_per_principal: 8, storage: None, portal: meshwork_server::PortalOptions::default() };
        let gate = Arc::new(Gate::new(engine, Authenticator::new(catalog.clone(), None), options));
        let any = "127.0.0.1:0".parse().unwrap();
        let (at, sockets) = meshwork_server::bind(&Listeners { http: any, flight_sql: any, postgres: any }).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            meshwork_server::serve(gate, sockets, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Portal { _dir: dir, at, stop: Some(stop), done, catalog }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.at.http)
    }

    /// A client signed in as `principal` (its session cookie kept by the client).
    async fn viewer(&self, principal: &str) -> reqwest::Client {
        let token = issue_token(self.catalog.as_ref(), principal, None, None).await.unwrap().token;
        signed_in(&self.url(""), &token).await
    }

    /// `path` as `client` sees it: status and body.
    async fn get(&self, client: &reqwest::Client, path: &str) -> (u16, String) {
        let response = client.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn page(&self, client: &reqwest::Client, path: &str) -> String {
        let (status, body) = self.get(client, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), &mut self.done).await.expect("servers stop within the grace period").unwrap();
    }
}

/// A client carrying the session cookie of `token`'s principal, signed in through the sign-in
/// form as a browser does (the form's own CSRF cookie and field), following no redirects.
async fn signed_in(base: &str, token: &str) -> reqwest::Client {
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = plain.get(format!("{base}/signin")).send().await.unwrap();
    let signin_cookie = set_cookie(&form, "meshwork_signin");
    let body = form.text().await.unwrap();
    let start = body.find("name=\"csrf\" value=\"").expect("the sign-in form has a CSRF field") + "name=\"csrf\" value=\"".len();
    let csrf = &body[start..start + body[start..].find('"').unwrap()];
    let form_body = url::form_urlencoded::Serializer::new(String::new()).append_pair("token", token).append_pair("csrf", csrf).append_pair("next", "/").finish();
    let response = plain
        .post(format!("{base}/signin"))
        .header("cookie", format!("meshwork_signin={signin_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "sign-in: {}", response.status());
    let session = set_cookie(&response, "meshwork_session");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", format!("meshwork_session={session}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The value `response` sets for cookie `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next()?.strip_prefix(&format!("{name}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no `{name}` cookie set"))
}

/// The part of `html` from the element with `id` to the end of its section.
fn section<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let end = html[start..].find("</section>").map_or(html.len(), |e| start + e);
    &html[start..end]
}

/// The cell texts of the table row whose header cell contains `label`.
fn row(html: &str, label: &str) -> Vec<String> {
    let start = html.find(label).unwrap_or_else(|| panic!("no `{label}` in {html}"));
    let end = html[start..].find("</tr>").map_or(html.len(), |e| start + e);
    html[start..end].split("<td").skip(1).map(|cell| text(&cell[cell.find('>').unwrap() + 1..])).collect()
}

/// Every row of the tables in `html`, one line each, cells separated by ` | `.
fn table_text(html: &str) -> String {
    html.split("<tr").skip(1)
        .map(|tr| {
            let tr = &tr[..tr.find("</tr>").unwrap_or(tr.len())];
            let cells = tr.replace("</td>", "\u{1}").replace("</th>", "\u{1}");
            let cells: Vec<String> = cells.split('\u{1}').map(|c| text(&format!("<{c}"))).collect();
            cells[..cells.len() - 1].join(" | ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `html` without tags.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

#[tokio::test]
async fn product_page_marks_this_viewers_masks_and_row_filter() {
    let portal = Portal::start().await;
    let ana = portal.viewer("ana").await;
    let sam = portal.viewer("sam").await;

    let page = portal.page(&ana, "/products/sales.customers").await;
    let contract = section(&page, "contract");
    assert_eq!(row(contract, "<code>email</code>"), ["string", "yes", "pii", "masked (hash)", ""]);
    assert_eq!(row(contract, "<code>name</code>"), ["string", "yes", "pii", "masked (partial)", ""]);
    assert_eq!(row(contract, "<code>region</code>"), ["string", "yes", "internal", "as stored", ""]);
    assert!(contract.contains("Row filter"), "{contract}");
    // Not an owner: the note, never the policy's SQL.
    assert!(!page.contains("principal.attr"), "{page}");
    expect_test::expect![[r#"
        Column | Type | Nullable | Classification | For you | Description
        customer_id key | bigint | no | internal | as stored |
        name | string | yes | pii | masked (partial) |
        email | string | yes | pii | masked (hash) |
        region | string | yes | internal | as stored |
        card | string | yes | pii | masked (partial) |"#]].assert_eq(&table_text(contract));

    // sam belongs to the sales domain: unmasked, and as an owner sees the filter itself.
    let page = portal.page(&sam, "/products/sales.customers").await;
    let contract = section(&page, "contract");
    assert!(!contract.contains("masked ("), "{contract}");
    assert_eq!(row(contract, "<code>email</code>")[3], "as stored");
    assert!(contract.contains("Row filter") && contract.contains("principal.attr"), "{contract}");
    // Owners see the consumers; others do not.
    assert!(page.contains("id=\"consumers\""), "{page}");
    assert!(!portal.page(&ana, "/products/sales.customers").await.contains("id=\"consumers\""));

    // A product without restrictions for ana: no note, nothing masked.
    let page = portal.page(&ana, "/products/marketing.campaigns").await;
    assert!(!page.contains("Row filter") && !page.contains("masked ("), "{page}");
    portal.stop().await;
}

#[tokio::test]
async fn lineage_links_only_products_the_viewer_may_read() {
    let portal = Portal::start().await;
    let ana = portal.viewer("ana").await;
    let admin = portal.viewer("admin").await;

    let page = portal.page(&ana, "/products/marketing.spend").await;
    let lineage = section(&page, "lineage");
    assert!(lineage.contains("<svg"), "{lineage}");
    let links: Vec<&str> = lineage.split("href=\"/products/").skip(1).map(|l| &l[..l.find('"').unwrap()]).collect();
    assert!(links.contains(&"marketing.campaigns") && links.contains(&"marketing.spend_report"), "{links:?}");
    assert!(links.iter().all(|l| l.starts_with("marketing.")), "{links:?}");
    let columns = portal.get_fragment(&ana, "/products/marketing.spend/lineage/columns").await;
    assert!(columns.contains("marketing.campaigns"), "{columns}");
    assert!(!columns.contains("<html"), "an htmx request gets the fragment only: {columns}");
    // The hidden upstream is named nowhere: page, fragment, whole-page fragment.
    for body in [&page, &columns, &portal.page(&ana, "/products/marketing.spend/lineage/columns").await] {
        assert!(!body.contains("payroll") && !body.contains("costs"), "{body}");
    }
    // Its downstream page does not reach it either.
    assert!(!portal.page(&ana, "/products/marketing.spend_report").await.contains("payroll"));

    // The administrator reads everything: the hidden edge exists.
    let page = portal.page(&admin, "/products/marketing.spend").await;
    assert!(section(&page, "lineage").contains("href=\"/products/finance.payroll\""), "{page}");
    let columns = portal.get_fragment(&admin, "/products/marketing.spend/lineage/columns").await;
    assert!(columns.contains("finance.payroll"), "{columns}");
    portal.stop().await;
}

#[tokio::test]
async fn product_page_shows_versions_sample_query_and_this_servers_addresses() {
    let portal = Portal::start().await;
    let ana = portal.viewer("ana").await;
    let page = portal.page(&ana, "/products/sales.orders").await;
    assert!(section(&page, "versions").contains("#1"), "{page}");
    let connect = section(&page, "connect");
    assert!(connect.contains("SELECT * FROM sales.orders LIMIT 10"), "{connect}");
    assert!(connect.contains("href=\"/console?sql=SELECT+*+FROM+sales.orders+LIMIT+10\""), "{connect}");
    assert!(connect.contains(&format!("psql -h 127.0.0.1 -p {} -U ana -d meshwork", portal.at.postgres.port())), "{connect}");
    assert!(connect.contains(&format!("grpc://127.0.0.1:{}", portal.at.flight_sql.port())), "{connect}");
    assert!(connect.contains(&format!("http://127.0.0.1:{}/api/v1/query", portal.at.http.port())), "{connect}");
    assert!(!page.contains("style="), "no inline styles (CSP)");

    // Service levels: the newest status and the error budget over the window, drawn.
    let now = chrono::Utc::now();
    let checks: Vec<SloCheck> = [(3, 1.0), (2, 0.6), (1, 0.2)]
        .into_iter()
        .map(|(hours, left)| SloCheck {
            product: "marketing.spend_report".parse().unwrap(),
            objective: Objective::Freshness,
            at: now - chrono::Duration::hours(hours),
            status: if left < 0.25 { SloStatus::AtRisk } else { SloStatus::Met },
            value: Some(60.0),
            threshold: 86_400.0,
            budget_remaining: Some(left),
            message: "published a minute ago".into(),
        })
        .collect();
    portal.catalog.record_slo_checks(&checks).await.unwrap();
    let page = portal.page(&ana, "/products/marketing.spend_report").await;
    let slo = section(&page, "slo");
    assert!(slo.contains("at risk") && slo.contains("published a minute ago") && slo.contains("over 30 days"), "{slo}");
    assert!(slo.contains("<polyline") && slo.contains("error budget of freshness: 20 % left now"), "{slo}");
    portal.stop().await;
}

#[tokio::test]
async fn a_hidden_product_answers_exactly_like_a_missing_one() {
    let portal = Portal::start().await;
    let ana = portal.viewer("ana").await;
    for suffix in ["", "/lineage/columns"] {
        let hidden = portal.get(&ana, &format!("/products/finance.payroll{suffix}")).await;
        let missing = portal.get(&ana, &format!("/products/finance.nothing{suffix}")).await;
        let malformed = portal.get(&ana, &format!("/products/no-such-address{suffix}")).await;
        assert_eq!(hidden.0, 404);
        assert_eq!(hidden, missing);
        assert_eq!(hidden, malformed);
        assert!(!hidden.1.contains("payroll"));
    }
    portal.stop().await;
}

#[tokio::test]
async fn domain_pages_count_only_visible_products() {
    let portal = Portal::start().await;
    let ana = portal.viewer("ana").await;
    let admin = portal.viewer("admin").await;

    let count = |html: &str, domain: &str| row(html, &format!("href=\"/domains/{domain}\""))[2].clone();
    let page = portal.page(&ana, "/domains").await;
    assert_eq!([count(&page, "finance"), count(&page, "marketing"), count(&page, "sales")], ["0", "3", "2"]);
    let page = portal.page(&admin, "/domains").await;
    assert_eq!([count(&page, "finance"), count(&page, "marketing"), count(&page, "sales")], ["2", "3", "2"]);

    let finance = portal.page(&ana, "/domains/finance").await;
    assert!(finance.contains("group:finance-data"), "{finance}");
    assert!(!finance.contains("payroll") && !finance.contains("ledger"), "{finance}");
    let marketing = portal.page(&ana, "/domains/marketing").await;
    assert!(marketing.contains("href=\"/products/marketing.spend\""), "{marketing}");
    // Members are for the domain's members, owners and administrators.
    let sam = portal.viewer("sam").await;
    assert!(portal.page(&sam, "/domains/sales").await.contains("<dt>Members</dt>"));
    assert!(!portal.page(&ana, "/domains/sales").await.contains("<dt>Members</dt>"));
    assert_eq!(portal.get(&ana, "/domains/nowhere").await.0, 404);
    portal.stop().await;
}

#[tokio::test]
async fn governance_dashboard_shows_states_per_domain_and_hides_hidden_products() {
    let portal = Portal::start().await;
    let ana = portal.viewer("ana").await;
    let admin = portal.viewer("admin").await;

    let page = portal.page(&ana, "/governance").await;
    let policies = section(&page, "policies");
    // Domains in name order: finance, marketing, sales.
    assert_eq!(row(policies, "<code>descriptions_required</code>"), ["governance", "warn", "off", "off"]);
    assert_eq!(row(policies, "<code>classification_required</code>"), ["governance", "warn", "warn", "warn"]);
    let findings = section(&page, "findings");
    assert!(findings.contains("href=\"/products/marketing.spend\""), "{findings}");
    assert!(!page.contains("payroll") && !page.contains("ledger"), "{page}");
    // Totals count only what ana may read: campaigns, spend, spend_report and orders lack a
    // classification (customers has them all).
    assert!(findings.contains("4 current findings on 4 products you can read"), "{findings}");

    let page = portal.page(&admin, "/governance").await;
    assert!(page.contains("href=\"/products/finance.payroll\""), "{page}");
    assert!(page.contains("<svg"), "the trend is drawn: {page}");
    portal.stop().await;
}

impl Portal {
    /// `path` requested as htmx requests it (`HX-Request`), expecting 200.
    async fn get_fragment(&self, client: &reqwest::Client, path: &str) -> String {
        let response = client.get(self.url(path)).header("hx-request", "true").send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    }
}
