#!/usr/bin/env bash
# What the profile exports cost on a realistic capture, in one run: export
# speed (samples per second), output size and peak RSS of --pprof,
# --firefox and --speedscope, against the folded stacks of the same trace
# (`msen report --format folded`, what flame-graph tools take). Needs root
# and linux-perf (scripts/setup.sh).
#
#   scripts/bench-export.sh [SECONDS] [REPS]
#
# The capture is bench-perfdata.sh's: `perf record -a -g` for SECONDS
# (default 20) while gcc compiles a 3000-function file, Python builds and
# parses JSON and a shell pipeline spawns short processes; imported into a
# trace once.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
SECS=${1:-20}
REPS=${2:-3}
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
$MSEN import "$D/big.data" -o "$D/big.msen" 2>/dev/null
T="$D/big.msen"
n=$($MSEN report -i "$T" --format json --sort comm | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_samples"])')
echo "bench: $n samples (perf record -a -g, gcc + python + shell, ${SECS} s), $REPS reps, $(nproc) CPUs"

fo=$(timeit sh -c "$MSEN report -i $T --format folded > $D/out.folded"); foM=$(rss sh -c "$MSEN report -i $T --format folded > $D/f2")
fb=$(stat -c %s "$D/out.folded"); fz=$(gzip -c "$D/out.folded" | wc -c)
printf "%-22s %8s %12s %12s %10s\n" output seconds samples/s bytes "peak RSS"
printf "%-22s %8.3f %12.0f %12d %8d KB  (gzipped %d bytes)\n" "folded (report)" "$fo" "$(echo "$n / $fo" | bc -l)" "$fb" "$foM" "$fz"
for f in "pprof out.pb.gz" "firefox out.json.gz" "speedscope out.json"; do
  set -- $f
  t=$(timeit $MSEN export -i "$T" --"$1" "$D/$2"); m=$(rss $MSEN export -i "$T" --"$1" "$D/$2"); b=$(stat -c %s "$D/$2")
  printf "%-22s %8.3f %12.0f %12d %8d KB  (%.2fx the folded file, %.2fx gzipped folded)\n" "$1" "$t" "$(echo "$n / $t" | bc -l)" "$b" "$m" "$(echo "$b / $fb" | bc -l)" "$(echo "$b / $fz" | bc -l)"
done
