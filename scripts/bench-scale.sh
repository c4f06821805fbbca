#!/usr/bin/env bash
# Growth with the number of samples: each analysis on 1M, 3M and 10M mock
# memory samples (the sizes are SIZES, in millions), time and peak RSS, per
# sample and against the smallest size. Two shapes:
#   few-lines  the false-sharing mock: a few distinct lines and addresses,
#              whatever the size -- RSS should stay flat
#   streaming  the streaming mock: nearly every sample its own line (most
#              lines distinct, four shared) -- RSS may grow with the lines,
#              but only by what is kept per distinct line
# Commands: report (msen trace), false-share and numa (msen trace), import
# (perf.data -> trace) and report on the perf.data. perf.data input is read
# into memory whole, so those RSS figures include the file's size.
#
#   SIZES="1 3 10" scripts/bench-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
SIZES=${SIZES:-"1 3 10"}
cargo build --release --locked -q
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
M=./target/release/msen
run() { /usr/bin/time -f "%e %M" "$@" >/dev/null 2>"$D/time" || { echo "bench-scale: failed: $*" >&2; cat "$D/time" >&2; exit 1; }; tail -1 "$D/time"; }
echo "bench-scale: sizes $SIZES (millions of samples), $(nproc) CPUs"
printf "%-10s %-22s %8s %8s %10s %9s %8s %8s\n" shape command samples "time s" "ns/sample" "RSS MB" "time/1st" "RSS/1st"
for shape in few-lines streaming; do
  declare -A t0=() m0=()
  for n in $SIZES; do
    case $shape in
      few-lines) $M record -q --mock false-sharing --rounds $((n * 200000)) -o "$D/m.msen" ;;
      streaming) $M record -q --mock streaming --rounds $((n * 250000)) -o "$D/m.msen" ;;
    esac
    $M export -i "$D/m.msen" --perf-data "$D/m.data" 2>/dev/null
    s=$($M info --format json "$D/m.msen" | awk -F': ' '/^  "samples":/ {gsub(",","",$2); print $2}')
    for c in "report" "false-share" "numa" "import" "report perf.data"; do
      case $c in
        report) read -r t m < <(run $M report -i "$D/m.msen" --sort comm,dso,sym) ;;
        false-share) read -r t m < <(run $M false-share -i "$D/m.msen") ;;
        numa) read -r t m < <(run $M numa -i "$D/m.msen") ;;
        import) read -r t m < <(run $M import "$D/m.data" -o "$D/i.msen") ;;
        "report perf.data") read -r t m < <(run $M report -i "$D/m.data" --sort comm,dso,sym) ;;
      esac
      [ -n "${t0[$c]:-}" ] || { t0[$c]=$t; m0[$c]=$m; }
      awk -v sh="$shape" -v c="$c" -v s="$s" -v t="$t" -v m="$m" -v t0="${t0[$c]}" -v m0="${m0[$c]}" 'BEGIN {
        printf "%-10s %-22s %8d %8.2f %10.0f %9.0f %7.2fx %7.2fx\n", sh, c, s, t, t * 1e9 / s, m / 1024, t / t0, m / m0 }'
    done
    rm -f "$D/m.msen" "$D/m.data" "$D/i.msen"
  done
  unset t0 m0
done
