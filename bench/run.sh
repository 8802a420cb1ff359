#!/usr/bin/env bash
# Meshwork's benchmark harness, one command: installs the peers (DuckDB, deltalake-python,
# pyarrow, ADBC Flight SQL and PostgreSQL, psycopg, psycopg2, tpchgen-cli, moto) from PyPI into target/py-venv, builds
# `meshwork` and `meshwork-bench`, generates TPC-H data, runs the suites and writes a markdown
# report and raw JSON under bench/results/.
#
#   bench/run.sh [tpch|aggregate|cluster|settings|service|ingest|transport|control|all ...] [--sf 1] [--runs 5] [--warmup 1]
#                [--profile release|dev] [--queries q01,q18] [--results DIR] ...
#
# PostgreSQL is the machine's running server (127.0.0.1:5432, database `test`; `--pg` to
# change); the harness fails when it cannot connect. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --profile=*) profile="${1#--profile=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
case "$profile" in
    release) bin_dir="${CARGO_TARGET_DIR:-target}/release" ;;
    dev) bin_dir="${CARGO_TARGET_DIR:-target}/debug" ;;
    *) echo "error: unknown --profile \`$profile\`; use release or dev" >&2; exit 2 ;;
esac

if [[ ! -x target/py-venv/bin/python ]]; then
    python3 -m venv target/py-venv
fi
target/py-venv/bin/pip install --quiet --disable-pip-version-check "duckdb==2.*" "deltalake==1.6.*" "pyarrow>=20" \
    "psycopg[binary]==3.*" "psycopg2-binary==2.*" "adbc-driver-flightsql>=1.5" "adbc-driver-postgresql>=1.5" \
    "tpchgen-cli==4.*" "moto[server]==5.*"

echo "building meshwork and meshwork-bench ($profile)" >&2
if [[ "$profile" == dev ]]; then
    # The debug binaries the test command builds (same features, so no second DataFusion build).
    cargo test --workspace --no-run --locked
else
    cargo build --locked --profile "$profile" -p meshwork -p meshwork-bench
fi

exec target/py-venv/bin/python bench/harness.py --bin-dir "$bin_dir" --profile "$profile" "${args[@]}"
