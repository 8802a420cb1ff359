"""Meshwork's benchmark harness: Meshwork side by side with DuckDB, raw DataFusion and PostgreSQL.

Run it through `bench/run.sh`, which installs the peers and builds the binaries:

    bench/run.sh [tpch|settings|service|ingest|transport|control|all ...] [--sf 1] [--runs 5]

Suites
- tpch: the 22 TPC-H queries (data from tpchgen-cli) on DuckDB over the Parquet files, plain
  DataFusion over the same files (in its default configuration, and "tuned": with the session
  settings Meshwork runs with), and Meshwork over products `tpch.*` published from them by
  `meshwork apply`: as an owner (no policies) and as a non-owner analyst (row filters on
  customer and orders, masks on c_phone and c_address, from an access policy), in-process and
  over Flight SQL. The governed run is compared with tuned DataFusion running the same filters
  and masks written by hand as views. Each query's peak RSS is read too (VmHWM reset before it).
- aggregate: aggregates over lineitem by a row reader, an aggregate-only reader (groups of 25+
  rows) and a differentially private reader (Laplace noise, budget charged per statement), as
  ratios of the same statements: the cost of the shape check, the suppression and the noise.
- settings: plain DataFusion over the TPC-H files under session-setting variants (join and
  aggregation repartitioning, partitions, batch size, filter pushdown), as ratios against the
  default configuration; `--variants` picks them. Not part of `all`.
- service: the TPC-H products applied and queried with the catalog in PostgreSQL and the tables
  in a bucket of a local S3 server (moto) vs SQLite and local disk, as ratios.
- ingest: lineitem CSV to a published product (contract + quality rules) vs DuckDB
  `COPY ... TO parquet` vs deltalake-python `write_deltalake`.
- transport: lineitem streamed over Flight SQL (ADBC), Postgres wire (psycopg binary `SELECT`,
  `COPY … TO STDOUT` text and binary) and HTTP Arrow IPC, vs PostgreSQL `COPY TO STDOUT` (text
  and binary) and `SELECT` of the same rows.
- control: access decisions, catalog search at 10k/100k products, `validate`/`plan` of a
  1,000-product mesh.

Every system runs in its own process. Measurements are interleaved (each query on every system
in turn, the order rotated each run), after warm-up runs; medians, minima and maxima are
reported. Raw JSON and a markdown report go to bench/results/. Nothing here asserts a time.
"""

import argparse
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "bench" / "tpch" / "queries"
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
EUROPE = "6, 7, 19, 22, 23"  # n_nationkey of the nations of region EUROPE
ORDERS_SINCE = "1994-01-01"


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid):
    """Peak resident memory of a running process (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def reset_peak_rss(pid):
    """Starts a new peak for `peak_rss_mb` (Linux: writing 5 to clear_refs resets VmHWM), so
    each query's own peak can be read after it. False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def stats(samples):
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": samples}


