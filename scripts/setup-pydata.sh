#!/usr/bin/env bash
# The readers the Parquet tests check `msen export --parquet` with: PyPI's
# pyarrow and DuckDB, pinned, in a virtualenv under target/pydata.
# Idempotent and quick once installed; the test command runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYARROW_VERSION=26.0.1
DUCKDB_VERSION=1.5.6

if ! target/pydata/bin/python -c "
import sys, pyarrow, duckdb
sys.exit(pyarrow.__version__ != '$PYARROW_VERSION' or duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  echo "setup-pydata: pip install pyarrow==$PYARROW_VERSION duckdb==$DUCKDB_VERSION into target/pydata"
  mkdir -p target
  python3 -m venv target/pydata
  target/pydata/bin/pip install -q "pyarrow==$PYARROW_VERSION" "duckdb==$DUCKDB_VERSION"
fi
echo "setup-pydata: pyarrow $PYARROW_VERSION, duckdb $DUCKDB_VERSION"
