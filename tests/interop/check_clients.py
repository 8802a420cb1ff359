"""The driver matrix: the tools people already use, unmodified, against `meshwork serve`.

Usage: check_clients.py PATH/TO/meshwork

Generates the example mesh (2,000 orders), applies it, issues tokens for two principals with
different rights — `ana` (an EU analyst: customers filtered to EU and masked) and `mia` (a
marketing analyst in NA who may not read `finance.customer_value`) — and starts `meshwork serve`
on free ports. Then, as each principal, every client's rows are compared with
`meshwork query --as`, and every metadata call must list what the principal may read and hide
`finance.customer_value` from `mia`:

- SQLAlchemy 2 + psycopg 3: inspector (schemas, tables, columns, primary key), `Table(autoload_with=…)`,
  pandas `read_sql` and `read_sql_table`;
- psycopg2: a query, `copy_expert` of `COPY (…) TO STDOUT WITH CSV HEADER`, a named cursor;
- the ADBC PostgreSQL driver: a query (it reads with `COPY … (FORMAT binary)`), `adbc_get_objects`;
- the PostgreSQL JDBC driver (tests/interop/jdbc/ClientCheck.java): DatabaseMetaData schemas,
  tables, columns, primary keys, imported keys, index info; a PreparedStatement; setFetchSize;
- psqlODBC through pyodbc: tables, columns, primary keys, all schemas;
- psql `\\dn \\dt \\d \\du \\df \\l`; pgcli's completion queries;
- the ADBC Flight SQL driver with `?` and `$1` placeholders;
- the OpenAPI document, checked by openapi-spec-validator, and a client generated from it by
  openapi-python-client that runs a query.

When a check fails the server log's tail is printed: it names each statement and the error the
client got. Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
"""

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from served import ROOT, Checks, Server, meshwork, norm, norm_rows, reference, token_for

warnings.filterwarnings("ignore", message="Cannot disable autocommit")

PRINCIPALS = ["ana", "mia"]
HIDDEN = {"mia": ("finance", "customer_value")}
VISIBLE = [("sales", "customers"), ("sales", "orders"), ("finance", "revenue_by_region")]
MATRIX = [
    "SELECT customer_id, full_name, email, region FROM sales.customers ORDER BY customer_id LIMIT 10",
    "SELECT status, count(*) AS n, sum(amount) AS total FROM sales.orders GROUP BY status ORDER BY status",
    "SELECT o.order_id, o.items, o.amount, c.region FROM sales.orders o JOIN sales.customers c ON c.customer_id = o.customer_id ORDER BY o.order_id LIMIT 10",
]
ORDERS_COLUMNS = ["order_id", "customer_id", "placed_at", "status", "channel", "campaign_code", "items", "amount"]
JDBC_JAR = Path("/usr/share/java/postgresql.jar")
ODBC_DRIVER = "PostgreSQL Unicode"

# Checks that fail today, with why; docs/clients.md lists them under "Known gaps". A gap that
# starts passing fails the run until it is removed here.
KNOWN_GAPS: dict[str, str] = {}

checks = Checks(KNOWN_GAPS)


def main():
    binary = str(Path(sys.argv[1]).resolve())
    work = Path(tempfile.mkdtemp(prefix="meshwork-clients-"))
    mesh = work / "mesh"
    subprocess.run([binary, "init", str(mesh), "--example", "--orders", "2000", "--seed", "42"], check=True, capture_output=True)
    meshwork(binary, mesh, "apply")
    tokens = {p: token_for(binary, mesh, p)["token"] for p in PRINCIPALS}
    server = Server(binary, mesh, work / "serve.log")
    try:
        expected = {p: [reference(binary, mesh, p, sql) for sql in MATRIX] for p in PRINCIPALS}
        for principal in PRINCIPALS:
            ctx = Context(binary, mesh, server, principal, tokens[principal], expected[principal])
            for suite in [sqlalchemy_suite, psycopg2_suite, adbc_postgresql_suite, jdbc_suite, odbc_suite, psql_suite, pgcli_suite, flight_sql_suite]:
                suite(ctx)
        openapi_suite(server, tokens["ana"], expected["ana"], work)
        code = server.stop()
        checks("the server stops cleanly after every client", code == 0, f"exit code {code}")
    finally:
        if server.process.poll() is None:
            server.process.kill()
        if checks.failed:
            print("---- server log (tail)")
            print(server.log_tail())
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(checks.summary())


