#!/usr/bin/env bash
# The always-on agent's cost: `msen record -a --mode sentinel` running
# system-wide while a busy workload runs, against the workload alone, and
# against stock perf at the same event and rate, in one run. Needs root.
#
#   scripts/bench-agent.sh [ROUNDS] [REPS]
#
# recorder CPU: msen's own user+system time (not the workload's) per second
# of capture, in % of one CPU, with the budget in force (5000/s per CPU)
# and with --mode diagnostic; the workload's slowdown: its self-timed run
# (hot --work ROUNDS, one per CPU) during the capture against alone; the
# median of REPS runs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
ROUNDS=${1:-400}
REPS=${2:-3}
FREQ=${FREQ:-4000}
[ "$(id -u)" -eq 0 ] || { echo "bench-agent: needs root" >&2; exit 1; }
cargo build --release --locked -q
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
cc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -o "$D/hot" testdata/programs/hot.c
MSEN=./target/release/msen
N=$(nproc)
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# One hot per CPU; the slowest one's self-timed seconds.
work() { for _ in $(seq "$N"); do "$D/hot" --work "$ROUNDS" 2>&1 >/dev/null & done | grep -E '^[0-9]+\.[0-9]+$' | sort -g | tail -1; }
# RECORDER ARGS...: run it in the background around one work(); print
# "<work seconds> <recorder cpu seconds> <seconds>", the recorder's CPU
# counted while the workload runs (its start-up, BPF verification and
# /proc scan included in neither).
under() {
  local start end pid w t0 t1 clk
  clk=$(getconf CLK_TCK)
  "$@" > /dev/null 2> "$D/err" &
  pid=$!
  sleep 2
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  start=$(date +%s.%N)
  w=$(work)
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  end=$(date +%s.%N)
  kill -INT "$pid"; wait "$pid" || true
  echo "$w $(echo "($t1 - $t0) / $clk" | bc -l) $(echo "$end - $start" | bc -l)"
}
echo "bench-agent: $N x hot --work $ROUNDS, cpu-clock -F $FREQ system-wide, $REPS reps, $(perf --version)"
base=$(for _ in $(seq "$REPS"); do work; done | median)
printf "%-34s %8.3f s\n" "workload alone" "$base"
report() {
  local name=$1; shift
  local rows
  rows=$(for _ in $(seq "$REPS"); do under "$@"; done)
  local w c t
  w=$(echo "$rows" | awk '{print $1}' | median)
  c=$(echo "$rows" | awk '{print 100 * $2 / $3}' | median)
  printf "%-34s %8.3f s  slowdown %+5.1f%%  recorder CPU %5.2f%% of one CPU\n" "$name" "$w" "$(echo "100 * ($w - $base) / $base" | bc -l)" "$c"
}
report "msen --mode sentinel (5000/s/CPU)" $MSEN record -a -e cpu-clock -F "$FREQ" --mode sentinel --no-embed -o "$D/s.msen"
report "msen sentinel + --metrics (rollups)" $MSEN record -a -e cpu-clock -F "$FREQ" --mode sentinel --metrics 127.0.0.1:19464 --no-embed -o "$D/m.msen"
report "msen --mode sentinel, 500/s/CPU" $MSEN record -a -e cpu-clock -F "$FREQ" --mode sentinel --sentinel-budget 500 --no-embed -o "$D/s2.msen"
report "msen --mode diagnostic" $MSEN record -a -e cpu-clock -F "$FREQ" --mode diagnostic --no-embed -o "$D/d.msen"
report "msen, no agent (plain record -a)" $MSEN record -a -e cpu-clock -F "$FREQ" --no-embed -o "$D/p.msen"
report "perf record -a" perf record -q -a -e cpu-clock -F "$FREQ" -o "$D/p.data"
echo "kept samples: sentinel $($MSEN info --format json "$D/s.msen" | awk -F': ' '/^  "samples":/ {gsub(",","",$2); print $2}'), 500/s $($MSEN info --format json "$D/s2.msen" | awk -F': ' '/^  "samples":/ {gsub(",","",$2); print $2}')"
