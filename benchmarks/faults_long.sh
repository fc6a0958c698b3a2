#!/usr/bin/env bash
# The fault-injection suite at full size: every scenario of tests/test_faults.py with
# SPLADE_ES_FAULT_DOCS documents (default 3000), on both engines; figures in
# benchmarks/results/faults/faults.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/faults
mkdir -p "$out"
rm -f "$out/faults.json"
SPLADE_ES_FAULT_DOCS="${SPLADE_ES_FAULT_DOCS:-3000}" SPLADE_ES_FAULTS_REPORT="$PWD/$out/faults.json" \
SPLADE_ES_FAULT_KILL_ENGINES=elasticsearch,opensearch \
    python -m pytest tests/test_faults.py -m faults -q -p no:cacheprovider "$@"
python benchmarks/faults_report.py "$out/faults.json"
