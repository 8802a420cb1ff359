"""Checks `meshwork serve` with the clients people use: psql, psycopg, ADBC Flight SQL,
pyarrow.flight and plain HTTP.

Usage: check_serve.py PATH/TO/meshwork

Copies the policy fixture mesh to a temporary directory, turns on OIDC (the test JWKS of
crates/server/tests/fixtures/oidc) and tight limits in its mesh.yaml, applies it, issues API
tokens with `meshwork token create`, and starts `meshwork serve` on free ports. Then:

- the same query matrix as two principals (ana: filtered and masked; sam: unmasked) over every
  client must equal `meshwork query --as NAME --format json`;
- every credential failure class is refused on every interface;
- a Flight SQL ticket replayed by another principal is refused; listings hide invisible products;
- a runaway query fails with a resource error, the per-principal limit refuses a second query
  across interfaces, a Postgres cancel request stops a query, and the server still answers;
- SIGTERM stops the server cleanly.

Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
"""

import decimal
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import jwt as pyjwt
import psycopg
import pyarrow.flight as flight
from served import free_port, http, meshwork, norm, norm_rows, reference, token_for

# ADBC warns that Flight SQL connections cannot leave autocommit; queries are read-only anyway.
warnings.filterwarnings("ignore", message="Cannot disable autocommit")

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "crates/query/tests/fixtures/mesh"
OIDC = ROOT / "crates/server/tests/fixtures/oidc"
ISSUER, AUDIENCE = "https://login.test.invalid/", "meshwork-interop"

MATRIX = [
    "SELECT order_id, region FROM sales.orders ORDER BY order_id",
    "SELECT customer_id, name, card, email, region FROM sales.customers ORDER BY customer_id",
    "SELECT region, count(*) AS n, sum(amount) AS total FROM sales.orders GROUP BY region ORDER BY region",
    "SELECT c.customer_id, count(*) AS n FROM sales.customers c JOIN sales.orders o ON o.customer_id = c.customer_id GROUP BY 1 ORDER BY 1",
]
PRINCIPALS = ["ana", "sam"]

passed, failed = 0, 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}\n      {detail}")



def http_rows(port, token, sql):
    status, body = http(port, "/api/v1/query", token, {"sql": sql})
    if status != 200:
        return f"HTTP {status}: {body[:300]!r}"
    doc = json.loads(body, parse_float=decimal.Decimal)
    names = [c["name"] for c in doc["columns"]]
    return [tuple(norm(row[n]) for n in names) for row in doc["rows"]]


def psql(port, password, sql):
    result = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "analyst", "-d", "meshwork", "-X", "-A", "-t", "-F", "\t", "-c", sql],
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"},
    )
    return result.returncode, result.stdout, result.stderr


def psql_rows(port, token, sql):
    code, out, err = psql(port, token, sql)
    if code != 0:
        return f"psql failed: {err}"
    return [tuple(None if v == "" else v for v in line.split("\t")) for line in out.splitlines()]


def pg_connect(port, password):
    return psycopg.connect(host="127.0.0.1", port=port, user="analyst", password=password, dbname="meshwork", connect_timeout=10, autocommit=True)


def psycopg_rows(port, token, sql):
    with pg_connect(port, token) as conn:
        return norm_rows(conn.execute(sql).fetchall())


def adbc_connect(port, token):
    return flightsql.connect(f"grpc://127.0.0.1:{port}", db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"})


def adbc_rows(port, token, sql):
    with adbc_connect(port, token) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return norm_rows(cur.fetchall())


def pb_string(field, text):
    data = text.encode() if isinstance(text, str) else text
    out, n = bytearray([field << 3 | 2]), len(data)
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + data


def statement_command(sql):
    """A Flight SQL CommandStatementQuery wrapped in protobuf Any, encoded by hand."""
    command = pb_string(1, sql)
    return pb_string(1, "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + pb_string(2, command)


def flight_options(token):
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())], timeout=60)


def pyarrow_rows(port, token, sql):
    client = flight.FlightClient(f"grpc://127.0.0.1:{port}")
    info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_command(sql)), flight_options(token))
    table = client.do_get(info.endpoints[0].ticket, flight_options(token)).read_all()
    return norm_rows(zip(*[col.to_pylist() for col in table.columns])) if table.num_columns else []


