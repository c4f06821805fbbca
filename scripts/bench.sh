#!/usr/bin/env bash
# msen vs stock perf on the same workload, same event and frequency, in one
# run; prints ratios. Needs root (perf events) and linux-perf (scripts/setup.sh).
#
#   scripts/bench.sh [ROUNDS] [REPS]
#
# ROUNDS: work of the example workload per run (about 11 ms each here).
# REPS:   repetitions of every timed command; the median is reported.
#
# What is measured:
#   record overhead   the workload's own elapsed time (it times itself) under
#                     `msen record` and `perf record`, minus its time alone
#   bytes per sample  trace size / samples, msen vs `perf record` and `-z`
#   report time       `msen report` vs `perf report --stdio`, same sort keys,
#                     on captures of the same workload (call chains on, so
#                     both compute children)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
ROUNDS=${1:-400}
REPS=${2:-5}
FREQ=10000
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root to open perf events" >&2; exit 1; }
command -v perf >/dev/null || { echo "bench: perf not found; run scripts/setup.sh" >&2; exit 1; }

cargo build --release --locked -q
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
cc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -o "$D/hot" testdata/programs/hot.c
MSEN=./target/release/msen

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
# Run "$@" REPS times, print the median wall time in seconds.
timeit() {
  for _ in $(seq "$REPS"); do
    local s; s=$(now); "$@" >/dev/null 2>&1; echo "$(now) - $s" | bc -l
  done | median
}
# The workload's self-reported time under a recorder: the last stderr line.
work_time() { "$@" 2>&1 >/dev/null | grep -E '^[0-9]+\.[0-9]+$' | tail -1; }

echo "bench: workload hot --work $ROUNDS, -F $FREQ -g, $REPS reps, $(nproc) CPUs, $(perf --version)"

base=$(for _ in $(seq "$REPS"); do work_time "$D/hot" --work "$ROUNDS"; done | median)
t_perf=$(for i in $(seq "$REPS"); do work_time perf record -q -F $FREQ -g -o "$D/p.data" -- "$D/hot" --work "$ROUNDS"; done | median)
t_msen=$(for i in $(seq "$REPS"); do work_time $MSEN record -q -F $FREQ -g -o "$D/m.msen" -- "$D/hot" --work "$ROUNDS"; done | median)
perf record -q -z -F $FREQ -g -o "$D/pz.data" -- "$D/hot" --work "$ROUNDS" >/dev/null 2>&1

samples_perf() { perf report -i "$1" --stats 2>/dev/null | awk '/SAMPLE events:/ {print $3; exit}'; }
s_perf=$(samples_perf "$D/p.data")
s_perfz=$(samples_perf "$D/pz.data")
s_msen=$($MSEN info --format json "$D/m.msen" | awk -F': ' '/^  "samples":/ {gsub(",","",$2); print $2}')
b_perf=$(stat -c %s "$D/p.data"); b_perfz=$(stat -c %s "$D/pz.data"); b_msen=$(stat -c %s "$D/m.msen")

# System-wide captures of the same size: both CPUs busy, 10 s at FREQ with call chains.
"$D/hot" --forever >/dev/null & H1=$!
"$D/hot" --forever >/dev/null & H2=$!
perf record -q -a -g -F $FREQ -o "$D/pa.data" -- sleep 10 >/dev/null 2>&1
$MSEN record -q -a -g -F $FREQ --duration 10 -o "$D/ma.msen"
kill $H1 $H2; wait $H1 $H2 2>/dev/null || true
sa_perf=$(samples_perf "$D/pa.data")
sa_msen=$($MSEN info --format json "$D/ma.msen" | awk -F': ' '/^  "samples":/ {gsub(",","",$2); print $2}')
ra_perf=$(timeit perf report -i "$D/pa.data" --stdio --sort comm,dso,sym)
ra_msen=$(timeit $MSEN report -i "$D/ma.msen" --sort comm,dso,sym)

r_perf=$(timeit perf report -i "$D/p.data" --stdio --sort comm,dso,sym)
r_msen=$(timeit $MSEN report -i "$D/m.msen" --sort comm,dso,sym)
r_perf_nc=$(timeit perf report -i "$D/p.data" --stdio --no-children --sort comm,dso,sym)
r_msen_nc=$(timeit $MSEN report -i "$D/m.msen" --no-children --sort comm,dso,sym)

awk -v base="$base" -v tp="$t_perf" -v tm="$t_msen" \
    -v sp="$s_perf" -v spz="$s_perfz" -v sm="$s_msen" -v bp="$b_perf" -v bpz="$b_perfz" -v bm="$b_msen" \
    -v rp="$r_perf" -v rm="$r_msen" -v rpn="$r_perf_nc" -v rmn="$r_msen_nc" \
    -v sap="$sa_perf" -v sam="$sa_msen" -v rap="$ra_perf" -v ram="$ra_msen" \
    -v bap="$(stat -c %s "$D/pa.data")" -v bam="$(stat -c %s "$D/ma.msen")" 'BEGIN {
  op = (tp - base) / base * 100; om = (tm - base) / base * 100
  printf "record overhead   workload alone %.3f s; under perf %.3f s (+%.2f%%); under msen %.3f s (+%.2f%%)\n", base, tp, op, tm, om
  printf "                  msen/perf slowdown ratio: %.2f (below 1 = msen lighter)\n", (om > 0 && op > 0) ? om / op : 0
  bps_p = bp / sp; bps_pz = bpz / spz; bps_m = bm / sm
  printf "bytes per sample  perf %.1f (%d samples), perf -z %.1f (%d), msen %.1f (%d)\n", bps_p, sp, bps_pz, spz, bps_m, sm
  printf "                  perf/msen %.1fx, perf -z/msen %.1fx\n", bps_p / bps_m, bps_pz / bps_m
  printf "system-wide -a    perf %d samples %.1f B/sample, msen %d samples %.1f B/sample\n", sap, bap / sap, sam, bam / sam
  printf "report time (-a)  with children: perf %.3f s, msen %.3f s: %.1fx faster\n", rap, ram, rap / ram
  printf "report time       with children: perf %.3f s, msen %.3f s: %.1fx faster\n", rp, rm, rp / rm
  printf "                  --no-children: perf %.3f s, msen %.3f s: %.1fx faster\n", rpn, rmn, rpn / rmn
}'
