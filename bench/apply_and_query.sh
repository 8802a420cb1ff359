#!/usr/bin/env bash
# Measures `meshwork apply` of the example mesh and `meshwork query` latency of a simple aggregate.
# Usage: bench/apply_and_query.sh [ORDERS] [RUNS]   (defaults: 120000 orders, 7 query runs)
# Needs a release build: cargo build --release -p meshwork
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS="${1:-120000}"
RUNS="${2:-7}"
BIN="$PWD/target/release/meshwork"
[ -x "$BIN" ] || { echo "error: build first: cargo build --release -p meshwork" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
MESH="$WORK/mesh"

now() { date +%s.%N; }
"$BIN" init "$MESH" --example --orders "$ORDERS" --seed 42 >/dev/null
# Rows read from source files by the three file-fed products (customers, orders, campaigns).
SOURCE_ROWS=$(( $(cat "$MESH"/data/sales/customers.csv "$MESH"/data/sales/orders/*.csv | wc -l) - 1 - $(ls "$MESH"/data/sales/orders/*.csv | wc -l) + $(wc -l < "$MESH"/data/marketing/campaigns.ndjson) ))
SOURCE_MB=$(du -cm "$MESH"/data | tail -1 | cut -f1)

start=$(now)
"$BIN" apply "$MESH" --format json > "$WORK/apply.json"
end=$(now)
APPLY_S=$(echo "$end - $start" | bc -l)
PUBLISHED_ROWS=$(python3 -c "import json,sys; print(sum(p['rows'] for p in json.load(open('$WORK/apply.json'))['products']))")

start=$(now)
"$BIN" apply "$MESH" --format json > /dev/null
end=$(now)
NOOP_S=$(echo "$end - $start" | bc -l)

SQL="SELECT status, COUNT(*) AS orders, SUM(amount) AS revenue FROM sales.orders GROUP BY status"
times=()
for _ in $(seq "$RUNS"); do
    start=$(now)
    "$BIN" -C "$MESH" query "$SQL" > /dev/null
    end=$(now)
    times+=("$(echo "($end - $start) * 1000" | bc -l)")
done
MEDIAN_MS=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
MIN_MS=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
MAX_MS=$(printf '%s\n' "${times[@]}" | sort -n | tail -1)

printf 'orders generated:            %s\n' "$ORDERS"
printf 'source rows / size:          %s rows, %s MB\n' "$SOURCE_ROWS" "$SOURCE_MB"
printf 'apply (cold, 7 products):    %.2f s\n' "$APPLY_S"
printf 'source rows ingested per s:  %.0f\n' "$(echo "$SOURCE_ROWS / $APPLY_S" | bc -l)"
printf 'rows published (all 7):      %s\n' "$PUBLISHED_ROWS"
printf 'apply again (all unchanged): %.2f s\n' "$NOOP_S"
printf 'query latency, %s runs:       median %.0f ms (min %.0f, max %.0f), process start to exit\n' "$RUNS" "$MEDIAN_MS" "$MIN_MS" "$MAX_MS"
printf 'query:                       %s\n' "$SQL"
