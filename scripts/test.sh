#!/usr/bin/env bash
# The test suite: unit tests, trace-file tests, and live captures (the
# capture tests need root; as another user they skip and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
# The readers the export tests check profiles with (go tool pprof,
# speedscope in headless Chromium); as another user they skip.
if [ "$(id -u)" -eq 0 ]; then bash scripts/setup-viewers.sh; fi
# The ClickHouse engines the export tests load into (clickhouse-server 18.16, chdb).
bash scripts/setup-clickhouse.sh
# pyarrow and DuckDB, which read the Parquet export back.
bash scripts/setup-pydata.sh
# Prometheus (scrapes record --metrics), nftables and iperf3, for the agent tests.
if [ "$(id -u)" -eq 0 ]; then bash scripts/setup-agent.sh; fi
# With the "polars" feature: msen sql and export --parquet are tested too.
cargo build --locked --all-targets --features polars
cargo test --locked --features polars -- --test-threads="$(nproc)"
