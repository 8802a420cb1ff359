"""Checks product evolution with the clients people use: a deprecated kept major
(`sales.orders_v1` beside `sales.orders` 2.0.0) warns on every interface, subscription
webhooks are delivered by `meshwork serve`, and after the sunset the product reads as not found
with the successor named, for those who could read it only.

Usage: check_evolution.py PATH/TO/meshwork

Copies the policy fixture mesh, keeps major 1 of `sales.orders` as `sales.orders_v1`
(deprecated, sunset 2099-12-31) and publishes `sales.orders` 2.0.0, applies, and serves it:

- the warning reaches psql (stderr `WARNING:`), psycopg (notice handler, simple and extended
  protocol), ADBC Flight SQL (result schema metadata), pyarrow.flight (response header and
  schema metadata), HTTP (`Meshwork-Deprecation`, `Sunset`, `Link` headers and the JSON
  `deprecations` field) and the CLI (stderr); a current product carries none;
- a subscription made over HTTP with a webhook receives the product's events, signed;
- once the sunset date is past, every client gets "not found" with the successor for ana, and the
  plain "not found" for olga, who could never read it.

Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
"""

import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_serve as serve  # noqa: E402 - the same client helpers
from served import Checks, Server, meshwork, token_for  # noqa: E402

import psycopg  # noqa: E402
import pyarrow.flight as flight  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "crates/query/tests/fixtures/mesh"
WARNING = "`sales.orders_v1` is deprecated and is no longer served from 2099-12-31; move to `sales.orders`"
GONE = "`sales.orders_v1` is no longer served since its sunset on 2020-01-01; read its successor `sales.orders`"
OLD = "SELECT count(*) AS n FROM sales.orders_v1"
NEW = "SELECT count(*) AS n FROM sales.orders"

check = Checks()


def keep_major_one(mesh, sunset):
    """`sales.orders` 2.0.0, with major 1 kept as the deprecated `sales.orders_v1`."""
    orders = mesh / "domains/sales/products/orders/product.yaml"
    text = orders.read_text()
    if "version: 1.0.0" in text:
        kept = mesh / "domains/sales/products/orders_v1/product.yaml"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(text.replace("name: orders\n", "name: orders_v1\n") + f"status: deprecated\nsunset: {sunset}\nsuccessor: sales.orders\n")
        orders.write_text(text.replace("version: 1.0.0", "version: 2.0.0"))
    else:
        kept = mesh / "domains/sales/products/orders_v1/product.yaml"
        kept.write_text(kept.read_text().replace("sunset: 2099-12-31", f"sunset: {sunset}"))


class Receiver:
    """A webhook endpoint on a free port recording every POST (headers and body)."""

    def __init__(self):
        self.posts = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, kind, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for headers, body in self.posts:
                if {k.lower(): v for k, v in headers.items()}.get("x-meshwork-event") == kind:
                    return headers, body
            time.sleep(0.3)
        return None


def http_query(port, token, sql, accept="application/json"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/query", data=json.dumps({"sql": sql}).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", accept)
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def psycopg_notices(port, token, sql, params=None):
    notices = []
    with serve.pg_connect(port, token) as conn:
        conn.add_notice_handler(lambda diag: notices.append((diag.severity, diag.sqlstate, diag.message_primary)))
        conn.execute(sql, params, prepare=params is not None).fetchall()
    return notices


def adbc_metadata(port, token, sql):
    with serve.adbc_connect(port, token) as conn, conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
        return (table.schema.metadata or {}).get(b"meshwork.deprecation", b"").decode()


class HeaderCapture(flight.ClientMiddlewareFactory):
    def __init__(self):
        self.headers = {}

    def start_call(self, info):
        factory = self

        class Middleware(flight.ClientMiddleware):
            def received_headers(self, headers):
                factory.headers.update(headers)

        return Middleware()


def pyarrow_deprecation(port, token, sql):
    capture = HeaderCapture()
    client = flight.FlightClient(f"grpc://127.0.0.1:{port}", middleware=[capture])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(serve.statement_command(sql)), serve.flight_options(token))
    table = client.do_get(info.endpoints[0].ticket, serve.flight_options(token)).read_all()
    header = capture.headers.get("x-meshwork-deprecation", [])
    metadata = (table.schema.metadata or {}).get(b"meshwork.deprecation", b"").decode()
    return header, metadata


