#!/usr/bin/env bash
# Usage: bench/apply_ratio.sh OLD_BIN NEW_BIN [RUNS]: cold `meshwork apply` of the example mesh (120,000 orders)
# by two binaries, interleaved run by run so both see the same machine load; medians and ratio.
set -euo pipefail
OLD="$1"; NEW="$2"; RUNS="${3:-5}"
W=$(mktemp -d)
for which in old new; do
  bin=$OLD; [ $which = new ] && bin=$NEW
  "$bin" init "$W/$which" --example --orders 120000 --seed 42 >/dev/null
done
for i in $(seq "$RUNS"); do
  for which in old new; do
    bin=$OLD; [ $which = new ] && bin=$NEW
    rm -rf "$W/$which/.meshwork"
    s=$(date +%s.%N); "$bin" apply "$W/$which" >/dev/null 2>&1; e=$(date +%s.%N)
    echo "$which $(echo "$e - $s" | bc -l)"
  done
done | tee "$W/times"
python3 - "$W/times" <<'PY'
import sys, statistics
t={'old':[],'new':[]}
for line in open(sys.argv[1]):
    k,v=line.split(); t[k].append(float(v))
o,n=statistics.median(t['old']),statistics.median(t['new'])
print(f"old median {o:.3f}s (min {min(t['old']):.3f}, max {max(t['old']):.3f})")
print(f"new median {n:.3f}s (min {min(t['new']):.3f}, max {max(t['new']):.3f})")
print(f"ratio {n/o:.3f}")
PY
rm -rf "$W"
