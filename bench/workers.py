"""SQL workers of the benchmark harness written in Python: DuckDB in-process, and a Flight SQL
client of `meshwork serve` (ADBC). They speak the protocol of `meshwork-bench sql-worker`:
one JSON request per stdin line (`{"sql": "..."}`), one JSON answer per stdout line
(`{"ms": ..., "rows": ...}` or `{"error": "..."}`), after a first `{"ready": true}` line.

Usage: workers.py duckdb PARQUET_DIR
       workers.py flightsql URI TOKEN
"""

import json
import sys
import time


def duckdb_engine(parquet_dir):
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE SCHEMA tpch")
    import os

    for name in sorted(os.listdir(parquet_dir)):
        if name.endswith(".parquet"):
            table = name[: -len(".parquet")]
            path = os.path.join(parquet_dir, name).replace("'", "''")
            con.execute(f"CREATE VIEW tpch.{table} AS SELECT * FROM read_parquet('{path}')")

    def run(sql):
        # A relation straight to Arrow (DuckDB 2; `arrow()` before): no extra copy of the rows.
        relation = con.sql(sql)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        return fetch().num_rows

    return run


def flightsql_engine(uri, token):
    import adbc_driver_flightsql.dbapi as flightsql

    conn = flightsql.connect(uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"})

    def run(sql):
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table().num_rows

    return run


def main():
    kind = sys.argv[1]
    if kind == "duckdb":
        run = duckdb_engine(sys.argv[2])
    elif kind == "flightsql":
        run = flightsql_engine(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown worker `{kind}`: expected duckdb or flightsql")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        sql = json.loads(line)["sql"]
        started = time.perf_counter()
        try:
            rows = run(sql)
            answer = {"ms": (time.perf_counter() - started) * 1e3, "rows": rows}
        except Exception as err:  # noqa: BLE001 - reported to the harness, which fails the run
            answer = {"error": str(err)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