def run_checked(cmd, **kwargs):
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if out.returncode != 0:
        sys.exit(f"error: `{' '.join(map(str, cmd))}` failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def timed_child(cmd, **kwargs):
    """Runs a command to completion; returns (wall seconds, CPU seconds, peak RSS MB, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"error: `{' '.join(map(str, cmd))}` failed (exit {proc.returncode}):\n{stdout}\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


# ---------------------------------------------------------------------------------------------
# Data and the TPC-H mesh


def tpch_data(ctx):
    """Generates (once per scale factor) the Parquet tables and the lineitem CSV."""
    data = ctx.data / f"sf{ctx.sf:g}"
    parquet, csv = data / "parquet", data / "csv"
    if not (parquet / "lineitem.parquet").exists():
        log(f"generating TPC-H SF{ctx.sf:g} Parquet with tpchgen-cli")
        shutil.rmtree(parquet, ignore_errors=True)
        run_checked([ctx.tpchgen, "parquet", "-s", str(ctx.sf), "-o", str(parquet)])
    if ctx.needs_csv and not (csv / "lineitem.csv").exists():
        log(f"generating TPC-H SF{ctx.sf:g} lineitem CSV with tpchgen-cli")
        shutil.rmtree(csv, ignore_errors=True)
        run_checked([ctx.tpchgen, "csv", "-s", str(ctx.sf), "-T", "lineitem", "-o", str(csv)])
    return parquet, csv


def column_types(parquet_file):
    """The contract columns of a tpchgen Parquet file, in Meshwork's type names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = []
    for field in pq.read_schema(parquet_file):
        t = field.type
        if pa.types.is_int64(t):
            ty = "bigint"
        elif pa.types.is_int32(t):
            ty = "int"
        elif pa.types.is_decimal(t):
            ty = f"decimal({t.precision},{t.scale})"
        elif pa.types.is_date32(t):
            ty = "date"
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
            ty = "string"
        elif pa.types.is_floating(t):
            ty = "double"
        else:
            sys.exit(f"error: column `{field.name}` of `{parquet_file}` has type {t}, which the harness does not map")
        names.append((field.name, ty))
    return names


# Applied to non-members of the owning domain by the governance guild, like any access policy.
TPCH_ACCESS_POLICY = f"""# Access policy of the benchmark mesh: analysts outside the tpch domain see European
# customers only, orders from {ORDERS_SINCE} on, and contact details masked.
package meshwork.access.tpch_analysts

member if {{
\tsome d in input.principal.domains
\td == input.product.domain
}}

row_filters contains "c_nationkey IN ({EUROPE})" if {{
\tnot member
\tinput.product.name == "customer"
}}

row_filters contains "o_orderdate >= DATE '{ORDERS_SINCE}'" if {{
\tnot member
\tinput.product.name == "orders"
}}

masks[column] := mask if {{
	not member
	input.product.name == "customer"
	some column, mask in {{"c_phone": {{"kind": "partial", "keep_last": 4}}, "c_address": "hash"}}
}}
"""


def write_tpch_mesh(ctx, parquet, name="tpch-mesh", settings="", env=None):
    """A mesh whose domain `tpch` publishes one product per TPC-H table from the Parquet files.
    `settings` are more `mesh.yaml` lines (metadata, storage); a mesh with settings is always
    published afresh, and its apply timed as `facts[name + "_apply"]`."""
    mesh = ctx.work / name
    if not settings and (mesh / ".meshwork").exists() and (mesh / "applied").read_text() == str(parquet):
        return mesh
    shutil.rmtree(mesh, ignore_errors=True)
    (mesh / "policies").mkdir(parents=True)
    # The server's per-query memory limit (1 GiB by default, no spilling) is raised so that the
    # Flight SQL run measures the engine, as the in-process workers (no limit) do, at SF10 too.
    (mesh / "mesh.yaml").write_text('name: tpch-bench\npolicies:\n  descriptions_required: "off"\n  classification_required: "off"\n'
                                    'server:\n  query_memory: 16GiB\n' + settings)
    (mesh / "principals.yaml").write_text(
        "principals:\n  - { name: owner }\n  - { name: analyst, groups: [analysts] }\n"
    )
    (mesh / "policies" / "tpch_analysts.rego").write_text(TPCH_ACCESS_POLICY)
    domain = mesh / "domains" / "tpch"
    domain.mkdir(parents=True)
    (domain / "domain.yaml").write_text("name: tpch\nowners: [user:owner]\n")
    (mesh / "data").symlink_to(parquet)
    for table in TABLES:
        columns = "\n".join(
            f"    - {{ name: {name}, type: \"{ty}\", nullable: false }}" for name, ty in column_types(parquet / f"{table}.parquet")
        )
        product = domain / "products" / table
        product.mkdir(parents=True)
        (product / "product.yaml").write_text(
            f"name: {table}\ndomain: tpch\nversion: 1.0.0\nowner: user:owner\n"
            f"inputs:\n  - {{ name: raw, source: {{ kind: parquet, path: data/{table}.parquet }} }}\n"
            f"contract:\n  columns:\n{columns}\n"
            "access:\n  readers: [group:analysts]\n"
        )
    log(f"publishing the TPC-H products with `meshwork apply` ({name})")
    wall, cpu, rss, _ = timed_child([ctx.meshwork, "-C", str(mesh), "apply"], env={**os.environ, **(env or {})})
    ctx.facts["tpch_apply" if name == "tpch-mesh" else f"{name}_apply"] = {"seconds": wall, "cpu_seconds": cpu, "peak_rss_mb": rss}
    (mesh / "applied").write_text(str(parquet))
    return mesh


# ---------------------------------------------------------------------------------------------
# SQL workers


class Worker:
    """One system answering SQL in its own process (see bench/workers.py)."""

    def __init__(self, name, cmd, rss_pid=None, env=None):
        self.name = name
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
        )
        ready = self.proc.stdout.readline()
        if not ready or not json.loads(ready).get("ready"):
            sys.exit(f"error: worker `{name}` did not start (`{' '.join(map(str, cmd))}`)")
        self.rss_pid = rss_pid or self.proc.pid
        # The highest peak seen before a reset, so the process's peak survives per-query resets.
        self.peak_seen = 0.0

    def run(self, sql):
        self.proc.stdin.write(json.dumps({"sql": sql}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer["ms"], answer["rows"]

    def peak_rss_mb(self):
        return max(self.peak_seen, peak_rss_mb(self.rss_pid) or 0.0)

    def run_with_peak(self, sql):
        """`run`, and the process's peak RSS while it ran (None where it cannot be reset)."""
        self.peak_seen = self.peak_rss_mb()
        fresh = reset_peak_rss(self.rss_pid)
        ms, n = self.run(sql)
        peak = peak_rss_mb(self.rss_pid)
        self.peak_seen = max(self.peak_seen, peak or 0.0)
        return ms, n, peak if fresh else None

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Server:
    """`meshwork serve` on free ports, with a token for `principal`."""

    def __init__(self, ctx, mesh, principal):
        self.token = json.loads(
            run_checked([ctx.meshwork, "-C", str(mesh), "token", "create", "--principal", principal, "--format", "json"])
        )["token"]
        self.http, self.flight, self.pg = free_port(), free_port(), free_port()
        self.proc = subprocess.Popen(
            [ctx.meshwork, "-C", str(mesh), "serve", "--http-port", str(self.http), "--flight-sql-port", str(self.flight),
             "--postgres-port", str(self.pg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MESHWORK_LOG": "warn"},
        )
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http}/health", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("error: `meshwork serve` did not become healthy within 60 s")

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def governed_views():
    """The analyst's policy written by hand for plain DataFusion: same filters, same masks."""
    partial = "concat(repeat('*', character_length(c_phone) - 4), right(c_phone, 4))"
    hashed = "encode(sha256(concat('salt', c_address)), 'hex')"
    return {
        "customer": f"SELECT c_custkey, c_name, {hashed} AS c_address, c_nationkey, {partial} AS c_phone, c_acctbal, "
        f"c_mktsegment, c_comment FROM raw.customer WHERE c_nationkey IN ({EUROPE})",
        "orders": f"SELECT * FROM raw.orders WHERE o_orderdate >= DATE '{ORDERS_SINCE}'",
    }


def datafusion_setup(ctx, parquet, governed):
    lines = ["CREATE SCHEMA tpch;"]
    if governed:
        lines.append("CREATE SCHEMA raw;")
    views = governed_views() if governed else {}
    for table in TABLES:
        location = f"{parquet / table}.parquet".replace("'", "''")
        schema = "raw" if governed else "tpch"
        lines.append(f"CREATE EXTERNAL TABLE {schema}.{table} STORED AS PARQUET LOCATION '{location}';")
        if governed:
            lines.append(f"CREATE VIEW tpch.{table} AS {views.get(table, f'SELECT * FROM raw.{table}')};")
    path = ctx.work / ("datafusion-governed.sql" if governed else "datafusion.sql")
    path.write_text("\n".join(lines) + "\n")
    return path


def tpch_queries(ctx):
    """The TPC-H queries to run: all 22, or those `--queries` names."""
    queries = {p.stem: p.read_text() for p in sorted(QUERIES.glob("q*.sql"))}
    return {k: v for k, v in queries.items() if k in ctx.queries} if ctx.queries else queries


def interleaved(ctx, label, workers, queries, around=None):
    """Runs every query on every worker, warm-up runs first, rotating the order each run so no
    system always goes first after another. Returns (times ms per worker and query over the
    measured runs, row counts per worker and query). `around(worker, query, run)` may wrap a
    single execution."""
    times = {w.name: {q: [] for q in queries} for w in workers}
    rows = {w.name: {} for w in workers}
    peaks = {w.name: {} for w in workers}
    total = ctx.warmup + ctx.runs
    for run in range(total):
        log(f"{label} run {run + 1}/{total}{' (warm-up)' if run < ctx.warmup else ''}")
        for q, sql in queries.items():
            for w in workers[run % len(workers):] + workers[: run % len(workers)]:
                def execute(w=w, sql=sql):
                    ms, n, peak = w.run_with_peak(sql)
                    if peak is not None:
                        peaks[w.name][q] = max(peaks[w.name].get(q, 0.0), peak)
                    return ms, n
                ms, n = around(w, q, execute) if around else execute()
                rows[w.name][q] = n
                if run >= ctx.warmup:
                    times[w.name][q].append(ms)
    # Each query's peak RSS (max over its runs), kept on the context for the suite's report.
    ctx.query_peaks = peaks
    return times, rows


def compare(queries, workers, times, rows, groups, pairs):
    """The report of a suite of SQL workers: per-query statistics, totals, row-count mismatches
    within each group of comparable systems, and the ratios of medians of each pair `(a, b)` as
    `a / b`, per query and as a geometric mean."""
    mismatches = []
    for group in groups:
        for q in queries:
            counts = {name: rows[name][q] for name in group}
            if len(set(counts.values())) != 1:
                mismatches.append({"query": q, "rows": counts})
    per_query = {name: {q: stats(v) for q, v in by_q.items()} for name, by_q in times.items()}

    def ratio(a, b):
        return {q: per_query[a][q]["median"] / per_query[b][q]["median"] for q in queries}

    return {
        "queries": list(queries),
        "systems": [w.name for w in workers],
        "per_query": per_query,
        "rows": rows,
        "ratios": {f"{a} / {b}": {"per_query": ratio(a, b), "geomean": geomean(ratio(a, b).values())} for a, b in pairs},
        "totals_ms": {name: sum(per_query[name][q]["median"] for q in queries) for name in times},
        "mismatches": mismatches,
    }


def suite_tpch(ctx):
    parquet, _ = tpch_data(ctx)
    mesh = write_tpch_mesh(ctx, parquet)
    queries = tpch_queries(ctx)
    server = Server(ctx, mesh, "analyst")
    python = sys.executable
    workers = []
    try:
        workers = [
            Worker("duckdb", [python, str(ROOT / "bench" / "workers.py"), "duckdb", str(parquet)]),
            Worker("datafusion", [ctx.bench, "sql-worker", "--setup", str(datafusion_setup(ctx, parquet, False))]),
            Worker("datafusion (tuned)", [ctx.bench, "sql-worker", "--meshwork-settings", "--setup", str(datafusion_setup(ctx, parquet, False))]),
            Worker("meshwork", [ctx.bench, "sql-worker", "--mesh", str(mesh), "--as", "owner"], env={"MESHWORK_LOG": "warn"}),
            Worker("datafusion+views (tuned)", [ctx.bench, "sql-worker", "--meshwork-settings", "--setup", str(datafusion_setup(ctx, parquet, True))]),
            Worker("meshwork governed", [ctx.bench, "sql-worker", "--mesh", str(mesh), "--as", "analyst"], env={"MESHWORK_LOG": "warn"}),
            Worker(
                "meshwork governed (Flight SQL)",
                [python, str(ROOT / "bench" / "workers.py"), "flightsql", f"grpc://127.0.0.1:{server.flight}", server.token],
                rss_pid=server.proc.pid,
            ),
        ]
        times, rows = interleaved(ctx, "tpch", workers, queries)
        rss = {w.name: w.peak_rss_mb() for w in workers}
    finally:
        for w in workers:
            w.close()
        server.close()

    # The same answers: row counts must agree within each group of comparable systems.
    groups = (["duckdb", "datafusion", "datafusion (tuned)", "meshwork"], ["datafusion+views (tuned)", "meshwork governed", "meshwork governed (Flight SQL)"])
    pairs = [
        ("meshwork", "datafusion (tuned)"),
        ("meshwork", "datafusion"),
        ("meshwork", "duckdb"),
        ("meshwork governed", "datafusion+views (tuned)"),
        ("meshwork governed", "meshwork"),
        ("meshwork governed (Flight SQL)", "meshwork governed"),
        ("datafusion", "duckdb"),
        ("datafusion (tuned)", "duckdb"),
    ]
    return {
        **compare(queries, workers, times, rows, groups, pairs),
        "peak_rss_mb": rss,
        "query_peak_mb": ctx.query_peaks,
        "policy": {"customer": f"c_nationkey IN ({EUROPE}); c_phone partial(keep_last 4); c_address hash", "orders": f"o_orderdate >= {ORDERS_SINCE}"},
    }


# DataFusion session settings (goal 5 of issue 18): each variant is plain DataFusion over the same
# files with `SET` statements run first, every variant its own worker, runs interleaved.

SETTINGS_VARIANTS = {
    "default": [],
    "repartition_joins=false": ["SET datafusion.optimizer.repartition_joins = false"],
    "repartition_aggregations=false": ["SET datafusion.optimizer.repartition_aggregations = false"],
    "target_partitions=4": ["SET datafusion.execution.target_partitions = 4"],
    "batch_size=16384": ["SET datafusion.execution.batch_size = 16384"],
    "pushdown_filters": ["SET datafusion.execution.parquet.pushdown_filters = true",
                         "SET datafusion.execution.parquet.reorder_filters = true"],
    "repartition_joins=false+batch_size=16384": ["SET datafusion.optimizer.repartition_joins = false",
                                                 "SET datafusion.execution.batch_size = 16384"],
    "repartition_joins=false+target_partitions=4": ["SET datafusion.optimizer.repartition_joins = false",
                                                    "SET datafusion.execution.target_partitions = 4"],
}


def suite_settings(ctx):
    """Plain DataFusion under each of `SETTINGS_VARIANTS` (or those `--variants` names)."""
    parquet, _ = tpch_data(ctx)
    queries = tpch_queries(ctx)
    base = datafusion_setup(ctx, parquet, False).read_text()
    chosen = ctx.variants or list(SETTINGS_VARIANTS)
    if len(set(chosen)) != len(chosen):
        sys.exit("error: a settings variant is named twice in `--variants`")
    for name in chosen:
        if name not in SETTINGS_VARIANTS:
            sys.exit(f"error: unknown settings variant `{name}`; choose from {', '.join(SETTINGS_VARIANTS)}")
    workers = []
    try:
        for name in chosen:
            setup = ctx.work / f"settings-{len(workers)}.sql"
            setup.write_text("".join(f"{s};\n" for s in SETTINGS_VARIANTS[name]) + base)
            workers.append(Worker(name, [ctx.bench, "sql-worker", "--setup", str(setup)]))
        times, rows = interleaved(ctx, "settings", workers, queries)
        rss = {w.name: w.peak_rss_mb() for w in workers}
    finally:
        for w in workers:
            w.close()
    per_query = {name: {q: stats(v) for q, v in by_q.items()} for name, by_q in times.items()}
    mismatches = [{"query": q, "rows": {n: rows[n][q] for n in chosen}} for q in queries if len({rows[n][q] for n in chosen}) != 1]
    first = chosen[0]
    ratios = {}
    for name in chosen[1:]:
        r = {q: per_query[name][q]["median"] / per_query[first][q]["median"] for q in queries}
        ratios[name] = {"per_query": r, "geomean": geomean(r.values()), "faster": sum(v < 1 for v in r.values())}
    return {
        "queries": list(queries),
        "systems": chosen,
        "statements": {n: SETTINGS_VARIANTS[n] for n in chosen},
        "per_query": per_query,
        "ratios": ratios,
        "totals_ms": {n: sum(per_query[n][q]["median"] for q in queries) for n in chosen},
        "peak_rss_mb": rss,
        "query_peak_mb": ctx.query_peaks,
        "mismatches": mismatches,
    }


# ---------------------------------------------------------------------------------------------
# Meshwork as a service: PostgreSQL metadata and S3 storage vs SQLite and local disk

S3_ENV = {"AWS_ACCESS_KEY_ID": "meshwork-test", "AWS_SECRET_ACCESS_KEY": "meshwork-test-secret"}


def pg_url(dsn, database):
    fields = dict(part.split("=", 1) for part in dsn.split())
    return f"postgres://{fields.get('user', 'postgres')}@{fields.get('host', '127.0.0.1')}:{fields.get('port', '5432')}/{database}"


def suite_service(ctx):
    """The TPC-H products published and queried with the catalog in PostgreSQL and the tables in
    a bucket of the tests' local S3 server (moto, crates/storage/scratch/s3_server.py) against
    the laptop defaults (SQLite, local disk)."""
    import psycopg

    parquet, _ = tpch_data(ctx)
    script = (ROOT / "crates" / "storage" / "scratch" / "s3_server.py").read_text()
    s3 = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    endpoint = f"http://127.0.0.1:{int(s3.stdout.readline())}"
    bucket = f"tpch-service-{os.getpid()}"
    request = urllib.request.Request(f"{endpoint}/__meshwork/bucket", data=json.dumps({"bucket": bucket}).encode(), method="POST")
    urllib.request.urlopen(request).read()
    database = "mw_bench_service"
    with psycopg.connect(ctx.pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    settings = f"metadata: {pg_url(ctx.pg_dsn, database)}\nstorage:\n  url: s3://{bucket}/tpch\n  endpoint: {endpoint}\n  allow_http: true\n"
    queries = tpch_queries(ctx)
    workers = []
    try:
        local = write_tpch_mesh(ctx, parquet, "tpch-local", "storage:\n  data_dir: .meshwork/data\n")
        service = write_tpch_mesh(ctx, parquet, "tpch-service", settings, env=S3_ENV)
        env = {"MESHWORK_LOG": "warn", **S3_ENV}
        workers = [
            Worker("meshwork (SQLite, disk)", [ctx.bench, "sql-worker", "--mesh", str(local), "--as", "owner"], env=env),
            Worker("meshwork (PostgreSQL, S3)", [ctx.bench, "sql-worker", "--mesh", str(service), "--as", "owner"], env=env),
        ]
        requests = {}

        def bucket_stats():
            request = urllib.request.Request(f"{endpoint}/__meshwork/stats", data=json.dumps({"bucket": bucket}).encode(), method="POST")
            return json.loads(urllib.request.urlopen(request).read() or b"{}")

        def counted(worker, q, run_query):
            # The requests and bytes of the S3 set-up's last run of each query, as the server counts them.
            bucket_stats()
            result = run_query()
            if worker is workers[1]:
                requests[q] = bucket_stats()
            return result

        times, rows = interleaved(ctx, "service", workers, queries, around=counted)
    finally:
        for w in workers:
            w.close()
        s3.kill()
        with psycopg.connect(ctx.pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    per_query = {name: {q: stats(v) for q, v in by_q.items()} for name, by_q in times.items()}
    a, b = "meshwork (PostgreSQL, S3)", "meshwork (SQLite, disk)"
    ratio = {q: per_query[a][q]["median"] / per_query[b][q]["median"] for q in queries}
    return {
        "queries": list(queries),
        "systems": [a, b],
        "per_query": per_query,
        "ratio": {"per_query": ratio, "geomean": geomean(ratio.values())},
        "apply": {"local": ctx.facts["tpch-local_apply"], "service": ctx.facts["tpch-service_apply"]},
        "requests": requests,
        "mismatches": [q for q in queries if rows[a][q] != rows[b][q]],
    }


# ---------------------------------------------------------------------------------------------
# Ingest


INGEST_DUCKDB = """
import sys, time, duckdb
csv, out, columns = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.perf_counter()
duckdb.sql(f"COPY (SELECT * FROM read_csv('{csv}', header = true, columns = {columns})) TO '{out}' (FORMAT parquet)")
print(time.perf_counter() - started)
"""

INGEST_DELTALAKE = """
import sys, time, json
import pyarrow as pa, pyarrow.csv as pacsv
from deltalake import write_deltalake
csv, out, columns = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
types = {"bigint": pa.int64(), "int": pa.int32(), "date": pa.date32(), "string": pa.string()}
def arrow(t):
    if t.startswith("decimal"):
        p, s = t[len("decimal("):-1].split(",")
        return pa.decimal128(int(p), int(s))
    return types[t]
started = time.perf_counter()
table = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(column_types={n: arrow(t) for n, t in columns}))
write_deltalake(out, table, mode="overwrite")
print(time.perf_counter() - started)
"""

DUCKDB_TYPES = {"bigint": "BIGINT", "int": "INTEGER", "date": "DATE", "string": "VARCHAR"}


def suite_ingest(ctx):
    parquet, csv = tpch_data(ctx)
    source = csv / "lineitem.csv"
    size_mb = source.stat().st_size / 1e6
    columns = column_types(parquet / "lineitem.parquet")
    contract = "\n".join(f"    - {{ name: {n}, type: \"{t}\", nullable: false }}" for n, t in columns)
    quality = """quality:
  - { rule: not_null, column: l_orderkey }
  - { rule: not_null, column: l_partkey }
  - { rule: range, column: l_quantity, min: 1, max: 50 }
  - { rule: accepted_values, column: l_returnflag, values: [A, N, R] }
  - { rule: row_count, min: 1 }
"""
    duck_columns = "{" + ", ".join(f"'{n}': '{DUCKDB_TYPES.get(t, t.upper())}'" for n, t in columns) + "}"
    out = ctx.work / "ingest"

    def meshwork_run():
        mesh = out / "meshwork"
        shutil.rmtree(mesh, ignore_errors=True)
        product = mesh / "domains" / "tpch" / "products" / "lineitem"
        product.mkdir(parents=True)
        (mesh / "mesh.yaml").write_text('name: ingest-bench\npolicies:\n  descriptions_required: "off"\n  classification_required: "off"\n')
        (mesh / "principals.yaml").write_text("principals:\n  - { name: owner }\n")
        (mesh / "domains" / "tpch" / "domain.yaml").write_text("name: tpch\nowners: [user:owner]\n")
        (mesh / "data").symlink_to(csv)
        (product / "product.yaml").write_text(
            "name: lineitem\ndomain: tpch\nversion: 1.0.0\nowner: user:owner\n"
            "inputs:\n  - { name: raw, source: { kind: csv, path: data/lineitem.csv } }\n"
            f"contract:\n  columns:\n{contract}\n{quality}"
        )
        wall, cpu, rss, _ = timed_child([ctx.meshwork, "-C", str(mesh), "apply"])
        return wall, cpu, rss

    def duckdb_run():
        target = out / "duckdb.parquet"
        target.unlink(missing_ok=True)
        wall, cpu, rss, _ = timed_child([sys.executable, "-c", INGEST_DUCKDB, str(source), str(target), duck_columns])
        return wall, cpu, rss

    def deltalake_run():
        target = out / "deltalake"
        shutil.rmtree(target, ignore_errors=True)
        wall, cpu, rss, _ = timed_child([sys.executable, "-c", INGEST_DELTALAKE, str(source), str(target), json.dumps(columns)])
        return wall, cpu, rss

    systems = {"meshwork apply": meshwork_run, "duckdb COPY": duckdb_run, "deltalake-python write_deltalake": deltalake_run}
    samples = {name: [] for name in systems}
    total = ctx.warmup + ctx.runs
    for run in range(total):
        log(f"ingest run {run + 1}/{total}{' (warm-up)' if run < ctx.warmup else ''}")
        names = list(systems)
        names = names[run % len(names):] + names[: run % len(names)]
        for name in names:
            result = systems[name]()
            if run >= ctx.warmup:
                samples[name].append(result)
    shutil.rmtree(out, ignore_errors=True)
    result = {}
    for name, runs in samples.items():
        wall = stats([r[0] for r in runs])
        cpu = statistics.median(r[1] for r in runs)
        result[name] = {
            "seconds": wall,
            "cpu_seconds": cpu,
            "mb_per_s": size_mb / wall["median"],
            "mb_per_cpu_s": size_mb / cpu,
            "peak_rss_mb": max(r[2] for r in runs),
        }
    import pyarrow.parquet as pq

    return {"csv_mb": size_mb, "rows": pq.ParquetFile(parquet / "lineitem.parquet").metadata.num_rows, "systems": result}


# ---------------------------------------------------------------------------------------------
# Transport


def suite_transport(ctx):
    import adbc_driver_flightsql.dbapi as flightsql
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet, _ = tpch_data(ctx)
    mesh = write_tpch_mesh(ctx, parquet)
    table = pq.read_table(parquet / "lineitem.parquet")
    # The CSV writer (used to load PostgreSQL) takes plain strings, not string views.
    table = table.cast(pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in table.schema]))
    rows, arrow_mb = table.num_rows, table.nbytes / 1e6
    columns = column_types(parquet / "lineitem.parquet")
    pg_types = {"bigint": "bigint", "int": "integer", "date": "date", "string": "text"}
    log("loading lineitem into PostgreSQL")
    try:
        pg = psycopg.connect(ctx.pg_dsn, autocommit=True)
    except psycopg.OperationalError as err:
        sys.exit(f"error: cannot connect to PostgreSQL with `{ctx.pg_dsn}`: {err}\n"
                 "hint: start the server (`service postgresql start`) or pass `--pg \"host=… dbname=… user=…\"`")
    pg.execute("DROP TABLE IF EXISTS bench_lineitem")
    pg.execute(
        "CREATE TABLE bench_lineitem (" + ", ".join(f"{n} {pg_types.get(t, t)} NOT NULL" for n, t in columns) + ")"
    )
    with pg.cursor().copy("COPY bench_lineitem FROM STDIN (FORMAT csv)") as copy:
        for batch in table.to_batches(max_chunksize=200_000):
            buf = pa.BufferOutputStream()
            pacsv.write_csv(pa.Table.from_batches([batch]), buf, pacsv.WriteOptions(include_header=False))
            copy.write(buf.getvalue().to_pybytes())
    pg.execute("VACUUM ANALYZE bench_lineitem")
    pg_version = pg.execute("SHOW server_version").fetchone()[0]
    ctx.facts["postgresql"] = pg_version
    del table

    server = Server(ctx, mesh, "analyst")
    sql = "SELECT * FROM tpch.lineitem"

    def fetch_binary(conn, statement):
        with conn.cursor(binary=True) as cur:
            cur.execute(statement)
            n = 0
            while batch := cur.fetchmany(100_000):
                n += len(batch)
            return n

    def flight():
        with flightsql.connect(f"grpc://127.0.0.1:{server.flight}", db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {server.token}"}) as conn:
            with conn.cursor() as cur:
                cur.execute(sql)
                n = 0
                for batch in cur.fetch_record_batch():
                    n += batch.num_rows
                return n

    def meshwork_pg():
        with psycopg.connect(host="127.0.0.1", port=server.pg, user="analyst", password=server.token, dbname="meshwork", autocommit=True) as conn:
            return fetch_binary(conn, sql)

    def http_arrow():
        request = urllib.request.Request(f"http://127.0.0.1:{server.http}/api/v1/query", data=json.dumps({"sql": sql}).encode())
        request.add_header("Authorization", f"Bearer {server.token}")
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/vnd.apache.arrow.stream")
        with urllib.request.urlopen(request, timeout=600) as response:
            reader = pa.ipc.open_stream(response)
            return sum(batch.num_rows for batch in reader)

    wire_bytes = {}

    def copy_out(conn, name, statement):
        """Reads a COPY TO STDOUT to its end: the rows it reported (`COPY n`); records the bytes."""
        size = 0
        with conn.cursor() as cur:
            with cur.copy(statement) as copy:
                for data in copy:
                    size += len(data)
            wire_bytes[name] = size
            return cur.rowcount

    def meshwork_copy(name, options):
        with psycopg.connect(host="127.0.0.1", port=server.pg, user="analyst", password=server.token, dbname="meshwork", autocommit=True) as conn:
            return copy_out(conn, name, f"COPY ({sql}) TO STDOUT{options}")

    def pg_copy(name, options):
        return copy_out(pg, name, f"COPY bench_lineitem TO STDOUT{options}")

    def pg_select():
        return fetch_binary(pg, "SELECT * FROM bench_lineitem")

    class Sink:
        """A file object for psycopg2's copy_expert that counts and drops what it is given."""

        def __init__(self):
            self.size = 0

        def write(self, data):
            self.size += len(data)
            return len(data)

    def copy_expert(dsn, name, statement):
        """psycopg2's `copy_expert` (what pandas and many ETL tools use) to its end."""
        import psycopg2

        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cur:
                sink = Sink()
                cur.copy_expert(statement, sink)
                wire_bytes[name] = sink.size
                return cur.rowcount
        finally:
            conn.close()

    def adbc_postgres(uri, statement):
        """The ADBC PostgreSQL driver, which reads results with `COPY … (FORMAT binary)`."""
        import adbc_driver_postgresql.dbapi as pgdbapi

        with pgdbapi.connect(uri) as conn:
            with conn.cursor() as cur:
                cur.execute(statement)
                return sum(batch.num_rows for batch in cur.fetch_record_batch())

    from urllib.parse import quote

    meshwork_dsn = f"host=127.0.0.1 port={server.pg} user=analyst password={server.token} dbname=meshwork"
    meshwork_uri = f"postgresql://analyst:{quote(server.token, safe='')}@127.0.0.1:{server.pg}/meshwork"
    pg_uri = pg_url(ctx.pg_dsn, dict(part.split("=", 1) for part in ctx.pg_dsn.split()).get("dbname", "postgres"))

    pg_name = f"PostgreSQL {pg_version.split()[0]}"
    copies = {
        "Meshwork Postgres wire COPY TO STDOUT (text)": lambda name: meshwork_copy(name, ""),
        "Meshwork Postgres wire COPY TO STDOUT (binary)": lambda name: meshwork_copy(name, " (FORMAT binary)"),
        f"{pg_name} COPY TO STDOUT (text)": lambda name: pg_copy(name, ""),
        f"{pg_name} COPY TO STDOUT (binary)": lambda name: pg_copy(name, " (FORMAT binary)"),
    }
    copies.update({
        "Meshwork Postgres wire psycopg2 copy_expert (text)": lambda name: copy_expert(meshwork_dsn, name, f"COPY ({sql}) TO STDOUT"),
        f"{pg_name} psycopg2 copy_expert (text)": lambda name: copy_expert(ctx.pg_dsn, name, "COPY bench_lineitem TO STDOUT"),
    })
    systems = {
        "Meshwork Flight SQL (ADBC)": flight,
        "Meshwork HTTP Arrow IPC": http_arrow,
        "Meshwork Postgres wire (psycopg binary)": meshwork_pg,
        "Meshwork Postgres wire (ADBC PostgreSQL driver)": lambda: adbc_postgres(meshwork_uri, sql),
        **{name: (lambda name=name, copy=copy: copy(name)) for name, copy in copies.items()},
        f"{pg_name} SELECT (psycopg binary)": pg_select,
        f"{pg_name} (ADBC PostgreSQL driver)": lambda: adbc_postgres(pg_uri, "SELECT * FROM bench_lineitem"),
    }
    samples = {name: [] for name in systems}
    total = ctx.warmup + ctx.runs
    try:
        for run in range(total):
            log(f"transport run {run + 1}/{total}{' (warm-up)' if run < ctx.warmup else ''}")
            names = list(systems)
            names = names[run % len(names):] + names[: run % len(names)]
            for name in names:
                started = time.perf_counter()
                n = systems[name]()
                seconds = time.perf_counter() - started
                if n != rows:
                    sys.exit(f"error: {name} returned {n} rows, expected {rows}")
                if run >= ctx.warmup:
                    samples[name].append(seconds)
        server_rss = peak_rss_mb(server.proc.pid)
    finally:
        server.close()
        pg.execute("DROP TABLE IF EXISTS bench_lineitem")
        pg.close()
    result = {}
    for name, runs in samples.items():
        s = stats(runs)
        result[name] = {"seconds": s, "mb_per_s": arrow_mb / s["median"], "rows_per_s": rows / s["median"]}
        if name in wire_bytes:
            result[name]["wire_mb"] = wire_bytes[name] / 1e6
            result[name]["wire_mb_per_s"] = wire_bytes[name] / 1e6 / s["median"]
    return {"rows": rows, "arrow_mb": arrow_mb, "systems": result, "server_peak_rss_mb": server_rss}


# ---------------------------------------------------------------------------------------------
# Control plane


def write_big_mesh(root, products, domains=20):
    """A mesh of `products` products over `domains` domains; every second product reads another
    product of its domain, so `plan` orders a real dependency graph."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    (root / "data" / "rows.csv").write_text("id,region,amount\n1,EU,10.5\n2,NA,3.25\n")
    (root / "mesh.yaml").write_text('name: big-mesh\npolicies:\n  descriptions_required: "off"\n  classification_required: "off"\n')
    (root / "principals.yaml").write_text("principals:\n  - { name: owner }\n")
    for i in range(products):
        d = f"domain{i % domains:02d}"
        ddir = root / "domains" / d
        if not (ddir / "domain.yaml").exists():
            ddir.mkdir(parents=True, exist_ok=True)
            (ddir / "domain.yaml").write_text(f"name: {d}\nowners: [user:owner]\n")
        name = f"product{i:04d}"
        pdir = ddir / "products" / name
        pdir.mkdir(parents=True)
        if i >= domains and i % 2 == 1:
            upstream = f"{d}.product{i - domains:04d}"
            inputs = f"inputs:\n  - {{ name: up, product: {upstream} }}\ntransform:\n  sql: SELECT id, region, amount * 2 AS amount FROM up\n"
        else:
            inputs = "inputs:\n  - { name: raw, source: { kind: csv, path: data/rows.csv } }\n"
        (pdir / "product.yaml").write_text(
            f"name: {name}\ndomain: {d}\nversion: 1.0.0\nowner: user:owner\ntitle: Product {i}\n{inputs}"
            "contract:\n  columns:\n    - { name: id, type: bigint, nullable: false }\n"
            "    - { name: region, type: string }\n    - { name: amount, type: double }\n"
            "quality:\n  - { rule: not_null, column: id }\n"
            "access:\n  readers: [\"*\"]\n"
        )


def suite_control(ctx):
    parquet, _ = tpch_data(ctx)
    mesh = write_tpch_mesh(ctx, parquet)
    log("policy decisions and catalog search (meshwork-bench control)")
    sizes = ",".join(str(s) for s in ctx.catalog_sizes)
    report = json.loads(
        run_checked([ctx.bench, "control", "--mesh", str(mesh), "--as", "analyst", "--catalog-sizes", sizes, "--searches", str(ctx.searches)],
                    env={**os.environ, "MESHWORK_LOG": "warn"})
    )
    big = ctx.work / "big-mesh"
    write_big_mesh(big, ctx.mesh_products)
    samples = {"validate": [], "plan": []}
    total = ctx.warmup + ctx.runs
    log(f"validate and plan of a {ctx.mesh_products}-product mesh")
    for run in range(total):
        for command in ("validate", "plan"):
            wall, _, _, _ = timed_child([ctx.meshwork, "-C", str(big), command])
            if run >= ctx.warmup:
                samples[command].append(wall)
    report["mesh"] = {"products": ctx.mesh_products, **{k: stats(v) for k, v in samples.items()}}
    log(f"column lineage of the {ctx.mesh_products}-product mesh (meshwork-bench lineage)")
    report["mesh"]["lineage"] = json.loads(run_checked([ctx.bench, "lineage", "--mesh", str(big), "--runs", str(ctx.runs)], env={**os.environ, "MESHWORK_LOG": "warn"}))
    shutil.rmtree(big, ignore_errors=True)
    return report


# ---------------------------------------------------------------------------------------------
# Report


# ---------------------------------------------------------------------------------------------
# Distributed execution (issue 19): the same TPC-H statements through Meshwork in-process and on
# a Ballista cluster of one scheduler and two executors on this machine (`meshwork cluster`).


# Aggregate-only reads (issue 20): aggregates over lineitem that an aggregate-only reader may
# ask (plain-column arguments, no identifying columns in filters), TPC-H q01/q06/q12 reshaped
# so, plus a group per part (200k groups at SF1, about 30 rows each: many below the threshold).
AGGREGATE_QUERIES = {
    "a01_pricing": "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price, avg(l_quantity) AS avg_qty, "
                   "avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order FROM tpch.lineitem "
                   "WHERE l_shipdate <= DATE '1998-09-02' GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus",
    "a06_revenue": "SELECT sum(l_extendedprice) AS revenue FROM tpch.lineitem WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' "
                   "AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24",
    "a12_shipmode": "SELECT l_shipmode, count(*) AS n, avg(l_quantity) AS avg_qty FROM tpch.lineitem WHERE l_receiptdate >= DATE '1994-01-01' "
                    "AND l_receiptdate < DATE '1995-01-01' AND l_shipmode IN ('MAIL', 'SHIP') GROUP BY l_shipmode ORDER BY l_shipmode",
    "a_month": "SELECT date_trunc('month', TRY_CAST(l_shipdate AS TIMESTAMP)) AS month, count(*) AS n, sum(l_quantity) AS qty FROM tpch.lineitem GROUP BY 1 ORDER BY 1",
    "a_part": "SELECT l_partkey, count(*) AS n, sum(l_quantity) AS qty FROM tpch.lineitem GROUP BY l_partkey ORDER BY l_partkey LIMIT 10",
}


def with_lineitem_access(mesh, block):
    """`mesh` with lineitem's access block replaced by `block` (YAML lines under `access:`)."""
    path = mesh / "domains" / "tpch" / "products" / "lineitem" / "product.yaml"
    text = path.read_text()
    path.write_text(text.replace("access:\n  readers: [group:analysts]\n", "access:\n  readers: [group:analysts]\n" + block))


def suite_aggregate(ctx):
    """The same aggregates by a row reader (the owner), an aggregate-only reader (groups of 25+)
    and a reader answered with differential privacy (Laplace, ε 1 per answer, budget charged in
    the catalog per statement), each in its own mesh over the same Parquet files."""
    parquet, _ = tpch_data(ctx)
    exact = write_tpch_mesh(ctx, parquet, name="tpch-aggregate", settings="#\n")
    with_lineitem_access(exact, "  aggregate_only: { readers: [group:partners], min_group_size: 25 }\n")
    private = write_tpch_mesh(ctx, parquet, name="tpch-private", settings="#\n")
    with_lineitem_access(private, "  aggregate_only:\n    readers: [group:partners]\n    min_group_size: 25\n    privacy:\n"
                                  "      { mechanism: laplace, epsilon: 1, budget: 1000000000, window: 1d,\n"
                                  "        bounds: { l_quantity: [0, 50], l_extendedprice: [0, 110000], l_discount: [0, 0.1] } }\n")
    for mesh in (exact, private):
        (mesh / "principals.yaml").write_text("principals:\n  - { name: owner }\n  - { name: analyst, groups: [analysts] }\n  - { name: partner, groups: [partners] }\n")
        run_checked([ctx.meshwork, "-C", str(mesh), "apply"])
    queries = AGGREGATE_QUERIES if not ctx.queries else {k: v for k, v in AGGREGATE_QUERIES.items() if k in ctx.queries}
    env = {"MESHWORK_LOG": "warn"}
    workers = []
    try:
        workers = [
            Worker("meshwork row reader", [ctx.bench, "sql-worker", "--mesh", str(exact), "--as", "owner"], env=env),
            Worker("meshwork aggregate-only", [ctx.bench, "sql-worker", "--mesh", str(exact), "--as", "partner"], env=env),
            Worker("meshwork private", [ctx.bench, "sql-worker", "--mesh", str(private), "--as", "partner"], env=env),
        ]
        times, rows = interleaved(ctx, "aggregate", workers, queries)
    finally:
        for w in workers:
            w.close()
    # Suppression and noisy thresholds change which groups are shown, so row counts are
    # reported, not compared.
    report = compare(queries, workers, times, rows, [], [("meshwork aggregate-only", "meshwork row reader"), ("meshwork private", "meshwork row reader")])
    report["policy"] = {"aggregate-only": "lineitem: aggregate_only, min_group_size 25", "private": "lineitem: laplace, ε 1 per answer, bounds on l_quantity, l_extendedprice, l_discount"}
    return report


def suite_cluster(ctx):
    parquet, _ = tpch_data(ctx)
    scheduler = free_port()
    mesh = write_tpch_mesh(ctx, parquet, name="tpch-cluster-mesh", settings=f'cluster: {{ scheduler: "127.0.0.1:{scheduler}", run: all }}\n')
    queries = tpch_queries(ctx)
    procs = []

    def start(args):
        proc = subprocess.Popen([ctx.meshwork, "-C", str(mesh), "cluster", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)

    def wait_port(port):
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"error: nothing listens on port {port} after 60 s")

    workers = []
    try:
        start(["scheduler", "--bind", f"127.0.0.1:{scheduler}"])
        wait_port(scheduler)
        cores = os.cpu_count() or 2
        for _ in range(2):
            flight, grpc = free_port(), free_port()
            # Two executors share the machine's cores, each with half the memory of the
            # in-process runs' 16 GiB limit per task slot.
            start(["executor", "--scheduler", f"127.0.0.1:{scheduler}", "--port", str(flight), "--grpc-port", str(grpc),
                   "--concurrency", str(max(1, cores // 2)), "--memory", "8GiB"])
            wait_port(flight)
        time.sleep(2)  # executors register with the scheduler just after they listen
        env = {"MESHWORK_LOG": "warn"}
        workers = [
            Worker("meshwork", [ctx.bench, "sql-worker", "--mesh", str(mesh), "--as", "owner", "--local"], env=env),
            Worker("meshwork on ballista (2 executors)", [ctx.bench, "sql-worker", "--mesh", str(mesh), "--as", "owner"], env=env),
            Worker("meshwork governed", [ctx.bench, "sql-worker", "--mesh", str(mesh), "--as", "analyst", "--local"], env=env),
            Worker("meshwork governed on ballista", [ctx.bench, "sql-worker", "--mesh", str(mesh), "--as", "analyst"], env=env),
        ]
        times, rows = interleaved(ctx, "cluster", workers, queries)
    finally:
        for w in workers:
            w.close()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    groups = (["meshwork", "meshwork on ballista (2 executors)"], ["meshwork governed", "meshwork governed on ballista"])
    pairs = [("meshwork on ballista (2 executors)", "meshwork"), ("meshwork governed on ballista", "meshwork governed")]
    return compare(queries, workers, times, rows, groups, pairs)


def machine(ctx):
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import importlib.metadata as md

    def version(package):
        try:
            return md.version(package)
        except md.PackageNotFoundError:
            return None

    lock = (ROOT / "Cargo.lock").read_text()

    def locked(crate):
        marker = f'name = "{crate}"\nversion = "'
        i = lock.find(marker)
        return lock[i + len(marker):lock.find('"', i + len(marker))] if i >= 0 else None

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "meshwork": run_checked([ctx.meshwork, "--version"]).strip(),
        "profile": ctx.profile,
        "datafusion": locked("datafusion"),
        "deltalake (Rust)": locked("deltalake"),
        "duckdb": version("duckdb"),
        "deltalake-python": version("deltalake"),
        "pyarrow": version("pyarrow"),
        "adbc-driver-flightsql": version("adbc-driver-flightsql"),
        "psycopg": version("psycopg"),
        "tpchgen-cli": version("tpchgen-cli"),
    }


def fmt(x, digits=2):
    return "—" if x is None else f"{x:,.{digits}f}"


def spread(stat, digits=2, range_digits=None):
    """`median (min–max)` of a `stats()` result."""
    r = digits if range_digits is None else range_digits
    return f"{fmt(stat['median'], digits)} ({fmt(stat['min'], r)}–{fmt(stat['max'], r)})"


def peak_table(t):
    """Per query, the peak RSS each system reached while running it (max over its runs)."""
    peaks = t.get("query_peak_mb") or {}
    if not any(peaks.values()):
        return []
    out = ["", "Per query, peak RSS MB while it ran (max over runs; the process's baseline included):", "",
           "| query | " + " | ".join(t["systems"]) + " |", "|---|" + "---:|" * len(t["systems"])]
    for q in t["queries"]:
        out.append(f"| {q} | " + " | ".join(fmt(peaks.get(s, {}).get(q), 0) for s in t["systems"]) + " |")
    return out


def markdown(report):
    out = [f"# Meshwork benchmark run {report['started']}", ""]
    m = report["machine"]
    out += [f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; {m['os']}",
            f"- {m['meshwork']} ({m['profile']} build), DataFusion {m['datafusion']}, delta-rs {m['deltalake (Rust)']}",
            f"- peers: DuckDB {m['duckdb']}, deltalake-python {m['deltalake-python']}, pyarrow {m['pyarrow']}, "
            f"ADBC Flight SQL {m['adbc-driver-flightsql']}, psycopg {m['psycopg']}, PostgreSQL {report['facts'].get('postgresql', '—')}",
            f"- command: `{report['command']}`; scale factor {report['sf']:g}; {report['warmup']} warm-up + {report['runs']} measured runs, interleaved; medians",
            ""]
    if "tpch" in report:
        t = report["tpch"]
        out += ["## TPC-H", "", "Ratios of medians (lower is better for the first system):", "", "| ratio | geometric mean |", "|---|---:|"]
        for name, r in t["ratios"].items():
            out.append(f"| {name} | {fmt(r['geomean'], 3)} |")
        out += ["", "Per query, median ms (min–max):", ""]
        out.append("| query | " + " | ".join(t["systems"]) + " |")
        out.append("|---|" + "---:|" * len(t["systems"]))
        for q in t["queries"]:
            cells = [spread(t["per_query"][s][q], 1, 0) for s in t["systems"]]
            out.append(f"| {q} | " + " | ".join(cells) + " |")
        out.append("| total | " + " | ".join(fmt(t["totals_ms"][s], 0) for s in t["systems"]) + " |")
        out.append("| peak RSS MB | " + " | ".join(fmt(t["peak_rss_mb"][s], 0) for s in t["systems"]) + " |")
        out += peak_table(t)
        out += ["", f"Policy of the governed runs: {t['policy']}.", ""]
        if t["mismatches"]:
            out += ["**Row counts differ:** " + json.dumps(t["mismatches"]), ""]
        else:
            out += ["Row counts agree across DuckDB, DataFusion and Meshwork, and between the governed runs and the hand-written views.", ""]
    if "cluster" in report:
        t = report["cluster"]
        out += ["## TPC-H on a Ballista cluster (scheduler + 2 executors, this machine)", "", "| ratio | geometric mean |", "|---|---:|"]
        for name, r in t["ratios"].items():
            out.append(f"| {name} | {fmt(r['geomean'], 3)} |")
        out += ["", "| query | " + " | ".join(t["systems"]) + " |", "|---|" + "---:|" * len(t["systems"])]
        for q in t["queries"]:
            out.append(f"| {q} | " + " | ".join(spread(t["per_query"][s][q], 1, 0) for s in t["systems"]) + " |")
        out.append("| total | " + " | ".join(fmt(t["totals_ms"][s], 0) for s in t["systems"]) + " |")
        if t["mismatches"]:
            out += ["", f"Row-count mismatches: {t['mismatches']}"]
        out.append("")
    if "aggregate" in report:
        t = report["aggregate"]
        out += ["## Aggregate-only and private reads (lineitem)", "", "| ratio | geometric mean |", "|---|---:|"]
        for name, r in t["ratios"].items():
            out.append(f"| {name} | {fmt(r['geomean'], 3)} |")
        out += ["", "| query | " + " | ".join(t["systems"]) + " | rows (" + ", ".join(t["systems"]) + ") |", "|---|" + "---:|" * (len(t["systems"]) + 1)]
        for q in t["queries"]:
            out.append(f"| {q} | " + " | ".join(spread(t["per_query"][s][q], 1, 0) for s in t["systems"]) + " | " + ", ".join(str(t["rows"][s][q]) for s in t["systems"]) + " |")
        out.append("| total | " + " | ".join(fmt(t["totals_ms"][s], 0) for s in t["systems"]) + " | |")
        out.append("")
    if "settings" in report:
        t = report["settings"]
        first = t["systems"][0]
        out += ["## DataFusion session settings", "", f"Plain DataFusion over the same files; ratios of medians against `{first}` (lower is better):", "",
                "| variant | statements | geometric mean | queries faster | total ms | peak RSS MB |", "|---|---|---:|---:|---:|---:|"]
        for n in t["systems"]:
            r = t["ratios"].get(n)
            out.append(f"| {n} | {'; '.join(t['statements'][n]) or '—'} | {fmt(r['geomean'], 3) if r else '1.000'} | {r['faster'] if r else '—'} | "
                       f"{fmt(t['totals_ms'][n], 0)} | {fmt(t['peak_rss_mb'][n], 0)} |")
        out += ["", "Per query, median ms (min–max):", "", "| query | " + " | ".join(t["systems"]) + " |", "|---|" + "---:|" * len(t["systems"])]
        for q in t["queries"]:
            out.append(f"| {q} | " + " | ".join(spread(t["per_query"][s][q], 1, 0) for s in t["systems"]) + " |")
        out += peak_table(t)
        out += ["", "Row counts agree across the variants." if not t["mismatches"] else "**Row counts differ:** " + json.dumps(t["mismatches"]), ""]
    if "service" in report:
        s = report["service"]
        la, sa = s["apply"]["local"]["seconds"], s["apply"]["service"]["seconds"]
        out += ["## PostgreSQL and S3 vs SQLite and local disk", "",
                f"`meshwork apply` of the TPC-H products: {fmt(la)} s on SQLite and local disk, {fmt(sa)} s on PostgreSQL and S3 (moto), ratio {fmt(sa / la, 3)}.", "",
                f"TPC-H queries as the owner, ratio of medians (PostgreSQL, S3) / (SQLite, disk): geometric mean {fmt(s['ratio']['geomean'], 3)}.", "",
                "Per query, median ms (min–max), and the S3 requests and MB the last run of each query sent:", "",
                "| query | " + " | ".join(s["systems"]) + " | ratio | S3 GET | S3 HEAD | S3 MB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for q in s["queries"]:
            r = s.get("requests", {}).get(q, {})
            out.append(f"| {q} | " + " | ".join(spread(s["per_query"][n][q], 1, 0) for n in s["systems"])
                       + f" | {fmt(s['ratio']['per_query'][q], 2)} | {r.get('GET', 0)} | {r.get('HEAD', 0)} | {fmt(r.get('bytes_sent', 0) / 1e6, 1)} |")
        out += ["", "Row counts agree." if not s["mismatches"] else f"**Row counts differ:** {s['mismatches']}", ""]
    if "ingest" in report:
        g = report["ingest"]
        out += ["## Ingest", "", f"lineitem CSV, {fmt(g['csv_mb'], 0)} MB, to a queryable table.", "",
                "| system | seconds median (min–max) | MB/s | MB per CPU-second | peak RSS MB |", "|---|---:|---:|---:|---:|"]
        for name, s in g["systems"].items():
            out.append(f"| {name} | {spread(s['seconds'])} | {fmt(s['mb_per_s'], 1)} | {fmt(s['mb_per_cpu_s'], 1)} | {fmt(s['peak_rss_mb'], 0)} |")
        out.append("")
    if "transport" in report:
        t = report["transport"]
        out += ["## Transport", "", f"All {t['rows']:,} lineitem rows ({fmt(t['arrow_mb'], 0)} MB as Arrow) to one client; MB/s counts the Arrow size for every system, "
                "wire MB/s the bytes a COPY sent.", "",
                "| system | seconds median (min–max) | MB/s | rows/s | wire MB/s (COPY) |", "|---|---:|---:|---:|---:|"]
        for name, s in t["systems"].items():
            wire = f"{fmt(s['wire_mb_per_s'], 0)} ({fmt(s['wire_mb'], 0)} MB)" if "wire_mb" in s else "—"
            out.append(f"| {name} | {spread(s['seconds'])} | {fmt(s['mb_per_s'], 0)} | {fmt(s['rows_per_s'], 0)} | {wire} |")
        out += ["", f"Peak RSS of `meshwork serve`: {fmt(t['server_peak_rss_mb'], 0)} MB.", ""]
    if "control" in report:
        c = report["control"]
        p = c["policy"]
        out += ["## Control plane", "", f"Access decisions for `{p['principal']}` over {p['products']} products: "
                f"p50 {fmt(p['all']['p50_us'])} µs, p99 {fmt(p['all']['p99_us'])} µs, {fmt(p['all']['per_second'], 0)} decisions/s on one thread.", "",
                "| product (decision) | p50 µs | p99 µs |", "|---|---:|---:|"]
        for name, s in p["by_product"].items():
            out.append(f"| {name} | {fmt(s['p50_us'])} | {fmt(s['p99_us'])} |")
        out += ["", "| catalog size | index build ms | search p50 ms | search p99 ms | searches/s | mean results |", "|---:|---:|---:|---:|---:|---:|"]
        for s in c["search"]:
            out.append(f"| {s['products']:,} | {fmt(s['index_build_ms'], 0)} | {fmt(s['all']['p50_us'] / 1e3, 3)} | {fmt(s['all']['p99_us'] / 1e3, 3)} | {fmt(s['all']['per_second'], 0)} | {fmt(s['mean_results'], 1)} |")
        mesh = c["mesh"]
        out += ["", f"A {mesh['products']}-product mesh: `meshwork validate` {fmt(mesh['validate']['median'])} s, `meshwork plan` {fmt(mesh['plan']['median'])} s (medians, whole process).", ""]
        if "lineage" in mesh:
            lin = mesh["lineage"]
            out += [f"Column lineage of its {lin['transforms']} transforms (planned against declared schemas, as `validate` does): {fmt(lin['median_ms'])} ms median per pass over the mesh, {fmt(lin['per_transform_us'])} µs per transform.", ""]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="*", default=["all"], help="tpch, aggregate, cluster, settings, service, ingest, transport, control or all (settings and cluster are not part of all)")
    parser.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs (default 1)")
    parser.add_argument("--queries", default="", help="only these TPC-H queries, e.g. q01,q18")
    parser.add_argument("--variants", default="", help="settings suite: only these variants, the first being the baseline")
    parser.add_argument("--catalog-sizes", default="10000,100000", help="synthetic catalog sizes for search")
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--mesh-products", type=int, default=1000, help="products of the mesh timed by validate/plan")
    parser.add_argument("--bin-dir", required=True, help="where `meshwork` and `meshwork-bench` are built")
    parser.add_argument("--profile", default="release")
    parser.add_argument("--data", default=str(ROOT / "target" / "bench-data"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--pg", default="host=127.0.0.1 port=5432 dbname=test user=postgres", help="PostgreSQL connection string")
    args = parser.parse_args()

    suites = ["tpch", "aggregate", "service", "ingest", "transport", "control"] if "all" in args.suites else args.suites
    for s in suites:
        if s not in ("tpch", "aggregate", "cluster", "settings", "service", "ingest", "transport", "control"):
            sys.exit(f"error: unknown suite `{s}`; choose from tpch, aggregate, cluster, settings, service, ingest, transport, control, all")
    if args.runs < 1:
        sys.exit("error: `--runs` must be at least 1")

    class Ctx:
        pass

    ctx = Ctx()
    ctx.sf, ctx.runs, ctx.warmup, ctx.profile = args.sf, args.runs, args.warmup, args.profile
    ctx.queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    ctx.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    ctx.catalog_sizes = [int(s) for s in args.catalog_sizes.split(",") if s]
    ctx.searches, ctx.mesh_products = args.searches, args.mesh_products
    bin_dir = Path(args.bin_dir).resolve()
    ctx.meshwork, ctx.bench = str(bin_dir / "meshwork"), str(bin_dir / "meshwork-bench")
    ctx.tpchgen = shutil.which("tpchgen-cli", path=str(Path(sys.executable).parent)) or shutil.which("tpchgen-cli")
    if not ctx.tpchgen:
        sys.exit("error: tpchgen-cli is not installed; run through bench/run.sh, which installs it")
    ctx.data = Path(args.data).resolve()
    ctx.needs_csv = "ingest" in suites
    ctx.pg_dsn = args.pg
    ctx.facts = {}
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    # Per scale factor, so that meshes published at one scale are kept while another runs.
    ctx.work = ctx.data / f"sf{args.sf:g}" / "work"
    ctx.work.mkdir(parents=True, exist_ok=True)

    report = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["bench/run.sh", *args.suites, "--sf", f"{args.sf:g}", "--runs", str(args.runs)]),
        "sf": args.sf,
        "runs": args.runs,
        "warmup": args.warmup,
        "machine": machine(ctx),
    }
    for s in suites:
        report[s] = {"tpch": suite_tpch, "aggregate": suite_aggregate, "cluster": suite_cluster, "settings": suite_settings, "service": suite_service, "ingest": suite_ingest, "transport": suite_transport, "control": suite_control}[s](ctx)
    report["facts"] = ctx.facts
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    name = f"{stamp}-{'-'.join(suites)}-sf{args.sf:g}"
    (results / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (results / f"{name}.md").write_text(text + "\n")
    print(text)
    log(f"wrote {results / name}.json and .md")


if __name__ == "__main__":
    main()
