#!/usr/bin/env python3
"""Virtual products: the latency of queries on a product served live from PostgreSQL against the
same table stored as a Delta copy (docs/sources.md, "Virtual products"), through `meshwork serve`'s
PostgreSQL wire with psycopg, as a client would see them.

A scratch database gets `orders` with `--rows` rows (primary key `id`); a mesh reads it twice, as
`sales.live` (`virtual: true`) and `sales.copy` (a stored copy). The principal `bench`, a member
of the owning domain, reads both unfiltered, so filters, limits and aggregates reach the
database for the virtual one. Each query runs `--runs` times per product, alternating which goes
first; the report has the medians and their ratio (virtual / stored), and checks that both
answer alike.

    target/py-venv/bin/python bench/virtual.py --meshwork /work/target-rel/release/meshwork
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent

QUERIES = {
    "point lookup": "SELECT * FROM sales.{p} WHERE id = 424242",
    "filtered count": "SELECT count(*) FROM sales.{p} WHERE amount > 990",
    "group by": "SELECT region, count(*), sum(amount) FROM sales.{p} GROUP BY region ORDER BY region",
    "first 100 rows": "SELECT id, customer, amount FROM sales.{p} LIMIT 100",
    "scan 100k rows": "SELECT id, amount FROM sales.{p} WHERE id <= 100000",
    "join with copy": "SELECT count(*) FROM sales.{p} a JOIN sales.copy b ON a.id = b.id WHERE a.id <= 10000",
}


def product(name, virtual):
    return f"""name: {name}
domain: sales
version: 1.0.0
owner: group:sales
{"virtual: true" + chr(10) if virtual else ""}inputs:
  - name: src
    source: {{ kind: postgres, connection: shop, table: orders }}
contract:
  primary_key: [id]
  columns:
    - {{ name: id, type: bigint, nullable: false }}
    - {{ name: customer, type: string, nullable: false }}
    - {{ name: region, type: string, nullable: false }}
    - {{ name: amount, type: "decimal(10,2)", nullable: false }}
    - {{ name: placed_at, type: timestamp, nullable: false }}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshwork", required=True, help="the meshwork binary (a release build)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()

    database = f"mw_bench_virtual_{os.getpid()}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    url = args.server.rsplit("/", 1)[0] + "/" + database
    server = None
    try:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, region text NOT NULL, amount numeric(10,2) NOT NULL, placed_at timestamptz NOT NULL)"
            )
            db.execute(
                """INSERT INTO orders
                   SELECT i, 'customer' || (i %% 50000), (ARRAY['EU','US','APAC','LATAM'])[1 + i %% 4],
                          (i %% 100000) / 100.0, TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 second'
                   FROM generate_series(1, %s) AS i""",
                (args.rows,),
            )
            db.execute("ANALYZE orders")
        with tempfile.TemporaryDirectory() as tmp:
            mesh = Path(tmp) / "mesh"
            for name in ["live", "copy"]:
                (mesh / f"domains/sales/products/{name}").mkdir(parents=True)
                (mesh / f"domains/sales/products/{name}/product.yaml").write_text(product(name, name == "live"))
            (mesh / "mesh.yaml").write_text(f"name: virtual-bench\nconnections:\n  shop: {{ url: \"{url}\" }}\n")
            (mesh / "domains/sales/domain.yaml").write_text("name: sales\nowners: [group:sales]\n")
            (mesh / "principals.yaml").write_text("principals:\n  - { name: bench, domains: [sales] }\n")
            env = {**os.environ, "MESHWORK_LOG": "warn"}
            base = [args.meshwork, "-C", str(mesh)]
            subprocess.run(base + ["apply"], env=env, check=True, capture_output=True)
            token = json.loads(subprocess.run(base + ["token", "create", "--principal", "bench", "--format", "json"], env=env, check=True, capture_output=True, text=True).stdout)["token"]
            pg_port = free_port()
            server = subprocess.Popen(
                base + ["serve", "--http-port", str(free_port()), "--flight-sql-port", str(free_port()), "--postgres-port", str(pg_port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", pg_port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            client = psycopg.connect(host="127.0.0.1", port=pg_port, user="bench", password=token, dbname="meshwork", autocommit=True)
            times = {q: {"live": [], "copy": []} for q in QUERIES}
            answers_equal = {}
            for query, sql in QUERIES.items():
                answers = {}
                for run in range(args.runs + 1):
                    order = ["live", "copy"] if run % 2 == 0 else ["copy", "live"]
                    for name in order:
                        started = time.perf_counter()
                        rows = client.execute(sql.format(p=name)).fetchall()
                        elapsed = time.perf_counter() - started
                        answers[name] = sorted(map(str, rows))
                        if run > 0:  # the first run of each warms caches (and the copy's table)
                            times[query][name].append(elapsed)
                answers_equal[query] = answers["live"] == answers["copy"]
                live, copy = statistics.median(times[query]["live"]), statistics.median(times[query]["copy"])
                print(f"{query}: virtual {live * 1000:.1f} ms, stored {copy * 1000:.1f} ms, ratio {live / copy:.2f}", file=sys.stderr)
            client.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    medians = {q: {k: statistics.median(v) for k, v in t.items()} for q, t in times.items()}
    report = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["bench/virtual.py", "--rows", str(args.rows), "--runs", str(args.runs)]),
        "rows": args.rows,
        "median_seconds": medians,
        "ratio_virtual_to_stored": {q: m["live"] / m["copy"] for q, m in medians.items()},
        "answers_equal": answers_equal,
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-virtual.json"
    (results / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