class Context:
    def __init__(self, binary, mesh, server, principal, token, expected):
        self.binary, self.mesh, self.server = binary, mesh, server
        self.principal, self.token, self.expected = principal, token, expected
        self.hidden = HIDDEN.get(principal)

    def label(self, client, what):
        return f"{client} as {self.principal}: {what}"

    def pg_url(self, scheme):
        return f"{scheme}://{self.principal}:{self.token}@127.0.0.1:{self.server.pg_port}/meshwork"

    def reference(self, sql):
        return reference(self.binary, self.mesh, self.principal, sql)

    def compare(self, client, rows_of):
        """Every query of the matrix through `rows_of(sql)` equals the CLI's rows."""
        for i, sql in enumerate(MATRIX):
            def body(sql=sql, i=i):
                got = rows_of(sql)
                return got == self.expected[i], f"got {got!r}\n      expected {self.expected[i]!r}"
            checks.attempt(self.label(client, f"query {i + 1} equals the CLI"), body)

    def listing(self, names):
        """Whether `names` (pairs of schema and table) list the visible products and not the
        hidden one, and what was wrong."""
        names = set(names)
        missing = [n for n in VISIBLE if n not in names]
        leaked = bool(self.hidden) and self.hidden in names
        return not missing and not leaked, f"missing {missing}, hidden listed: {leaked}; got {sorted(names)}"


def sqlalchemy_suite(ctx):
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(ctx.pg_url("postgresql+psycopg"))
    try:
        def rows(sql):
            with engine.connect() as conn:
                return norm_rows(conn.execute(sa.text(sql)).fetchall())
        ctx.compare("SQLAlchemy", rows)

        def schemas():
            names = sa.inspect(engine).get_schema_names()
            return {"sales", "marketing", "finance"} <= set(names), f"got {names}"
        checks.attempt(ctx.label("SQLAlchemy", "inspector lists the schemas"), schemas)

        def tables():
            inspector = sa.inspect(engine)
            return ctx.listing([(s, t) for s in ["sales", "marketing", "finance"] for t in inspector.get_table_names(schema=s)])
        checks.attempt(ctx.label("SQLAlchemy", "inspector tables: visible listed, hidden not"), tables)

        def columns():
            got = [(c["name"], str(c["type"]), c["nullable"]) for c in sa.inspect(engine).get_columns("orders", schema="sales")]
            names = [c[0] for c in got]
            types = dict((c[0], c[1]) for c in got)
            ok = names == ORDERS_COLUMNS and types["amount"] == "NUMERIC(12, 2)" and types["order_id"] == "BIGINT"
            return ok, f"got {got}"
        checks.attempt(ctx.label("SQLAlchemy", "inspector columns of sales.orders with types"), columns)

        def primary_key():
            pk = sa.inspect(engine).get_pk_constraint("orders", schema="sales")
            return pk["constrained_columns"] == ["order_id"], f"got {pk}"
        checks.attempt(ctx.label("SQLAlchemy", "inspector primary key of sales.orders"), primary_key)

        if ctx.hidden:
            def has_hidden():
                schema, table = ctx.hidden
                return not sa.inspect(engine).has_table(table, schema=schema), "has_table said yes"
            checks.attempt(ctx.label("SQLAlchemy", "has_table is false for the hidden product"), has_hidden)

        def autoload():
            table = sa.Table("orders", sa.MetaData(), schema="sales", autoload_with=engine)
            cols = [c.name for c in table.columns]
            pk = [c.name for c in table.primary_key.columns]
            with engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            want = int(ctx.reference("SELECT count(*) FROM sales.orders")[0][0])
            return cols == ORDERS_COLUMNS and pk == ["order_id"] and count == want, f"columns {cols}, pk {pk}, count {count} (want {want})"
        checks.attempt(ctx.label("SQLAlchemy", "Table(autoload_with=…) and a count through it"), autoload)

        def read_sql():
            frame = pd.read_sql(MATRIX[1], engine)
            got = norm_rows(frame.itertuples(index=False, name=None))
            return got == ctx.expected[1], f"got {got}"
        checks.attempt(ctx.label("pandas", "read_sql equals the CLI"), read_sql)

        def read_sql_table():
            frame = pd.read_sql_table("customers", engine, schema="sales")
            want = ctx.reference("SELECT count(*) FROM sales.customers")[0][0]
            return list(frame.columns)[:2] == ["customer_id", "full_name"] and str(len(frame)) == want, f"columns {list(frame.columns)}, {len(frame)} rows (want {want})"
        checks.attempt(ctx.label("pandas", "read_sql_table(sales.customers): the rows the principal may read"), read_sql_table)
    finally:
        engine.dispose()


