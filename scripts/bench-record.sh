#!/usr/bin/env bash
# Record overhead and trace size, msen against stock perf, same workload,
# event and rate, in one run: frame-pointer (-g) and DWARF
# (--call-graph dwarf) call chains. Needs root and linux-perf.
#
#   scripts/bench-record.sh [ROUNDS] [REPS]
#
# overhead: the workload's self-timed run (hot --work ROUNDS) under each
# recorder, minus its time alone; the median of REPS runs.
# size: trace bytes per sample, msen (zstd level 3 blocks) against
# `perf record -z` (zstd level 1, one stream) and plain perf.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
ROUNDS=${1:-300}
REPS=${2:-5}
FREQ=${FREQ:-4000}
[ "$(id -u)" -eq 0 ] || { echo "bench-record: needs root to open perf events" >&2; exit 1; }
cargo build --release --locked -q
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
cc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -o "$D/hot" testdata/programs/hot.c
MSEN=./target/release/msen
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
work_time() { "$@" 2>&1 >/dev/null | grep -E '^[0-9]+\.[0-9]+$' | tail -1; }
samples_perf() { perf report -i "$1" --stats 2>/dev/null | awk '/SAMPLE events:/ {print $3; exit}'; }
samples_msen() { $MSEN info --format json "$1" | awk -F': ' '/^  "samples":/ {gsub(",","",$2); print $2}'; }
peak_kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

echo "bench-record: hot --work $ROUNDS, -F $FREQ, $REPS reps, $(nproc) CPUs, $(perf --version)"
base=$(for _ in $(seq "$REPS"); do work_time "$D/hot" --work "$ROUNDS"; done | median)
printf "workload alone    %.3f s\n" "$base"
for mode in "-g" "--call-graph dwarf"; do
  # shellcheck disable=SC2086
  tp=$(for _ in $(seq "$REPS"); do work_time perf record -q -F $FREQ $mode -o "$D/p.data" -- "$D/hot" --work "$ROUNDS"; done | median)
  # shellcheck disable=SC2086
  tm=$(for _ in $(seq "$REPS"); do work_time $MSEN record -q -F $FREQ $mode -o "$D/m.msen" -- "$D/hot" --work "$ROUNDS"; done | median)
  # shellcheck disable=SC2086
  perf record -q -z -F $FREQ $mode -o "$D/pz.data" -- "$D/hot" --work "$ROUNDS" >/dev/null 2>&1
  sp=$(samples_perf "$D/p.data"); spz=$(samples_perf "$D/pz.data"); sm=$(samples_msen "$D/m.msen")
  bp=$(stat -c %s "$D/p.data"); bpz=$(stat -c %s "$D/pz.data"); bm=$(stat -c %s "$D/m.msen")
  awk -v m="$mode" -v base="$base" -v tp="$tp" -v tm="$tm" -v sp="$sp" -v spz="$spz" -v sm="$sm" -v bp="$bp" -v bpz="$bpz" -v bm="$bm" 'BEGIN {
    op = (tp - base) / base * 100; om = (tm - base) / base * 100
    printf "%-20s overhead perf +%.2f%%, msen +%.2f%%, ratio %.2f (below 1: msen lighter)\n", m, op, om, (op > 0) ? om / op : 0
    printf "%-20s bytes/sample perf %.1f, perf -z %.1f, msen %.1f (msen/perf-z %.2f); samples perf %d, msen %d\n", "", bp/sp, bpz/spz, bm/sm, (bm/sm)/(bpz/spz), sp, sm
  }'
done
