"""The doc-only trade-off: SPLADE with a query model against inference-free query sides.

Evaluates each ``LABEL=MODEL`` (a SPLADE model: a full one, or a doc-only one trained with
``splade-es train splade --query-encoder static``) through one node with ``splade-es eval``'s
evaluator, stages ``bm25``, ``splade`` (the model's own query side: the MLM, or the learned
table of a doc-only model) and ``splade-idf`` (the query's tokens weighted by IDF over the
index), in one run on one machine. Writes ``doc_only.{json,md,png}``: nDCG@10, Recall@100,
latency p50/p95, query-encoding p50, the latency against BM25's in the same evaluation, and
for a doc-only model how far its learned table moved from the IDF it started from.

    python benchmarks/doc_only.py --data ../shared/datasets/scifact --es-url $URL \
        --model "splade-tiny=splade-tiny" --model "doc-only=runs/doc-only/static/final" \
        --out benchmarks/results/doc_only
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.encoding.static_query import load_static_weights
from splade_es.evaluation.evaluator import EvalConfig, evaluate
from splade_es.training.data import load_judgements
from splade_es.training.doc_only import idf_weights

STAGES = ("bm25", "splade", "splade-idf")
BACKENDS = {"static": "learned table (no model)", "onnx": "model (ONNX Runtime)"}


def query_side(stage: str, backend: str) -> str:
    """What computed the query weights of ``stage`` for an encoder on ``backend``."""
    if stage == "splade-idf":
        return "IDF over the index (no model)"
    return BACKENDS.get(backend, f"model ({backend})")


def rows_of(label: str, backend: str, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per SPLADE stage of one model's report, with the ratio to its BM25 p50."""
    stages = report["stages"]
    bm25 = stages["bm25"]["latency_ms_p50"]
    rows = []
    for stage in ("splade", "splade-idf"):
        result = stages[stage]
        encode = result.get("breakdown_ms", {}).get("splade_query_encode", {})
        rows.append(
            {
                "documents": label,
                "stage": stage,
                "queries": query_side(stage, backend),
                "ndcg@10": result["ndcg@10"],
                "recall@100": result["recall@100"],
                "p50_ms": result["latency_ms_p50"],
                "p95_ms": result["latency_ms_p95"],
                "query_encode_p50_ms": encode.get("p50"),
                "vs_bm25_p50": result["latency_ms_p50"] / bm25,
                "bm25_p50_ms": bm25,
                "avg_terms_per_doc": report["indexing"].get("avg_terms_per_doc"),
                "index_mb": report["index_size_bytes"] / 1e6,
            }
        )
    return rows


def table_drift(model: str, start: torch.Tensor, special: Sequence[int]) -> str | None:
    """How far a doc-only model's learned table moved from its IDF start: ``mean / max`` of
    ``|w - idf|`` over the tokens, and how many moved by more than 0.01 (``None``: no table)."""
    table = load_static_weights(model, start.shape[0], special)
    if table is None:
        return None
    moved = (table.weights - start).abs()
    moved[torch.tensor(list(special), dtype=torch.long)] = 0.0
    return f"{float(moved.mean()):.4f} / {float(moved.max()):.3f} ({int((moved > 0.01).sum())})"


def markdown(rows: Sequence[Mapping[str, Any]], caption: str) -> str:
    head = (
        "| documents | stage | query weights | nDCG@10 | R@100 | p50 ms | p95 ms | "
        "query encoding p50 ms | p50 / BM25 p50 | terms/doc | index MB | "
        "table moved from IDF: mean / max (tokens > 0.01) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['documents']} | {r['stage']} | {r['queries']} | {r['ndcg@10']:.4f} | "
        f"{r['recall@100']:.4f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
        f"{r['query_encode_p50_ms'] if r['query_encode_p50_ms'] is not None else '-'} | "
        f"{r['vs_bm25_p50']:.2f}x | {r['avg_terms_per_doc']:.1f} | {r['index_mb']:.1f} | "
        f"{r.get('table_drift') if r['queries'].startswith('learned') else '-'} |"
        for r in rows
    ]
    return f"{caption}\n\n{head}" + "\n".join(lines) + "\n"


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        marker = "o" if row["stage"] == "splade" else "s"
        label = f"{row['documents']}; queries: {row['queries']}"
        axes.scatter(row["p50_ms"], row["ndcg@10"], marker=marker, label=label)
    axes.legend(fontsize=7, loc="lower right")
    axes.set_xlabel("query latency p50, ms (client side, query encoding included)")
    axes.set_ylabel("nDCG@10")
    axes.set_title("Doc-only SPLADE: quality against query cost")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def idf_start(data: Path, encoder: SpladeEncoder) -> torch.Tensor:
    """The IDF table a doc-only model's training started from (``splade-es train splade
    --corpus DATA``: every corpus text, the default 256 document tokens)."""
    corpus = list(load_judgements(data, "train").corpus.values())
    tokenizer = encoder.model.tokenizer
    backbone: Any = encoder.model[0]
    width = int(backbone.auto_model.config.vocab_size)
    return idf_weights(corpus, tokenizer, 256, width)


def evaluate_model(
    cluster: Any, label: str, model: str, config: EvalConfig
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One model's rows (with its table's drift from IDF, for a doc-only one) and report."""
    encoder = SpladeEncoder(EncoderConfig(model=model))
    report = evaluate(cluster, encoder, config)
    drift = None
    if encoder.query_backend == "static":
        start = idf_start(config.dataset, encoder)
        drift = table_drift(model, start, encoder.model.tokenizer.all_special_ids)
    rows = rows_of(label, encoder.query_backend, report)
    return [{**row, "table_drift": drift} for row in rows], report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--model", action="append", required=True, help="LABEL=MODEL")
    parser.add_argument("--max-queries", type=int)
    parser.add_argument("--max-docs", type=int)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    config = EvalConfig(
        dataset=args.data, stages=STAGES, max_queries=args.max_queries, max_docs=args.max_docs
    )
    cluster = connect(ClusterConfig(url=args.es_url))
    rows: list[dict[str, Any]] = []
    reports: dict[str, dict[str, Any]] = {}
    try:
        for spec in args.model:
            label, _, model = spec.partition("=")
            if not model:
                raise SystemExit(f"--model {spec!r}: expected LABEL=MODEL.")
            model_rows, reports[label] = evaluate_model(cluster, label, model, config)
            rows += model_rows
    finally:
        cluster.close()
    first = next(iter(reports.values()))
    caption = (
        f"{first['dataset']} {first['split']} ({first['stages']['bm25']['num_queries']} queries, "
        f"{first['index_docs']:,} docs) through {cluster.engine} {cluster.version}; "
        f"{platform.machine()}, {torch.get_num_threads()} torch threads"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"caption": caption, "rows": rows, "reports": reports}
    (args.out / "doc_only.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "doc_only.md").write_text(markdown(rows, caption))
    plot(rows, args.out / "doc_only.png")
    print(markdown(rows, caption))


if __name__ == "__main__":
    main()
