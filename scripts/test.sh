#!/usr/bin/env bash
# The test suite: unit tests, trace-file tests, and live captures (the
# capture tests need root; as another user they skip and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --all-targets
cargo test --locked -- --test-threads="$(nproc)"
