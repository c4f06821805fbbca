#!/usr/bin/env bash
# Install what msen's build, tests and benchmarks need on a fresh Debian
# machine. Idempotent: packages already present are left alone.
#
#   scripts/setup.sh [--with-polars]
#
# --with-polars also builds the release binary with the "polars" feature
# (`msen sql`, `export --parquet`): about 10 more minutes on 2 cores.
set -euo pipefail
WITH_POLARS=0
for a in "$@"; do
  case "$a" in
    --with-polars) WITH_POLARS=1 ;;
    *) echo "setup: unknown option $a (use --with-polars)" >&2; exit 2 ;;
  esac
done

need=(build-essential pkg-config clang llvm libelf-dev zlib1g-dev linux-perf binutils bc libc6-dbg util-linux iproute2 iperf3)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: system packages present (${need[*]})"
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
echo "setup: $(cargo --version), $(perf --version 2>/dev/null || echo 'perf missing')"

# Shell completions, where the shells look for them (root only; a user can
# run `msen completions bash > ~/.local/share/bash-completion/completions/msen`).
if [ "$(id -u)" -eq 0 ]; then
  cd "$(dirname "$0")/.."
  if cargo build --release --locked -q 2>/dev/null; then
    mkdir -p /usr/share/bash-completion/completions /usr/share/zsh/vendor-completions /usr/share/fish/vendor_completions.d
    ./target/release/msen completions bash > /usr/share/bash-completion/completions/msen
    ./target/release/msen completions zsh > /usr/share/zsh/vendor-completions/_msen
    ./target/release/msen completions fish > /usr/share/fish/vendor_completions.d/msen.fish
    echo "setup: shell completions installed (bash, zsh, fish)"
  fi
fi
if [ "$WITH_POLARS" -eq 1 ]; then
  cd "$(dirname "$0")/.."
  cargo build --release --locked --features polars
  echo "setup: target/release/msen built with polars (msen sql, export --parquet)"
fi
