#!/usr/bin/env python3
"""Quality evaluation cost against build cost, per product of the example mesh.

Builds the example mesh with `meshwork apply --format json` (release build), several times on
fresh copies, and reports per product the median of build time (ingest, transform, contract),
staging write time and quality-rule time, with the ratio quality / build.

Usage: bench/quality.py [ORDERS] [RUNS]     (defaults: 1000000 orders, 5 runs)
Needs: cargo build --release -p meshwork (or MESHWORK_BIN=path/to/meshwork)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MESHWORK_BIN", os.path.join(ROOT, "target", "release", "meshwork"))


def main() -> None:
    orders = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    if not os.access(BIN, os.X_OK):
        sys.exit("error: build first: cargo build --release -p meshwork")
    samples: dict[str, dict[str, list[float]]] = {}
    rules: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as work:
        template = os.path.join(work, "template")
        subprocess.run([BIN, "init", template, "--example", "--orders", str(orders), "--seed", "42"], check=True, stdout=subprocess.DEVNULL)
        for run in range(runs):
            mesh = os.path.join(work, f"run{run}")
            subprocess.run(["cp", "-r", template, mesh], check=True)
            out = subprocess.run([BIN, "apply", mesh, "--format", "json"], check=True, capture_output=True, text=True).stdout
            for product in json.loads(out)["products"]:
                quality = product["quality"]
                s = samples.setdefault(product["product"], {"build": [], "stage": [], "quality": [], "rows": []})
                s["build"].append(quality["build_ms"])
                s["stage"].append(quality["stage_ms"])
                s["quality"].append(quality["quality_ms"])
                s["rows"].append(product["rows"])
                rules[product["product"]] = len(quality["rules"])
            subprocess.run(["rm", "-rf", mesh], check=True)
    print(f"example mesh, {orders} orders, median of {runs} applies (ms)\n")
    print("| product | rows | rules | build | staging write | quality rules | quality / build |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total_build = total_quality = 0.0
    for product, s in sorted(samples.items()):
        build, stage, quality = (statistics.median(s[k]) for k in ("build", "stage", "quality"))
        total_build += build
        total_quality += quality
        print(f"| {product} | {int(s['rows'][0]):,} | {rules[product]} | {build:.0f} | {stage:.0f} | {quality:.0f} | {quality / build:.2f} |")
    print(f"| **all** | | | {total_build:.0f} | | {total_quality:.0f} | **{total_quality / total_build:.2f}** |")


if __name__ == "__main__":
    main()
