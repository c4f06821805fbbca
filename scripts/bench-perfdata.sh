#!/usr/bin/env bash
# msen vs stock perf on a large perf.data made here by perf itself, in one
# run; prints ratios. Needs root and linux-perf (scripts/setup.sh).
#
#   scripts/bench-perfdata.sh [SECONDS] [REPS]
#
# The capture: `perf record -a -g -e cpu-clock -F 25000` for SECONDS (default
# 20, about a million samples on two busy CPUs). Then, REPS times each
# (median reported):
#   report   `msen report -i perf.data` vs `perf report --stdio`, same sort keys
#   import   `msen import perf.data` vs `perf script > /dev/null` (a full decode)
#   report of the imported trace vs perf report on the perf.data
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
SECS=${1:-20}
REPS=${2:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root to record with perf" >&2; exit 1; }
command -v perf >/dev/null || { echo "bench: perf not found; run scripts/setup.sh" >&2; exit 1; }
cargo build --release --locked -q
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
cc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -o "$D/hot" testdata/programs/hot.c
MSEN=./target/release/msen

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() {
  for _ in $(seq "$REPS"); do
    local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc -l
  done | median
}

"$D/hot" --forever >/dev/null & H1=$!
"$D/hot" --forever >/dev/null & H2=$!
perf record -q -a -g -e cpu-clock -F 25000 -o "$D/big.data" -- sleep "$SECS" >/dev/null 2>&1
kill $H1 $H2; wait $H1 $H2 2>/dev/null || true
n=$(perf report -i "$D/big.data" --stats 2>/dev/null | awk '/SAMPLE events:/ {print $3; exit}')
echo "bench: perf.data of $n samples ($(stat -c %s "$D/big.data") bytes), $REPS reps, $(nproc) CPUs, $(perf --version)"

rp=$(timeit perf report -i "$D/big.data" --stdio --sort comm,dso,sym)
rm_=$(timeit $MSEN report -i "$D/big.data" --sort comm,dso,sym)
rpn=$(timeit perf report -i "$D/big.data" --stdio --no-children --sort comm,dso,sym)
rmn=$(timeit $MSEN report -i "$D/big.data" --no-children --sort comm,dso,sym)
sp=$(timeit perf script -i "$D/big.data")
im=$(timeit $MSEN import "$D/big.data" -o "$D/big.msen")
$MSEN import "$D/big.data" -o "$D/big.msen" 2>/dev/null
rt=$(timeit $MSEN report -i "$D/big.msen" --sort comm,dso,sym)

awk -v rp="$rp" -v rm="$rm_" -v rpn="$rpn" -v rmn="$rmn" -v sp="$sp" -v im="$im" -v rt="$rt" \
    -v bp="$(stat -c %s "$D/big.data")" -v bm="$(stat -c %s "$D/big.msen")" 'BEGIN {
  printf "report perf.data  perf report %.3f s, msen report %.3f s: %.1fx faster\n", rp, rm, rp / rm
  printf "  --no-children   perf report %.3f s, msen report %.3f s: %.1fx faster\n", rpn, rmn, rpn / rmn
  printf "decode            perf script %.3f s, msen import %.3f s: %.1fx faster\n", sp, im, sp / im
  printf "imported trace    msen report %.3f s: %.1fx faster than perf report on the perf.data; %.1fx smaller (%d vs %d bytes)\n", rt, rp / rt, bp / bm, bm, bp
}'
