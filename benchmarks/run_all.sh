#!/usr/bin/env bash
# Regenerate every results file the docs quote, from the current code, in order, then re-render
# the docs' result blocks (python benchmarks/render.py). Stops at the first failing step. Run it
# from the project's virtual environment (python and splade-es on PATH), from any folder;
# relative paths (--scifact, --models, WORK) are taken from the repository root.
#
#   benchmarks/run_all.sh [--es-url URL] [--opensearch-url URL] [--scifact DIR] [--models DIR]
#                         [--engine elasticsearch|opensearch] [STEP ...]
#   STEPS="splade colbert render" benchmarks/run_all.sh     # only these steps (= naming them)
#   SKIP="fuzz faults" benchmarks/run_all.sh                # the default steps but these
#
# Nodes: --es-url / --opensearch-url (or ES_URL / OPENSEARCH_URL). A node a chosen step needs and
# no URL names is started with the package's launcher (heap NODE_HEAP, default 512m) and stopped
# at the end; a node given by URL is never stopped. --engine (ENGINE, default opensearch, as the
# published figures) is the node for eval, eval128, splade, colbert, negatives, trained, sweep.
# SciFact: --scifact (SCIFACT), default ../shared/datasets/scifact. Scratch: WORK (runs/run_all):
# eval reports and the ColBERT embedding cache.
#
# Default steps, in this order (each prints a timestamped header):
#   eval      splade-es eval, stages bm25,splade,splade-idf,splade+colbert,splade-idf+colbert,
#             bm25+colbert, --check-exact
#             -> results/scifact-eval.{json,md,png}
#   eval128   the same with --colbert-dim 128, stages splade,splade+colbert
#             -> results/scifact-eval-d128.{json,md,png} (its index feeds `colbert`)
#   stages    first_stages.py on Elasticsearch: splade, dense, muvera and the fused first
#             stages, each with and without +colbert; nDCG@10/R@100 from one eval, latency
#             from an interleaved pass, MUVERA recall against exact MaxSim, field sizes
#             -> results/stages/stages.{json,md,png}
#   splade    bench_splade.py --docs 384, latency on the eval index -> results/splade.*
#   colbert   bench_colbert.py on the eval index, and end to end on the 128-dim one
#             -> results/colbert.{json,md}
#   storage   storage_study.py on the eval index (nDCG@10 against stored bytes: pooling, bits,
#             dims) -> results/storage.{json,md,png}
#   scoring   bench_scoring.py on the eval index (decode-then-MaxSim against lookup tables)
#             -> results/scoring.{json,md}
#   speed     speed_compare.sh: eval and load on both engines, the code before the query-speed
#             work (BEFORE, default ba9cafb) then the current code -> results/speed/speed.*
#   load-es   load.py, Elasticsearch, 8 clients x 60 s -> results/load/elasticsearch-8x60s.*
#   load-os   load.py, OpenSearch, 8 clients x 60 s -> results/load/opensearch-8x60s.*
#   service   service_load.py, Elasticsearch: splade-es serve against the library in process
#             (8 clients x 60 s each), then an upstream node of its own SIGKILLed and relaunched
#             mid-run -> results/service/service_load.*; service_bad_requests.py (hostile and
#             malformed requests through the service) -> results/service/bad_requests.*
#   memory    memory.py --sizes MEMORY_SIZES (default 0,2000,20000), on Elasticsearch
#             -> results/memory/memory.*
#   fuzz      fuzz_long.py (scale 15) against both nodes -> results/fuzz.json
#   faults    SPLADE_ES_FAULT_DOCS=1500 faults_long.sh (starts and kills nodes of its own)
#             -> results/faults/faults.{json,md}
#   render    python benchmarks/render.py
#
# Scale steps (issue 16), only when named:
#   scale     scale_encode.py encodes SciFact once, scale_curve.py grows 10k/100k/1M-document
#             corpora from it and measures SPLADE, BM25 and every pruning form on the
#             Elasticsearch node (the published run: NODE_HEAP=2g) -> results/scale/scale.*
#   ray       ray_encoding.py: one process against Ray with 1 and 2 workers -> results/ray/*
#   node-loss node_loss.py: a member SIGKILLed mid-bulk and under searches, on 3-node clusters
#             of both engines -> results/multinode/node_loss.*
#
# GPU-trained steps: never run by default, only when named. They need a GPU run first:
#   1. `negatives` (CPU, here; needs the eval index): mines the hard negatives
#      -> $WORK/scifact-negatives.jsonl
#   2. on a GPU machine, benchmarks/device_train.sh (benchmarks/train_scifact.py) trains the
#      models; bring back facts.json and the model folders, float16 packs restored with
#      `python benchmarks/weights_fp16.py restore SRC DST`
#   3. `trained` and `sweep` here, with --models DIR (MODELS): that folder, holding facts.json
#      and one loadable folder per run (<run>/ or <run>/final/)
#   trained   splade-es eval of the chosen SPLADE and ColBERT models
#             -> results/scifact-trained.{json,md,png}, results/training-facts.json
#   sweep     eval_sweep.py -> results/sweep/sweep.{json,md,png}
#   e.g. benchmarks/run_all.sh --models runs/trained trained sweep render
#
# CPU-trained step, only when named (the training takes about 15 minutes a model on 2 cores):
#   doc-only  trains SPLADE four times here on SciFact train (in-batch negatives only, 3
#             epochs, batch 32, lr 2e-4, λ after a 30-step ramp): --query-encoder static
#             (doc-only) with λ_d 1e-3 and 1e-4 (table lr 1e-3), λ_d 1e-4 with table lr 5e-2,
#             and model (full, λ 1e-3), into $WORK/doc-only/<run> (kept: a re-run reuses
#             them), then benchmarks/doc_only.py evaluates zero-shot splade-tiny and the four on the
#             engine's node (the published run: elasticsearch, --engine elasticsearch)
#             -> results/doc_only/doc_only.{json,md,png}
#
# SMOKE=1: the same chain at toy sizes (4 queries, 40-document eval subsets, 16 documents,
# 5-second loads, memory sizes 0,24, fuzz scale 0.2) to prove it runs;
# results go to $WORK/results and `render` writes copies of the docs in $WORK/docs, so nothing
# tracked changes (faults, whose script writes into benchmarks/results, is skipped).
# Its figures mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_STEPS="eval eval128 stages splade colbert storage scoring speed load-es load-os service memory fuzz faults render"
ALL_STEPS="$DEFAULT_STEPS negatives trained sweep doc-only scale ray node-loss"
SCIFACT="${SCIFACT:-../shared/datasets/scifact}"
WORK="${WORK:-runs/run_all}"
MODELS="${MODELS:-}"
ENGINE="${ENGINE:-opensearch}"
ES_URL="${ES_URL:-}"
OPENSEARCH_URL="${OPENSEARCH_URL:-}"
NODE_HEAP="${NODE_HEAP:-512m}"
MEMORY_SIZES="${MEMORY_SIZES:-0,2000,20000}"
RESULTS=benchmarks/results
DOCS=.
# sizes: the published ones, or toy ones with SMOKE=1
EVAL_LIMITS=(); SPLADE_DOCS=384; COLBERT_LIMITS=(); LOAD_ARGS=(--clients 8 --seconds 60)
SCORING_LIMITS=()
FUZZ_SCALE=15; FAULT_DOCS=1500
if [[ "${SMOKE:-0}" == 1 ]]; then
  RESULTS="$WORK/results"; DOCS="$WORK/docs"
  EVAL_LIMITS=(--max-queries 4 --max-docs 40); SPLADE_DOCS=16; COLBERT_LIMITS=(--max-queries 4)
  SCORING_LIMITS=(--queries 4)
  LOAD_ARGS=(--clients 2 --seconds 5 --max-docs 40 --max-queries 4); MEMORY_SIZES=0,24
  FUZZ_SCALE=0.2; FAULT_DOCS=100  # (faults is skipped in a smoke run; see above)
