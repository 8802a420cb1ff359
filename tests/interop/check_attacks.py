"""Checks that `meshwork serve` holds against a hostile consumer, with the clients people use:
psql and psycopg (Postgres simple and extended protocol), ADBC Flight SQL (statements and
prepared statements), pyarrow.flight (DoGet tickets) and plain HTTP.

Usage: check_attacks.py PATH/TO/meshwork

Starts the policy fixture mesh like check_serve.py (tight limits: 4s, 64 MiB) and, as `ana`
(an EU analyst: orders filtered to EU, customers filtered and masked, finance.ledger hidden),
tries every attack class on every client: resource exhaustion (deep expression chains, huge
strings, arrays and series) while another client is served; statements that read or write
files; settings changes; metadata of hidden products; error and statistics oracles on filtered
rows and masked columns, on a stored product and on a virtual one served live from PostgreSQL;
EXPLAIN forms; name shadowing; streams cancelled mid-way, which the audit log records as
cancelled; and on aggregate-only and differentially private products (hr.salaries, hr.survey):
differencing, tiny groups, joins with row-readable products, error oracles, and averaging away
noise until the privacy budget is spent (also through the CLI).

Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_serve as serve  # noqa: E402 - the same server setup and client helpers

import psycopg  # noqa: E402
import pyarrow.flight as flight  # noqa: E402

# The machine's PostgreSQL, where a scratch database holds the virtual product's rows.
ADMIN_URL = os.environ.get("MESHWORK_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")

passed, failed = 0, 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}\n      {str(detail)[:600]}")


def answer(client, ports, token, sql):
    """("ok", rows) or ("error", message) for `sql` sent by `client`."""
    http_port, flight_port, pg_port = ports
    try:
        if client == "http":
            status, body = serve.http(http_port, "/api/v1/query", token, {"sql": sql})
            if status != 200:
                try:
                    error = json.loads(body)["error"]  # without the request id, which always differs
                    return "error", f"{status} {error['code']}: {error['message']}"
                except (ValueError, KeyError):
                    return "error", body.decode(errors="replace")
            doc = json.loads(body)
            names = [c["name"] for c in doc["columns"]]
            return "ok", [tuple(serve.norm(row[n]) for n in names) for row in doc["rows"]]
        if client == "psql":
            code, out, err = serve.psql(pg_port, token, sql)
            if code != 0 or "ERROR" in err:
                return "error", err
            return "ok", [tuple(None if v == "" else v for v in line.split("\t")) for line in out.splitlines()]
        if client in ("psycopg simple", "psycopg extended"):
            with serve.pg_connect(pg_port, token) as conn:
                # Without parameters psycopg sends the simple protocol; `prepare=True` sends
                # Parse/Bind/Execute (the extended protocol).
                cursor = conn.execute(sql, prepare=client == "psycopg extended")
                return "ok", serve.norm_rows(cursor.fetchall()) if cursor.description else []
        if client in ("adbc statement", "adbc prepared"):
            with serve.adbc_connect(flight_port, token) as conn, conn.cursor() as cur:
                if client == "adbc prepared":
                    cur.adbc_prepare(sql)
                cur.execute(sql)
                return "ok", serve.norm_rows(cur.fetchall())
        if client == "pyarrow.flight":
            return "ok", serve.pyarrow_rows(flight_port, token, sql)
    except Exception as err:  # noqa: BLE001 - any client error is the answer
        return "error", f"{type(err).__name__}: {err}"
    raise ValueError(client)


CLIENTS = ["http", "psql", "psycopg simple", "psycopg extended", "adbc statement", "adbc prepared", "pyarrow.flight"]


def refused(ports, token, sql, expected, clients=CLIENTS, label=None):
    for client in clients:
        kind, got = answer(client, ports, token, sql)
        text = str(got)
        check(
            f"{client}: {label or sql[:70]} is refused",
            kind == "error" and any(e in text for e in expected),
            f"{kind}: {text[:400]}",
        )


def answered(ports, token, sql, rows, clients=CLIENTS):
    for client in clients:
        got = answer(client, ports, token, sql)
        check(f"{client}: {sql[:70]}", got == ("ok", rows), f"{got!r} vs {rows!r}")


def chain(term, operator, terms):
    return operator.join([term] * terms)


def run_checks(binary, mesh, tokens, ports, work):
    ana, sam = tokens["ana"], tokens["sam"]
    nesting = ["nests more than 500 levels deep"]

    # 1. Resource exhaustion: an error naming the limit, while another client is served.
    for sql, expected in [
        (f"SELECT {chain('1', '+', 60000)}", nesting),
        (f"SELECT 1 WHERE {chain('true', ' AND ', 12000)}", nesting),
        (f"SELECT {chain(chr(39) + 'a' + chr(39), '||', 20000)}", nesting),
        ("SELECT repeat('x', 1000000000)", ["`repeat` would build a value of more than 64 MiB"]),
        ("SELECT length(lpad('x', 2000000000))", ["`lpad` would build"]),
        ("SELECT cardinality(array_repeat(1, 1000000000))", ["`array_repeat` would build"]),
        ("SELECT cardinality(range(1, 1000000000))", ["`range` would build"]),
        ("SELECT count(*) FROM generate_series(1, 1000000) a CROSS JOIN generate_series(1, 1000000) b", ["longer than the 4s limit", "resources exhausted"]),
    ]:
        others = []
        other = threading.Thread(target=lambda: others.append(answer("psycopg simple", ports, sam, "SELECT 42")))
        other.start()
        refused(ports, ana, sql, expected, label=f"{sql[:50]}… ({len(sql)} bytes)")
        other.join()
        check(f"another principal is served during `{sql[:40]}…`", others == [("ok", [("42",)])], others)
    long_sql = "SELECT 1 AS one" + " " * (1 << 20)
    refused(ports, ana, long_sql, ["bytes long, more than the 1024 KiB"], clients=["http", "psycopg simple", "psycopg extended", "adbc statement", "pyarrow.flight"], label="1 MiB of SQL")

    # 2. Statements that read or write files.
    leak = work / "leak.csv"
    for sql in [
        f"COPY (SELECT * FROM sales.orders) TO '{leak}'",
        f"CO/**/PY (SELECT 1) TO '{leak}'",
        f"SELECT 1; COPY (SELECT 1) TO '{leak}'",
        "CREATE EXTERNAL TABLE p (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
    ]:
        refused(ports, ana, sql, ["not allowed", "Expected", "syntax", "single SQL statement", "cannot insert multiple commands"])
    check("no refused statement wrote a file", not leak.exists())

    # 3. Settings changes (unquoted; the quoted Postgres form is tested with the connection rules).
    for sql in ["SET datafusion.execution.batch_size = 1", "SET datafusion.runtime.memory_limit = '100G'"]:
        refused(ports, ana, sql, ["`SET` is not allowed", "`SET datafusion.*` is not allowed", "engine settings are fixed by the server"])

    # 4. Metadata of products ana may not read.
    answered(ports, ana, "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_catalog = 'meshwork' AND table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1", [("hr.salaries",), ("hr.survey",), ("marketing.campaigns",), ("sales.customers",), ("sales.orders",), ("sales.orders_live",)])
    answered(ports, ana, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ledger'", [("0",)])
    answered(ports, ana, "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'ledger'", [("0",)], clients=["psql", "psycopg simple", "psycopg extended"])
    code, hidden_out, hidden_err = serve.psql(ports[2], ana, "\\d finance.ledger")
    code, missing_out, missing_err = serve.psql(ports[2], ana, "\\d finance.nope")
    check("psql: \\d of a hidden product answers like a missing one", (hidden_out, hidden_err.replace("ledger", "X")) == (missing_out, missing_err.replace("nope", "X")), hidden_err + missing_err)
    with serve.adbc_connect(ports[1], ana) as conn:
        schemas = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
    names = sorted(s["db_schema_name"] for c in schemas for s in c["catalog_db_schemas"] or [])
    check("adbc: GetDbSchemas lists only domains ana may read", names == ["hr", "marketing", "sales"], names)
    for statement in ["DESCRIBE", "SHOW COLUMNS FROM"]:
        for client in CLIENTS:
            hidden = answer(client, ports, ana, f"{statement} finance.ledger")
            missing = answer(client, ports, ana, f"{statement} finance.nope")
            check(f"{client}: {statement} of a hidden product answers like a missing one", hidden[0] == "error" and str(hidden[1]).replace("ledger", "X") == str(missing[1]).replace("nope", "X"), f"{hidden} vs {missing}")

    # 5. Error and statistics oracles on filtered rows and masked columns.
    answered(ports, ana, "SELECT order_id FROM sales.orders WHERE 1 / (amount - CAST(123.45 AS DECIMAL(10, 2))) <> 0 ORDER BY 1", [("101",), ("102",), ("104",)])
    answered(ports, ana, "SELECT count(*), min(order_id), max(order_id) FROM sales.orders", [("3", "101", "104")])
    answered(ports, ana, "SELECT count(*) FROM sales.customers WHERE email LIKE '%@%' OR name LIKE 'Alice%' OR regexp_like(card, '^4111')", [("0",)])
    answered(ports, ana, "SELECT customer_id FROM sales.customers ORDER BY name DESC", [("3",), ("1",)])

    # 5b. The same on a virtual product (sales.orders_live, served from PostgreSQL with the
    # policy of sales.orders): nothing ana writes reaches the database below the fence.
    answered(ports, ana, "SELECT order_id FROM sales.orders_live WHERE (order_id - 103) / (order_id - 103) = 1 ORDER BY 1", [("101",), ("102",), ("104",)])
    answered(ports, ana, "SELECT order_id FROM sales.orders_live WHERE 1 / (amount - CAST(123.45 AS DECIMAL(10, 2))) <> 0 ORDER BY 1", [("101",), ("102",), ("104",)])
    answered(ports, ana, "SELECT count(*), min(order_id), max(order_id), CAST(sum(amount) AS VARCHAR) FROM sales.orders_live", [("3", "101", "104", "75.50")])
    answered(ports, ana, "SELECT count(*) FROM sales.orders_live WHERE region <> 'EU'", [("0",)])
    for client in CLIENTS:
        kind, rows = answer(client, ports, ana, "EXPLAIN SELECT * FROM sales.orders_live WHERE amount > 1")
        text = str(rows)
        check(f"{client}: EXPLAIN of a virtual product shows the fence, not the remote SQL", kind == "ok" and "PolicyFence" in text and "RemoteScanExec" not in text and "EU" not in text, text[:300])
    answered(ports, sam, "SELECT count(*), CAST(sum(amount) AS VARCHAR) FROM sales.orders_live", [("6", "798.94")])

    # 6. EXPLAIN: the fence and nothing behind it; other forms are for administrators.
    for client in CLIENTS:
        kind, rows = answer(client, ports, ana, "EXPLAIN SELECT * FROM sales.customers")
        text = str(rows)
        check(f"{client}: EXPLAIN shows the fence only", kind == "ok" and "PolicyFence" in text and "EU" not in text and "mask_" not in text, text[:300])
    for sql in ["EXPLAIN VERBOSE SELECT * FROM sales.orders", "EXPLAIN FORMAT tree SELECT * FROM sales.orders", "EXPLAIN ANALYZE VERBOSE SELECT * FROM sales.orders"]:
        refused(ports, ana, sql, ["is not allowed for `ana`"])

    # 7. Name shadowing.
    answered(ports, ana, "WITH orders AS (SELECT 1 AS order_id) SELECT order_id FROM orders", [("1",)])
    answered(ports, ana, "SELECT count(*) FROM meshwork.SALES.\"orders\" WHERE region <> 'EU'", [("0",)])
    for sql in ["SELECT * FROM meshwork.finance.ledger", "WITH l AS (SELECT * FROM finance.ledger) SELECT * FROM l", "SELECT * FROM datafusion.finance.ledger"]:
        refused(ports, ana, sql, ["not found"])

    # 8. Streams cancelled mid-way are audited as cancelled; the server keeps going.
    endless = "SELECT * FROM generate_series(1, 100000000)"
    request = urllib.request.Request(f"http://127.0.0.1:{ports[0]}/api/v1/query", data=json.dumps({"sql": endless}).encode())
    request.add_header("Authorization", f"Bearer {sam}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "text/csv")
    held = urllib.request.urlopen(request, timeout=60)
    held.read(1024)
    held.close()
    client = flight.FlightClient(f"grpc://127.0.0.1:{ports[1]}")
    info = client.get_flight_info(flight.FlightDescriptor.for_command(serve.statement_command(endless)), serve.flight_options(sam))
    reader = client.do_get(info.endpoints[0].ticket, serve.flight_options(sam))
    reader.read_chunk()
    reader.cancel()
    client.close()
    interfaces = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and interfaces != {"http", "flight_sql"}:
        status, body = serve.http(ports[0], "/api/v1/audit?principal=sam&limit=50", tokens["admin"])
        interfaces = {e["interface"] for e in json.loads(body) if e["outcome"] == "cancelled"} if status == 200 else set()
        time.sleep(0.2)
    check("cancelled HTTP and Flight streams are audited as cancelled", interfaces == {"http", "flight_sql"}, interfaces)
    answered(ports, sam, "SELECT 5", [("5",)])

    aggregate_only(binary, mesh, tokens, ports)


def aggregate_only(binary, mesh, tokens, ports):
    """9. hr.salaries is aggregate-only for analysts (groups of 5+, name and email hidden);
    hr.survey answers them with differential privacy (ε 0.5 per answer, 1.5 a day)."""
    ana, gina = tokens["ana"], tokens["gina"]
    # Small groups are suppressed, identically on every client.
    answered(ports, ana, "SELECT department, count(*) AS n FROM hr.salaries GROUP BY department ORDER BY department", [("eng", "18"), ("hr", "5"), ("sales", "12")])
    # Tiny groups through filters on rare values: no row, exactly like a value that does not exist.
    answered(ports, ana, "SELECT count(*) FROM hr.salaries WHERE department = 'exec'", [])
    answered(ports, ana, "SELECT count(*) FROM hr.salaries WHERE department = 'nobody'", [])
    for sql, expected in [
        ("SELECT * FROM hr.salaries", ["its rows would reach the result"]),
        # Differencing on an identifier, and on a hidden column.
        ("SELECT sum(salary) FROM hr.salaries WHERE employee_id <> 7", ["`employee_id` identifies rows"]),
        ("SELECT count(*) FROM hr.salaries WHERE email <> 'ada1@corp.example'", ["column `email` is hidden"]),
        # Re-identification through a join with a product ana reads row by row.
        ("SELECT o.order_id, s.salary FROM hr.salaries s JOIN sales.orders o ON s.employee_id = o.customer_id", ["joined before it is aggregated"]),
        ("SELECT o.region, count(*) FROM hr.salaries s JOIN sales.orders o ON s.employee_id = o.customer_id GROUP BY o.region", ["joined before it is aggregated"]),
        # Singling out inside a group, row values from aggregates, LIMIT and windows.
        ("SELECT sum(CASE WHEN city = 'Paris' AND hired = DATE '2015-04-05' THEN salary END) FROM hr.salaries", ["not a column"]),
        ("SELECT array_agg(salary) FROM hr.salaries", ["returns values of single rows"]),
        ("SELECT avg(salary) FROM (SELECT salary FROM hr.salaries ORDER BY salary DESC LIMIT 1)", ["picks out single rows"]),
        ("SELECT salary, rank() OVER (ORDER BY salary) FROM hr.salaries", ["window functions return one value per row"]),
        # Error oracles: refused before any row is read, with one message whatever the data.
        ("SELECT count(*) FROM hr.salaries WHERE CASE WHEN city = 'Paris' AND salary = 71081 THEN 1/0 ELSE 1 END = 1", ["can fail on some rows"]),
        ("SELECT count(*) FROM hr.salaries WHERE CAST(city AS INT) > 0", ["can fail on some rows"]),
        ("EXPLAIN ANALYZE SELECT department, count(*) FROM hr.salaries GROUP BY department", ["`EXPLAIN ANALYZE` is not allowed"]),
    ]:
        refused(ports, ana, sql, expected)
    for client in CLIENTS:
        existing = answer(client, ports, ana, "SELECT count(*) FROM hr.salaries WHERE CASE WHEN city = 'Paris' THEN 1/0 ELSE 1 END = 1")
        absent = answer(client, ports, ana, "SELECT count(*) FROM hr.salaries WHERE CASE WHEN city = 'Atlantis' THEN 1/0 ELSE 1 END = 1")
        check(f"{client}: an error oracle answers the same for an existing and an absent value", existing[0] == "error" and str(existing[1]).replace("Paris", "X") == str(absent[1]).replace("Atlantis", "X"), f"{existing} vs {absent}")

    # Private answers: every client spends the same budget; the fourth answer is refused on all.
    survey = "SELECT count(*) FROM hr.survey WHERE team = 'a'"
    status, headers, body = http_with_headers(ports[0], gina, survey)
    privacy = headers.get_all("meshwork-privacy") or []
    check("http: a private answer says what it spent", status == 200 and len(privacy) == 1 and "product=hr.survey; epsilon=0.5; spent=0.5; budget=1.5" in privacy[0], f"{status} {privacy} {body[:200]}")
    noisy = int(json.loads(body)["rows"][0]["count(*)"])
    check("http: the private count is near 400, not exact", abs(noisy - 400) < 80, noisy)
    code, out, err = serve.psql(ports[2], gina, survey)
    check("psql: a private answer comes with a NOTICE of what it spent", code == 0 and "ε 0.5 spent; 1 of 1.5 used" in err, err)
    kind, rows = answer("adbc statement", ports, gina, survey)
    check("adbc: the third private answer is given", kind == "ok" and len(rows) == 1, rows)
    for client in CLIENTS:
        kind, got = answer(client, ports, gina, survey)
        check(f"{client}: averaging away the noise is stopped by the spent budget", kind == "error" and "the privacy budget of `gina` on `hr.survey` is spent: 1.5 of 1.5 used" in str(got), f"{kind}: {str(got)[:300]}")
    # Differencing a private count and a count without one row: refused on identifiers.
    refused(ports, gina, "SELECT count(*) FROM hr.survey WHERE respondent_id <> 17", ["`respondent_id` identifies rows"])

    # The CLI decides alike, reading the catalog itself.
    for sql, expected in [
        ("SELECT * FROM hr.salaries", "its rows would reach the result"),
        ("SELECT count(*) FROM hr.salaries WHERE CAST(city AS INT) > 0", "can fail on some rows"),
    ]:
        result = subprocess.run([binary, "-C", str(mesh), "query", "--as", "ana", sql], capture_output=True, text=True)
        check(f"cli: {sql[:60]} is refused", result.returncode != 0 and expected in result.stderr, result.stderr[-400:])
    result = subprocess.run([binary, "-C", str(mesh), "query", "--as", "ana", "--format", "csv", "SELECT department, count(*) AS n FROM hr.salaries GROUP BY department ORDER BY 1"], capture_output=True, text=True)
    check("cli: small groups are suppressed", result.returncode == 0 and result.stdout.splitlines() == ["department,n", "eng,18", "hr,5", "sales,12"], result.stdout + result.stderr)
    result = subprocess.run([binary, "-C", str(mesh), "query", "--as", "gina", survey], capture_output=True, text=True)
    check("cli: the spent budget refuses the CLI too", result.returncode != 0 and "is spent" in result.stderr, result.stderr[-300:])

    # Audit: refusals are `denied` with the rule; answers record the rule and ε.
    status, body = serve.http(ports[0], "/api/v1/audit?principal=gina&limit=100", tokens["admin"])
    events = json.loads(body) if status == 200 else []
    spent = [p for e in events if e["outcome"] == "ok" for p in e["products"] if p["product"] == "hr.survey"]
    check("audit: private answers record ε and the rule", len(spent) == 3 and all(p.get("epsilon") == 0.5 and "laplace noise" in p.get("aggregate", "") for p in spent), spent)
    denied = [e for e in events if e["outcome"] == "denied" and "privacy budget" in (e.get("error") or "")]
    check("audit: refusals for a spent budget are denied", len(denied) >= len(CLIENTS), len(denied))


def http_with_headers(port, token, sql):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/query", data=json.dumps({"sql": sql}).encode())
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def main():
    binary = str(Path(sys.argv[1]).resolve())
    work = Path(tempfile.mkdtemp(prefix="meshwork-attacks-"))
    mesh = work / "mesh"
    shutil.copytree(serve.FIXTURE, mesh)
    # The aggregate-only and private products (domain `hr`) of the query crate's tests.
    shutil.copytree(serve.FIXTURE.parent / "aggregate", mesh, dirs_exist_ok=True)
    # sales.orders_live: the rows of sales.orders served live from a scratch PostgreSQL database,
    # under the same access block.
    database = f"mw_attacks_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    with psycopg.connect(ADMIN_URL.rsplit("/", 1)[0] + "/" + database, autocommit=True) as db:
        db.execute("CREATE TABLE orders (order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, region text, amount numeric(10,2))")
        rows = [line.split(",") for line in (mesh / "data/orders.csv").read_text().splitlines()[1:]]
        db.cursor().executemany("INSERT INTO orders VALUES (%s, %s, %s, %s)", rows)
    orders = (mesh / "domains/sales/products/orders/product.yaml").read_text()
    live = orders.replace("name: orders\n", "name: orders_live\nvirtual: true\n").replace(
        "{ name: raw, source: { kind: csv, path: data/orders.csv } }", "{ name: raw, source: { kind: postgres, connection: shop, table: orders } }"
    )
    (mesh / "domains/sales/products/orders_live").mkdir()
    (mesh / "domains/sales/products/orders_live/product.yaml").write_text(live)
    with open(mesh / "mesh.yaml", "a") as f:
        f.write("\nserver:\n  query_timeout: 4s\n  query_memory: 64MiB\n  max_queries_per_principal: 4\n")
        # A password in the test server's URL goes to the environment, as mesh.yaml wants it.
        parts = urllib.parse.urlsplit(ADMIN_URL)
        user = f"{parts.username}@" if parts.username else ""
        secret = ""
        if parts.password:
            os.environ["SHOP_PASSWORD"] = urllib.parse.unquote(parts.password)
            secret = ", password_env: SHOP_PASSWORD"
        f.write(f"connections:\n  shop: {{ url: \"{parts.scheme}://{user}{parts.hostname}:{parts.port or 5432}/{database}\"{secret} }}\n")
    serve.meshwork(binary, mesh, "apply")
    tokens = {p: serve.token_for(binary, mesh, p)["token"] for p in ["ana", "sam", "admin", "gina"]}
    ports = (serve.free_port(), serve.free_port(), serve.free_port())
    log = open(work / "serve.log", "w")
    server = subprocess.Popen(
        [binary, "-C", str(mesh), "serve", "--http-port", str(ports[0]), "--flight-sql-port", str(ports[1]), "--postgres-port", str(ports[2])],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                if serve.http(ports[0], "/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            sys.exit(f"the server did not start:\n{(work / 'serve.log').read_text()}")
        run_checks(binary, mesh, tokens, ports, work)
        check("the server is still running after every attack", server.poll() is None, f"exit code {server.poll()}")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=20)
        check("SIGTERM stops the server cleanly", code == 0, f"exit code {code}")
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if failed:
            print((work / "serve.log").read_text()[-4000:])
    print(f"{passed} passed, {failed} failed")
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
