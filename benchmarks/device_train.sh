#!/usr/bin/env bash
# Runs benchmarks/train_scifact.py on a lent GPU machine (no network there). Expects the payload
# in .device/ (made on the development machine): wheels the machine lacks (whl/, whl-alt/ for
# an older pyarrow), the start models with float16 weights (models/), SciFact's train queries,
# qrels and gzipped corpus (scifact/) and the mined negatives. Writes to $OUT: facts.json, the
# training logs, and the chosen models (float16) as a tar split into 15 MiB parts; parts past
# the fourth stay in /tmp/pack for a second call (the transfer limit is 64 MiB a call).
set -euo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
if ! python3 -c "import datasets" 2>/dev/null; then
  rm -rf /tmp/site/datasets* /tmp/site/dill* /tmp/site/multiprocess*
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl-alt/*.whl
fi
python3 -c "import torch, datasets, sentence_transformers as st, transformers as t; print(torch.__version__, datasets.__version__, st.__version__, t.__version__, torch.cuda.get_device_name(0))"
mkdir -p /tmp/m /tmp/data/scifact/qrels
python3 benchmarks/weights_fp16.py restore .device/models/splade-tiny /tmp/m/splade-tiny
python3 benchmarks/weights_fp16.py restore .device/models/minilm /tmp/m/minilm
cp .device/scifact/queries.jsonl /tmp/data/scifact/
cp .device/scifact/qrels/train.tsv /tmp/data/scifact/qrels/
gunzip -c .device/scifact/corpus.jsonl.gz > /tmp/data/scifact/corpus.jsonl
python3 benchmarks/train_scifact.py --data /tmp/data/scifact --negatives .device/scifact-negatives.jsonl \
  --splade-model /tmp/m/splade-tiny --colbert-model /tmp/m/minilm --out /tmp/trained "$@" 2>&1 \
  | grep -v -E "it/s\]|s/it\]|Warning|warn" | tee "$OUT/train.log"
cp /tmp/trained/facts.json "$OUT/"
(cd /tmp/trained && tar czf "$OUT/logs.tgz" */training_log.jsonl)
mkdir -p /tmp/pack/models
python3 - <<'PY'
import json, subprocess
facts = json.load(open("/tmp/trained/facts.json"))
lr = facts["chosen_splade_lr"]
names = [n for n, r in facts["runs"].items() if r["kind"] == "splade" and r["lr"] == lr and not n.startswith("speed")]
names.append(facts["chosen"]["colbert"])
for name in names:
    subprocess.run(["python3", "benchmarks/weights_fp16.py", "halve", f"/tmp/trained/{name}/final", f"/tmp/pack/models/{name}"], check=True)
print("packed", names)
PY
(cd /tmp/pack && tar cf - models | split -b 15M - part-)
ls -la /tmp/pack
for part in /tmp/pack/part-a[a-d]; do cp "$part" "$OUT/"; done
