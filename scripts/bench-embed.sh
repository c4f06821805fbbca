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
. scripts/lib/realistic-load.sh
for mode in "" "--embed-lines" "--no-embed"; do
  realistic_load_start "$D" 2000
  out="$D/t${mode//-/_}.msen"
  /usr/bin/time -f "%e %M" -o "$D/time" "$MSEN" record -q -a -g $mode --duration "$SECS" -o "$out" 2>/dev/null
  realistic_load_stop
  read -r wall rss < "$D/time"
  size=$(stat -c %s "$out")
  emb=$("$MSEN" info "$out" | sed -n 's/^# embedded symbols  : //p')
  printf "%-14s wall %6.2f s (capture %d s)  after-capture %5.2f s  peak RSS %6d KB  trace %9d B\n" \
    "${mode:-default}" "$wall" "$SECS" "$(echo "$wall - $SECS" | bc)" "$rss" "$size"
  printf "               embedded: %s\n" "$emb"
done
