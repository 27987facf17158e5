#!/usr/bin/env bash
# The run command: set up .venv (requirements.txt) and serve the web app with the shipped model on 127.0.0.1:5000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
exec .venv/bin/python app.py "$@"
