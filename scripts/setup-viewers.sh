#!/usr/bin/env bash
# What the export tests check msen's profiles with, the real readers:
# go tool pprof (golang-go), the speedscope web app and playwright-core
# (npm, into target/viewers), headless Chromium, and jsonschema (PyPI) for
# speedscope's file schema. Idempotent and quick once installed; the test
# command runs it, the demo does not need it.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(golang-go chromium fonts-dejavu-core nodejs npm)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine with its own Node.js (not Debian's) keeps it.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}")
  missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-viewers: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f target/viewers/node_modules/speedscope/dist/release/index.html ] || [ ! -d target/viewers/node_modules/playwright-core ]; then
  echo "setup-viewers: npm install speedscope playwright-core into target/viewers"
  mkdir -p target/viewers
  npm install --silent --no-audit --no-fund --prefix target/viewers speedscope@1.25.0 playwright-core@1.65.1 >/dev/null
fi

python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install -q jsonschema 2>/dev/null || python3 -m pip install -q --break-system-packages jsonschema
echo "setup-viewers: $(go version 2>/dev/null | cut -d' ' -f3), $(chromium --version 2>/dev/null), speedscope $(node -p 'require("./target/viewers/node_modules/speedscope/package.json").version')"
