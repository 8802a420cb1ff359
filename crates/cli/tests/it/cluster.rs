//! Distributed execution: a Ballista scheduler and two executors (`meshwork cluster …`, separate
//! processes on 127.0.0.1) run a mesh's queries, with the same answers as in-process execution
//! for joins, aggregates, row filters and masks, audit events as for local queries, and an
//! executor killed mid-query giving a retried success or a clear error, never a wrong answer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{ok, stderr, stdout, write};

/// A `meshwork cluster` process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(dir: &Path, args: &[&str]) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_meshwork"))
            .arg("-C")
            .arg(dir)
            .args(["cluster"])
            .args(args)
            .envs(meshwork_storage::scratch::CREDENTIALS_ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The local addresses of the listening sockets on `port`, as `/proc/net/tcp{,6}` shows them.
fn listening_on(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else { continue };
            if *state == "0A" && local.ends_with(&format!(":{port:04X}")) {
                found.push(local.split(':').next().unwrap().to_owned());
            }
        }
    }
    found
}

/// Runs `meshwork query` with the query layer's placement logged.
fn query(dir: &Path, principal: &str, sql: &str, local: bool) -> Output {
    let mut args = vec!["-C", dir.to_str().unwrap(), "--as", principal, "query", sql, "--format", "csv"];
    if local {
        args.push("--local");
    }
    Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .args(&args)
        .env("MESHWORK_LOG", "meshwork_query=info")
        .env("NO_COLOR", "1")
        .envs(meshwork_storage::scratch::CREDENTIALS_ENV)
        .output()
        .unwrap()
}

const ON_CLUSTER: &str = "statement runs on the cluster";

/// The answer of `sql` on the cluster, checked to have run there and to equal in-process
/// execution.
fn same_on_cluster(dir: &Path, principal: &str, sql: &str) -> String {
    let local = query(dir, principal, sql, true);
    assert!(local.status.success(), "{sql} (local): {}", stderr(&local));
    assert!(!stderr(&local).contains(ON_CLUSTER));
    let remote = query(dir, principal, sql, false);
    assert!(remote.status.success(), "{sql} (cluster): {}", stderr(&remote));
    assert!(stderr(&remote).contains(ON_CLUSTER), "{sql} did not run on the cluster: {}", stderr(&remote));
    assert_eq!(stdout(&remote), stdout(&local), "{sql} as {principal}");
    stdout(&remote)
}

