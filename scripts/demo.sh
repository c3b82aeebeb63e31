#!/usr/bin/env bash
# The main job on the local lab: set up, check lab.toml, bring the lab up, show the cluster,
# run a short failover drill headless and print where its report is. The lab stays up so that
# `hatui` (the TUI) can be opened on it; `hatui lab down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
HATUI=.venv/bin/hatui
$HATUI check --lab lab.toml
if [[ $EUID -ne 0 ]]; then
    echo "demo: the local lab needs root (network namespaces); stopping after the check" >&2
    exit 2
fi
$HATUI lab up --lab lab.toml
$HATUI status --lab lab.toml --stack native
OUT=${HATUI_DEMO_OUT:-results/demo-$(date +%Y%m%d-%H%M%S)}
set +e
$HATUI --lab lab.toml --export "$OUT" --stack native --rates 10,20 --repeat 1 --conns 600
status=$?
set -e
echo
echo "demo: report written to $OUT/report.md (also results.json, runs.csv, per-second.csv, charts.txt, junit.xml, journal.jsonl)"
echo "demo: open the console with: .venv/bin/hatui     remove the lab with: .venv/bin/hatui lab down"
exit $status
