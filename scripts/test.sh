#!/usr/bin/env bash
# The test command: set up .venv (requirements-dev.txt) and run the whole suite, slow and browser tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
