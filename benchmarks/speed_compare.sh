#!/usr/bin/env bash
# Query speed before and after, back to back on this machine: the code of BEFORE (a git
# revision, default ba9cafb, the last commit before the query-speed work of issue 14) checked
# out into a temporary folder and run from there, then the current code, on each engine:
#   1. splade-es eval on SciFact test (before: bm25,splade,splade+colbert; now: the same plus
#      splade-idf and splade-idf+colbert), each through its own index, built by that code and
#      reused when it exists;
#   2. benchmarks/load.py, 8 clients x 60 s, each through its own index.
# Then benchmarks/speed_report.py writes results/speed/speed.{json,md,png}.
#
#   benchmarks/speed_compare.sh --es-url URL --opensearch-url URL [--scifact DIR] [BEFORE]
#
# Run from the project's virtual environment with nothing else running (the figures are
# latencies). SMOKE=1: 4 queries, a 40-document subset, 2 clients x 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ES_URL="${ES_URL:-}"; OPENSEARCH_URL="${OPENSEARCH_URL:-}"
SCIFACT="${SCIFACT:-../shared/datasets/scifact}"; BEFORE=ba9cafb
OUT="${OUT:-benchmarks/results/speed}"
while (($#)); do
  case "$1" in
    --es-url) ES_URL="$2"; shift 2 ;;
    --opensearch-url) OPENSEARCH_URL="$2"; shift 2 ;;
    --scifact) SCIFACT="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) BEFORE="$1"; shift ;;
  esac
done
[[ -n "$ES_URL" && -n "$OPENSEARCH_URL" ]] || { echo "give --es-url and --opensearch-url" >&2; exit 2; }
SCIFACT="$(cd "$SCIFACT" && pwd)"
LIMITS=(); LOAD=(--clients 8 --seconds 60)
if [[ "${SMOKE:-0}" == 1 ]]; then LIMITS=(--max-queries 4 --max-docs 40); LOAD=(--clients 2 --seconds 5 --max-docs 40 --max-queries 4); fi
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
SCRATCH="$(mktemp -d)"; OLD="$SCRATCH/before"
git worktree add --detach -q "$OLD" "$BEFORE"
trap 'git worktree remove --force "$OLD"; rm -rf "$SCRATCH"' EXIT
log() { printf '\n[%s] %s\n' "$(date '+%H:%M:%S')" "$*"; }
# The old code runs from its own folder (python -m and a script's folder come first on
# sys.path) with the old package first on PYTHONPATH, ahead of the editable install.
old() { (cd "$OLD" && PYTHONPATH="$OLD" "$@"); }

for engine in elasticsearch opensearch; do
  url="$ES_URL"; [[ "$engine" == opensearch ]] && url="$OPENSEARCH_URL"
  log "$engine: eval, code of $BEFORE"
  old python -m splade_es eval --corpus "$SCIFACT" --stages bm25,splade,splade+colbert \
    --out "$OUT/before-$engine" --es-url "$url" --no-progress ${LIMITS[@]+"${LIMITS[@]}"}
  log "$engine: eval, current code"
  python -m splade_es eval --corpus "$SCIFACT" \
    --stages bm25,splade,splade-idf,splade+colbert,splade-idf+colbert \
    --out "$OUT/now-$engine" --es-url "$url" --no-progress ${LIMITS[@]+"${LIMITS[@]}"}
  log "$engine: load, code of $BEFORE"
  old python benchmarks/load.py --engine "$engine" --es-url "$url" \
    --index "speed-load-before-$engine" --out "$OUT/before-load" "${LOAD[@]}"
  log "$engine: load, current code"
  python benchmarks/load.py --engine "$engine" --es-url "$url" --index "speed-load-now-$engine" \
    --out "$OUT/now-load" "${LOAD[@]}"
done
python benchmarks/speed_report.py --before "$BEFORE" --out "$OUT"
