#!/usr/bin/env bash
# Create the project's virtual environment and install CityStat into it; idempotent and quick
# when nothing changed.
#   bash scripts/venv.sh            runtime only (what the app needs): pip install .
#   bash scripts/venv.sh --test     the pinned test tools too (requirements-test.txt), CityStat editable
#   bash scripts/venv.sh [--test] DIR   another folder than .venv
# Stock Debian/Ubuntu python3 has no `venv` module until the python3-venv package is installed:
# installed here when running as root, else the exact command is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=runtime
if [ "${1:-}" = "--test" ]; then mode=test; shift; fi
venv="${1:-.venv}"
python="${PYTHON:-python3}"

if ! "$python" -c "import ensurepip, venv" >/dev/null 2>&1; then
  version="$("$python" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "python${version}-venv" || apt-get install -y -qq python3-venv
  else
    echo "venv: Python's venv module is missing; install it first:  sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sys" >/dev/null 2>&1; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

# Skip pip when the same pins were already installed (stamp = hash of the files that decide them).
if [ "$mode" = test ]; then inputs=(pyproject.toml requirements.txt requirements-test.txt); else inputs=(pyproject.toml); fi
stamp="$(cat "${inputs[@]}" | sha256sum | cut -c1-16)-$mode"
if [ -f "$venv/.citystat-installed" ] && [ "$(cat "$venv/.citystat-installed")" = "$stamp" ]; then
  exit 0
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
if [ "$mode" = test ]; then
  "${pip[@]}" -r requirements-test.txt
  "${pip[@]}" --no-deps -e .
else
  "${pip[@]}" .
fi
echo "$stamp" > "$venv/.citystat-installed"
