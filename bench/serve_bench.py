"""Benchmark of `meshwork serve`: result streaming throughput and small-query latency.

Usage: bench/serve_bench.py PATH/TO/meshwork [--rows N] [--queries N] [--small-only]

1. Writes a mesh with one product `bench.events` of N rows (default 10,000,000: id bigint,
   user_id bigint, amount double, category string, at timestamp) from a Parquet file generated
   with pyarrow, applies it, and serves it on free ports.
2. Loads the same rows into the local PostgreSQL (127.0.0.1:5432, database `test`, table
   `bench_events`) with COPY.
3. Streams every row to a client, three runs each (the median is reported):
   Meshwork Flight SQL via ADBC (`fetch_arrow_table`), Meshwork Postgres wire via psycopg
   (`SELECT`, binary), PostgreSQL via psycopg (`SELECT`, binary) and `COPY … TO STDOUT`.
   MB/s counts the Arrow in-memory size of the rows (the same for every system).
4. Small queries (`SELECT … WHERE id = k`) with 8 concurrent clients over HTTP (JSON) and
   Flight SQL (ADBC): p50/p99 latency and queries/s.

Prints a markdown table. Not a test: no assertion on numbers.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_cpu_seconds(pid):
    """User and system CPU time of process `pid` so far (Linux `/proc/<pid>/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def generate(path, rows):
    import pyarrow.compute as pc  # noqa: F401 - ensures compute kernels load before timing

    chunk = 1_000_000
    writer = None
    categories = pa.array(["books", "games", "music", "garden", "toys", "tools", "food", "sports"])
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = pa.array(range(start, start + n), pa.int64())
        table = pa.table(
            {
                "id": ids,
                "user_id": pa.array([(i * 7919) % 100_003 for i in range(start, start + n)], pa.int64()),
                "amount": pa.array([((i * 37) % 10_000) / 100.0 for i in range(start, start + n)], pa.float64()),
                "category": categories.take(pa.array([i % 8 for i in range(n)])),
                "at": pa.array([1_735_689_600_000_000 + i * 1_000_000 for i in range(start, start + n)], pa.timestamp("us", tz="UTC")),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


MESH = {
    "mesh.yaml": "name: serve-bench\npolicies:\n  descriptions_required: \"off\"\n  classification_required: \"off\"\n",
    "principals.yaml": "principals:\n  - { name: reader }\n",
    "domains/bench/domain.yaml": "name: bench\nowners: [user:reader]\n",
    "domains/bench/products/events/product.yaml": """name: events
domain: bench
version: 1.0.0
owner: user:reader
inputs:
  - { name: raw, source: { kind: parquet, path: data/events.parquet } }
contract:
  columns:
    - { name: id, type: bigint, nullable: false }
    - { name: user_id, type: bigint, nullable: false }
    - { name: amount, type: double, nullable: false }
    - { name: category, type: string, nullable: false }
    - { name: at, type: timestamp, nullable: false }
""",
}


def run(binary, mesh, *args):
    out = subprocess.run([binary, "-C", str(mesh), *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"meshwork {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def timed(fn, runs=3):
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=400, help="small queries per client")
    parser.add_argument("--small-only", action="store_true", help="only the small queries (no streaming, no PostgreSQL)")
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    work = Path(tempfile.mkdtemp(prefix="meshwork-serve-bench-"))
    mesh = work / "mesh"
    for name, text in MESH.items():
        (mesh / name).parent.mkdir(parents=True, exist_ok=True)
        (mesh / name).write_text(text)
    (mesh / "data").mkdir()
    print(f"generating {args.rows:,} rows", file=sys.stderr)
    generate(mesh / "data/events.parquet", args.rows)
    print("applying", file=sys.stderr)
    run(binary, mesh, "apply")
    token = json.loads(run(binary, mesh, "token", "create", "--principal", "reader", "--format", "json"))["token"]
    http_port, flight_port, pg_port = free_port(), free_port(), free_port()
    server = subprocess.Popen(
        [binary, "-C", str(mesh), "serve", "--http-port", str(http_port), "--flight-sql-port", str(flight_port), "--postgres-port", str(pg_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MESHWORK_LOG": "warn"},
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        if not args.small_only:
            table = pq.read_table(mesh / "data/events.parquet")
            arrow_bytes = table.nbytes
            results = []

            # PostgreSQL 15, same rows.
            print("loading PostgreSQL", file=sys.stderr)
            with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True) as pg:
                pg.execute("DROP TABLE IF EXISTS bench_events")
                pg.execute("CREATE TABLE bench_events (id bigint, user_id bigint, amount double precision, category text, at timestamptz)")
                with pg.cursor().copy("COPY bench_events FROM STDIN (FORMAT csv)") as copy:
                    for batch in table.to_batches(max_chunksize=200_000):
                        buf = pa.BufferOutputStream()
                        pa.csv.write_csv(pa.Table.from_batches([batch]), buf, pa.csv.WriteOptions(include_header=False))
                        copy.write(buf.getvalue().to_pybytes())
                pg.execute("VACUUM ANALYZE bench_events")
                version = pg.execute("SHOW server_version").fetchone()[0]

                def pg_copy():
                    n = 0
                    with pg.cursor().copy("COPY bench_events TO STDOUT") as copy:
                        for data in copy:
                            n += len(data)
                    return n

                def pg_select():
                    with pg.cursor(binary=True) as cur:
                        cur.execute("SELECT * FROM bench_events")
                        n = 0
                        while rows := cur.fetchmany(100_000):
                            n += len(rows)
                        return n

                seconds, _ = timed(pg_copy)
                results.append((f"PostgreSQL {version} `COPY … TO STDOUT`", seconds))
                seconds, n = timed(pg_select)
                results.append((f"PostgreSQL {version} `SELECT` (psycopg, binary)", seconds))

            def flight_all():
                with flightsql.connect(f"grpc://127.0.0.1:{flight_port}", db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"}) as conn, conn.cursor() as cur:
                    cur.execute("SELECT * FROM bench.events")
                    return cur.fetch_arrow_table().num_rows

            seconds, n = timed(flight_all)
            assert n == args.rows, n
            results.append(("Meshwork Flight SQL (ADBC)", seconds))

            def mesh_pg():
                with psycopg.connect(host="127.0.0.1", port=pg_port, user="reader", password=token, dbname="meshwork", autocommit=True) as conn:
                    with conn.cursor(binary=True) as cur:
                        cur.execute("SELECT * FROM bench.events")
                        n = 0
                        while rows := cur.fetchmany(100_000):
                            n += len(rows)
                        return n

            seconds, n = timed(mesh_pg)
            assert n == args.rows, n
            results.append(("Meshwork Postgres wire (psycopg, binary)", seconds))

            print(f"\n### Streaming {args.rows:,} rows ({arrow_bytes / 1e6:,.0f} MB as Arrow)\n")
            print("| system | seconds (median of 3) | MB/s | rows/s |")
            print("|---|---:|---:|---:|")
            for name, seconds in results:
                print(f"| {name} | {seconds:.2f} | {arrow_bytes / 1e6 / seconds:,.0f} | {args.rows / seconds:,.0f} |")

        # Small queries, 8 concurrent clients.
        def http_client(latencies, k):
            for i in range(args.queries):
                body = json.dumps({"sql": f"SELECT id, amount, category FROM bench.events WHERE id = {(k * 7919 + i) % args.rows}"}).encode()
                request = urllib.request.Request(f"http://127.0.0.1:{http_port}/api/v1/query", data=body)
                request.add_header("Authorization", f"Bearer {token}")
                request.add_header("Content-Type", "application/json")
                started = time.perf_counter()
                urllib.request.urlopen(request, timeout=60).read()
                latencies.append(time.perf_counter() - started)

        def flight_client(latencies, k):
            with flightsql.connect(f"grpc://127.0.0.1:{flight_port}", db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"}) as conn:
                for i in range(args.queries):
                    started = time.perf_counter()
                    with conn.cursor() as cur:
                        cur.execute(f"SELECT id, amount, category FROM bench.events WHERE id = {(k * 7919 + i) % args.rows}")
                        cur.fetch_arrow_table()
                    latencies.append(time.perf_counter() - started)

        print("\n### Small queries, 8 concurrent clients\n")
        print("| interface | queries | p50 ms | p99 ms | queries/s | server CPU ms per query |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, client in [("HTTP (JSON)", http_client), ("Flight SQL (ADBC)", flight_client)]:
            cpu_before = server_cpu_seconds(server.pid)
            latencies = []
            threads = [threading.Thread(target=client, args=(latencies, k)) for k in range(8)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
            cpu = (server_cpu_seconds(server.pid) - cpu_before) * 1000 / len(latencies)
            print(f"| {name} | {len(latencies)} | {p50:.1f} | {p99:.1f} | {len(latencies) / wall:,.0f} | {cpu:.1f} |")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import pyarrow.csv  # noqa: F401 - pa.csv
    main()
