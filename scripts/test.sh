#!/usr/bin/env bash
# The whole test suite: sets up (apt + .venv) then runs pytest. Lab tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -rfEs "$@"
