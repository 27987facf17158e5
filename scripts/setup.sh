#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with what serving and the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r "${1:-requirements.txt}"
.venv/bin/python -m pip install -q --no-deps -e .
