#!/usr/bin/env bash
# What the ClickHouse export tests run against, the real engines: Debian's
# clickhouse-server (18.16, the HTTP path and the old DDL; the tests start
# private instances on loopback) and PyPI's chdb (ClickHouse 26.x in
# process, for the modern DDL: the tests replay msen's exact request bodies
# into it), in a virtualenv under target/chdb. Idempotent and quick once
# installed; the test command runs it, the demo does not need it.
set -euo pipefail
cd "$(dirname "$0")/.."
CHDB_VERSION=4.4.0

if ! command -v clickhouse-server >/dev/null 2>&1; then
  echo "setup-clickhouse: installing clickhouse-server"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clickhouse-server >/dev/null
fi

if ! target/chdb/bin/python -c "import chdb, sys; sys.exit(chdb.__version__ != '$CHDB_VERSION')" 2>/dev/null; then
  echo "setup-clickhouse: pip install chdb==$CHDB_VERSION into target/chdb"
  mkdir -p target
  python3 -m venv target/chdb
  target/chdb/bin/pip install -q "chdb==$CHDB_VERSION"
fi
echo "setup-clickhouse: clickhouse-server $(dpkg-query -W -f='${Version}' clickhouse-server 2>/dev/null), chdb $CHDB_VERSION"
