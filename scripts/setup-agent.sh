#!/usr/bin/env bash
# What the agent tests (tests/agent.rs) run against: Debian's prometheus
# (the server that scrapes `record --metrics`, and promtool), nftables and
# iperf3 (loss and traffic in test namespaces). Idempotent; the test command
# runs it. The package's own service is stopped: the tests start their own
# Prometheus on a free loopback port.
set -euo pipefail
need=(prometheus nftables iperf3)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup-agent: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop prometheus 2>/dev/null || true; fi
fi
echo "setup-agent: $(prometheus --version 2>&1 | head -1)"
