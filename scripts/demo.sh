#!/usr/bin/env bash
# The main job on a built-in example: build the example workload
# (testdata/programs/hot.c: 90% of its time in hot_loop), record it with call
# chains, and report where the time went. Needs root (or a permissive
# kernel.perf_event_paranoid) to open perf events.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
mkdir -p target/example
cc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -o target/example/hot testdata/programs/hot.c
./target/release/msen record -g -F 4000 -o target/example/example.msen -- target/example/hot 2 >/dev/null
./target/release/msen report -i target/example/example.msen --percent-limit 0.5
./target/release/msen info -i target/example/example.msen | sed -n '1,2p;/samples  /p;/bytes per sample/p'