fi
chosen=()
while (($#)); do
  case "$1" in
    --es-url) ES_URL="$2"; shift 2 ;;
    --opensearch-url) OPENSEARCH_URL="$2"; shift 2 ;;
    --scifact) SCIFACT="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --engine) ENGINE="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) chosen+=("$1"); shift ;;
  esac
done
((${#chosen[@]})) || read -r -a chosen <<< "${STEPS:-$DEFAULT_STEPS}"
for step in "${chosen[@]}"; do
  [[ " $ALL_STEPS " == *" $step "* ]] || { echo "unknown step '$step'; steps: $ALL_STEPS" >&2; exit 2; }
done
case "$ENGINE" in elasticsearch|opensearch) ;; *) echo "--engine $ENGINE: elasticsearch or opensearch" >&2; exit 2 ;; esac
if [[ " ${chosen[*]} " == *" trained "* || " ${chosen[*]} " == *" sweep "* ]]; then
  [[ -n "$MODELS" && -f "$MODELS/facts.json" ]] || {
    echo "steps trained and sweep need --models DIR (MODELS) holding facts.json and the trained models of a GPU run (see the top of $0)" >&2
    exit 2
  }
fi
[[ -d "$SCIFACT" ]] || { echo "SciFact folder $SCIFACT not found (--scifact DIR)" >&2; exit 2; }
wanted() {  # run a step if it was chosen (in the fixed order below) and not skipped
  [[ " ${chosen[*]} " == *" $1 "* && " ${SKIP:-} " != *" $1 "* ]]
}
log() { printf '\n[%s] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"; }
mkdir -p "$WORK" "$RESULTS/load" "$RESULTS/memory" "$RESULTS/sweep"
if [[ "$DOCS" != . ]]; then mkdir -p "$DOCS"; cp BENCHMARKS.md RELIABILITY.md "$DOCS/"; fi

# -- nodes: started on first need, stopped at exit (only the ones started here) ----------------
STATE_DIR="$(mktemp -d)"
stop_started() {
  for state in "$STATE_DIR"/*.json; do
    [[ -e "$state" ]] || continue
    python -c 'import sys; from pathlib import Path; from splade_es.engines import stop_node; stop_node(Path(sys.argv[1]))' "$state" || true
  done
  rm -rf "$STATE_DIR"
}
trap stop_started EXIT
start_local() {  # $1 engine -> prints the URL of a node started for this run
  python - "$1" "$STATE_DIR/$1.json" "$NODE_HEAP" <<'PY'
import os, sys
from pathlib import Path
from splade_es.engines import NodeConfig, start_node
engine, state, heap = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
cache = Path(os.environ.get("SPLADE_ES_CACHE_DIR") or Path(base) / "splade-es")
info = start_node(NodeConfig(engine=engine, state_file=state, cache_dir=cache, heap=heap), os.environ)
print(info.url)
PY
}
need() {  # $1 engine: sets ES_URL / OPENSEARCH_URL, starting a node when none is given
  if [[ "$1" == elasticsearch && -z "$ES_URL" ]]; then
    log "starting a local Elasticsearch node"; ES_URL="$(start_local elasticsearch | tail -n 1)"
  elif [[ "$1" == opensearch && -z "$OPENSEARCH_URL" ]]; then
    log "starting a local OpenSearch node"; OPENSEARCH_URL="$(start_local opensearch | tail -n 1)"
  fi
}
main_url() { need "$ENGINE"; if [[ "$ENGINE" == elasticsearch ]]; then URL="$ES_URL"; else URL="$OPENSEARCH_URL"; fi; }
json_field() { python -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
copy_report() {  # $1 report folder, $2 results stem
  for ext in json md png; do cp "$1/report.$ext" "$RESULTS/$2.$ext"; done
}
eval_index() {
  [[ -f "$RESULTS/scifact-eval.json" ]] || { echo "no $RESULTS/scifact-eval.json: run the eval step first" >&2; exit 1; }
  json_field "$RESULTS/scifact-eval.json" index
}
model_dir() {  # $1 run name -> its loadable folder under MODELS
  if [[ -d "$MODELS/$1/final" ]]; then echo "$MODELS/$1/final"; else echo "$MODELS/$1"; fi
}

# -- steps, always in this order ------------------------------------------------------------------
log "run_all: steps: ${chosen[*]}${SKIP:+ (skipping $SKIP)}; SciFact $SCIFACT; main engine $ENGINE; git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

if wanted eval; then
  main_url; log "eval: splade-es eval --check-exact on $URL"
  splade-es eval --corpus "$SCIFACT" \
    --stages bm25,splade,splade-idf,splade+colbert,splade-idf+colbert,bm25+colbert \
    --check-exact --out "$WORK/scifact" --es-url "$URL" --no-progress ${EVAL_LIMITS[@]+"${EVAL_LIMITS[@]}"}
  copy_report "$WORK/scifact" scifact-eval
fi

if wanted eval128; then
  main_url; log "eval128: splade-es eval --colbert-dim 128 on $URL"
  splade-es eval --corpus "$SCIFACT" --stages splade,splade+colbert --colbert-dim 128 \
    --out "$WORK/scifact-d128" --es-url "$URL" --no-progress ${EVAL_LIMITS[@]+"${EVAL_LIMITS[@]}"}
  copy_report "$WORK/scifact-d128" scifact-eval-d128
fi

if wanted splade; then
  main_url; index="$(eval_index)"; log "splade: bench_splade.py (latency on $index)"
  python benchmarks/bench_splade.py --dataset "$SCIFACT" --docs "$SPLADE_DOCS" --es-url "$URL" \
    --latency-index "$index" --out "$RESULTS"
fi

if wanted colbert; then
  main_url; index="$(eval_index)"; log "colbert: bench_colbert.py (indices from the eval reports)"
  extra=()
  if [[ -f "$RESULTS/scifact-eval-d128.json" ]]; then
    extra=(--colbert-index-128 "$(json_field "$RESULTS/scifact-eval-d128.json" index)")
  else
    echo "no $RESULTS/scifact-eval-d128.json (eval128 step): the 128-dim end-to-end column is skipped"
  fi
  python benchmarks/bench_colbert.py --dataset "$SCIFACT" --es-url "$URL" --splade-index "$index" \
    --colbert-index "$index" ${extra[@]+"${extra[@]}"} ${COLBERT_LIMITS[@]+"${COLBERT_LIMITS[@]}"} --cache "$WORK/cache" \
    --out "$RESULTS"
fi

if wanted storage; then
  main_url; index="$(eval_index)"; log "storage: storage_study.py (on $index)"
  python benchmarks/storage_study.py --es-url "$URL" --index "$index" --scifact "$SCIFACT" \
    ${EVAL_LIMITS[@]+"${EVAL_LIMITS[@]}"} --out "$RESULTS"
fi

if wanted scoring; then
  main_url; index="$(eval_index)"; log "scoring: bench_scoring.py (on $index)"
  python benchmarks/bench_scoring.py --es-url "$URL" --index "$index" --scifact "$SCIFACT" \
    ${SCORING_LIMITS[@]+"${SCORING_LIMITS[@]}"} --out "$RESULTS"
fi

if wanted speed; then
  need elasticsearch; need opensearch; log "speed: speed_compare.sh ${BEFORE:-ba9cafb}"
  OUT="$RESULTS/speed" benchmarks/speed_compare.sh --es-url "$ES_URL" --opensearch-url "$OPENSEARCH_URL" \
    --scifact "$SCIFACT" ${BEFORE:-ba9cafb}
fi

if wanted load-es; then
  need elasticsearch; log "load-es: load.py --engine elasticsearch ${LOAD_ARGS[*]}"
  python benchmarks/load.py --engine elasticsearch ${LOAD_ARGS[@]+"${LOAD_ARGS[@]}"} --es-url "$ES_URL" \
    --out "$RESULTS/load"
fi

if wanted service; then
  need elasticsearch; log "service: service_load.py and service_bad_requests.py"
  SERVICE_ARGS=(); [[ "${SMOKE:-0}" == 1 ]] && SERVICE_ARGS=(--smoke)
  python benchmarks/service_load.py --es-url "$ES_URL" --out "$RESULTS/service" \
    ${SERVICE_ARGS[@]+"${SERVICE_ARGS[@]}"}
  python benchmarks/service_bad_requests.py --es-url "$ES_URL" --out "$RESULTS/service"
fi

if wanted load-os; then
  need opensearch; log "load-os: load.py --engine opensearch ${LOAD_ARGS[*]}"
  python benchmarks/load.py --engine opensearch ${LOAD_ARGS[@]+"${LOAD_ARGS[@]}"} --es-url "$OPENSEARCH_URL" \
    --out "$RESULTS/load"
fi

if wanted memory; then
  need elasticsearch; log "memory: memory.py --sizes $MEMORY_SIZES"
  python benchmarks/memory.py --sizes "$MEMORY_SIZES" --es-url "$ES_URL" --out "$RESULTS/memory"
fi

if wanted fuzz; then
  need elasticsearch; need opensearch; log "fuzz: fuzz_long.py --scale $FUZZ_SCALE against both nodes"
  ES_URL="$ES_URL" OPENSEARCH_URL="$OPENSEARCH_URL" python benchmarks/fuzz_long.py \
    --scale "$FUZZ_SCALE" --out "$RESULTS/fuzz.json"
fi

if wanted faults; then
  log "faults: faults_long.sh with $FAULT_DOCS documents (its own nodes: it kills them)"
  if [[ "$RESULTS" != benchmarks/results ]]; then
    echo "faults_long.sh writes under benchmarks/results only: skipped when RESULTS is elsewhere"
  else
    env -u ES_URL -u OPENSEARCH_URL SPLADE_ES_FAULT_DOCS="$FAULT_DOCS" benchmarks/faults_long.sh
  fi
fi

if wanted negatives; then
  main_url; index="$(eval_index)"; log "negatives: splade-es train negatives from $index"
  splade-es train negatives --corpus "$SCIFACT" --split train --index "$index" --rank-end 30 \
    --count 10 --out "$WORK/scifact-negatives.jsonl" --es-url "$URL"
  echo "next: benchmarks/device_train.sh on a GPU machine with $WORK/scifact-negatives.jsonl"
fi

if wanted trained; then
  main_url
  splade_run="$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["chosen"]["splade"])' "$MODELS/facts.json")"
  colbert_run="$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["chosen"]["colbert"])' "$MODELS/facts.json")"
  log "trained: splade-es eval of $splade_run + $colbert_run"
  splade-es eval --corpus "$SCIFACT" --model "$(model_dir "$splade_run")" \
    --colbert-model "$(model_dir "$colbert_run")" --stages bm25,splade,splade+colbert,bm25+colbert \
    --out "$WORK/eval-trained" --es-url "$URL" --no-progress ${EVAL_LIMITS[@]+"${EVAL_LIMITS[@]}"}
  copy_report "$WORK/eval-trained" scifact-trained
  cp "$MODELS/facts.json" "$RESULTS/training-facts.json"
fi

if wanted doc-only; then
  main_url; STEPS_CPU=(--epochs 3); [[ "${SMOKE:-0}" == 1 ]] && STEPS_CPU=(--max-steps 2)
  # name, query encoder, λ_d (λ_q is used by the full model only), the table's learning rate
  for run in "static static 1e-3 1e-3" "static-l1e-4 static 1e-4 1e-3" \
             "static-l1e-4-tlr5e-2 static 1e-4 5e-2" "model model 1e-3 1e-3"; do
    read -r name kind lambda_d table_lr <<< "$run"
    done_file=modules.json; [[ "$kind" == static ]] && done_file=query_weights.safetensors
    [[ -f "$WORK/doc-only/$name/final/modules.json" && -f "$WORK/doc-only/$name/final/$done_file" ]] && continue
    log "doc-only: splade-es train splade --query-encoder $kind --lambda-d $lambda_d"
    splade-es train splade --corpus "$SCIFACT" --split train --negatives-per-example 0 \
      --query-encoder "$kind" --lambda-q 1e-3 --lambda-d "$lambda_d" --lambda-warmup-steps 30 \
      --table-lr "$table_lr" \
      "${STEPS_CPU[@]}" --batch-size 32 --lr 2e-4 --eval-steps 1000 --save-steps 1000 \
      --device cpu --no-progress --out "$WORK/doc-only/$name"
  done
  log "doc-only: doc_only.py"
  python benchmarks/doc_only.py --data "$SCIFACT" --es-url "$URL" --out "$RESULTS/doc_only" \
    --model "splade-tiny, zero-shot=splade-tiny" \
    --model "doc-only, trained (λ_d 1e-3)=$WORK/doc-only/static/final" \
    --model "doc-only, trained (λ_d 1e-4)=$WORK/doc-only/static-l1e-4/final" \
    --model "doc-only, trained (λ_d 1e-4, table lr 5e-2)=$WORK/doc-only/static-l1e-4-tlr5e-2/final" \
    --model "full, trained (λ 1e-3)=$WORK/doc-only/model/final" ${EVAL_LIMITS[@]+"${EVAL_LIMITS[@]}"}
fi

if wanted scale; then
  need elasticsearch; SIZES=10000,100000,1000000; [[ "${SMOKE:-0}" == 1 ]] && SIZES=10000
  log "scale: scale_encode.py, then scale_curve.py --sizes $SIZES (1M: ~30 min of loading)"
  [[ -f "$WORK/scale/real/real.npz" ]] || \
    python benchmarks/scale_encode.py --data "$SCIFACT" --out "$WORK/scale/real"
  python benchmarks/scale_curve.py --es-url "$ES_URL" --data "$SCIFACT" --real "$WORK/scale/real" \
    --work "$WORK/scale/data" --sizes "$SIZES" --heap "$NODE_HEAP" --out "$RESULTS/scale"
fi

if wanted stages; then
  need elasticsearch; log "stages: first_stages.py (dense, MUVERA and fused first stages)"
  python benchmarks/first_stages.py --data "$SCIFACT" --es-url "$ES_URL" "${EVAL_LIMITS[@]}" \
    --out "$RESULTS/stages"
fi

if wanted ray; then
  need elasticsearch; log "ray: ray_encoding.py (one process, Ray with 1 and 2 workers)"
  python benchmarks/ray_encoding.py --docs 1500 --es-url "$ES_URL" --out "$RESULTS/ray"
fi

if wanted node-loss; then
  log "node-loss: node_loss.py (starts 3-node clusters of its own)"
  python benchmarks/node_loss.py --engines elasticsearch,opensearch --documents 3000 \
    --kill-after 600 --out "$RESULTS/multinode"
fi

if wanted sweep; then
  main_url; log "sweep: eval_sweep.py over $MODELS"
  python benchmarks/eval_sweep.py --data "$SCIFACT" --es-url "$URL" --facts "$MODELS/facts.json" \
    --models "$MODELS" --out "$RESULTS/sweep"
fi

if wanted render; then
  log "render: python benchmarks/render.py --results $RESULTS --docs $DOCS"
  python benchmarks/render.py --results "$RESULTS" --docs "$DOCS"
fi

log "run_all: done (${chosen[*]})"
