"""Dense and MUVERA first stages, alone and fused with SPLADE, each with and without ColBERT.

One ``splade-es eval`` run (the package's evaluator: one index holding the SPLADE, ColBERT,
dense and MUVERA fields, written in one bulk pass) gives nDCG@10 and Recall@100 of every stage
on the test queries. Latency comes from a second, interleaved pass over the same queries: after
a warm-up of every stage, each query runs every stage in a rotating order, so no stage gets a
warmer cache or a quieter minute than another; p50/p95 and the ratio to ``splade+colbert`` come
from that pass. Then the MUVERA field's recall@100 against exact MaxSim over the whole corpus
(brute force over the same token embeddings, and the FDE brute-forced without the engine), and
each field's bytes on disk (Elasticsearch's ``_disk_usage``). Writes ``stages.{json,md,png}``.

    python benchmarks/first_stages.py --data ../shared/datasets/scifact --es-url $URL \
        --out benchmarks/results/stages
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from colbert_rerank.fusion import Fusion, fuse
from colbert_rerank.progress import progress_bar
from colbert_rerank.rerank import RerankConfig
from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.encoding.dense import DenseConfig, DenseEncoder
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.evaluation.evaluator import EvalConfig, evaluate
from splade_es.evaluation.metrics import retrieval_metrics
from splade_es.evaluation.selection import select
from splade_es.evaluation.stage_plan import first_stage_of
from splade_es.search.pipeline import Retrieval, search_then_rerank
from splade_es.search.pruning import QueryPruning
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher
from splade_es.search.stages import VectorQueries, open_vector_queries

FIRST = ("splade", "dense", "muvera", "splade|dense", "splade|muvera", "splade|dense|muvera")
STAGES = (*FIRST, *(f"{s}+colbert" for s in FIRST))
RERANKED = tuple(f"{s}+colbert" for s in FIRST)
BASELINE = "splade+colbert"
FUSIONS = (
    Fusion("replace"),
    *(Fusion("weighted", weight) for weight in (0.5, 0.6, 0.7, 0.8, 0.9)),
    Fusion("rrf"),
)
TARGETS = {"recall@100": 0.93, "ndcg@10": 0.715, "p50_ratio": 1.3}


def timed_pass(
    searchers: tuple[Searcher, Searcher],
    reranker: Any,
    vectors: VectorQueries,
    queries: Sequence[str],
    warmup: int,
    config: EvalConfig,
) -> dict[str, list[float]]:
    """Milliseconds per query of every stage, interleaved: query ``i`` runs the stages in an
    order rotated by ``i``; the first ``warmup`` queries run every stage untimed. As in the
    evaluator, a reranking stage searches with ``searchers[1]`` (hits carry their stored
    embeddings), the others with ``searchers[0]``."""
    plans = {stage: _plan(stage, config) for stage in STAGES}
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def run(text: str, stage: str) -> None:
        retrieval, reranks = plans[stage]
        searcher = searchers[1] if reranks else searchers[0]
        search_then_rerank(searcher, text, retrieval, reranker if reranks else None, vectors)

    for text in queries[:warmup]:
        for stage in STAGES:
            run(text, stage)
    for i, text in enumerate(
        progress_bar(queries, total=len(queries), desc="latency pass", unit="q", enabled=True)
    ):
        order = STAGES[i % len(STAGES) :] + STAGES[: i % len(STAGES)]
        for stage in order:
            started = time.perf_counter()
            run(text, stage)
            times[stage].append((time.perf_counter() - started) * 1000)
    return times


def tune_rerank_fusion(
    searcher: Searcher, reranker: Any, vectors: VectorQueries, data: Path, queries: int
) -> tuple[Fusion, list[dict[str, Any]]]:
    """The rerank fusion (MaxSim alone, or combined with the first-stage score) with the best
    mean nDCG@10 over every ``+colbert`` stage on the first ``queries`` judged queries of the
    **train** split (never the test queries the table reports), and the nDCG@10 of each stage
    under each fusion. ``reranker`` must rerank with ``replace``: both scores of each hit are
    kept and fused here, so one search per stage and query serves every fusion."""
    chosen = select(data, "train", queries, None)
    scores: dict[str, dict[str, list[tuple[str, float, float]]]] = {}
    for stage in RERANKED:
        retrieval = Retrieval(k=100, mode=first_stage_of(stage), rerank_k=100, hybrid_depth=100)
        for query_id, text in progress_bar(
            chosen.queries.items(),
            total=len(chosen.queries),
            desc=f"train {stage}",
            unit="q",
            enabled=True,
        ):
            hits = search_then_rerank(searcher, text, retrieval, reranker, vectors).hits
            scores.setdefault(stage, {})[query_id] = [
                (h.id, h.first_stage_score or 0.0, h.colbert_score or 0.0) for h in hits
            ]
    table = []
    for fusion in FUSIONS:
        row: dict[str, Any] = {"fusion": _fusion_name(fusion)}
        for stage, runs in scores.items():
            run = {
                query_id: fuse({d: f for d, f, _ in hits}, {d: c for d, _, c in hits}, fusion)
                for query_id, hits in runs.items()
            }
            row[stage] = retrieval_metrics(chosen.qrels, run)["ndcg@10"]
        row["mean"] = float(np.mean([row[stage] for stage in scores]))
        table.append(row)
    best = max(range(len(FUSIONS)), key=lambda i: table[i]["mean"])
    return FUSIONS[best], table


def _fusion_name(fusion: Fusion) -> str:
    if fusion.method == "weighted":
        return f"weighted, MaxSim {fusion.weight:.2f}"
    return "MaxSim alone" if fusion.method == "replace" else "RRF"


def _plan(stage: str, config: EvalConfig) -> tuple[Retrieval, bool]:
    """The stage's retrieval as the evaluator runs it, and whether it reranks."""
    reranks = stage.endswith("+colbert")
    depth = config.rerank_k if reranks else config.depth
    mode = first_stage_of(stage)
    return Retrieval(k=depth, mode=mode, rerank_k=config.rerank_k, hybrid_depth=config.depth), (
        reranks
    )