def deprecation_checks(binary, mesh, server, tokens):
    ana = tokens["ana"]
    # CLI
    result = subprocess.run([binary, "-C", str(mesh), "--as", "ana", "query", "--format", "csv", OLD], capture_output=True, text=True)
    check("cli: the deprecation warning is on stderr", result.returncode == 0 and f"warning: {WARNING}" in result.stderr, result.stderr)
    result = subprocess.run([binary, "-C", str(mesh), "--as", "ana", "query", "--format", "csv", NEW], capture_output=True, text=True)
    check("cli: a current product has no warning", result.returncode == 0 and result.stderr == "", result.stderr)

    # HTTP
    status, headers, body = http_query(server.http_port, ana, OLD)
    doc = json.loads(body) if status == 200 else {}
    check("http: Meshwork-Deprecation header", headers.get_all("Meshwork-Deprecation") == [WARNING], dict(headers))
    check("http: Sunset header (RFC 8594)", headers.get("Sunset") == "Thu, 31 Dec 2099 00:00:00 GMT", dict(headers))
    check("http: Link to the successor", '</api/v1/products/sales.orders>; rel="successor-version"' in (headers.get("Link") or ""), dict(headers))
    check(
        "http: JSON `deprecations` field",
        doc.get("deprecations") == [{"product": "sales.orders_v1", "sunset": "2099-12-31", "successor": "sales.orders", "message": WARNING}] and len(doc.get("rows", [])) == 1,
        body[:400],
    )
    status, headers, body = http_query(server.http_port, ana, OLD, accept="application/vnd.apache.arrow.stream")
    import pyarrow.ipc as ipc

    schema = ipc.open_stream(body).schema if status == 200 else None
    check("http: Arrow IPC schema metadata", schema is not None and (schema.metadata or {}).get(b"meshwork.deprecation", b"").decode() == WARNING, str(schema))
    status, headers, body = http_query(server.http_port, ana, NEW)
    check("http: no deprecation headers for a current product", status == 200 and headers.get("Meshwork-Deprecation") is None and b"deprecations" not in body, dict(headers))

    # Postgres wire
    code, out, err = serve.psql(server.pg_port, ana, OLD)
    check("psql prints the WARNING", code == 0 and f"WARNING:  {WARNING}" in err and out.strip() == "3", f"{code} {out!r} {err!r}")
    code, out, err = serve.psql(server.pg_port, ana, NEW)
    check("psql: no warning for a current product", code == 0 and "WARNING" not in err, err)
    check.attempt("psycopg: notice (simple protocol)", lambda: ((n := psycopg_notices(server.pg_port, ana, OLD)) == [("WARNING", "01P01", WARNING)], n))
    check.attempt(
        "psycopg: notice (extended protocol, prepared)",
        lambda: ((n := psycopg_notices(server.pg_port, ana, OLD + " WHERE order_id > %s", (0,))) == [("WARNING", "01P01", WARNING)], n),
    )
    check.attempt("psycopg: no notice for a current product", lambda: ((n := psycopg_notices(server.pg_port, ana, NEW)) == [], n))

    # Flight SQL
    check.attempt("adbc: schema metadata carries the warning", lambda: ((m := adbc_metadata(server.flight_port, ana, OLD)) == WARNING, m))
    check.attempt("adbc: nothing for a current product", lambda: ((m := adbc_metadata(server.flight_port, ana, NEW)) == "", m))
    check.attempt("pyarrow.flight: header and schema metadata", lambda: ((r := pyarrow_deprecation(server.flight_port, ana, OLD)) == ([WARNING], WARNING), r))


