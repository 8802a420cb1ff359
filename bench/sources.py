#!/usr/bin/env python3
"""Database inputs: an incremental MERGE of 1% changed rows against a full reload of the same
PostgreSQL table (docs/sources.md), through `meshwork refresh`.

A scratch database gets a table of `--rows` customers; a mesh reads it twice, as `crm.full`
(every refresh reads the whole table) and `crm.incremental` (`incremental: { column:
updated_at, mode: merge }`). After the first publication of both, each run updates `--changed`
of the rows (new `updated_at`) and inserts as many, then times `meshwork refresh` of each
product, alternating which goes first. Prints and writes a JSON report with the medians and
their ratio, and checks that both products hold the same rows afterwards.

    target/py-venv/bin/python bench/sources.py --meshwork /work/target-rel/release/meshwork
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def product(name, incremental):
    extra = ", incremental: { column: updated_at, mode: merge }" if incremental else ""
    return f"""name: {name}
domain: crm
version: 1.0.0
owner: group:crm
inputs:
  - name: src
    source: {{ kind: postgres, connection: crm, table: customers{extra} }}
contract:
  primary_key: [id]
  columns:
    - {{ name: id, type: bigint, nullable: false }}
    - {{ name: email, type: string, nullable: false }}
    - {{ name: tier, type: string }}
    - {{ name: balance, type: "decimal(12,2)" }}
    - {{ name: updated_at, type: timestamp, nullable: false }}
quality:
  - {{ rule: unique, column: id }}
"""


def timed(cmd, env, phases=None):
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    if phases is not None:
        # Where a refresh's time went, as its report says: reading and staging, quality rules, and
        # the rest (connecting, the watermark, committing: an append or a MERGE, the catalog).
        for product in json.loads(done.stdout)["products"]:
            quality = product.get("quality") or {}
            phases.append({"stage_ms": quality.get("stage_ms"), "quality_ms": quality.get("quality_ms"), "total_ms": product.get("seconds", 0) * 1000})
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshwork", required=True, help="the meshwork binary (a release build)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of rows updated (and as many inserted) per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()

    database = f"mw_bench_sources_{os.getpid()}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    url = args.server.rsplit("/", 1)[0] + "/" + database
    try:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("SET TimeZone = 'UTC'")
            db.execute(
                "CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, tier text, balance numeric(12,2), updated_at timestamptz NOT NULL)"
            )
            db.execute(
                """INSERT INTO customers
                   SELECT i, 'user' || i || '@example.com', (ARRAY['gold','silver','bronze'])[1 + i %% 3],
                          (i %% 100000) / 100.0, TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 second'
                   FROM generate_series(1, %s) AS i""",
                (args.rows,),
            )
            # A watermark column is indexed in any source that is read incrementally: the maximum
            # and the range are then index lookups, not scans.
            db.execute("CREATE INDEX customers_updated_at ON customers (updated_at)")
            db.execute("ANALYZE customers")
            with tempfile.TemporaryDirectory() as tmp:
                mesh = Path(tmp) / "mesh"
                (mesh / "domains/crm/products/full").mkdir(parents=True)
                (mesh / "domains/crm/products/incremental").mkdir(parents=True)
                (mesh / "mesh.yaml").write_text(f"name: sources-bench\nconnections:\n  crm: {{ url: \"{url}\" }}\n")
                (mesh / "domains/crm/domain.yaml").write_text("name: crm\n")
                (mesh / "domains/crm/products/full/product.yaml").write_text(product("full", False))
                (mesh / "domains/crm/products/incremental/product.yaml").write_text(product("incremental", True))
                env = {**os.environ, "MESHWORK_LOG": "warn"}
                base = [args.meshwork, "-C", str(mesh)]
                first = timed(base + ["apply"], env)
                times = {"full": [], "incremental": []}
                phases = {"full": [], "incremental": []}
                changed = int(args.rows * args.changed)
                next_id = args.rows + 1
                for run in range(args.runs):
                    db.execute(
                        """UPDATE customers SET tier = 'platinum', balance = balance + 1, updated_at = now()
                           WHERE id IN (SELECT id FROM customers ORDER BY random() LIMIT %s)""",
                        (changed,),
                    )
                    db.execute(
                        """INSERT INTO customers SELECT i, 'new' || i || '@example.com', 'gold', 1.00, now()
                           FROM generate_series(%s, %s) AS i""",
                        (next_id, next_id + changed - 1),
                    )
                    next_id += changed
                    order = ["full", "incremental"] if run % 2 == 0 else ["incremental", "full"]
                    for name in order:
                        times[name].append(timed(base + ["refresh", f"crm.{name}", "--format", "json"], env, phases[name]))
                    print(f"run {run + 1}: full {times['full'][-1]:.2f} s, incremental {times['incremental'][-1]:.2f} s", file=sys.stderr)
                check = subprocess.run(
                    base + ["query", "--format", "csv", "SELECT (SELECT count(*) FROM crm.full) AS full_rows, (SELECT count(*) FROM crm.incremental) AS incremental_rows, "
                     "(SELECT count(*) FROM (SELECT * FROM crm.full EXCEPT SELECT * FROM crm.incremental) d) AS differing"],
                    env=env, capture_output=True, text=True, check=True,
                ).stdout
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    medians = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["bench/sources.py", "--rows", str(args.rows), "--changed", str(args.changed), "--runs", str(args.runs)]),
        "rows": args.rows,
        "changed_per_run": changed,
        "first_apply_seconds": first,
        "seconds": times,
        "median": medians,
        "phases": phases,
        "ratio_incremental_to_full": medians["incremental"] / medians["full"],
        "check": check.strip(),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-sources.json"
    (results / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