/// A TPC-H-shaped mesh: `sales.customers` (hash and partial masks for analysts),
/// `sales.orders` (analysts see open orders only) and `ops.lineitem`.
fn tpch_mesh(scheduler: u16, storage: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    write(&dir, "mesh.yaml", &format!("name: tpch\ncluster: {{ scheduler: \"127.0.0.1:{scheduler}\", run: all }}\n{storage}"));
    write(&dir, "principals.yaml", "principals:\n  - { name: ana, groups: [analysts] }\n");
    write(&dir, "domains/sales/domain.yaml", "name: sales\nowners: [group:sales]\n");
    write(&dir, "domains/ops/domain.yaml", "name: ops\nowners: [group:ops]\n");
    let nations = ["FRANCE", "GERMANY", "JAPAN", "KENYA", "PERU"];
    let mut customers = String::from("c_custkey,c_name,c_phone,c_nation\n");
    for k in 1..=300 {
        customers.push_str(&format!("{k},Customer#{k:09},{}-{:03}-{:03}-{:04},{}\n", 10 + k % 25, k * 7 % 1000, k * 13 % 1000, k * 31 % 10000, nations[k % 5]));
    }
    let mut orders = String::from("o_orderkey,o_custkey,o_status,o_total,o_date\n");
    for k in 1..=3000usize {
        let day = k % 365;
        orders.push_str(&format!("{k},{},{},{}.{:02},1995-{:02}-{:02}\n", k * 7 % 300 + 1, ["F", "O", "P"][k % 3], k * 37 % 100000, k % 100, day / 31 + 1, day % 28 + 1));
    }
    let mut lineitem = String::from("l_orderkey,l_linenumber,l_suppkey,l_quantity,l_price,l_discount\n");
    for i in 0..12000usize {
        lineitem.push_str(&format!("{},{},{},{},{}.{:02},0.0{}\n", i / 4 + 1, i % 4 + 1, i * 13 % 100, i % 50 + 1, 900 + i * 11 % 10000, i % 100, i % 10));
    }
    write(&dir, "data/customers.csv", &customers);
    write(&dir, "data/orders.csv", &orders);
    write(&dir, "data/lineitem.csv", &lineitem);
    write(
        &dir,
        "domains/sales/products/customers/product.yaml",
        "name: customers\ndomain: sales\nversion: 1.0.0\nowner: group:sales\ninputs:\n  - { name: raw, source: { kind: csv, path: data/customers.csv } }\ncontract:\n  primary_key: [c_custkey]\n  columns:\n    - { name: c_custkey, type: bigint, nullable: false }\n    - { name: c_name, type: string, nullable: false }\n    - { name: c_phone, type: string, nullable: false }\n    - { name: c_nation, type: string, nullable: false }\naccess:\n  readers: [group:analysts]\n  masks:\n    c_name: hash\n    c_phone: { kind: partial, keep_first: 3, keep_last: 0 }\n",
    );
    write(
        &dir,
        "domains/sales/products/orders/product.yaml",
        "name: orders\ndomain: sales\nversion: 1.0.0\nowner: group:sales\ninputs:\n  - { name: raw, source: { kind: csv, path: data/orders.csv } }\ncontract:\n  primary_key: [o_orderkey]\n  columns:\n    - { name: o_orderkey, type: bigint, nullable: false }\n    - { name: o_custkey, type: bigint, nullable: false }\n    - { name: o_status, type: string, nullable: false }\n    - { name: o_total, type: \"decimal(12,2)\", nullable: false }\n    - { name: o_date, type: date, nullable: false }\naccess:\n  readers: [group:analysts]\n  row_filter: \"o_status = 'O' OR principal.is_admin()\"\n",
    );
    write(
        &dir,
        "domains/ops/products/lineitem/product.yaml",
        "name: lineitem\ndomain: ops\nversion: 1.0.0\nowner: group:ops\ninputs:\n  - { name: raw, source: { kind: csv, path: data/lineitem.csv } }\ncontract:\n  primary_key: [l_orderkey, l_linenumber]\n  columns:\n    - { name: l_orderkey, type: bigint, nullable: false }\n    - { name: l_linenumber, type: bigint, nullable: false }\n    - { name: l_suppkey, type: bigint, nullable: false }\n    - { name: l_quantity, type: bigint, nullable: false }\n    - { name: l_price, type: \"decimal(12,2)\", nullable: false }\n    - { name: l_discount, type: \"decimal(4,2)\", nullable: false }\naccess:\n  readers: [group:analysts]\n",
    );
    (tmp, dir)
}

/// A scheduler and two executors on 127.0.0.1; executors report every second and the
/// scheduler gives a silent one's tasks to the other after six.
struct Cluster {
    scheduler: Process,
    executors: Vec<(Process, u16, u16)>,
}

impl Cluster {
    fn start(dir: &Path, scheduler_port: u16) -> Cluster {
        let bind = format!("127.0.0.1:{scheduler_port}");
        let scheduler = spawn(dir, &["scheduler", "--bind", &bind, "--executor-timeout", "6s"]);
        wait_listening(scheduler_port);
        let mut executors = Vec::new();
        for _ in 0..2 {
            let (flight, grpc) = (free_port(), free_port());
            let process = spawn(dir, &["executor", "--scheduler", &bind, "--port", &flight.to_string(), "--grpc-port", &grpc.to_string(), "--concurrency", "2", "--heartbeat", "1s"]);
            wait_listening(flight);
            executors.push((process, flight, grpc));
        }
        Cluster { scheduler, executors }
    }
}

