#!/usr/bin/env bash
# msen export --clickhouse against curl posting the same RowBinary bytes to
# the same server, in one run (issue: at least 0.8x curl's rows per second).
# A private clickhouse-server (18.16) on loopback; the input is a capture of
# N million memory samples (mock streaming: every sample a distinct line,
# symbolized, with flows and decoded data sources: the widest rows msen
# writes). msen's time includes reading, decoding and symbolizing the trace;
# curl's only the upload of bytes prepared beforehand.
#   usage: scripts/bench-clickhouse.sh [MILLIONS]   (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-1}
cargo build --release -q
MSEN=$PWD/target/release/msen
W=$(mktemp -d)
trap 'kill $(cat $W/pid 2>/dev/null) 2>/dev/null; rm -rf $W' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p $W/{log,data,tmp,uf,fs}
cat > $W/config.xml <<XML
<yandex><logger><level>warning</level><log>$W/log/s.log</log><errorlog>$W/log/e.log</errorlog><console>0</console></logger>
<listen_host>127.0.0.1</listen_host><http_port>$PORT</http_port><path>$W/data/</path><tmp_path>$W/tmp/</tmp_path>
<user_files_path>$W/uf/</user_files_path><format_schema_path>$W/fs/</format_schema_path><users_config>$W/users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database><mark_cache_size>268435456</mark_cache_size></yandex>
XML
cat > $W/users.xml <<XML
<yandex><profiles><default></default></profiles><users><default><password></password><networks><ip>127.0.0.1</ip></networks>
<profile>default</profile><quota>default</quota></default></users><quotas><default></default></quotas></yandex>
XML
clickhouse-server --config-file=$W/config.xml >/dev/null 2>&1 & echo $! > $W/pid
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf $URL/ping >/dev/null && break; sleep 0.1; done
q() { curl -sf "$URL/" --data-binary "$1"; }

ROUNDS=$((M * 250000))
$MSEN record --mock streaming --rounds $ROUNDS -o $W/cap.msen >/dev/null 2>&1
q "CREATE DATABASE a"; q "CREATE DATABASE b"
# Tables in both databases (an empty export creates them).
$MSEN record --mock clean --rounds 1 -o $W/tiny.msen >/dev/null 2>&1
$MSEN export --clickhouse $URL --database a --create-tables $W/tiny.msen >/dev/null 2>&1
$MSEN export --clickhouse $URL --database b --create-tables $W/tiny.msen >/dev/null 2>&1
for t in ms_raw_samples ms_stack_traces ms_flow_rollup ms_flows ms_data_objects ms_captures; do q "TRUNCATE TABLE a.$t"; q "TRUNCATE TABLE b.$t"; done

echo "msen export --clickhouse: $((M))M samples from a trace ($(du -h $W/cap.msen | cut -f1))"
/usr/bin/time -f "%e %M" -o $W/msen.time $MSEN export --clickhouse $URL --database a $W/cap.msen 2>$W/msen.err
read -r MSEN_S MSEN_KB < $W/msen.time
ROWS=$(q "SELECT count() FROM a.ms_raw_samples")
# The same rows as RowBinary, in msen's column order, sent by curl in
# batches of 1M rows (msen's batch size).
COLS=$(q "DESCRIBE TABLE a.ms_raw_samples FORMAT TabSeparated" | cut -f1 | paste -sd, | sed 's/,/, /g')
curl -sf "$URL/?query=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))" "SELECT $COLS FROM a.ms_raw_samples FORMAT RowBinary")" -o $W/rows.bin
BYTES=$(stat -c %s $W/rows.bin)
INSERT=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))" "INSERT INTO b.ms_raw_samples ($COLS) FORMAT RowBinary")
/usr/bin/time -f "%e %M" -o $W/curl.time curl -sf "$URL/?query=$INSERT&max_insert_block_size=1048577" --data-binary @$W/rows.bin -o /dev/null
read -r CURL_S CURL_KB < $W/curl.time
CURL_ROWS=$(q "SELECT count() FROM b.ms_raw_samples")
python3 - "$ROWS" "$MSEN_S" "$MSEN_KB" "$CURL_ROWS" "$CURL_S" "$CURL_KB" "$BYTES" <<'PY'
import sys
rows, ms, mkb, crows, cs, ckb, nbytes = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
mr, cr = rows / ms, crows / cs
print(f"| | rows | time | rows/s | peak RSS |")
print(f"|---|---|---|---|---|")
print(f"| msen export (trace -> tables) | {rows} | {ms:.2f} s | {mr/1e6:.2f} M | {mkb/1024:.0f} MB |")
print(f"| curl (RowBinary ms_raw_samples only, {nbytes/1e6:.0f} MB) | {crows} | {cs:.2f} s | {cr/1e6:.2f} M | {ckb/1024:.0f} MB |")
print(f"ratio msen/curl: {mr/cr:.2f}x (bytes per sample row: {nbytes/max(crows,1):.0f})")
PY
