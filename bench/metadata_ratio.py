#!/usr/bin/env python3
"""Meshwork with its catalog in PostgreSQL against the embedded SQLite file, side by side.

Usage: bench/metadata_ratio.py BIN [RUNS] [QUERIES]

1. A cold `meshwork apply` of the example mesh (120,000 orders), once per run on each backend,
   interleaved so both see the same machine load: medians and the ratio PostgreSQL / SQLite.
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


def fresh_mesh(work, name, postgres):
    mesh = os.path.join(work, name)
    subprocess.run([BIN, "init", mesh, "--example", "--orders", "120000", "--seed", "42"], check=True, capture_output=True)
    if postgres:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(f"CREATE DATABASE {name}")
        with open(os.path.join(mesh, "mesh.yaml"), "a") as f:
            f.write(f"\nmetadata: {database_url(name)}\n")
    return mesh


def timed_apply(mesh):
    started = time.perf_counter()
    subprocess.run([BIN, "apply", mesh], check=True, capture_output=True)
    return time.perf_counter() - started


def serve_and_query(mesh, name, postgres):
    token = subprocess.run([BIN, "-C", mesh, "token", "create", "--principal", "gus"], check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([BIN, "-C", mesh, "serve", "--http-port", "0", "--flight-sql-port", "0", "--postgres-port", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "MESHWORK_LOG": "warn"})
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


def main():
    work = tempfile.mkdtemp(prefix="meshwork-metadata-")
    applies = {"sqlite": [], "postgres": []}
    try:
        for run in range(RUNS):
            for backend in ("sqlite", "postgres"):
                name = f"mw_bench_{backend}_{run}"
                mesh = fresh_mesh(work, name, backend == "postgres")
                applies[backend].append(timed_apply(mesh))
                print(f"run {run + 1} {backend}: apply {applies[backend][-1]:.2f} s", flush=True)
        s, p = statistics.median(applies["sqlite"]), statistics.median(applies["postgres"])
        print(f"apply, cold, example mesh (120,000 orders): SQLite median {s:.2f} s, PostgreSQL median {p:.2f} s, ratio {p / s:.3f}")
        for backend in ("sqlite", "postgres"):
            name = f"mw_bench_{backend}_{RUNS - 1}"
            median, p99, trips = serve_and_query(os.path.join(work, name), name, backend == "postgres")
            extra = f", catalog round trips per query {trips:.2f}" if backend == "postgres" else ""
            print(f"HTTP query on {backend}: median {median * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms over {QUERIES} queries{extra}")
    finally:
        for run in range(RUNS):
            psql(f"DROP DATABASE IF EXISTS mw_bench_postgres_{run} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)


main()