def psycopg2_suite(ctx):
    import psycopg2

    def connect():
        return psycopg2.connect(host="127.0.0.1", port=ctx.server.pg_port, user=ctx.principal, password=ctx.token, dbname="meshwork", connect_timeout=10)

    def rows(sql):
        with connect() as conn, conn.cursor() as cur:
            cur.execute(sql)
            return norm_rows(cur.fetchall())
    ctx.compare("psycopg2", rows)

    def copy_csv():
        out = io.StringIO()
        with connect() as conn, conn.cursor() as cur:
            cur.copy_expert(f"COPY ({MATRIX[1]}) TO STDOUT WITH CSV HEADER", out)
        lines = list(csv.reader(io.StringIO(out.getvalue())))
        got = [tuple(v if v != "" else None for v in line) for line in lines[1:]]
        return lines[0] == ["status", "n", "total"] and got == ctx.expected[1], f"got {lines}"
    checks.attempt(ctx.label("psycopg2", "copy_expert COPY (…) TO STDOUT WITH CSV HEADER equals the CLI"), copy_csv)

    def named_cursor():
        conn = connect()
        try:
            cur = conn.cursor(name="orders_by_id")
            cur.itersize = 3
            cur.execute(MATRIX[2])
            first = cur.fetchmany(4)
            rest = cur.fetchall()
            cur.close()
            conn.commit()
            got = norm_rows(first + rest)
            return got == ctx.expected[2], f"got {got}"
        finally:
            conn.close()
    checks.attempt(ctx.label("psycopg2", "named cursor fetched in steps equals the CLI"), named_cursor)


def adbc_postgresql_suite(ctx):
    import adbc_driver_postgresql.dbapi as pg_adbc

    def rows(sql):
        with pg_adbc.connect(ctx.pg_url("postgresql")) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return norm_rows(cur.fetchall())
    ctx.compare("ADBC PostgreSQL", rows)

    def objects():
        with pg_adbc.connect(ctx.pg_url("postgresql")) as conn:
            tree = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        return ctx.listing([(s["db_schema_name"], t["table_name"]) for c in tree for s in c["catalog_db_schemas"] or [] for t in s["db_schema_tables"] or []])
    checks.attempt(ctx.label("ADBC PostgreSQL", "adbc_get_objects: visible listed, hidden not"), objects)

    def arrow_table():
        with pg_adbc.connect(ctx.pg_url("postgresql")) as conn, conn.cursor() as cur:
            cur.execute("SELECT order_id, amount FROM sales.orders")
            table = cur.fetch_arrow_table()
        want = ctx.reference("SELECT count(*) FROM sales.orders")[0][0]
        return str(table.num_rows) == want and table.column_names == ["order_id", "amount"], f"{table.num_rows} rows (want {want}), schema {table.schema}"
    checks.attempt(ctx.label("ADBC PostgreSQL", "fetch_arrow_table"), arrow_table)