def maxsim_recall(
    searcher: Searcher,
    vectors: VectorQueries,
    colbert: ColbertEncoder,
    chosen: Any,
    cache: Path | None = None,
    depth: int = 100,
) -> dict[str, float]:
    """Recall@``depth`` of the MUVERA stage against exact MaxSim over the whole corpus: the
    engine's kNN (HNSW, quantised) and the same encodings brute-forced (the FDE's own loss)."""
    if vectors.muvera is None or vectors.muvera_field is None:
        raise ValueError("The index has no MUVERA field: build it with the muvera stages.")
    ids = [d.id for d in chosen.documents]
    tokens = cached_tokens(cache, ids) if cache is not None and cache.exists() else None
    probe = colbert.encode_documents([chosen.documents[0].encoded_text]).embeddings[0]
    if tokens is not None and not _same(tokens[0], probe):
        tokens = None  # the cache holds another model's (or text's) embeddings: encode here
    if tokens is None:
        tokens = _document_tokens(colbert, [d.encoded_text for d in chosen.documents])
    fde = vectors.muvera.encode_documents(tokens)
    engine, brute = [], []
    for text in progress_bar(
        list(chosen.queries.values()),
        total=len(chosen.queries),
        desc="MaxSim recall",
        unit="q",
        enabled=True,
    ):
        query = colbert.encode_queries([text])[0]
        exact = np.array(
            [float((query @ doc.T).max(axis=1).sum()) if len(doc) else 0.0 for doc in tokens]
        )
        truth = {ids[i] for i in np.argsort(-exact, kind="stable")[:depth]}
        fde_query = vectors.muvera.encode_queries([query])[0]
        brute_top = {ids[i] for i in np.argsort(-(fde @ fde_query), kind="stable")[:depth]}
        hits = searcher.knn(vectors.muvera_field, fde_query, depth, vectors.candidates)
        engine.append(len(truth & {h.id for h in hits}) / depth)
        brute.append(len(truth & brute_top) / depth)
    return {"engine_knn": float(np.mean(engine)), "brute_force_fde": float(np.mean(brute))}


def cached_tokens(cache: Path, ids: list[str]) -> list[np.ndarray] | None:
    """The documents' ColBERT token embeddings from ``muvera_tuning.py``'s cache (the same
    encoder, ``encode_documents``), in ``ids`` order; ``None`` when it lacks one of them."""
    saved = np.load(cache, allow_pickle=False)
    ends = np.cumsum(saved["doc_counts"])
    starts = ends - saved["doc_counts"]
    at = {str(doc_id): i for i, doc_id in enumerate(saved["doc_ids"])}
    if any(doc_id not in at for doc_id in ids):
        return None
    rows = saved["doc_tokens"]
    return [rows[starts[at[doc_id]] : ends[at[doc_id]]] for doc_id in ids]


def _same(cached: np.ndarray, fresh: np.ndarray) -> bool:
    return cached.shape == fresh.shape and bool(np.allclose(cached, fresh, atol=1e-4))