def subscription_checks(binary, mesh, server, tokens, receiver):
    status, body = serve.http(server.http_port, "/api/v1/products/sales.orders_v1/subscriptions", tokens["ana"], {"webhook": receiver.url, "events": ["product.published", "product.sunset"]})
    sub = json.loads(body) if status == 201 else {}
    check("http: ana subscribes with a webhook (201, secret once)", status == 201 and len(sub.get("secret") or "") == 64, body[:300])
    status, body = serve.http(server.http_port, "/api/v1/products/sales.orders_v1/subscriptions", tokens["olga"], {})
    check("http: olga cannot subscribe to what she cannot see (404)", status == 404, body[:300])
    status, body = serve.http(server.http_port, "/api/v1/subscriptions", tokens["ana"])
    check("http: ana lists her subscription", status == 200 and [s["product"] for s in json.loads(body)] == ["sales.orders_v1"], body[:300])
    return sub.get("secret", "")


def main():
    binary = str(Path(sys.argv[1]).resolve())
    work = Path(tempfile.mkdtemp(prefix="meshwork-evolution-"))
    mesh = work / "mesh"
    shutil.copytree(FIXTURE, mesh)
    meshwork(binary, mesh, "apply")
    keep_major_one(mesh, "2099-12-31")
    meshwork(binary, mesh, "apply")
    tokens = {p: token_for(binary, mesh, p)["token"] for p in ["ana", "olga", "admin"]}
    receiver = Receiver()
    server = Server(binary, mesh, work / "serve.log")
    try:
        deprecation_checks(binary, mesh, server, tokens)
        secret = subscription_checks(binary, mesh, server, tokens, receiver)

        # The sunset passes: the apply that publishes it emits events the subscriber receives.
        keep_major_one(mesh, "2020-01-01")
        meshwork(binary, mesh, "apply")
        delivered = receiver.wait_for("product.sunset")
        check("webhook: the subscriber receives product.sunset", delivered is not None, [h.get("X-Meshwork-Event") for h, _ in receiver.posts])
        if delivered:
            headers, body = delivered
            headers = {k.lower(): v for k, v in headers.items()}
            expected = "sha256=" + hmac.new(secret.encode(), f"{headers['x-meshwork-timestamp']}.".encode() + body, hashlib.sha256).hexdigest()
            check("webhook: signed with the subscription's secret", headers.get("x-meshwork-signature") == expected, headers)
            check("webhook: only sales.orders_v1 events", all(json.loads(b)["product"] == "sales.orders_v1" for _, b in receiver.posts), receiver.posts)

        # Not served any more.
        ana, olga = tokens["ana"], tokens["olga"]
        code, out, err = serve.psql(server.pg_port, ana, OLD)
        check("psql: sunset product is not found, with the successor", code != 0 and GONE in err, err)
        code, out, err = serve.psql(server.pg_port, olga, OLD)
        check("psql: olga gets the plain not found", code != 0 and "not found" in err and "sunset" not in err, err)
        status, _, body = http_query(server.http_port, ana, OLD)
        check("http: sunset product is 404 with the successor", status == 404 and GONE in body.decode(), body[:300])
        status, _, body = http_query(server.http_port, olga, OLD)
        check("http: olga gets the plain 404", status == 404 and b"sunset" not in body, body[:300])

        def adbc_error(token):
            try:
                serve.adbc_rows(server.flight_port, token, OLD)
                return "no error"
            except Exception as err:  # noqa: BLE001 - the driver's error is what is checked
                return str(err)

        check.attempt("adbc: sunset product is not found, with the successor", lambda: (GONE in (e := adbc_error(ana)), e))
        check.attempt("adbc: olga gets the plain not found", lambda: ("sunset" not in (e := adbc_error(olga)) and "not found" in e, e))
        check.attempt("psycopg: sunset product is not found", lambda: (False, "no error") if not (e := _psycopg_error(server.pg_port, ana)) else (GONE in e, e))
        table = mesh / ".meshwork/data/sales/orders_v1/_delta_log"
        check("its data is kept until purge", table.is_dir(), str(table))
    finally:
        code = server.stop()
        check("SIGTERM stops the server cleanly", code == 0, f"exit code {code}")
        receiver.server.shutdown()
    if check.failed:
        print(server.log_tail())
    sys.exit(check.summary())


def _psycopg_error(port, token):
    try:
        with serve.pg_connect(port, token) as conn:
            conn.execute(OLD).fetchall()
    except psycopg.Error as err:
        return str(err)
    return ""


if __name__ == "__main__":
    main()
