#!/usr/bin/env bash
# msen vs stock perf on a large perf.data made here by perf itself, in one
# run; prints ratios. Needs root and linux-perf (scripts/setup.sh).
#
#   scripts/bench-perfdata.sh [SECONDS] [REPS]
#
# The capture is realistic, not a toy: `perf record -a -g` for SECONDS
# (default 20) while a compiler (gcc on a generated 3000-function file), an
# interpreter (Python building and parsing JSON) and a shell pipeline that
# spawns short processes run on every CPU -- many processes, deep stacks, big
# stripped binaries with detached debug files, kernel samples. Then, REPS
# times each (median wall time, peak RSS of the median run's kind):
#   report   `msen report` vs `perf report --stdio`, with and without children
#   threads  msen report at --threads 1 and 2 (scaling)
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
MSEN=./target/release/msen
. scripts/lib/realistic-load.sh

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() {
  for _ in $(seq "$REPS"); do
    local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc -l
  done | median
}
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

realistic_load_start "$D"
perf record -q -a -g -o "$D/big.data" -- sleep "$SECS" >/dev/null 2>&1
realistic_load_stop
n=$(perf report -i "$D/big.data" --stats 2>/dev/null | awk '/SAMPLE events:/ {print $3; exit}')
echo "bench: perf.data of $n samples ($(stat -c %s "$D/big.data") bytes) from gcc + python + a shell pipeline, $REPS reps, $(nproc) CPUs, $(perf --version)"

B="$D/big.data"
rp=$(timeit perf report -i "$B" --stdio --sort comm,dso,sym);                    rpM=$(rss perf report -i "$B" --stdio --sort comm,dso,sym)
rm_=$(timeit $MSEN report -i "$B" --sort comm,dso,sym);                          rmM=$(rss $MSEN report -i "$B" --sort comm,dso,sym)
rpn=$(timeit perf report -i "$B" --stdio --no-children -g none --sort comm,dso,sym); rpnM=$(rss perf report -i "$B" --stdio --no-children -g none --sort comm,dso,sym)
rmn=$(timeit $MSEN report -i "$B" --no-children -g none --sort comm,dso,sym);    rmnM=$(rss $MSEN report -i "$B" --no-children -g none --sort comm,dso,sym)
t1=$(timeit $MSEN report -i "$B" --threads 1 --sort comm,dso,sym)
t2=$(timeit $MSEN report -i "$B" --threads 2 --sort comm,dso,sym)
sp=$(timeit perf script -i "$B");                                                spM=$(rss perf script -i "$B")
im=$(timeit $MSEN import "$B" -o "$D/big.msen");                                 imM=$(rss $MSEN import "$B" -o "$D/big.msen")
$MSEN import "$B" -o "$D/big.msen" 2>/dev/null
rt=$(timeit $MSEN report -i "$D/big.msen" --sort comm,dso,sym)

awk -v rp="$rp" -v rm="$rm_" -v rpn="$rpn" -v rmn="$rmn" -v sp="$sp" -v im="$im" -v rt="$rt" -v t1="$t1" -v t2="$t2" \
    -v rpM="$rpM" -v rmM="$rmM" -v rpnM="$rpnM" -v rmnM="$rmnM" -v spM="$spM" -v imM="$imM" \
    -v bp="$(stat -c %s "$B")" -v bm="$(stat -c %s "$D/big.msen")" 'BEGIN {
  printf "report (children, graphs)  perf %.3f s %d KB, msen %.3f s %d KB: %.2fx faster, %.2fx the memory\n", rp, rpM, rm, rmM, rp / rm, rmM / rpM
  printf "report --no-children -g none perf %.3f s %d KB, msen %.3f s %d KB: %.2fx faster, %.2fx the memory\n", rpn, rpnM, rmn, rmnM, rpn / rmn, rmnM / rpnM
  printf "threads                    msen 1 thread %.3f s, 2 threads %.3f s: %.2fx\n", t1, t2, t1 / t2
  printf "decode                     perf script %.3f s %d KB, msen import %.3f s %d KB: %.2fx faster\n", sp, spM, im, imM, sp / im
  printf "imported trace             msen report %.3f s: %.2fx faster than perf report on the perf.data; %.1fx smaller (%d vs %d bytes)\n", rt, rp / rt, bp / bm, bm, bp
}'
