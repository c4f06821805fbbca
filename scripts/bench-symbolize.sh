#!/usr/bin/env bash
# Symbolization speed, same addresses, one run, as addresses/second ratios,
# every tool demangling: `msen symbolize -C -i` vs binutils `addr2line -C -f -i`,
# `llvm-symbolizer --inlining`, gimli's `addr2line -C -f -i` CLI and blazesym's
# `blazecli symbolize elf` (lines and inline frames; both installed from
# crates.io into target/ on first use; blazecli takes the addresses as
# arguments, in one invocation). Then `msen report --sort srcline` vs
# `perf report --stdio --sort srcline` on one capture of a DWARF-rich binary.
#
#   scripts/bench-symbolize.sh [N_ADDRESSES]
#
# The binary: msen's own debug build (full DWARF, tens of MB). Addresses:
# N distinct addresses inside its functions (every 4th byte from each start).
# The report part needs root (perf record).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
N=${1:-120000}
cargo build --locked -q
cargo build --release --locked -q
BIN=target/debug/msen
MSEN=target/release/msen
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
if [ ! -x target/gimli-addr2line/bin/addr2line ]; then
  echo "bench: installing gimli's addr2line CLI (cargo install addr2line --features bin)" >&2
  cargo install -q addr2line --version 0.24.2 --features bin --root target/gimli-addr2line >/dev/null 2>&1 || true
fi
if [ ! -x target/blazecli/bin/blazecli ]; then
  echo "bench: installing blazesym's CLI (cargo install blazecli)" >&2
  cargo install -q blazecli --version 0.1.14 --root target/blazecli >/dev/null 2>&1 || true
fi
nm -n --defined-only "$BIN" | awk '$2 ~ /^[tT]$/ {print $1}' | uniq > "$D/starts"
python3 - "$N" "$D/starts" > "$D/addrs" <<'PY'
import sys
n, starts = int(sys.argv[1]), [int(l, 16) for l in open(sys.argv[2]) if l.strip()]
out = []
for a, b in zip(starts, starts[1:]):
    out.extend(range(a, min(b, a + 256), 4))
    if len(out) >= n:
        break
print("\n".join(hex(x) for x in out[:n]))
PY
count=$(wc -l < "$D/addrs")
echo "bench: $count distinct addresses in $BIN ($(stat -c %s "$BIN") bytes), $(nproc) CPUs"

t() { local s; s=$(date +%s.%N); "$@" < "$D/addrs" > "$D/out.$(basename "$1")" 2>/dev/null; echo "$(date +%s.%N) - $s" | bc -l; }
tm=$(t "$MSEN" symbolize -C -i -e "$BIN")
tb=$(t addr2line -C -f -i -e "$BIN")
tl=$(t llvm-symbolizer --inlining --obj="$BIN")
if [ -x target/gimli-addr2line/bin/addr2line ]; then tg=$(t target/gimli-addr2line/bin/addr2line -C -f -i -e "$BIN"); else tg=0; fi
if [ -x target/blazecli/bin/blazecli ]; then
  s=$(date +%s.%N); target/blazecli/bin/blazecli symbolize elf --path "$BIN" $(cat "$D/addrs") > "$D/out.blazecli" 2>/dev/null; tz=$(echo "$(date +%s.%N) - $s" | bc -l)
else tz=0; fi
awk -v n="$count" -v tm="$tm" -v tb="$tb" -v tl="$tl" -v tg="$tg" -v tz="$tz" 'BEGIN {
  printf "symbolize         msen %.0f addr/s (%.2f s); binutils addr2line %.0f addr/s (%.2f s): msen %.1fx\n", n/tm, tm, n/tb, tb, tb/tm
  printf "                  llvm-symbolizer %.0f addr/s (%.2f s): msen %.1fx\n", n/tl, tl, tl/tm
  if (tg > 0) printf "                  gimli addr2line %.0f addr/s (%.2f s): msen %.1fx\n", n/tg, tg, tg/tm
  else print "                  gimli addr2line: not installed (cargo install failed)"
  if (tz > 0) printf "                  blazesym (blazecli) %.0f addr/s (%.2f s): msen %.1fx\n", n/tz, tz, tz/tm
  else print "                  blazesym: not installed (cargo install failed)"
}'

if [ "$(id -u)" -eq 0 ] && command -v perf >/dev/null; then
  # A capture whose samples spread over many addresses of a DWARF binary.
  $MSEN record -q -a -F 2000 --duration 3 -o "$D/w.msen" >/dev/null 2>&1
  perf record -q -F 4000 -g -o "$D/self.data" -- bash -c "for i in 1 2 3; do $BIN report --sort srcline -i $D/w.msen >/dev/null 2>&1; $BIN info -i $D/w.msen >/dev/null 2>&1; done" >/dev/null 2>&1
  s=$(date +%s.%N); perf report -i "$D/self.data" --stdio --no-children --sort srcline >/dev/null 2>&1; rp=$(echo "$(date +%s.%N) - $s" | bc -l)
  s=$(date +%s.%N); $MSEN report -i "$D/self.data" --no-children --sort srcline > "$D/msen-srcline.txt"; rm_=$(echo "$(date +%s.%N) - $s" | bc -l)
  n=$(perf report -i "$D/self.data" --stats 2>/dev/null | awk '/SAMPLE events:/ {print $3; exit}')
  rows=$(grep -c '%' "$D/msen-srcline.txt" || true)
  awk -v rp="$rp" -v rm="$rm_" -v n="$n" -v rows="$rows" 'BEGIN { printf "report --sort srcline  (%d samples, %d srcline rows) perf %.2f s, msen %.2f s: %.1fx faster\n", n, rows, rp, rm, rp/rm }'
fi