def jdbc_suite(ctx):
    ops = ["schemas", "tables|sales", "tables|finance", "columns|sales|orders", "pk|sales|orders", "imported|sales|orders", "index|sales|orders",
           f"query|{MATRIX[1]}", "prepared|SELECT order_id, items FROM sales.orders WHERE items > ? ORDER BY order_id LIMIT 5|3", f"fetch|{MATRIX[2]}|3"]
    result = subprocess.run(["java", "-cp", str(JDBC_JAR), str(ROOT / "tests/interop/jdbc/ClientCheck.java"), str(ctx.server.pg_port), ctx.token, *ops], capture_output=True, text=True, timeout=300)
    if not checks(ctx.label("JDBC", "connects and runs every call"), result.returncode == 0, result.stderr[-2000:]):
        return
    sections, current = {}, None
    for line in result.stdout.splitlines():
        if line.startswith("== "):
            current = line[3:]
            sections[current] = []
        else:
            sections[current].append(line)

    def rows(op):
        lines = sections.get(op, [])
        if any(line.startswith("!! ") for line in lines):
            raise RuntimeError(lines[0][3:])
        return [tuple(None if v == "\\N" else v for v in line.split("\t")) for line in lines]

    checks.attempt(ctx.label("JDBC", "getSchemas"), lambda: ({"sales", "marketing", "finance"} <= {r[0] for r in rows("schemas")}, rows("schemas")))
    checks.attempt(ctx.label("JDBC", "getTables: visible listed, hidden not"), lambda: ctx.listing([(r[0], r[1]) for r in rows("tables|sales") + rows("tables|finance")]))
    checks.attempt(ctx.label("JDBC", "getColumns of sales.orders"), lambda: ([r[0] for r in rows("columns|sales|orders")] == ORDERS_COLUMNS and ("amount", "numeric", "0") in rows("columns|sales|orders"), rows("columns|sales|orders")))
    checks.attempt(ctx.label("JDBC", "getPrimaryKeys of sales.orders"), lambda: ([(r[0], r[1]) for r in rows("pk|sales|orders")] == [("order_id", "1")], rows("pk|sales|orders")))
    checks.attempt(ctx.label("JDBC", "getImportedKeys of sales.orders (none declared)"), lambda: (rows("imported|sales|orders") == [], rows("imported|sales|orders")))
    checks.attempt(ctx.label("JDBC", "getIndexInfo of sales.orders: the primary key"), lambda: ([(r[1], r[2]) for r in rows("index|sales|orders")] == [("order_id", "f")] or [(r[1], r[2]) for r in rows("index|sales|orders")] == [("order_id", "false")], rows("index|sales|orders")))
    checks.attempt(ctx.label("JDBC", "Statement query equals the CLI"), lambda: (norm_rows(rows(f"query|{MATRIX[1]}")) == ctx.expected[1], rows(f"query|{MATRIX[1]}")))
    want = ctx.reference("SELECT order_id, items FROM sales.orders WHERE items > 3 ORDER BY order_id LIMIT 5")
    prepared = "prepared|SELECT order_id, items FROM sales.orders WHERE items > ? ORDER BY order_id LIMIT 5|3"
    checks.attempt(ctx.label("JDBC", "PreparedStatement (named from the fifth run) equals the CLI"), lambda: (rows(prepared) == want, f"{rows(prepared)} want {want}"))
    checks.attempt(ctx.label("JDBC", "setFetchSize(3) in a transaction equals the CLI"), lambda: (rows(f"fetch|{MATRIX[2]}|3") == ctx.expected[2], rows(f"fetch|{MATRIX[2]}|3")))


