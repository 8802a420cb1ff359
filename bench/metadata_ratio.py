#!/usr/bin/env python3
"""Meshwork as a service (catalog in PostgreSQL, tables in S3) against the laptop defaults
(embedded SQLite, local disk), side by side.

Usage: bench/metadata_ratio.py BIN [RUNS] [QUERIES]

Three set-ups: `sqlite` (SQLite + local disk), `postgres` (PostgreSQL + local disk) and
`postgres+s3` (PostgreSQL + a bucket on the local S3 server the tests use: moto, from
target/py-venv, see crates/storage/scratch/s3_server.py).

1. A cold `meshwork apply` of the example mesh (120,000 orders), once per run on each set-up,
   interleaved so all see the same machine load: medians and the ratios to SQLite.
2. `meshwork serve` on each: QUERIES small HTTP queries (`SELECT count(*) FROM sales.orders`),
   one after another: median and p99 latency, and on PostgreSQL the catalog round trips per
   query, counted as transactions of the catalog database (`pg_stat_database.xact_commit`).

The PostgreSQL server is MESHWORK_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres);
a scratch database is created for each run and dropped after it.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

BIN = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
QUERIES = int(sys.argv[3]) if len(sys.argv) > 3 else 200
SERVER = os.environ.get("MESHWORK_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


def psql(sql, url=SERVER):
    return subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True, text=True).stdout.strip()


def database_url(name):
    return SERVER.rsplit("/", 1)[0] + "/" + name


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(os.environ.get("MESHWORK_TEST_VENV", os.path.join(ROOT, "target", "py-venv")), "bin", "python")
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "meshwork-test", "AWS_SECRET_ACCESS_KEY": "meshwork-test-secret", "MESHWORK_LOG": "warn"}
SETUPS = ("sqlite", "postgres", "postgres+s3")


class S3Server:
    """The tests' local S3 server (moto), for the lifetime of this script."""

    def __init__(self):
        script = open(os.path.join(ROOT, "crates", "storage", "scratch", "s3_server.py")).read()
        self.process = subprocess.Popen([VENV_PYTHON, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.endpoint = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def bucket(self, name):
        request = urllib.request.Request(f"{self.endpoint}/__meshwork/bucket", data=json.dumps({"bucket": name}).encode(), method="POST")
        urllib.request.urlopen(request).read()
        return f"storage:\n  url: s3://{name}/mesh\n  endpoint: {self.endpoint}\n  allow_http: true\n"


def fresh_mesh(work, name, setup, s3):
    mesh = os.path.join(work, name)
    subprocess.run([BIN, "init", mesh, "--example", "--orders", "120000", "--seed", "42"], check=True, capture_output=True)
    config_path = os.path.join(mesh, "mesh.yaml")
    config = open(config_path).read()
    if setup != "sqlite":
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(f"CREATE DATABASE {name}")
        config += f"\nmetadata: {database_url(name)}\n"
    if setup == "postgres+s3":
        config = config.replace("storage:\n  data_dir: .meshwork/data\n", s3.bucket(name.replace("_", "-")))
    open(config_path, "w").write(config)
    return mesh


def timed_apply(mesh):
    started = time.perf_counter()
    subprocess.run([BIN, "apply", mesh], check=True, capture_output=True, env=ENV)
    return time.perf_counter() - started


def serve_and_query(mesh, name, postgres):
    token = subprocess.run([BIN, "-C", mesh, "token", "create", "--principal", "gus"], check=True, capture_output=True, text=True, env=ENV).stdout.strip()
    server = subprocess.Popen([BIN, "-C", mesh, "serve", "--http-port", "0", "--flight-sql-port", "0", "--postgres-port", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    http = None
    for line in server.stderr:
        if line.strip().startswith("HTTP API"):
            http = line.split("http://", 1)[1].split("/", 1)[0]
            break
    body = json.dumps({"sql": "SELECT count(*) AS n FROM sales.orders"}).encode()

    def query():
        request = urllib.request.Request(f"http://{http}/api/v1/query", data=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "text/csv"})
        with urllib.request.urlopen(request) as response:
            response.read()

    for _ in range(20):
        query()
    before = int(psql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{name}'")) if postgres else 0
    latencies = []
    for _ in range(QUERIES):
        started = time.perf_counter()
        query()
        latencies.append(time.perf_counter() - started)
    time.sleep(1)  # pg_stat counters are flushed by the backends after a short delay
    after = int(psql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{name}'")) if postgres else 0
    server.terminate()
    server.wait()
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1], (after - before) / QUERIES


def db_name(setup, run):
    return f"mw_bench_{setup.replace('+', '_')}_{run}"


def main():
    work = tempfile.mkdtemp(prefix="meshwork-metadata-")
    s3 = S3Server()
    applies = {setup: [] for setup in SETUPS}
    try:
        for run in range(RUNS):
            for setup in SETUPS:
                mesh = fresh_mesh(work, db_name(setup, run), setup, s3)
                applies[setup].append(timed_apply(mesh))
                print(f"run {run + 1} {setup}: apply {applies[setup][-1]:.2f} s", flush=True)
        base = statistics.median(applies["sqlite"])
        for setup in SETUPS:
            m = statistics.median(applies[setup])
            print(f"apply, cold, example mesh (120,000 orders) on {setup}: median {m:.2f} s, ratio to sqlite {m / base:.3f}")
        for setup in SETUPS:
            name = db_name(setup, RUNS - 1)
            median, p99, trips = serve_and_query(os.path.join(work, name), name, setup != "sqlite")
            extra = f", catalog round trips per query {trips:.2f}" if setup != "sqlite" else ""
            print(f"HTTP query on {setup}: median {median * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms over {QUERIES} queries{extra}")
    finally:
        for run in range(RUNS):
            for setup in SETUPS[1:]:
                psql(f"DROP DATABASE IF EXISTS {db_name(setup, run)} WITH (FORCE)")
        s3.process.kill()
        shutil.rmtree(work, ignore_errors=True)


main()