/// Runs `sql` on the cluster until it succeeds (executors register with the scheduler a moment
/// after they listen).
fn warm_up(dir: &Path, sql: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = query(dir, "ana", sql, false);
        if output.status.success() {
            return;
        }
        assert!(Instant::now() < deadline, "the cluster never answered: {}", stderr(&output));
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn queries_run_on_a_ballista_cluster_with_the_same_answers_policies_and_audit_as_in_process() {
    let scheduler_port = free_port();
    let (_tmp, dir) = tpch_mesh(scheduler_port, "");
    ok(&dir, &["apply"]);

    // Without a scheduler: a clear error naming it, and `--local` still answers.
    let refused = query(&dir, "ana", "SELECT count(*) FROM ops.lineitem", false);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(&format!("the Ballista scheduler at `127.0.0.1:{scheduler_port}` did not answer (hint: start it with `meshwork cluster scheduler`")),
        "{}",
        stderr(&refused)
    );
    assert_eq!(stdout(&query(&dir, "ana", "SELECT count(*) AS n FROM ops.lineitem", true)), "n\n12000\n");

    let cluster = Cluster::start(&dir, scheduler_port);
    // Nothing of the cluster listens beyond 127.0.0.1 (Ballista's executor binds 0.0.0.0 by
    // default, and Ballista has no authentication).
    for port in [scheduler_port].into_iter().chain(cluster.executors.iter().flat_map(|(_, flight, grpc)| [*flight, *grpc])) {
        let addresses = listening_on(port);
        assert!(!addresses.is_empty() && addresses.iter().all(|a| a == "0100007F"), "port {port} listens on {addresses:?}");
    }
    warm_up(&dir, "SELECT count(*) FROM ops.lineitem");

    // TPC-H-shaped joins and aggregates, as the owner-less admin and as ana under policies.
    let pricing = "SELECT l_linenumber, count(*) AS n, sum(l_quantity) AS qty, sum(l_price * (1 - l_discount)) AS revenue, avg(l_discount) AS disc \
                   FROM ops.lineitem GROUP BY l_linenumber ORDER BY l_linenumber";
    let shipping = "SELECT c.c_name, count(*) AS lines, sum(l.l_price) AS revenue FROM sales.customers c \
                    JOIN sales.orders o ON o.o_custkey = c.c_custkey JOIN ops.lineitem l ON l.l_orderkey = o.o_orderkey \
                    WHERE o.o_date < DATE '1995-07-01' GROUP BY c.c_name ORDER BY revenue DESC, c.c_name LIMIT 10";
    let nations = "SELECT c.c_nation, count(DISTINCT o.o_orderkey) AS orders, max(o.o_total) AS largest FROM sales.customers c \
                   JOIN sales.orders o ON c.c_custkey = o.o_custkey GROUP BY c.c_nation ORDER BY c.c_nation";
    for principal in ["admin", "ana"] {
        for sql in [pricing, shipping, nations] {
            let answer = same_on_cluster(&dir, principal, sql);
            assert!(answer.lines().count() > 3, "{sql}: {answer}");
        }
    }
    assert_eq!(same_on_cluster(&dir, "admin", pricing).lines().nth(1).unwrap().split(',').nth(1), Some("3000"));

    // The row filter holds: ana sees open orders only, and a predicate on hidden rows finds none.
    assert_eq!(same_on_cluster(&dir, "ana", "SELECT o_status, count(*) AS n FROM sales.orders GROUP BY o_status ORDER BY o_status"), "o_status,n\nO,1000\n");
    assert_eq!(same_on_cluster(&dir, "admin", "SELECT o_status, count(*) AS n FROM sales.orders GROUP BY o_status ORDER BY o_status"), "o_status,n\nF,1000\nO,1000\nP,1000\n");
    assert_eq!(same_on_cluster(&dir, "ana", "SELECT count(*) AS n FROM sales.orders WHERE o_status = 'F'"), "n\n0\n");
    // Aggregates are computed from rows on the cluster too: Ballista's scheduler answers
    // aggregates from statistics where it can, and a filter's estimate claims an exact distinct
    // count of 1 for `col = constant` (see `tuning.rs`).
    for principal in ["admin", "ana"] {
        let none = "SELECT count(DISTINCT o_custkey) AS n, count(*) AS m, max(o_custkey) AS x FROM sales.orders WHERE o_custkey = 5 AND o_orderkey = 7";
        assert_eq!(same_on_cluster(&dir, principal, none), "n,m,x\n0,0,\n");
        let lines = "SELECT count(DISTINCT l_suppkey) AS a, count(DISTINCT l_quantity) AS b FROM ops.lineitem WHERE l_suppkey = 5 AND l_quantity = 7";
        assert_eq!(same_on_cluster(&dir, principal, lines), "a,b\n0,0\n");
    }
    // Masks are computed on the executors with the mesh's salt: the hash equals the local one
    // (checked by `same_on_cluster`) and is not the name.
    let masked = same_on_cluster(&dir, "ana", "SELECT c_custkey, c_name, c_phone FROM sales.customers WHERE c_custkey <= 2 ORDER BY c_custkey");
    let rows: Vec<Vec<&str>> = masked.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{masked}");
    assert!(rows[0][1].len() == 32 && rows[0][1].chars().all(|c| c.is_ascii_hexdigit()), "{masked}");
    assert_eq!(rows[0][2], "11-************", "{masked}");
    assert_eq!(same_on_cluster(&dir, "admin", "SELECT c_nation FROM sales.customers WHERE c_custkey = 1"), "c_nation\nGERMANY\n");

    // A server sends its statements to the cluster too, under the same policies.
    let token: serde_json::Value = serde_json::from_str(&ok(&dir, &["token", "create", "--principal", "ana", "--format", "json"])).unwrap();
    let server = super::replicas::Replica::start(&dir);
    let response = server.query(token["token"].as_str().unwrap(), "SELECT o_status, count(*) AS n FROM sales.orders GROUP BY o_status ORDER BY o_status");
    assert!(response.contains("\r\n\r\no_status,n\nO,1000\n") && !response.contains("F,"), "{response}");
    assert!(server.logged(ON_CLUSTER), "the server ran the statement in-process");
    server.kill();

    // Audit events are written as for local queries, with the decisions applied.
    let events: serde_json::Value = serde_json::from_str(&ok(&dir, &["audit", "--principal", "ana", "--format", "json", "--limit", "500"])).unwrap();
    let filtered = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["statement"].as_str().is_some_and(|s| s.contains("WHERE o_status = 'F'")) && e["outcome"] == "ok")
        .expect("the filtered count is audited");
    assert_eq!(filtered["rows"], 1);
    assert_eq!(filtered["products"][0]["product"], "sales.orders");
    assert_eq!(filtered["products"][0]["row_filters"], 1);

    // An executor killed mid-query: Ballista reruns its tasks on the other one (a retried
    // success) or the query fails with a clear error; it never answers wrongly.
    let heavy = "SELECT a.l_linenumber, count(*) AS pairs, sum((a.l_price * b.l_quantity) % 97) AS weight FROM ops.lineitem a JOIN ops.lineitem b ON a.l_linenumber = b.l_linenumber GROUP BY a.l_linenumber ORDER BY 1";
    let expected = stdout(&query(&dir, "ana", heavy, true));
    assert!(expected.starts_with("l_linenumber,pairs,weight\n"), "{expected}");
    let running = Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .args(["-C", dir.to_str().unwrap(), "--as", "ana", "query", heavy, "--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let Cluster { scheduler, mut executors } = cluster;
    let (mut killed, _, _) = executors.pop().unwrap();
    killed.0.kill().unwrap();
    let outcome = running.wait_with_output().unwrap();
    if outcome.status.success() {
        assert_eq!(stdout(&outcome), expected, "a retried query answered differently");
    } else {
        let error = stderr(&outcome);
        assert!(error.starts_with("error: the cluster could not finish the query:"), "{error}");
        assert!(!error.contains("panicked"), "{error}");
    }
    // With one executor left, queries still run on the cluster and answer alike.
    let shipped = same_on_cluster(&dir, "ana", shipping);
    assert!(shipped.lines().count() > 3, "{shipped}");
    assert_eq!(stdout(&query(&dir, "ana", heavy, false)), expected);

    // Per-query limits travel with the plan: a function that would build a value larger than a
    // query may hold is refused on the executor, as it is in-process.
    let huge = query(&dir, "ana", "SELECT max(length(repeat(c_nation, 2000000000))) FROM sales.customers", false);
    assert!(!huge.status.success());
    assert!(stderr(&huge).contains("resources exhausted: on the cluster:") && stderr(&huge).contains("`repeat` would build a value of more than"), "{}", stderr(&huge));

    // Statements without product files, and small ones under `run: large`, stay in-process.
    let catalog = query(&dir, "ana", "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'sales'", false);
    assert_eq!(stdout(&catalog), "n\n2\n");
    assert!(!stderr(&catalog).contains(ON_CLUSTER), "{}", stderr(&catalog));
    // Size-checked functions in join and sort keys (computed in a projection below the join,
    // or kept in-process where the key itself holds one: `distributed::codec` unit tests).
    for keyed in [
        "SELECT count(*) AS n FROM sales.customers a JOIN sales.customers b ON repeat(a.c_nation, 2) = repeat(b.c_nation, 2)",
        "SELECT c_custkey FROM sales.customers ORDER BY lpad(c_nation, 12), c_custkey LIMIT 3",
    ] {
        let (local, remote) = (query(&dir, "ana", keyed, true), query(&dir, "ana", keyed, false));
        assert!(remote.status.success(), "{keyed}: {}", stderr(&remote));
        assert_eq!(stdout(&remote), stdout(&local), "{keyed}");
    }
    let yaml = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
    std::fs::write(dir.join("mesh.yaml"), yaml.replace("run: all", "run: large, min_scan: 1GiB")).unwrap();
    let small = query(&dir, "ana", "SELECT count(*) AS n FROM ops.lineitem", false);
    assert_eq!(stdout(&small), "n\n12000\n");
    assert!(!stderr(&small).contains(ON_CLUSTER), "{}", stderr(&small));
    std::fs::write(dir.join("mesh.yaml"), yaml.replace("run: all", "run: large, min_scan: 1KiB")).unwrap();
    assert_eq!(same_on_cluster(&dir, "ana", "SELECT count(*) AS n FROM ops.lineitem"), "n\n12000\n");
    drop(executors);
    drop(scheduler);
}

#[test]
fn executors_read_product_files_in_object_storage() {
    let bucket = meshwork_storage::scratch::ScratchBucket::create("cluster").unwrap();
    let scheduler_port = free_port();
    let (_tmp, dir) = tpch_mesh(scheduler_port, &bucket.mesh_yaml("tpch"));
    ok(&dir, &["apply"]);
    let _cluster = Cluster::start(&dir, scheduler_port);
    warm_up(&dir, "SELECT count(*) FROM ops.lineitem");
    let joined = same_on_cluster(
        &dir,
        "ana",
        "SELECT c.c_nation, count(*) AS lines, sum(l.l_price) AS revenue FROM sales.customers c JOIN sales.orders o ON o.o_custkey = c.c_custkey \
         JOIN ops.lineitem l ON l.l_orderkey = o.o_orderkey GROUP BY c.c_nation ORDER BY c.c_nation",
    );
    assert_eq!(joined.lines().count(), 6, "{joined}");
    assert!(joined.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap()).sum::<u64>() == 4000, "{joined}");
}
