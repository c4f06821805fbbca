#!/usr/bin/env bash
# What self-contained traces cost, on a realistic capture: `msen record -a -g`
# while a compiler, an interpreter and a shell pipeline run (many processes,
# big stripped binaries with debug files, kernel samples), once with the
# default embedding, once with --embed-lines, once with --no-embed. Prints
# the time record spends after the workload ends, the bytes the embedded
# tables add (per distinct address) and peak RSS. Needs root.
#
#   scripts/bench-embed.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
MSEN=${MSEN:-target/release/msen}
[ -x "$MSEN" ] || cargo build --release -q
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
python3 - "$D/big.c" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(2000):
        f.write(f"int f{i}(int x){{ int s=0; for(int j=0;j<x;j++) s+=j*{i}^(s>>3); return s; }}\n")
PY
load() {
  ( while :; do gcc -O2 -c "$D/big.c" -o /dev/null; done ) &
  ( while :; do python3 -c 'import json; d=[{"a":i,"b":str(i)} for i in range(200000)]; json.loads(json.dumps(d))'; done ) &
  ( while :; do for i in $(seq 50); do echo $i | sort | wc -l >/dev/null; done; done ) &
}
for mode in "" "--embed-lines" "--no-embed"; do
  load
  out="$D/t${mode//-/_}.msen"
  /usr/bin/time -f "%e %M" -o "$D/time" "$MSEN" record -q -a -g $mode --duration "$SECS" -o "$out" 2>/dev/null
  kill $(jobs -p) 2>/dev/null; wait 2>/dev/null || true
  read -r wall rss < "$D/time"
  size=$(stat -c %s "$out")
  emb=$("$MSEN" info "$out" | sed -n 's/^# embedded symbols  : //p')
  printf "%-14s wall %6.2f s (capture %d s)  after-capture %5.2f s  peak RSS %6d KB  trace %9d B\n" \
    "${mode:-default}" "$wall" "$SECS" "$(echo "$wall - $SECS" | bc)" "$rss" "$size"
  printf "               embedded: %s\n" "$emb"
done
