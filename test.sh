#!/usr/bin/env bash
# Run the tests: creates .venv and installs what they need on first use. Extra arguments go to pytest,
# e.g. ./test.sh -m real (needs COMFYUI_URL) or ./test.sh -m browser.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
if ! cat requirements.txt requirements-dev.txt | cmp -s - .venv/.installed-dev 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  cat requirements.txt requirements-dev.txt > .venv/.installed-dev
fi
exec .venv/bin/python -m pytest "$@"
