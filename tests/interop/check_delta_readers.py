"""Checks that Delta tables written by Meshwork read back identically in deltalake-python.

Usage: check_delta_readers.py PATH/TO/meshwork

Creates a small example mesh in a temporary directory, applies it, then for every product
compares the rows Meshwork serves (`meshwork query --format json`) with the rows
deltalake-python reads from the table directory, with no Meshwork code involved. Each product
is queried as a member of its owning domain, whom the example's policies neither filter nor
mask, so the two must be identical. Prints a
`N passed, N failed` line and exits non-zero on any difference.
"""

import decimal
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from deltalake import DeltaTable

# A member of each example domain (see the example's domain.yaml files and principals.yaml).
OWNING_DOMAIN_MEMBER = {"sales": "sam", "marketing": "mia", "finance": "fred"}


def run(binary, *args):
    result = subprocess.run([binary, *args], capture_output=True, text=True)
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


def main():
    binary = str(Path(sys.argv[1]).resolve())
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        mesh = Path(tmp) / "mesh"
        run(binary, "init", str(mesh), "--example", "--orders", "3000", "--seed", "11")
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
            rows = DeltaTable(table_path).to_pyarrow_table().sort_by([(k, "ascending") for k in key]).to_pylist()
            expected = [{c["name"]: normalize_json(r.get(c["name"]), c["type"]) for c in columns} for r in served]
            actual = [{c["name"]: normalize(r[c["name"]]) for c in columns} for r in rows]
            if expected == actual and len(rows) == product["rows"]:
                passed += 1
                print(f"ok   {name}: {len(rows)} rows identical in deltalake-python")
            else:
                failed += 1
                print(f"FAIL {name}: meshwork served {len(expected)} rows, deltalake-python read {len(actual)}")
                for e, a in zip(expected, actual):
                    if e != a:
                        print(f"     first difference: meshwork {e} vs deltalake {a}")
                        break
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