def odbc_suite(ctx):
    import pyodbc

    def connect():
        return pyodbc.connect(f"DRIVER={{{ODBC_DRIVER}}};SERVER=127.0.0.1;PORT={ctx.server.pg_port};DATABASE=meshwork;UID={ctx.principal};PWD={ctx.token};SSLmode=disable", timeout=10)

    def rows(sql):
        with connect() as conn:
            return norm_rows(conn.cursor().execute(sql).fetchall())
    ctx.compare("psqlODBC", rows)

    def tables():
        with connect() as conn:
            return ctx.listing([(r.table_schem, r.table_name) for r in conn.cursor().tables(tableType="TABLE,VIEW")])
    checks.attempt(ctx.label("psqlODBC", "SQLTables: visible listed, hidden not"), tables)

    def all_schemas():
        with connect() as conn:
            names = {r.table_schem for r in conn.cursor().tables(catalog="", schema="%", table="")}
        return {"sales", "marketing", "finance"} <= names, f"got {sorted(n for n in names if n)}"
    checks.attempt(ctx.label("psqlODBC", "SQLTables of all schemas (what Excel and Power BI list)"), all_schemas)

    def columns():
        with connect() as conn:
            got = [(r.column_name, r.type_name) for r in conn.cursor().columns(table="orders", schema="sales")]
        return [c for c, _ in got] == ORDERS_COLUMNS, f"got {got}"
    checks.attempt(ctx.label("psqlODBC", "SQLColumns of sales.orders"), columns)

    def primary_keys():
        with connect() as conn:
            got = [(r.column_name, r.key_seq) for r in conn.cursor().primaryKeys(table="orders", schema="sales")]
        return got == [("order_id", 1)], f"got {got}"
    checks.attempt(ctx.label("psqlODBC", "SQLPrimaryKeys of sales.orders"), primary_keys)


def psql(ctx, command):
    result = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(ctx.server.pg_port), "-U", ctx.principal, "-d", "meshwork", "-X", "-v", "ON_ERROR_STOP=1", "-c", command],
        capture_output=True, text=True, env={**os.environ, "PGPASSWORD": ctx.token, "PGCONNECT_TIMEOUT": "10"}, timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


def psql_suite(ctx):
    for command, needle in [("\\dn", "sales"), ("\\dt sales.*", "orders"), ("\\d sales.orders", "order_id"), ("\\du", ctx.principal), ("\\df", "Schema"), ("\\l", "meshwork")]:
        code, out, err = psql(ctx, command)
        checks(ctx.label("psql", f"{command} answers"), code == 0 and not err.strip() and needle in out, f"exit {code}: {err.strip()}\n{out[:600]}")
    if ctx.hidden:
        schema, table = ctx.hidden
        code, out, err = psql(ctx, f"\\dt {schema}.*")
        checks(ctx.label("psql", f"\\dt {schema}.* hides {schema}.{table}"), code == 0 and table not in out and "revenue_by_region" in out, f"exit {code}: {err}\n{out}")
        code, out, err = psql(ctx, f"\\d {schema}.{table}")
        checks(ctx.label("psql", f"\\d {schema}.{table} finds nothing"), table not in out and "Did not find any relation" in err, f"exit {code}: {err}\n{out}")


def pgcli_suite(ctx):
    from pgcli.pgexecute import PGExecute

    def completion():
        executor = PGExecute(database="meshwork", user=ctx.principal, password=ctx.token, host="127.0.0.1", port=ctx.server.pg_port, dsn=None)
        try:
            schemata = list(executor.schemata())
            tables = list(executor.tables())
            columns = list(executor.table_columns())
            functions = list(executor.functions())
            datatypes = list(executor.datatypes())
            databases = list(executor.databases())
            list(executor.foreignkeys())
        finally:
            executor.conn.close()
        listed, detail = ctx.listing([(s, t) for s, t in tables])
        ok = listed and "sales" in schemata and any(c[1] == "orders" and c[2] == "amount" for c in columns) and "meshwork" in databases
        return ok, f"{detail}; schemata {schemata}, {len(columns)} columns, {len(functions)} functions, {len(datatypes)} types, databases {databases}"
    checks.attempt(ctx.label("pgcli", "every completion query answers"), completion)


