//! Products read from operational databases, through the binary, against the machine's real
//! PostgreSQL and MariaDB servers: full and incremental loads (append and merge), a value that
//! does not fit named by its key, schema drift refused by `validate` and `apply`, bad
//! credentials, and the password never shown.

use std::path::{Path, PathBuf};
use std::process::Output;

use meshwork_core::descriptor::DatabaseKind;
use meshwork_sources::scratch::ScratchSource;

use super::{meshwork, ok, query_csv, stderr, stdout, write};

/// A value of the connection's password variable that must never show anywhere. PostgreSQL on
/// this machine trusts local connections, so it is sent and ignored there.
const SECRET: &str = "pw-Zebra-4417-never-shown";

pub(super) struct Source {
    runtime: tokio::runtime::Runtime,
    db: Option<ScratchSource>,
    pub(super) kind: DatabaseKind,
}

impl Source {
    pub(super) fn new(kind: DatabaseKind) -> Source {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let db = runtime.block_on(ScratchSource::create(kind, "cli_sources")).unwrap();
        Source { runtime, db: Some(db), kind }
    }

    pub(super) fn db(&self) -> &ScratchSource {
        self.db.as_ref().unwrap()
    }

    /// Runs `sql`, whose timestamps are written `'… 10:00:00Z'` (UTC): PostgreSQL reads the
    /// `Z`, MySQL's `DATETIME` takes them without it.
    pub(super) fn sql(&self, sql: &str) {
        let sql = match self.kind {
            DatabaseKind::Postgres => sql.to_owned(),
            DatabaseKind::Mysql => sql.replace("Z'", "'"),
        };
        self.runtime.block_on(self.db().execute(&sql)).unwrap();
    }

    /// The type of a timestamp column with a time zone, in this database.
    pub(super) fn timestamp(&self) -> &'static str {
        match self.kind {
            DatabaseKind::Postgres => "timestamptz",
            DatabaseKind::Mysql => "DATETIME(6)",
        }
    }

    /// The password to send: the server's own if its URL has one (CI may set it), else the
    /// secret (which PostgreSQL, trusting local connections, ignores).
    pub(super) fn password(&self) -> Option<String> {
        match (self.db().password(), self.kind) {
            (Some(password), _) => Some(password),
            (None, DatabaseKind::Postgres) => Some(SECRET.to_owned()),
            (None, DatabaseKind::Mysql) => None,
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            let _ = self.runtime.block_on(db.drop_now());
        }
    }
}

/// Runs `meshwork` with the connection's password in `CRM_PASSWORD`.
pub(super) fn run(source: &Source, dir: &Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_meshwork"));
    command.arg("-C").arg(dir).args(args).env("NO_COLOR", "1").env("MESHWORK_LOG", "info,sqlx=trace,meshwork_sources=trace,meshwork_pipeline=debug");
    if let Some(password) = source.password() {
        command.env("CRM_PASSWORD", password);
    }
    let output = command.output().expect("meshwork runs");
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!all.contains(SECRET), "the password showed in `meshwork {args:?}`:\n{all}");
    output
}

pub(super) fn run_ok(source: &Source, dir: &Path, args: &[&str]) -> String {
    let output = run(source, dir, args);
    assert!(output.status.success(), "meshwork {args:?} failed:\n{}\n{}", stdout(&output), stderr(&output));
    stdout(&output)
}

pub(super) fn run_err(source: &Source, dir: &Path, args: &[&str]) -> String {
    let output = run(source, dir, args);
    assert!(!output.status.success(), "meshwork {args:?} should fail:\n{}", stdout(&output));
    format!("{}{}", stdout(&output), stderr(&output))
}

