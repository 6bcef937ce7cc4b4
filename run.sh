#!/usr/bin/env bash
# Start the app: creates .venv and installs requirements on first use. Flags go to app.py (--help lists them).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
if ! cmp -s requirements.txt .venv/.installed-app 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/.installed-app
fi
exec .venv/bin/python app.py "$@"
