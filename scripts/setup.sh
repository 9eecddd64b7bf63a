#!/usr/bin/env bash
# Install everything CityStat and its tests need on a fresh Debian machine:
# system packages (headless Chromium for browser tests, PostgreSQL for the shared state store,
# fonts for charts and PDFs) when we can install them, then the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium postgresql fonts-dejavu-core fonts-noto-color-emoji)
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
python3 -m pip install -q --disable-pip-version-check -r requirements.txt
