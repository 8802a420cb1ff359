"""Checks that Delta tables written by Meshwork read back identically in deltalake-python.

Usage: check_delta_readers.py PATH/TO/meshwork

Creates a small example mesh in a temporary directory, applies it, then for every product
compares the rows Meshwork serves (`meshwork query --format json`) with the rows
deltalake-python reads from the table, with no Meshwork code involved: once with the tables
on local disk, once in a bucket of the tests' local S3 server (moto, from this Python
environment; crates/storage/scratch/s3_server.py). Each product
is queried as a member of its owning domain, whom the example's policies neither filter nor
mask, so the two must be identical. Prints a
`N passed, N failed` line and exits non-zero on any difference.
"""

import decimal
import datetime
import json
import os
import subprocess
import urllib.request
import sys
import tempfile
from pathlib import Path

from deltalake import DeltaTable

# A member of each example domain (see the example's domain.yaml files and principals.yaml).
OWNING_DOMAIN_MEMBER = {"sales": "sam", "marketing": "mia", "finance": "fred"}
ROOT = Path(__file__).resolve().parent.parent.parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "meshwork-test", "AWS_SECRET_ACCESS_KEY": "meshwork-test-secret"}


def run(binary, *args):
    result = subprocess.run([binary, *args], capture_output=True, text=True, env={**os.environ, **CREDENTIALS})
    if result.returncode != 0:
        sys.exit(f"`meshwork {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def normalize(value):
    """Brings both readers' values to one comparable form."""
    if isinstance(value, decimal.Decimal):
        return str(value.quantize(decimal.Decimal(1).scaleb(value.as_tuple().exponent)))
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 9)
    return value


def normalize_json(value, column_type):
    if value is None:
        return None
    if column_type.startswith("decimal"):
        return str(decimal.Decimal(str(value)).quantize(decimal.Decimal(1).scaleb(-int(column_type.split(",")[1].rstrip(")")))))
    if column_type == "timestamp":
        return value.replace("Z", "")[:19]
    if column_type == "double":
        return round(float(value), 9)
    return value


def s3_server():
    """The tests' S3 server, a bucket on it, and what deltalake-python needs to reach it."""
    script = (ROOT / "crates" / "storage" / "scratch" / "s3_server.py").read_text()
    server = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    endpoint = f"http://127.0.0.1:{int(server.stdout.readline())}"
    request = urllib.request.Request(f"{endpoint}/__meshwork/bucket", data=json.dumps({"bucket": "delta-readers"}).encode(), method="POST")
    urllib.request.urlopen(request).read()
    storage = f"storage:\n  url: s3://delta-readers/mesh\n  endpoint: {endpoint}\n  allow_http: true\n"
    options = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    return server, storage, options


def main():
    binary = str(Path(sys.argv[1]).resolve())
    passed = failed = 0
    server, storage, options = s3_server()
    try:
        for where in ("local disk", "S3"):
            p, f = check(binary, storage if where == "S3" else None, options if where == "S3" else None, where)
            passed, failed = passed + p, failed + f
    finally:
        server.kill()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def check(binary, storage, options, where):
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        mesh = Path(tmp) / "mesh"
        run(binary, "init", str(mesh), "--example", "--orders", "3000", "--seed", "11")
        if storage:
            config = (mesh / "mesh.yaml").read_text()
            (mesh / "mesh.yaml").write_text(config.replace("storage:\n  data_dir: .meshwork/data\n", storage))
        run(binary, "apply", str(mesh))
        products = json.loads(run(binary, "-C", str(mesh), "product", "list", "--format", "json"))
        for product in products:
            name = product["product"]
            detail = json.loads(run(binary, "-C", str(mesh), "product", "show", name, "--format", "json"))
            columns = detail["descriptor"]["contract"]["columns"]
            key = detail["descriptor"]["contract"]["primary_key"]
            order = ", ".join(key)
            owner = OWNING_DOMAIN_MEMBER[name.split(".")[0]]
            served = json.loads(run(binary, "-C", str(mesh), "--as", owner, "query", f"SELECT * FROM {name} ORDER BY {order}", "--format", "json"))
            table_path = detail["table_uri"].removeprefix("file://")
            if storage and not table_path.startswith("s3://"):
                sys.exit(f"{name} is not in the bucket: {table_path}")
            rows = DeltaTable(table_path, storage_options=options).to_pyarrow_table().sort_by([(k, "ascending") for k in key]).to_pylist()
            expected = [{c["name"]: normalize_json(r.get(c["name"]), c["type"]) for c in columns} for r in served]
            actual = [{c["name"]: normalize(r[c["name"]]) for c in columns} for r in rows]
            if expected == actual and len(rows) == product["rows"]:
                passed += 1
                print(f"ok   {name} ({where}): {len(rows)} rows identical in deltalake-python")
            else:
                failed += 1
                print(f"FAIL {name} ({where}): meshwork served {len(expected)} rows, deltalake-python read {len(actual)}")
                for e, a in zip(expected, actual):
                    if e != a:
                        print(f"     first difference: meshwork {e} vs deltalake {a}")
                        break
    return passed, failed


if __name__ == "__main__":
    main()