def flight_sql_suite(ctx):
    import adbc_driver_flightsql.dbapi as flightsql

    want = ctx.reference("SELECT order_id, items FROM sales.orders WHERE items > 3 ORDER BY order_id LIMIT 5")
    for style, sql in [("?", "SELECT order_id, items FROM sales.orders WHERE items > ? ORDER BY order_id LIMIT 5"), ("$1", "SELECT order_id, items FROM sales.orders WHERE items > $1 ORDER BY order_id LIMIT 5")]:
        def body(sql=sql):
            with flightsql.connect(f"grpc://127.0.0.1:{ctx.server.flight_port}", db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {ctx.token}"}) as conn, conn.cursor() as cur:
                cur.execute(sql, parameters=(3,))
                got = norm_rows(cur.fetchall())
            return got == want, f"got {got} want {want}"
        checks.attempt(ctx.label("ADBC Flight SQL", f"`{style}` placeholder equals the CLI"), body)

    def objects():
        with flightsql.connect(f"grpc://127.0.0.1:{ctx.server.flight_port}", db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {ctx.token}"}) as conn:
            tree = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        tables = [(s["db_schema_name"], t) for c in tree for s in c["catalog_db_schemas"] or [] for t in s["db_schema_tables"] or []]
        listed, detail = ctx.listing([(s, t["table_name"]) for s, t in tables])
        orders = next(t for s, t in tables if (s, t["table_name"]) == ("sales", "orders"))
        types = {c["column_name"]: c["xdbc_type_name"] for c in orders["table_columns"]}
        return listed and all(types.get(c) for c in ORDERS_COLUMNS), f"{detail}; column type names {types}"
    checks.attempt(ctx.label("ADBC Flight SQL", "adbc_get_objects: visible listed, hidden not, every column with a type name"), objects)


def openapi_suite(server, token, expected, work):
    from served import http

    status, body = http(server.http_port, "/openapi.json")
    spec_path = work / "openapi.json"
    spec_path.write_bytes(body)

    def validate():
        from openapi_spec_validator import validate
        from openapi_spec_validator.readers import read_from_filename

        spec, _ = read_from_filename(str(spec_path))
        validate(spec)
        return status == 200, f"HTTP {status}"
    checks.attempt("OpenAPI: /openapi.json is a valid OpenAPI 3.1 document (openapi-spec-validator)", validate)

    def generated_client():
        out = work / "generated"
        config = work / "generator.yaml"
        config.write_text("post_hooks: []\nproject_name_override: meshwork-api-client\npackage_name_override: meshwork_api_client\n")
        venv_bin = Path(sys.executable).parent
        generator = subprocess.run([str(venv_bin / "openapi-python-client"), "generate", "--path", str(spec_path), "--output-path", str(out), "--config", str(config), "--meta", "none"], capture_output=True, text=True)
        if generator.returncode != 0:
            return False, generator.stdout[-2000:] + generator.stderr[-2000:]
        program = f"""
import sys
sys.path.insert(0, {str(work)!r})
from generated import AuthenticatedClient
from generated.api.query import run_query
from generated.models import QueryRequest
client = AuthenticatedClient(base_url="http://127.0.0.1:{server.http_port}", token={token!r})
result = run_query.sync(client=client, body=QueryRequest(sql={MATRIX[1]!r}))
print(repr([[row[c.name] for c in result.columns] for row in result.rows]))
"""
        ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
        if ran.returncode != 0:
            return False, ran.stderr[-3000:]
        import ast
        import decimal

        got = [tuple(norm(decimal.Decimal(str(v)) if isinstance(v, float) else v) for v in row) for row in ast.literal_eval(ran.stdout.strip())]
        return got == expected[1], f"got {got} want {expected[1]}"
    checks.attempt("OpenAPI: a client generated by openapi-python-client runs a query", generated_client)


if __name__ == "__main__":
    main()
