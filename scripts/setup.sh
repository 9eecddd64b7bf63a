#!/usr/bin/env bash
# Install everything CityStat and its tests need on a fresh Debian/Ubuntu machine: system packages
# (headless Chromium for browser tests, PostgreSQL for the shared state store and extract tests,
# fonts for charts and PDFs, python3-venv) when we can install them, then the pinned Python
# packages into .venv (scripts/venv.sh --test). Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium postgresql fonts-dejavu-core fonts-noto-color-emoji)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || packages+=(python3-venv)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: please install: ${missing[*]} (browser and PostgreSQL tests skip without them)" >&2
  fi
fi
bash scripts/venv.sh --test