fn mesh(source: &Source) -> (tempfile::TempDir, PathBuf) {
    let ts = source.timestamp();
    source.sql(&format!(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, tier VARCHAR(20), balance NUMERIC(12,2), updated_at {ts} NOT NULL);
         INSERT INTO customers VALUES
            (1, 'Ada', 'gold', 10.50, '2024-01-01 10:00:00Z'),
            (2, 'Bob', 'silver', 0.00, '2024-01-02 10:00:00Z'),
            (3, 'Cy', 'gold', -3.25, '2024-01-03 10:00:00Z');
         CREATE TABLE events (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, kind VARCHAR(20) NOT NULL);
         INSERT INTO events VALUES (1, 1, 'signup'), (2, 2, 'signup'), (3, 1, 'order');"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    let password_env = if source.password().is_some() { ", password_env: CRM_PASSWORD" } else { "" };
    write(&dir, "mesh.yaml", &format!("name: ops\nconnections:\n  crm: {{ url: \"{}\"{password_env} }}\n", source.db().url()));
    write(&dir, "domains/crm/domain.yaml", "name: crm\nowners: [group:crm]\n");
    let kind = source.kind.as_str();
    write(
        &dir,
        "domains/crm/products/customers/product.yaml",
        &format!(
            "name: customers\ndomain: crm\nversion: 1.0.0\nowner: group:crm\ninputs:\n  - name: src\n    source: {{ kind: {kind}, connection: crm, table: customers, incremental: {{ column: updated_at, mode: merge }} }}\ncontract:\n  primary_key: [id]\n  columns:\n    - {{ name: id, type: bigint, nullable: false }}\n    - {{ name: name, type: string, nullable: false }}\n    - {{ name: tier, type: string }}\n    - {{ name: balance, type: \"decimal(8,2)\" }}\n    - {{ name: updated_at, type: timestamp, nullable: false }}\nquality:\n  - {{ rule: unique, column: id }}\n  - {{ rule: row_count, min: 1 }}\n"
        ),
    );
    write(
        &dir,
        "domains/crm/products/events/product.yaml",
        &format!(
            "name: events\ndomain: crm\nversion: 1.0.0\nowner: group:crm\ninputs:\n  - name: src\n    source: {{ kind: {kind}, connection: crm, table: events, incremental: {{ column: id, mode: append }} }}\ncontract:\n  columns:\n    - {{ name: id, type: bigint, nullable: false }}\n    - {{ name: customer_id, type: bigint, nullable: false }}\n    - {{ name: kind, type: string, nullable: false }}\nquality:\n  - {{ rule: row_count, max: 5 }}\n"
        ),
    );
    write(
        &dir,
        "domains/crm/products/tiers/product.yaml",
        &format!(
            "name: tiers\ndomain: crm\nversion: 1.0.0\nowner: group:crm\ninputs:\n  - name: counts\n    source: {{ kind: {kind}, connection: crm, query: \"SELECT tier, COUNT(*) AS n FROM customers GROUP BY tier\" }}\ntransform: \"SELECT tier, n AS customers FROM counts\"\ncontract:\n  primary_key: [tier]\n  columns:\n    - {{ name: tier, type: string }}\n    - {{ name: customers, type: bigint, nullable: false }}\n"
        ),
    );
    (tmp, dir)
}

fn full_and_incremental_loads(kind: DatabaseKind) {
    let source = Source::new(kind);
    let (_tmp, dir) = mesh(&source);
    let validated = run_ok(&source, &dir, &["validate"]);
    assert!(validated.contains("ok: 1 domain, 3 products"), "{validated}");
    run_ok(&source, &dir, &["apply"]);
    assert_eq!(query_csv(&dir, "SELECT id, name, tier, balance FROM crm.customers ORDER BY id"), "id,name,tier,balance\n1,Ada,gold,10.50\n2,Bob,silver,0.00\n3,Cy,gold,-3.25\n");
    assert_eq!(query_csv(&dir, "SELECT CAST(updated_at AS VARCHAR) AS t FROM crm.customers WHERE id = 2"), "t\n2024-01-02T10:00:00Z\n");
    assert_eq!(query_csv(&dir, "SELECT tier, customers FROM crm.tiers ORDER BY tier"), "tier,customers\ngold,2\nsilver,1\n");

    // Bob is updated and Dee arrives; two events are added.
    source.sql(
        "UPDATE customers SET tier = 'gold', balance = 99.00, updated_at = '2024-02-01 09:00:00Z' WHERE id = 2;
         INSERT INTO customers VALUES (4, 'Dee', NULL, 1.00, '2024-02-02 09:00:00Z');
         INSERT INTO events VALUES (4, 4, 'signup'), (5, 2, 'order');",
    );
    let applied = run_ok(&source, &dir, &["apply", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&applied).unwrap();
    let products = report["products"].as_array().unwrap();
    let outcome = |name: &str| products.iter().find(|p| p["product"] == name).unwrap_or_else(|| panic!("{name} in {applied}")).clone();
    assert_eq!(outcome("crm.customers")["result"], "published", "{applied}");
    assert_eq!(query_csv(&dir, "SELECT id, name, tier, balance FROM crm.customers ORDER BY id"), "id,name,tier,balance\n1,Ada,gold,10.50\n2,Bob,gold,99.00\n3,Cy,gold,-3.25\n4,Dee,,1.00\n");
    assert_eq!(query_csv(&dir, "SELECT count(*) AS n, max(id) AS last FROM crm.events"), "n,last\n5,5\n");
    assert_eq!(query_csv(&dir, "SELECT tier, customers FROM crm.tiers ORDER BY tier"), "tier,customers\ngold,3\n,1\n");
    // The merge is recorded as such, with the rows it loaded (Cy again: a merge re-reads the
    // rows at the last mark, so one written later with the same watermark is not missed) and
    // the product's new size.
    let events = ok(&dir, &["events", "--product", "crm.customers", "--format", "json"]);
    assert!(events.contains("\"load\": \"merge\"") && events.contains("\"loaded\": 3") && events.contains("\"rows\": 4"), "{events}");
    let events = ok(&dir, &["events", "--product", "crm.events", "--format", "json"]);
    assert!(events.contains("\"load\": \"append\"") && events.contains("\"loaded\": 2"), "{events}");

    // Nothing new: the incremental products stay as they are without reading a row; the full
    // load reads the query again, finds the same rows and publishes nothing either.
    let applied = run_ok(&source, &dir, &["apply", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&applied).unwrap();
    let products = report["products"].as_array().unwrap();
    let outcome = |name: &str| products.iter().find(|p| p["product"] == name).unwrap()["result"].clone();
    assert_eq!((outcome("crm.customers"), outcome("crm.events"), outcome("crm.tiers")), ("unchanged".into(), "unchanged".into(), "unchanged".into()), "{applied}");

    // The newest event deleted at the source: the mark does not move back, so nothing is read
    // twice and nothing is published.
    source.sql("DELETE FROM events WHERE id = 5");
    let applied = run_ok(&source, &dir, &["apply", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&applied).unwrap();
    let events = report["products"].as_array().unwrap().iter().find(|p| p["product"] == "crm.events").unwrap().clone();
    assert_eq!(events["result"], "unchanged", "{applied}");
    assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM crm.events"), "n\n5\n");

    // A value that does not fit the contract is named by its row's key; nothing is published
    // and the watermark stays, so the fixed row is read next time.
    source.sql("INSERT INTO customers VALUES (5, 'Eve', 'gold', 1234567.00, '2024-03-01 09:00:00Z')");
    let failed = run_err(&source, &dir, &["apply"]);
    assert!(failed.contains("table `customers` of database `crm`: row with id = 5: column `balance`: value `1234567.00` is not a valid decimal(8,2)"), "{failed}");
    assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM crm.customers"), "n\n4\n");
    source.sql("UPDATE customers SET balance = 12.00, updated_at = '2024-03-02 09:00:00Z' WHERE id = 5");
    run_ok(&source, &dir, &["apply"]);
    assert_eq!(query_csv(&dir, "SELECT id, balance FROM crm.customers WHERE id >= 4 ORDER BY id"), "id,balance\n4,1.00\n5,12.00\n");

    // Drift: a contract column renamed in the source is refused by validate and by apply,
    // and the published version stays.
    source.sql("ALTER TABLE customers RENAME COLUMN tier TO segment");
    let invalid = run_err(&source, &dir, &["validate"]);
    assert!(invalid.contains("domains/crm/products/customers/product.yaml") && invalid.contains("contract column `tier` is not in the source"), "{invalid}");
    assert!(invalid.contains("domains/crm/products/tiers/product.yaml"), "the query names `tier` too: {invalid}");
    run_ok(&source, &dir, &["validate", "--offline"]);
    let failed = run_err(&source, &dir, &["apply"]);
    assert!(failed.contains("contract column `tier` is not in the source"), "{failed}");
    assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM crm.customers WHERE tier = 'gold'"), "n\n4\n");

    // Quality rules check an incremental load as the product will be: two more events make
    // seven, past the rule's five, so nothing is published and the mark stays.
    source.sql("INSERT INTO events VALUES (6, 1, 'order'), (7, 3, 'signup')");
    let output = run(&source, &dir, &["apply", "--format", "json"]);
    assert!(!output.status.success());
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let products = report["products"].as_array().unwrap();
    let events = products.iter().find(|p| p["product"] == "crm.events").unwrap();
    assert_eq!(events["result"], "quality_failed", "{report}");
    assert_eq!(events["rows"], 7, "the rule saw the product as it would be: {report}");
    assert_eq!(query_csv(&dir, "SELECT count(*) AS n FROM crm.events"), "n\n5\n");

    // The catalog holds no password.
    let catalog = std::fs::read(dir.join(".meshwork/catalog.db")).unwrap();
    assert!(!String::from_utf8_lossy(&catalog).contains(SECRET));
}

#[test]
fn postgres_tables_load_in_full_and_incrementally() {
    full_and_incremental_loads(DatabaseKind::Postgres);
}

#[test]
fn mysql_tables_load_in_full_and_incrementally() {
    full_and_incremental_loads(DatabaseKind::Mysql);
}

#[test]
fn an_unreachable_source_or_a_wrong_user_publishes_nothing() {
    let source = Source::new(DatabaseKind::Postgres);
    let (_tmp, dir) = mesh(&source);
    let yaml = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
    write(&dir, "mesh.yaml", &yaml.replacen("://postgres@", "://no_such_reader@", 1));
    let failed = run_err(&source, &dir, &["validate"]);
    assert!(failed.contains("cannot connect to database `crm`") && failed.contains("no_such_reader"), "{failed}");
    let failed = run_err(&source, &dir, &["apply"]);
    assert!(failed.contains("cannot connect to database `crm`"), "{failed}");
    let listed = ok(&dir, &["product", "list"]);
    assert!(!listed.contains("crm.customers"), "{listed}");

    // The variable holding the password unset: said so, by name.
    write(&dir, "mesh.yaml", &format!("name: ops\nconnections:\n  crm: {{ url: \"{}\", password_env: MESHWORK_IT_NEVER_SET }}\n", source.db().url()));
    let failed = run_err(&source, &dir, &["validate"]);
    assert!(failed.contains("connection `crm` takes its password from the environment variable `MESHWORK_IT_NEVER_SET`, which is not set"), "{failed}");

    // A password written in the URL is refused without echoing it.
    write(&dir, "mesh.yaml", &format!("name: ops\nconnections:\n  crm: {{ url: \"postgres://reader:{SECRET}@127.0.0.1:5432/crm\" }}\n"));
    let output = meshwork(&dir, &["validate", "--offline"]);
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!output.status.success() && all.contains("the connection URL holds a password"), "{all}");
    assert!(!all.contains(SECRET), "{all}");
}
