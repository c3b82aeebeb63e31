#!/usr/bin/env bash
# The main job on the local lab: set up, check lab.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/hatui check --lab lab.toml
