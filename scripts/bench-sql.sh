#!/usr/bin/env bash
# What `export --parquet` and `msen sql` cost, in one run, against anchors on
# the same inputs: export speed (samples per second), bytes per sample and
# peak RSS of the Parquet export (against the ClickHouse export's row
# building and the trace itself), and a GROUP BY symbol with `msen sql`
# against `msen report --sort sym --no-children` on the trace and DuckDB on
# the exported Parquet. Builds the "polars" feature (release).
#
#   scripts/bench-sql.sh [MILLIONS] [SECONDS]
#
# Inputs: a mock of MILLIONS (default 10) million memory samples (most to
# distinct cache lines), and (as root, with perf) a realistic system-wide
# capture of SECONDS (default 15): `perf record -a -g` while gcc, Python
# and a shell pipeline run, imported into a trace.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
MILLIONS=${1:-10}
SECS=${2:-15}
cargo build --release --locked -q --features polars
bash scripts/setup-pydata.sh >/dev/null
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
MSEN=./target/release/msen
PY=target/pydata/bin/python
secs() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc -l; }
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

bench() {
  local name=$1 t=$2
  local n; n=$($MSEN info --format json "$t" | python3 -c 'import json,sys; print(json.load(sys.stdin)["samples"])')
  local tb; tb=$(stat -c %s "$t")
  echo "== $name: $n samples, trace $tb bytes ($(echo "$tb / $n" | bc -l | xargs printf %.2f) bytes/sample)"
  rm -rf "$D/pq"
  local e; e=$(secs $MSEN export --parquet "$D/pq" "$t")
  local em; em=$(rss $MSEN export --parquet "$D/pq2" "$t")
  local pb; pb=$(du -cb "$D"/pq/*/*.parquet | tail -1 | cut -f1)
  printf "%-44s %8.2f s %8.2fM samples/s %9d KB peak RSS %8.2f bytes/sample\n" "msen export --parquet" "$e" "$(echo "$n / $e / 1000000" | bc -l)" "$em" "$(echo "$pb / $n" | bc -l)"
  local q="SELECT symbol, count(*) AS n, sum(period) AS p FROM samples GROUP BY symbol ORDER BY p DESC LIMIT 20"
  local s; s=$(secs $MSEN sql "$q" -i "$t"); local sm; sm=$(rss $MSEN sql "$q" -i "$t")
  local r; r=$(secs $MSEN report -i "$t" --sort sym --no-children -g none); local rm; rm=$(rss $MSEN report -i "$t" --sort sym --no-children -g none)
  local k; k=$(secs $PY -c "import duckdb; duckdb.sql(\"SELECT symbol, count(*) n, sum(period) p FROM '$D/pq/ms_raw_samples/*.parquet' GROUP BY symbol ORDER BY p DESC LIMIT 20\").fetchall()")
  printf "%-44s %8.2f s %9d KB peak RSS\n" "msen sql GROUP BY symbol (on the trace)" "$s" "$sm"
  printf "%-44s %8.2f s %9d KB peak RSS  (sql / report = %.2f)\n" "msen report --sort sym --no-children" "$r" "$rm" "$(echo "$s / $r" | bc -l)"
  printf "%-44s %8.2f s  (python start included)\n" "DuckDB GROUP BY symbol (on the Parquet)" "$k"
}

$MSEN record --mock streaming --rounds $((MILLIONS * 250000)) -o "$D/mock.msen" 2>/dev/null
bench "mock streaming (memory samples)" "$D/mock.msen"
if [ "$(id -u)" -eq 0 ] && command -v perf >/dev/null; then
  . scripts/lib/realistic-load.sh
  realistic_load_start "$D"
  perf record -q -a -g -o "$D/big.data" -- sleep "$SECS" >/dev/null 2>&1
  realistic_load_stop
  $MSEN import "$D/big.data" -o "$D/big.msen" 2>/dev/null
  bench "system-wide -g capture (gcc + python + shell, ${SECS} s)" "$D/big.msen"
fi
