#!/usr/bin/env bash
# Rewrites constraints.txt: the exact versions scripts/setup.sh installs, so a study can be rerun
# months later with the same software. Run it on purpose (a new Textual, a security fix), run the
# test suite, and commit constraints.txt with a message saying what moved.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check ".[test,fast]"
{
    echo "# Exact versions for scripts/setup.sh (pip install -c constraints.txt)."
    echo "# Made by scripts/update-constraints.sh with $("$tmp/venv/bin/python" --version) on $(date -u +%Y-%m-%d)."
    "$tmp/venv/bin/pip" freeze --disable-pip-version-check --exclude hatui
} > constraints.txt
echo "update-constraints: wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