def _document_tokens(colbert: ColbertEncoder, texts: list[str]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    step = colbert.config.batch_size
    for start in progress_bar(
        range(0, len(texts), step),
        total=-(-len(texts) // step),
        desc="ColBERT corpus",
        unit="batch",
        enabled=True,
    ):
        out.extend(colbert.encode_documents(texts[start : start + step]).embeddings)
    return out


def rows_of(
    report: Mapping[str, Any], times: Mapping[str, list[float]], tuned: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One row per stage: quality from the evaluation (and, for a ``+colbert`` stage, from the
    one with the rerank fusion chosen on train), latency from the interleaved pass."""
    baseline = float(np.percentile(times[BASELINE], 50))
    rows = []
    for stage in STAGES:
        result = report["stages"][stage]
        p50 = float(np.percentile(times[stage], 50))
        rows.append(
            {
                "stage": stage,
                "ndcg@10": result["ndcg@10"],
                "recall@100": result["recall@100"],
                "p50_ms": p50,
                "p95_ms": float(np.percentile(times[stage], 95)),
                "vs_splade_colbert_p50": p50 / baseline,
                "eval_p50_ms": result["latency_ms_p50"],
                "ndcg@10_tuned_fusion": tuned["stages"].get(stage, {}).get("ndcg@10"),
            }
        )
    return rows


def verdicts(rows: Sequence[Mapping[str, Any]], fusion: str) -> list[str]:
    """The issue's targets, met or missed, in words: for each fused first stage (best recall
    first), its recall@100, then its ``+colbert`` stage's nDCG@10 and p50 ratio."""
    by_stage = {r["stage"]: r for r in rows}
    fused = [r for r in rows if "|" in r["stage"] and not r["stage"].endswith("+colbert")]
    met = {True: "met", False: "missed"}
    lines = []
    for first in sorted(fused, key=lambda r: -r["recall@100"]):
        reranked = by_stage[f"{first['stage']}+colbert"]
        tuned = reranked["ndcg@10_tuned_fusion"]
        ratio = reranked["vs_splade_colbert_p50"]
        lines.append(
            f"- `{first['stage']}`: recall@100 {first['recall@100']:.4f} (>= "
            f"{TARGETS['recall@100']}: {met[first['recall@100'] >= TARGETS['recall@100']]}); "
            f"`+colbert` nDCG@10 {reranked['ndcg@10']:.4f} with MaxSim alone, {tuned:.4f} with "
            f"the fusion chosen on train ({fusion}) (>= {TARGETS['ndcg@10']}: "
            f"{met[max(tuned, reranked['ndcg@10']) >= TARGETS['ndcg@10']]}); p50 {ratio:.2f}x "
            f"`{BASELINE}` (<= {TARGETS['p50_ratio']}x: {met[ratio <= TARGETS['p50_ratio']]})"
        )
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    rows = results["rows"]
    head = (
        "| stage | nDCG@10 | nDCG@10, rerank fusion from train | R@100 | p50 ms | p95 ms | "
        "p50 / splade+colbert |\n|---|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "\n".join(
        f"| `{r['stage']}` | {r['ndcg@10']:.4f} | "
        f"{'-' if r['ndcg@10_tuned_fusion'] is None else format(r['ndcg@10_tuned_fusion'], '.4f')}"
        f" | {r['recall@100']:.4f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
        f"{r['vs_splade_colbert_p50']:.2f}x |"
        for r in rows
    )
    tuning = results["rerank_fusion"]
    stages = list(RERANKED)
    train = (
        "| rerank fusion (train) | " + " | ".join(f"`{s}`" for s in stages) + " | mean |\n"
        "|---|"
        + "---:|" * (len(stages) + 1)
        + "\n"
        + "\n".join(
            f"| {row['fusion']} | "
            + " | ".join(f"{row[s]:.4f}" for s in stages)
            + f" | {row['mean']:.4f} |"
            for row in tuning["train"]
        )
    )
    fields = results["fields"]
    sizes = (
        "\n".join(
            f"| `{name}` | {f['bytes'] / 1e6:.1f} | {f['bytes_per_doc']:,.0f} |"
            for name, f in fields.items()
            if isinstance(f, Mapping)
        )
        if "unavailable" not in fields
        else f"| ({fields['unavailable']}) | | |"
    )
    recall = results["muvera_vs_maxsim"]
    return (
        f"{results['caption']}\n\n{head}{body}\n\n"
        "| field | MB on disk | bytes per document |\n|---|---:|---:|\n"
        f"{sizes}\n\nIndex: {results['index_mb']:.1f} MB in all. MUVERA recall@100 against "
        f"exact MaxSim over the whole corpus: {recall['engine_knn']:.3f} through the engine's "
        f"kNN, {recall['brute_force_fde']:.3f} for the same encodings brute-forced.\n\n"
        + f"Rerank fusion, chosen on the train split (nDCG@10 of its first "
        f"{results['train_queries']} judged queries; the test queries never chose anything): "
        f"**{tuning['chosen']}**.\n\n{train}\n\n" + "\n".join(results["verdicts"]) + "\n"
    )


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for row in rows:
        reranked = row["stage"].endswith("+colbert")
        axes = right if reranked else left
        metric = "ndcg@10" if reranked else "recall@100"
        axes.scatter(row["p50_ms"], row[metric], marker="s" if "|" in row["stage"] else "o")
        if reranked and row.get("ndcg@10_tuned_fusion") is not None:
            axes.scatter(row["p50_ms"], row["ndcg@10_tuned_fusion"], marker="x", color="black")
        axes.annotate(
            row["stage"].removesuffix("+colbert"),
            (row["p50_ms"], row[metric]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    left.set_title("first stages: Recall@100 against p50")
    left.set_ylabel("Recall@100")
    right.set_title("+ ColBERT rerank of the top 100: nDCG@10 (x: fusion from train)")
    right.set_ylabel("nDCG@10")
    for axes in (left, right):
        axes.set_xlabel("query latency p50, ms (client side, all encoding included)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--max-queries", type=int)
    parser.add_argument("--max-docs", type=int)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--embeddings",
        type=Path,
        default=Path("runs/muvera/embeddings.npz"),
        help="muvera_tuning.py's cache of the corpus's ColBERT token embeddings (reused when "
        "it holds every document; otherwise the corpus is encoded here)",
    )
    parser.add_argument(
        "--train-queries",
        type=int,
        default=300,
        help="train-split queries the rerank fusion is chosen on",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite stages.md/png from stages.json"
    )
    args = parser.parse_args()
    if args.render_only:
        results = json.loads((args.out / "stages.json").read_text())
        (args.out / "stages.md").write_text(markdown(results))
        plot(results["rows"], args.out / "stages.png")
        return
    config = EvalConfig(
        dataset=args.data, stages=STAGES, max_queries=args.max_queries, max_docs=args.max_docs
    )
    cluster = connect(ClusterConfig(url=args.es_url))
    splade = SpladeEncoder(EncoderConfig(model="splade-tiny"))
    colbert = ColbertEncoder(ColbertConfig())
    dense = DenseEncoder(DenseConfig())
    try:
        report = evaluate(cluster, splade, config, colbert, dense)
        index = report["index"]
        plain = Searcher(cluster, splade, SearchConfig(index, [], pruning=QueryPruning()))
        with_embeddings = SearchConfig(index, ["colbert"], pruning=QueryPruning())
        embedded = Searcher(cluster, splade, with_embeddings)
        vectors = open_vector_queries(plain, dense, colbert, config.knn_candidates)
        reranker = open_reranker(cluster, index, colbert, RerankConfig(field="colbert"))
        chosen = select(config.dataset, config.split, config.max_queries, config.max_docs)
        queries = list(chosen.queries.values())
        times = timed_pass((plain, embedded), reranker, vectors, queries, args.warmup, config)
        recall = maxsim_recall(plain, vectors, colbert, chosen, args.embeddings)
        train = args.train_queries
        fusion, fusion_table = tune_rerank_fusion(embedded, reranker, vectors, args.data, train)
        tuned = replace(config, stages=RERANKED, rerank_fusion=fusion)
        tuned_report = evaluate(cluster, splade, tuned, colbert, dense)
    finally:
        cluster.close()
    rows = rows_of(report, times, tuned_report)
    caption = (
        f"{report['dataset']} {report['split']} ({len(queries)} queries, "
        f"{report['index_docs']:,} docs) through {report['engine']} {report['engine_version']}, "
        f"one node; zero-shot splade-tiny, all-MiniLM-L6-v2 (ColBERT tokens, dense, MUVERA), "
        f"int8 HNSW, kNN beam {config.knn_candidates}; RRF over the top {config.depth} of "
        f"each list; rerank of the top {config.rerank_k}; {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads"
    )
    results = {
        "caption": caption,
        "rows": rows,
        "verdicts": verdicts(rows, _fusion_name(fusion)),
        "train_queries": args.train_queries,
        "fields": report.get("fields", {}),
        "index_mb": report["index_size_bytes"] / 1e6,
        "muvera_vs_maxsim": recall,
        "rerank_fusion": {"chosen": _fusion_name(fusion), "train": fusion_table},
        "report": report,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stages.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "stages.md").write_text(markdown(results))
    plot(rows, args.out / "stages.png")
    print(markdown(results))


if __name__ == "__main__":
    main()
