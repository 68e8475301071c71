#!/usr/bin/env bash
# Install everything the project needs into .venv (Python) and node_modules (the pinned CDK CLI).
# Idempotent; `make` re-runs it when a requirements file changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "bincount needs Python >= 3.10 (set PYTHON=/path/to/python3.x)" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 10))
PY
command -v npm >/dev/null || { echo "bincount needs Node.js >= 18 and npm for the AWS CDK CLI" >&2; exit 1; }

[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
echo "installing Python packages into .venv (torch and torchvision are large: a few minutes the first time)"
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  # The web page is tested in a real headless browser: Debian's chromium and chromedriver.
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
  if command -v apt-get >/dev/null && $sudo true 2>/dev/null; then
    echo "installing chromium and chromedriver (apt-get) for the web page test"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "NOTE: no chromium/chromedriver and no apt-get as root: the browser test will be skipped outside CI" >&2
  fi
fi
echo "installing the pinned AWS CDK CLI into node_modules"
npm ci --no-audit --no-fund --loglevel=error
touch .venv/.installed
echo "set-up done"
