//! Two `meshwork serve` processes on one PostgreSQL catalog and one S3 bucket serve the same
//! mesh: what is published or revoked through one holds on the other at its next request, the
//! background work runs on one of them at a time, moving to the other when it dies, and each
//! tells its load balancer when the bucket stops answering.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ExampleOnPostgres, http_post, ok, write};

/// A running `meshwork serve` and everything it has logged.
pub(super) struct Replica {
    child: Child,
    http: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    pub(super) fn start(dir: &Path) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshwork"))
            .arg("-C")
            .arg(dir)
            .args(["serve", "--http-port", "0", "--flight-sql-port", "0", "--postgres-port", "0"])
            .env("NO_COLOR", "1")
            .envs(meshwork_storage::scratch::CREDENTIALS_ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address, found) = std::sync::mpsc::channel();
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(rest) = line.trim().strip_prefix("HTTP API     http://") {
                    let _ = address.send(rest.split('/').next().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let http = found.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("the replica did not start: {:?}", log.lock().unwrap()));
        Replica { child, http, log }
    }

    pub(super) fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// `GET /ready`: the status code and the body.
    fn ready(&self) -> (u16, serde_json::Value) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.http).unwrap();
        write!(stream, "GET /ready HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", self.http).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or_else(|_| panic!("{response}")))
    }

    pub(super) fn query(&self, token: &str, sql: &str) -> String {
        http_post(&self.http, "/api/v1/query", token, &serde_json::json!({ "sql": sql }).to_string())
    }

    pub(super) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const LEADING: &str = "this replica runs the background work";

#[test]
fn two_replicas_on_one_catalog_serve_the_same_mesh_and_share_the_background_work() {
    let bucket = meshwork_storage::scratch::ScratchBucket::create("replicas").unwrap();
    let on_postgres = ExampleOnPostgres::create_on("meshwork_replicas_it", "300", "3", Some(&bucket));
    let dir = on_postgres.dir.clone();
    ok(&dir, &["apply"]);
    let token = ok(&dir, &["token", "create", "--principal", "gus"]).trim().to_owned();

    let a = Replica::start(&dir);
    let b = Replica::start(&dir);
    // Exactly one of them runs the background work.
    wait_for("a leader", || a.logged(LEADING) || b.logged(LEADING));
    std::thread::sleep(Duration::from_secs(3));
    assert!(a.logged(LEADING) != b.logged(LEADING), "one leader: a={:?} b={:?}", a.logged(LEADING), b.logged(LEADING));

    let count = "SELECT count(*) AS n FROM sales.customers";
    let rows = |answer: &str| -> u64 { answer.trim_end().lines().last().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("{answer}")) };
    let before = b.query(&token, count);
    assert!(before.contains("200 OK"), "{before}");
    let before = rows(&before);

    // Published through another process: the next request to either replica reads it.
    let customers = std::fs::read_to_string(dir.join("data/sales/customers.csv")).unwrap();
    let last = customers.lines().last().unwrap().to_owned();
    let extra = last.replacen(last.split(',').next().unwrap(), "999999", 1);
    write(&dir, "data/sales/customers.csv", &format!("{customers}{extra}\n"));
    ok(&dir, &["apply"]);
    for replica in [&a, &b] {
        assert_eq!(rows(&replica.query(&token, count)), before + 1);
    }

    // The leader dies: the other takes the background work over.
    let (leader, standby) = if a.logged(LEADING) { (a, b) } else { (b, a) };
    assert!(leader.logged("catch_up=false"), "the first holder has nothing to catch up on");
    leader.kill();
    wait_for("the standby to take over", || standby.logged(LEADING));
    assert!(standby.logged("catch_up=true"), "a killed holder may have left work: the next one catches up");

    // Revoked through another process: refused at once by the replica still running.
    let id = token.strip_prefix("mw_").and_then(|t| t.split('_').next()).unwrap().to_owned();
    ok(&dir, &["token", "revoke", &id]);
    let refused = standby.query(&token, count);
    assert!(refused.starts_with("HTTP/1.0 401") || refused.starts_with("HTTP/1.1 401"), "{refused}");

    // The bucket stops answering: the replica says it is not ready, and why; then recovers.
    assert_eq!(standby.ready().0, 200);
    bucket.fail("GET", "", 503).unwrap();
    let (status, body) = standby.ready();
    assert_eq!((status, body["metadata"].as_str(), body["storage"].as_str()), (503, Some("ok"), Some("error: unreachable (see the server log)")), "{body}");
    assert!(standby.logged(&format!("s3://{}/example", bucket.bucket())), "the log names the bucket that failed");
    bucket.heal().unwrap();
    assert_eq!(standby.ready().0, 200);

    standby.kill();
    on_postgres.finish();
}
