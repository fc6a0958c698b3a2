"""Which stored form of the ColBERT embeddings: nDCG@10 of SciFact test against bytes per
document, for token pooling, residual bits and reduced dims, without re-indexing.

The SciFact corpus is encoded once (float32 token embeddings, as the index encodes them); each
variant then pools, projects and encodes them as ``splade-es index`` would (codebook and
projection fitted on the same 256-document sample of pooled embeddings), decodes what it
stored, and reranks the engine's SPLADE top 100 of every test query with MaxSim. The first
stage is the same for every variant, so the differences are the storage's alone.

Usage:
    python benchmarks/storage_study.py --es-url URL --index EVAL_INDEX [--scifact DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colbert_rerank.codebook import fit_codebook
from colbert_rerank.codecs import Codec, CodecName
from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from colbert_rerank.maxsim import PackedDocuments, maxsim
from colbert_rerank.pooling import pool_tokens
from colbert_rerank.progress import progress_bar
from colbert_rerank.projection import fit_projection
from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.evaluation.metrics import retrieval_metrics
from splade_es.evaluation.selection import select
from splade_es.search.searcher import SearchConfig, Searcher

# (pool factor, stored dims or None for the model's, codec, residual bits)
VARIANTS: tuple[tuple[int, int | None, CodecName, int], ...] = (
    (1, None, "float16", 0),
    (1, None, "residual", 2),
    (2, None, "residual", 2),
    (3, None, "residual", 2),
    (1, None, "residual", 1),
    (2, None, "residual", 1),
    (1, 128, "residual", 2),
    (2, 128, "residual", 2),
)


def encode_corpus(encoder: ColbertEncoder, texts: dict[str, str]) -> dict[str, np.ndarray]:
    """Token embeddings of every document (length-sorted batches, as the indexer runs)."""
    ids = sorted(texts, key=lambda i: len(texts[i]))
    out: dict[str, np.ndarray] = {}
    batches = range(0, len(ids), 64)
    for start in progress_bar(
        batches, total=len(batches), desc="encode", unit="batch", enabled=True
    ):
        batch = ids[start : start + 64]
        encoded = encoder.encode_documents([texts[i] for i in batch]).embeddings
        out.update(zip(batch, encoded, strict=True))
    return out


def variant(
    setup: tuple[int, int | None, CodecName, int],
    embeddings: dict[str, np.ndarray],
    sample: list[str],
    tops: dict[str, list[str]],
    queries: dict[str, np.ndarray],
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """The reranked run of one stored form, and its facts (tokens, bytes per document)."""
    pool, dim, name, bits = setup
    needed = sorted(embeddings)  # every document: sizes are the corpus's, not the top 100's
    pooled = {d: pool_tokens(embeddings[d], pool)[0] for d in needed}
    stacked = np.concatenate([pooled[d] for d in sample])
    projection = fit_projection(stacked, dim) if dim else None
    reduced = projection.apply(stacked) if projection else stacked
    codebook = fit_codebook(reduced, bits=bits) if name == "residual" else None
    codec = Codec(name, dim or reduced.shape[1], codebook, projection)
    blobs = {d: codec.encode(pooled[d]) for d in needed}
    stored = {d: torch.from_numpy(codec.decode(b)) for d, b in blobs.items()}
    run = {}
    for query_id, top in tops.items():
        query = torch.from_numpy(codec.prepare_query(queries[query_id]))
        scores = maxsim(query, PackedDocuments.pack([stored[d] for d in top])).tolist()
        run[query_id] = dict(zip(top, scores, strict=True))
    facts = {
        "pool_factor": pool,
        "dim": codec.dim,
        "codec": name if name != "residual" else f"residual{bits}",
        "tokens_per_doc": float(np.mean([pooled[d].shape[0] for d in needed])),
        "bytes_per_doc": float(np.mean([len(b) for b in blobs.values()])),
    }
    return run, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--index", required=True, help="The SciFact eval index (its SPLADE field).")
    parser.add_argument("--scifact", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--sample", type=int, default=256, help="Codebook sample documents.")
    parser.add_argument("--max-queries", type=int, help="The first N judged queries (smoke runs).")
    parser.add_argument("--max-docs", type=int, help="The eval index's corpus cut, if it has one.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    chosen = select(args.scifact, "test", args.max_queries, args.max_docs)
    searcher = Searcher(
        connect(ClusterConfig(url=args.es_url)),
        SpladeEncoder(EncoderConfig(device="cpu")),
        SearchConfig(index=args.index, source_includes=[]),
    )
    tops = {q: [h.id for h in searcher.search(t, 100)] for q, t in chosen.queries.items()}
    first = retrieval_metrics(
        chosen.qrels, {q: {d: 100.0 - r for r, d in enumerate(top)} for q, top in tops.items()}
    )
    colbert = ColbertEncoder(ColbertConfig(device="cpu"))
    queries = {q: colbert.encode_queries([t])[0] for q, t in chosen.queries.items()}
    embeddings = encode_corpus(colbert, {d.id: d.encoded_text for d in chosen.documents})
    generator = np.random.default_rng(0)
    ids = sorted(embeddings)
    size = min(args.sample, len(ids))
    sample = [ids[i] for i in generator.choice(len(ids), size, replace=False)]
    rows = []
    for setup in VARIANTS:
        started = time.perf_counter()
        run, facts = variant(setup, embeddings, sample, tops, queries)
        facts["ndcg@10"] = retrieval_metrics(chosen.qrels, run)["ndcg@10"]
        facts["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(facts)
        print(json.dumps(facts), flush=True)
    write(args, rows, first["ndcg@10"], len(tops))


def write(args: Any, rows: list[dict[str, Any]], splade: float, queries: int) -> None:
    """``storage.json``, ``storage.md`` (the table) and ``storage.png`` (nDCG against bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = {"index": args.index, "queries": queries, "splade_ndcg@10": splade, "variants": rows}
    lines = [
        f"SPLADE top 100 of {queries} SciFact test queries (`{args.index}`, nDCG@10 "
        f"{splade:.4f}) reranked by MaxSim over each stored form:",
        "",
        "| pool factor | dims | codec | tokens/doc | bytes/doc | nDCG@10 |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['pool_factor']} | {r['dim']} | {r['codec']} | {r['tokens_per_doc']:.1f} | "
            f"{r['bytes_per_doc']:.0f} | {r['ndcg@10']:.4f} |"
            for r in rows
        ),
    ]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        axes.scatter(r["bytes_per_doc"] / 1000, r["ndcg@10"])
        label = f"pool{r['pool_factor']} d{r['dim']} {r['codec']}"
        axes.annotate(label, (r["bytes_per_doc"] / 1000, r["ndcg@10"]), fontsize=7)
    axes.set_xscale("log")
    axes.set_xlabel("stored kB per document (log)")
    axes.set_ylabel("nDCG@10 (SciFact test)")
    axes.set_title("ColBERT storage: quality against size")
    figure.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "storage.png", dpi=110)
    (args.out / "storage.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "storage.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
