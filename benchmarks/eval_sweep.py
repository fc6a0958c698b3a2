"""Evaluate already-trained SPLADE models (one per λ_d) through a real node and write the λ
trade-off table and plot (``sweep.json/.md/.png``). ``splade-es train lambda-sweep`` trains and
evaluates in one go; this script is for models trained elsewhere (e.g. on a GPU machine by
``benchmarks/train_scifact.py``).

    python benchmarks/eval_sweep.py --data ../shared/datasets/scifact --es-url $URL \
        --facts runs/trained/facts.json --models runs/trained --out benchmarks/results/sweep
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.evaluation.evaluator import EvalConfig
from splade_es.training import sweep


def evaluate_rows(cluster: Any, facts: dict[str, Any], args: argparse.Namespace) -> list[Any]:
    """The start model's row, then one per trained model of the chosen learning rate."""
    config = EvalConfig(dataset=args.data, split="test", stages=("splade",), progress=True)
    label = f"{args.start_model} (zero-shot)"
    rows = [sweep.evaluate_row(cluster, args.start_model, label, None, config)]
    runs = [
        (name, run)
        for name, run in facts["runs"].items()
        if run["kind"] == "splade"
        and run["lr"] == facts["chosen_splade_lr"]
        and (args.models / name).is_dir()
    ]
    for name, run in sorted(runs, key=lambda item: item[1]["lambda_document"]):
        folder = args.models / name
        if (folder / "final").is_dir():  # straight from train_scifact.py
            folder = folder / "final"
        value = run["lambda_document"]
        row = sweep.evaluate_row(
            cluster, str(folder), f"λ_d={value:g}", value, config, run["seconds"]
        )
        row["dev_ndcg@10"] = run["dev_ndcg@10"]
        rows.append(row)
        print(sweep.markdown(rows[-1:], name), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--facts", type=Path, required=True, help="facts.json of the training run")
    parser.add_argument(
        "--models", type=Path, required=True, help="folder of <run name>/ (or <run name>/final/)"
    )
    parser.add_argument("--start-model", default="splade-tiny")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    facts = json.loads(args.facts.read_text())
    cluster = connect(ClusterConfig(url=args.es_url))
    try:
        rows = evaluate_rows(cluster, facts, args)
    finally:
        cluster.close()
    caption = (
        f"SciFact test (300 queries, 5,183 docs) through {cluster.engine} {cluster.version}; "
        f"splade-tiny fine-tuned on {facts['examples']} train examples (λ_q = λ_d, "
        f"lr {facts['chosen_splade_lr']:g}) on {facts['device']}"
    )
    paths = sweep.write(rows, args.out, caption)
    print(sweep.markdown(rows, caption))
    print("wrote", ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
