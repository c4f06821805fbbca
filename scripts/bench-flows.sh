#!/usr/bin/env bash
# The cost of flow context, measured with real TCP traffic in one run:
# loopback throughput (iperf3) with no profiler, under perf record -a, under
# msen record -a --no-flows and under msen record -a (flow hooks on), same
# event and rate. Goal: flows cost at most 2% of throughput.
#
#   scripts/bench-flows.sh [SECONDS] [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
SECS=${1:-5}
REPS=${2:-3}
FREQ=${FREQ:-1000}
[ "$(id -u)" -eq 0 ] || { echo "bench-flows: needs root" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "bench-flows: iperf3 missing; run scripts/setup.sh" >&2; exit 1; }
cargo build --release --locked -q
M=./target/release/msen
D=$(mktemp -d)
PORT=5299
iperf3 -s -p $PORT -D -1 >/dev/null 2>&1 || true
trap 'pkill -f "iperf3 -s -p $PORT" 2>/dev/null; rm -rf "$D"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Throughput in Gbit/s of one iperf3 run, the server restarted for each.
gbps() {
  pkill -f "iperf3 -s -p $PORT" 2>/dev/null || true
  iperf3 -s -p $PORT -D -1 >/dev/null 2>&1; sleep 0.3
  iperf3 -c 127.0.0.1 -p $PORT -t "$SECS" -J 2>/dev/null | awk -F':' '/"bits_per_second"/ {v=$2} END {gsub(/[ \t,]/,"",v); printf "%.3f\n", v/1e9}'
}
under() { # $@: recorder command (empty: none)
  for _ in $(seq "$REPS"); do
    if [ $# -eq 0 ]; then gbps; else
      "$@" >/dev/null 2>&1 & R=$!; sleep 0.5; gbps; kill -INT $R 2>/dev/null; wait $R 2>/dev/null || true
    fi
  done | median
}
echo "bench-flows: iperf3 loopback TCP, $SECS s x $REPS, -a -F $FREQ, $(nproc) CPUs"
base=$(under)
perf_t=$(under perf record -q -a -F "$FREQ" -o "$D/p.data")
nof=$(under $M record -q -a -F "$FREQ" --no-flows -o "$D/n.msen")
fl=$(under $M record -q -a -F "$FREQ" -o "$D/f.msen")
awk -v b="$base" -v p="$perf_t" -v n="$nof" -v f="$fl" 'BEGIN {
  printf "throughput Gbit/s: none %.3f, perf record %.3f (%+.1f%%), msen --no-flows %.3f (%+.1f%%), msen with flows %.3f (%+.1f%%)\n", b, p, (p-b)/b*100, n, (n-b)/b*100, f, (f-b)/b*100
  printf "flow hooks cost: %.1f%% of throughput against msen --no-flows (goal <= 2%%); msen with flows vs perf record: %.3f\n", (n-f)/n*100, f/p
}'
$M flows -i "$D/f.msen" | head -8