def signed_jwt(key, **claims):
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now, "preferred_username": "sam", **claims}
    return pyjwt.encode(body, (OIDC / key).read_text(), algorithm="RS256", headers={"kid": "test-key-1"})


def main():
    binary = str(Path(sys.argv[1]).resolve())
    work = Path(tempfile.mkdtemp(prefix="meshwork-serve-"))
    mesh = work / "mesh"
    shutil.copytree(FIXTURE, mesh)
    shutil.copy(OIDC / "jwks.json", mesh / "jwks.json")
    with open(mesh / "mesh.yaml", "a") as f:
        f.write(
            f"""
server:
  query_timeout: 4s
  query_memory: 64MiB
  max_queries_per_principal: 1
auth:
  oidc:
    issuer: {ISSUER}
    audience: {AUDIENCE}
    jwks: jwks.json
    algorithms: [RS256]
    principal_claim: preferred_username
"""
        )
    meshwork(binary, mesh, "apply")
    tokens = {p: token_for(binary, mesh, p)["token"] for p in ["ana", "sam", "admin"]}
    expired = token_for(binary, mesh, "ana", "1s")["token"]
    revoked = token_for(binary, mesh, "ana")
    meshwork(binary, mesh, "token", "revoke", revoked["id"])
    time.sleep(1.5)

    http_port, flight_port, pg_port = free_port(), free_port(), free_port()
    log = open(work / "serve.log", "w")
    server = subprocess.Popen(
        [binary, "-C", str(mesh), "serve", "--http-port", str(http_port), "--flight-sql-port", str(flight_port), "--postgres-port", str(pg_port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                if http(http_port, "/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            sys.exit(f"the server did not start:\n{(work / 'serve.log').read_text()}")
        run_checks(binary, mesh, tokens, expired, revoked["token"], http_port, flight_port, pg_port)
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=20)
        check("SIGTERM stops the server cleanly", code == 0, f"exit code {code}")
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
        if failed:
            print((work / "serve.log").read_text()[-4000:])
    print(f"{passed} passed, {failed} failed")
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


def run_checks(binary, mesh, tokens, expired, revoked, http_port, flight_port, pg_port):
    clients = {
        "http": lambda t, q: http_rows(http_port, t, q),
        "psql": lambda t, q: psql_rows(pg_port, t, q),
        "psycopg": lambda t, q: psycopg_rows(pg_port, t, q),
        "adbc": lambda t, q: adbc_rows(flight_port, t, q),
        "pyarrow.flight": lambda t, q: pyarrow_rows(flight_port, t, q),
    }
    # The same answers as the CLI, per principal, on every interface.
    for principal in PRINCIPALS:
        for i, sql in enumerate(MATRIX):
            expected = reference(binary, mesh, principal, sql)
            for name, rows in clients.items():
                try:
                    got = rows(tokens[principal], sql)
                except Exception as err:  # noqa: BLE001 - any client error is a failed check
                    got = f"{type(err).__name__}: {err}"
                check(f"{name} as {principal}: query {i + 1} equals the CLI", got == expected, f"got {got!r}\n      expected {expected!r}")
    # A JWT works like a token, on every interface.
    token = signed_jwt("signing_key.pem")
    for name, rows in clients.items():
        try:
            got = rows(token, MATRIX[0])
        except Exception as err:  # noqa: BLE001
            got = f"{type(err).__name__}: {err}"
        check(f"{name}: an OIDC JWT authenticates", got == reference(binary, mesh, "sam", MATRIX[0]), repr(got))

    # Every credential failure class is unauthenticated on every interface.
    bad = {
        "empty": "",
        "malformed": "not-a-token",
        "wrong secret": tokens["ana"][:-4] + "0000",
        "expired token": expired,
        "revoked token": revoked,
        "expired JWT": signed_jwt("signing_key.pem", exp=int(time.time()) - 3600),
        "JWT not valid yet (nbf)": signed_jwt("signing_key.pem", nbf=int(time.time()) + 3600),
        "wrong-audience JWT": signed_jwt("signing_key.pem", aud="someone-else"),
        "JWT from an unknown key": signed_jwt("foreign_key.pem"),
    }
    status, body = http(http_port, "/api/v1/whoami")
    check("http: a missing credential is refused", status == 401 and b"unauthenticated" in body, body)
    client = flight.FlightClient(f"grpc://127.0.0.1:{flight_port}")
    try:
        client.get_flight_info(flight.FlightDescriptor.for_command(statement_command("SELECT 1")))
        check("pyarrow.flight: a missing credential is refused", False, "no error")
    except flight.FlightUnauthenticatedError:
        check("pyarrow.flight: a missing credential is refused", True)
    for case, credential in bad.items():
        status, body = http(http_port, "/api/v1/query", body={"sql": "SELECT 1"}, raw_auth=f"Bearer {credential}")
        check(f"http: {case} is refused", status == 401 and json.loads(body)["error"]["code"] == "unauthenticated", body)
        # libpq does not even send an empty password: the refusal is the client's own.
        refused = ("unauthenticated", "no password supplied") if credential == "" else ("unauthenticated",)
        code, _, err = psql(pg_port, credential, "SELECT 1")
        check(f"psql: {case} is refused", code != 0 and any(r in err for r in refused), err)
        try:
            pg_connect(pg_port, credential).close()
            check(f"psycopg: {case} is refused", False, "connected")
        except psycopg.OperationalError as err:
            check(f"psycopg: {case} is refused", any(r in str(err) for r in refused), str(err))
        try:
            adbc_rows(flight_port, credential, "SELECT 1")
            check(f"adbc: {case} is refused", False, "no error")
        except Exception as err:  # noqa: BLE001
            check(f"adbc: {case} is refused", "nauthenticated" in str(err) or "UNAUTHENTICATED" in str(err), str(err))
        try:
            pyarrow_rows(flight_port, credential, "SELECT 1")
            check(f"pyarrow.flight: {case} is refused", False, "no error")
        except flight.FlightUnauthenticatedError:
            check(f"pyarrow.flight: {case} is refused", True)

    # A DoGet ticket is bound to the principal that planned it.
    client = flight.FlightClient(f"grpc://127.0.0.1:{flight_port}")
    info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_command(MATRIX[1])), flight_options(tokens["sam"]))
    try:
        client.do_get(info.endpoints[0].ticket, flight_options(tokens["ana"])).read_all()
        check("pyarrow.flight: a ticket replayed by another principal is refused", False, "ana read sam's ticket")
    except (flight.FlightError, KeyError) as err:  # pyarrow maps NOT_FOUND to ArrowKeyError
        check("pyarrow.flight: a ticket replayed by another principal is refused", "not found" in str(err), str(err))
    table = client.do_get(info.endpoints[0].ticket, flight_options(tokens["sam"])).read_all()
    rows = norm_rows(zip(*[col.to_pylist() for col in table.columns]))
    check("pyarrow.flight: the ticket works for its principal", rows == reference(binary, mesh, "sam", MATRIX[1]), rows)

    # Prepared statements with bound parameters, and server information.
    with adbc_connect(flight_port, tokens["sam"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT order_id, region FROM sales.orders WHERE order_id > $1 ORDER BY order_id", parameters=(102,))
        rows = norm_rows(cur.fetchall())
        info = conn.adbc_get_info()
    expected = reference(binary, mesh, "sam", "SELECT order_id, region FROM sales.orders WHERE order_id > 102 ORDER BY order_id")
    check("adbc: a prepared statement with a bound parameter", rows == expected, f"{rows} vs {expected}")
    check("adbc: GetSqlInfo names the server", info.get("vendor_name") == "Meshwork", info)

    # Listings hide invisible products.
    with adbc_connect(flight_port, tokens["ana"]) as conn:
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = sorted(t["table_name"] for c in objects for s in c["catalog_db_schemas"] or [] for t in s["db_schema_tables"] or [])
    check("adbc: GetObjects lists only what ana may read", tables == ["campaigns", "customers", "orders"], tables)
    code, out, err = psql(pg_port, tokens["ana"], "\\dt *.*")
    check("psql: \\dt hides finance.ledger from ana", code == 0 and "orders" in out and "ledger" not in out, out + err)
    code, out, _ = psql(pg_port, tokens["sam"], "\\d sales.orders")
    check("psql: \\d describes a product", code == 0 and "order_id" in out and "amount" in out, out)
    status, body = http(http_port, "/api/v1/products", tokens["ana"])
    ids = [p["id"] for p in json.loads(body)]
    check("http: product listing hides finance.ledger from ana", ids == ["marketing.campaigns", "sales.customers", "sales.orders"], ids)
    with pg_connect(pg_port, tokens["ana"]) as conn:
        names = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'finance'").fetchall()]
    check("psycopg: information_schema hides finance.ledger from ana", names == [], names)
    with pg_connect(pg_port, tokens["sam"]) as conn:
        rows = conn.execute("SELECT order_id FROM sales.orders WHERE amount > %s AND region = %s ORDER BY order_id", (decimal.Decimal("20"), "EU")).fetchall()
        expected = reference(binary, mesh, "sam", "SELECT order_id FROM sales.orders WHERE amount > 20 AND region = 'EU' ORDER BY order_id")
    check("psycopg: bound parameters (extended protocol)", norm_rows(rows) == expected, f"{rows} vs {expected}")

    # Limits: a runaway query fails with a resource error; the server keeps answering.
    runaway = "SELECT count(*) FROM generate_series(1, 1000000000000)"
    with pg_connect(pg_port, tokens["sam"]) as conn:
        try:
            conn.execute(runaway)
            check("psycopg: a runaway query is stopped", False, "it finished")
        except psycopg.errors.QueryCanceled as err:
            check("psycopg: a runaway query is stopped", "longer than the 4s limit" in str(err), str(err))
        check("psycopg: the connection still answers", conn.execute("SELECT 1").fetchone() == (1,))
    try:
        adbc_rows(flight_port, tokens["sam"], "SELECT * FROM generate_series(1, 100000000) ORDER BY 1 DESC")
        check("adbc: a query over the memory limit fails", False, "no error")
    except Exception as err:  # noqa: BLE001
        check("adbc: a query over the memory limit fails", "resources exhausted" in str(err), str(err))
    check("adbc: the server still answers", adbc_rows(flight_port, tokens["sam"], "SELECT 1 AS one") == [("1",)])

    # A Postgres cancel request stops a running query.
    with pg_connect(pg_port, tokens["ana"]) as conn:
        timer = threading.Timer(0.7, conn.cancel)
        started = time.monotonic()
        timer.start()
        try:
            conn.execute(runaway)
            check("psycopg: a cancel request stops the query", False, "it finished")
        except psycopg.errors.QueryCanceled as err:
            elapsed = time.monotonic() - started
            check("psycopg: a cancel request stops the query", elapsed < 3.5 and "limit" not in str(err), f"{elapsed:.1f}s: {err}")
        check("psycopg: the connection answers after a cancel", conn.execute("SELECT 2").fetchone() == (2,))

    # One query at a time per principal (max_queries_per_principal: 1), across interfaces.
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/api/v1/query", data=json.dumps({"sql": "SELECT * FROM generate_series(1, 50000000)"}).encode())
    request.add_header("Authorization", f"Bearer {tokens['sam']}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "text/csv")
    held = urllib.request.urlopen(request, timeout=60)
    held.read(1024)
    with pg_connect(pg_port, tokens["sam"]) as conn:
        try:
            conn.execute("SELECT 1")
            check("psycopg: a second concurrent query of sam is refused", False, "it ran")
        except psycopg.Error as err:
            check("psycopg: a second concurrent query of sam is refused", "too many queries" in str(err) and err.sqlstate == "53300", str(err))
    check("psycopg: other principals are not limited", psycopg_rows(pg_port, tokens["ana"], "SELECT 3") == [("3",)])
    held.close()
    deadline = time.monotonic() + 10
    answer = None
    while time.monotonic() < deadline:
        try:
            answer = psycopg_rows(pg_port, tokens["sam"], "SELECT 4")
            break
        except psycopg.Error:
            time.sleep(0.2)
    check("psycopg: sam can query again once the stream is closed", answer == [("4",)], answer)
    status, body = http(http_port, "/metrics")
    check("http: /metrics exposes query counters", status == 200 and b"meshwork_queries_total" in body, body[:200])

    check_settings(mesh, tokens, http_port, flight_port, pg_port)
    check_client_going_away(binary, mesh, tokens, http_port, pg_port)
    check_refusals_are_audited(tokens, http_port, flight_port, pg_port)
    check_revocation(binary, mesh, http_port, flight_port, pg_port)
    check_hidden_products(tokens, http_port)


# Engine settings, however spelled; run last among the checks that share connections, since a
# setting that got through would change the server for what follows.
ENGINE_SETTINGS = [
    "SET datafusion.execution.batch_size = 1",
    'SET "datafusion".execution.batch_size = 1',
    'SET "DataFusion"."Runtime".memory_limit = \'10G\'',
    'SET /* x */ "datafusion" . runtime . temp_directory = \'{spill}\'',
    'SET "datafusion.runtime.temp_directory" TO \'{spill}\'',
    'SET LOCAL "datafusion".explain.logical_plan_only = true',
    'SET SESSION "datafusion".explain.physical_plan_only TO true',
    'RESET "datafusion".execution.batch_size',
    "RESET ALL",
]


def check_settings(mesh, tokens, http_port, flight_port, pg_port):
    spill = mesh / "chosen-by-the-caller"
    statements = [sql.replace("{spill}", str(spill)) for sql in ENGINE_SETTINGS]
    with pg_connect(pg_port, tokens["sam"]) as conn:
        for sql in statements:
            try:
                conn.execute(sql)
                check(f"psycopg: `{sql}` is refused", False, "accepted")
            except psycopg.Error as err:
                check(f"psycopg: `{sql}` is refused", err.sqlstate == "42501" and "is not allowed" in str(err), str(err))
        try:
            conn.execute("SELECT * FROM generate_series(1, 100000000) ORDER BY 1 DESC")
            check("psycopg: the memory limit still holds after the refused settings", False, "it ran")
        except psycopg.Error as err:
            check("psycopg: the memory limit still holds after the refused settings", "resources exhausted" in str(err), str(err))
        for sql in ["SET client_encoding = 'UTF8'", "SET DateStyle = 'ISO, MDY'", "SET extra_float_digits = 3", "SET application_name = 'x'", "SET search_path = public"]:
            try:
                conn.execute(sql)
                check(f"psycopg: client setting `{sql}` passes", True)
            except psycopg.Error as err:
                check(f"psycopg: client setting `{sql}` passes", False, str(err))
    for sql in statements:
        code, _, err = psql(pg_port, tokens["sam"], sql)
        check(f"psql: `{sql}` is refused", code != 0 and "is not allowed" in err, err)
        status, body = http(http_port, "/api/v1/query", tokens["sam"], {"sql": sql})
        check(f"http: `{sql}` is refused", status == 400, body)
        try:
            adbc_rows(flight_port, tokens["sam"], sql)
            check(f"adbc: `{sql}` is refused", False, "accepted")
        except Exception as err:  # noqa: BLE001
            check(f"adbc: `{sql}` is refused", "not allowed" in str(err) or "not supported" in str(err) or "nsupported" in str(err), str(err))
    check("no interface created the caller's spill directory", not spill.exists(), str(spill))


def audit_outcome(http_port, admin, statement, timeout=30):
    """The outcome of the newest audit event of `statement` once it is no longer running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http(http_port, "/api/v1/audit?limit=200", admin)
        if status == 200:
            for event in json.loads(body):
                if event["statement"] == statement and event["outcome"] != "running":
                    return event["outcome"]
        time.sleep(0.2)
    return None


def check_client_going_away(binary, mesh, tokens, http_port, pg_port):
    # psql killed while the server computes the first row: cancelled, not left to the 4 s limit.
    sql = "SELECT count(*) AS killed FROM generate_series(1, 1000000000000)"
    process = subprocess.Popen(
        ["psql", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "analyst", "-d", "meshwork", "-X", "-c", sql],
        env={**os.environ, "PGPASSWORD": tokens["sam"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    process.kill()
    process.wait()
    outcome = audit_outcome(http_port, tokens["admin"], sql)
    check("psql killed mid-query: its query is cancelled", outcome == "cancelled", outcome)

    # A cancel request (psycopg's conn.cancel(), psql's Ctrl-C) while the statement computes its
    # first rows. (Cancelling a psycopg `stream()` that reads row by row while the server streams
    # is not yet reliable: see docs/serving.md; the Rust wire test covers a fast reader.)
    sql = "SELECT count(*) AS cancelled FROM generate_series(1, 1000000000000)"
    with pg_connect(pg_port, tokens["sam"]) as conn:
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        try:
            conn.execute(sql)
            check("psycopg: a cancel request stops a running query", False, "it finished")
        except psycopg.errors.QueryCanceled as err:
            check("psycopg: a cancel request stops a running query", "user request" in str(err), str(err))
        timer.join()
        check("psycopg: the connection answers after a cancel", conn.execute("SELECT 5").fetchone() == (5,))
    outcome = audit_outcome(http_port, tokens["admin"], sql)
    check("psycopg: the cancelled query is audited as cancelled", outcome == "cancelled", outcome)


def check_refusals_are_audited(tokens, http_port, flight_port, pg_port):
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/api/v1/query", data=json.dumps({"sql": "SELECT * FROM generate_series(1, 50000000)"}).encode())
    request.add_header("Authorization", f"Bearer {tokens['sam']}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "text/csv")
    held = urllib.request.urlopen(request, timeout=60)
    held.read(1024)
    refused = {}
    try:
        with pg_connect(pg_port, tokens["sam"]) as conn:
            conn.execute("SELECT 'refused on postgres' AS r")
    except psycopg.Error as err:
        refused["postgres"] = "too many queries" in str(err)
    try:
        adbc_rows(flight_port, tokens["sam"], "SELECT 'refused on flight' AS r")
    except Exception as err:  # noqa: BLE001
        refused["flight_sql"] = "too many queries" in str(err)
    status, _ = http(http_port, "/api/v1/query", tokens["sam"], {"sql": "SELECT 'refused on http' AS r"})
    refused["http"] = status == 429
    held.close()
    check("every interface refuses sam's second query", refused == {"postgres": True, "flight_sql": True, "http": True}, refused)
    status, body = http(http_port, "/api/v1/audit?principal=sam&limit=50", tokens["admin"])
    events = {(e["interface"], e["statement"]): e["outcome"] for e in json.loads(body)} if status == 200 else {}
    for interface in ["postgres", "flight_sql", "http"]:
        statement = f"SELECT 'refused on {interface.split('_')[0]}' AS r"
        check(f"{interface}: a query refused by the limit is audited", events.get((interface, statement)) == "refused", events.get((interface, statement)))


def check_revocation(binary, mesh, http_port, flight_port, pg_port):
    issued = token_for(binary, mesh, "ana")
    conn = pg_connect(pg_port, issued["token"])
    prepared = pg_connect(pg_port, issued["token"])
    sql = "SELECT order_id FROM sales.orders ORDER BY order_id"
    conn.execute(sql).fetchall()
    prepared.execute(sql, prepare=True).fetchall()
    flight_conn = adbc_connect(flight_port, issued["token"])
    with flight_conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
    meshwork(binary, mesh, "token", "revoke", issued["id"])
    for name, c, kwargs in [("psycopg", conn, {}), ("psycopg prepared", prepared, {"prepare": True})]:
        try:
            c.execute(sql, **kwargs).fetchall()
            check(f"{name}: an open connection loses a revoked token's rights", False, "it still answers")
        except psycopg.Error as err:
            check(f"{name}: an open connection loses a revoked token's rights", "revoked" in str(err), str(err))
        finally:
            c.close()
    try:
        with flight_conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
        check("adbc: an open connection loses a revoked token's rights", False, "it still answers")
    except Exception as err:  # noqa: BLE001
        check("adbc: an open connection loses a revoked token's rights", "revoked" in str(err), str(err))
    finally:
        flight_conn.close()


def check_hidden_products(tokens, http_port):
    for after in [0, 1]:
        hidden = http(http_port, f"/api/v1/events?product=finance.ledger&after={after}", tokens["ana"])
        missing = http(http_port, f"/api/v1/events?product=finance.nope&after={after}", tokens["ana"])
        check(f"http: events of a hidden product answer like a missing one (after={after})", hidden == missing, f"{hidden} vs {missing}")


if __name__ == "__main__":
    main()
