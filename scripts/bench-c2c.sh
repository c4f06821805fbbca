#!/usr/bin/env bash
# msen false-share / numa vs perf c2c report / perf mem report on the same
# perf.data, in one run: a mock false-sharing + mixed capture of a few million
# samples exported to perf.data. Prints time and peak memory ratios.
#
#   scripts/bench-c2c.sh [ROUNDS]      (default 400000: 2M false-sharing samples)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
ROUNDS=${1:-400000}
command -v perf >/dev/null || { echo "bench: perf not found; run scripts/setup.sh" >&2; exit 1; }
cargo build --release --locked -q
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
MSEN=./target/release/msen
$MSEN record -q --mock false-sharing --rounds "$ROUNDS" -o "$D/m.msen"
$MSEN export -i "$D/m.msen" --perf-data "$D/m.data" 2>/dev/null
n=$($MSEN info --format json "$D/m.msen" | awk -F': ' '/^  "samples":/ {gsub(",","",$2); print $2}')
echo "bench: $n mock memory samples, perf.data $(stat -c %s "$D/m.data") bytes, trace $(stat -c %s "$D/m.msen") bytes, $(nproc) CPUs"
# time (s) and peak RSS (KB) of one run
run() { /usr/bin/time -f "%e %M" "$@" >/dev/null 2>"$D/time" || true; tail -1 "$D/time"; }
read -r pt pm < <(run perf c2c report --stdio --no-source -i "$D/m.data")
read -r mt mm < <(run $MSEN false-share -i "$D/m.data")
read -r tt tm < <(run $MSEN false-share -i "$D/m.msen")
read -r qt qm < <(run perf mem report --stdio -i "$D/m.data")
read -r nt nm < <(run $MSEN numa -i "$D/m.data")
# Many-line data: a streaming workload (1M samples by default, almost every
# line distinct, four shared lines). Only shown lines get per-offset detail.
SROUNDS=${SROUNDS:-250000}
$MSEN record -q --mock streaming --rounds "$SROUNDS" -o "$D/s.msen"
$MSEN export -i "$D/s.msen" --perf-data "$D/s.data" 2>/dev/null
read -r spt spm < <(run perf c2c report --stdio --no-source -i "$D/s.data")
read -r smt smm < <(run $MSEN false-share -i "$D/s.data")
read -r sqt sqm < <(run perf mem report --stdio -i "$D/s.data")
read -r snt snm < <(run $MSEN numa -i "$D/s.data")
awk -v n=$((SROUNDS * 4)) -v pt="$spt" -v pm="$spm" -v mt="$smt" -v mm="$smm" -v qt="$sqt" -v qm="$sqm" -v nt="$snt" -v nm="$snm" 'BEGIN {
  printf "streaming, %d samples, most lines distinct:\n", n
  printf "false-share       perf c2c report %.2f s %d MB; msen %.2f s %d MB: %.1fx faster, %.2fx the memory\n", pt, pm/1024, mt, mm/1024, pt/mt, mm/pm
  printf "numa              perf mem report %.2f s %d MB; msen numa %.2f s %d MB: %.1fx faster, %.2fx the memory\n", qt, qm/1024, nt, nm/1024, qt/nt, nm/qm
}'
awk -v pt="$pt" -v pm="$pm" -v mt="$mt" -v mm="$mm" -v tt="$tt" -v tm="$tm" -v qt="$qt" -v qm="$qm" -v nt="$nt" -v nm="$nm" 'BEGIN {
  printf "false-share       perf c2c report %.2f s %d MB; msen on the perf.data %.2f s %d MB: %.1fx faster, %.1fx less memory\n", pt, pm/1024, mt, mm/1024, pt/mt, pm/mm
  printf "                  msen on its own trace %.2f s %d MB: %.1fx faster, %.1fx less memory\n", tt, tm/1024, pt/tt, pm/tm
  printf "numa              perf mem report %.2f s %d MB; msen numa %.2f s %d MB: %.1fx faster, %.1fx less memory\n", qt, qm/1024, nt, nm/1024, qt/nt, qm/nm
}'
