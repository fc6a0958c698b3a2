"""Evaluate already-trained SPLADE models (one per λ_d) through a real node and write the λ
trade-off table and plot (``sweep.json/.md/.png``). ``splade-es train lambda-sweep`` trains and
evaluates in one go; this script is for models trained elsewhere (e.g. on a GPU machine by
``benchmarks/train_scifact.py``). The caption's query and document counts are the ones the
evaluations measured (every model must have been evaluated on the same ones).

    python benchmarks/eval_sweep.py --data ../shared/datasets/scifact --es-url $URL \
        --facts runs/trained/facts.json --models runs/trained --out benchmarks/results/sweep
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.evaluation.evaluator import EvalConfig, evaluate
from splade_es.training import sweep


def evaluate_model(
    cluster: Any,
    model: str,
    label: str,
    lambda_document: float | None,
    config: EvalConfig,
    train_seconds: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One model's table row and the evaluation report it came from."""
    encoder = SpladeEncoder(EncoderConfig(model=model))
    report = evaluate(cluster, encoder, config)
    return sweep.sweep_row(label, lambda_document, report, train_seconds), report


def evaluate_rows(
    cluster: Any, facts: dict[str, Any], args: argparse.Namespace
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The start model's row, then one per trained model of the chosen learning rate; and the
    evaluation reports, in the same order."""
    config = EvalConfig(
        dataset=args.data,
        split="test",
        stages=("splade",),
        max_queries=args.max_queries,
        max_docs=args.max_docs,
        progress=True,
    )
    label = f"{args.start_model} (zero-shot)"
    row, report = evaluate_model(cluster, args.start_model, label, None, config)
    rows, reports = [row], [report]
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
        row, report = evaluate_model(
            cluster, str(folder), f"λ_d={value:g}", value, config, run["seconds"]
        )
        row["dev_ndcg@10"] = run["dev_ndcg@10"]
        rows.append(row)
        reports.append(report)
        print(sweep.markdown(rows[-1:], name), flush=True)
    return rows, reports


def corpus_caption(reports: Sequence[Mapping[str, Any]]) -> str:
    """``<dataset> <split> (N queries, M docs)`` from the reports, which must all agree.

    Raises:
        ValueError: the models were evaluated on different queries or document counts.
    """
    seen = {
        (r["dataset"], r["split"], r["stages"]["splade"]["num_queries"], r["index_docs"])
        for r in reports
    }
    if len(seen) != 1:
        raise ValueError(f"The models were evaluated on different data: {sorted(seen)}.")
    dataset, split, queries, documents = seen.pop()
    return f"{dataset} {split} ({queries:,} queries, {documents:,} docs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--facts", type=Path, required=True, help="facts.json of the training run")
    parser.add_argument(
        "--models", type=Path, required=True, help="folder of <run name>/ (or <run name>/final/)"
    )
    parser.add_argument("--start-model", default="splade-tiny")
    parser.add_argument("--max-queries", type=int, help="First N judged queries (smoke runs).")
    parser.add_argument("--max-docs", type=int, help="Judged documents plus others up to N.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    facts = json.loads(args.facts.read_text())
    cluster = connect(ClusterConfig(url=args.es_url))
    try:
        rows, reports = evaluate_rows(cluster, facts, args)
    finally:
        cluster.close()
    caption = (
        f"{corpus_caption(reports)} through {cluster.engine} {cluster.version}; "
        f"{args.start_model} fine-tuned on {facts['examples']} train examples (λ_q = λ_d, "
        f"lr {facts['chosen_splade_lr']:g}) on {facts['device']}"
    )
    paths = sweep.write(rows, args.out, caption)
    print(sweep.markdown(rows, caption))
    print("wrote", ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
