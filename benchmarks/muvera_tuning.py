"""MUVERA tuning on BEIR SciFact: which fixed-dimensional encoding best stands in for MaxSim.

Encodes the corpus ("title text", as the package indexes it) and the test queries with the
package's zero-shot ColBERT encoder (all-MiniLM-L6-v2), cached in ``runs/muvera/embeddings.npz``
(re-runs skip the encoding), then scores every test query against the whole corpus exactly
(brute-force Chamfer / MaxSim, cached in ``runs/muvera/exact.npz``). For each configuration of
a small grid it encodes the corpus and the queries as FDEs and ranks the corpus by dot
product, reporting:

* recall@100 vs MaxSim: the share of exact MaxSim's top 100 found in the FDE top 100;
* recall@100 and nDCG@10 of the FDE ranking against the test qrels, and nDCG@10 once the FDE
  top 100 is reranked by exact MaxSim (the paper's pipeline);
* the dimension and the document encoding time (ms/doc, this machine, whole corpus at once).

Writes ``tuning.json`` and ``tuning.md`` under ``--out`` (default
``benchmarks/results/muvera``) and names the configuration the rule picks: best recall vs
MaxSim with dimension <= 4096, the smallest dimension within 0.01 of it.

Usage:
    python benchmarks/muvera_tuning.py [--dataset ../shared/datasets/scifact] [--quick]

On this shared 2-CPU machine the first run encoded the corpus in about 7.5 minutes and exact
MaxSim took about 40 seconds (both cached afterwards); the sweep itself took 6-9 minutes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from colbert_rerank.muvera import MuveraConfig, MuveraEncoder
from colbert_rerank.progress import progress_bar
from splade_es.data.beir import load_qrels, load_queries
from splade_es.data.corpus import Document
from splade_es.data.readers import read_beir
from splade_es.evaluation.metrics import retrieval_metrics

ENCODE_BATCH = 64  # texts per encoder call, so the progress line moves every few seconds
MAX_DIM = 4096  # Elasticsearch's dense_vector limit
TOP = 100
RECALL = "recall@100_vs_maxsim"
AVERAGED = (
    RECALL,
    "maxsim_top10_in_top100",
    "spearman_vs_maxsim",
    "recall@100",
    "ndcg@10",
    "ndcg@10_reranked",
    "encode_ms_per_doc",
)
WITHIN = 0.01  # recall vs MaxSim this close to the best counts as a tie: the smaller dim wins
EXACT_CHUNK_TOKENS = 8192  # document tokens per exact-scoring step (bounds a [q, chunk] matrix)

Tokens = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float32]
Run = dict[str, dict[str, float]]
DIMS = (1024, 2048, 4096)


class Embedded:
    """Token embeddings of a text set, stored flat: ``tokens`` ``[total, dim]`` and ``counts``."""

    def __init__(self, ids: list[str], tokens: Tokens, counts: npt.NDArray[np.int64]) -> None:
        self.ids, self.tokens, self.counts = ids, tokens, counts
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    def split(self) -> list[Tokens]:
        """Per text ``[tokens, dim]`` views."""
        return np.split(self.tokens, np.cumsum(self.counts)[:-1])


def read_texts(dataset: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """Documents' encoded text, test queries' text, and the test qrels."""
    docs = {d.id: d.encoded_text for d in read_beir(dataset) if isinstance(d, Document)}
    qrels = load_qrels(dataset, "test")
    queries = load_queries(dataset, set(qrels))
    return docs, queries, {q: qrels[q] for q in queries}


def encode_all(texts: list[str], encode: object, desc: str) -> tuple[Tokens, npt.NDArray[np.int64]]:
    """Encode ``texts`` in batches with a progress line every few seconds."""
    parts: list[Tokens] = []
    with progress_bar(total=len(texts), desc=desc, unit="text", enabled=True) as bar:
        for start in range(0, len(texts), ENCODE_BATCH):
            batch = texts[start : start + ENCODE_BATCH]
            parts.extend(encode(batch))  # type: ignore[operator]
            bar.update(len(batch))
    counts = np.array([p.shape[0] for p in parts], dtype=np.int64)
    return np.concatenate(parts).astype(np.float32), counts


def cached_embeddings(
    cache: Path, docs: dict[str, str], queries: dict[str, str]
) -> tuple[Embedded, Embedded]:
    """Document and query token embeddings, from ``cache`` when it holds these ids."""
    doc_ids, query_ids = sorted(docs), sorted(queries)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if list(stored["doc_ids"]) == doc_ids and list(stored["query_ids"]) == query_ids:
                return (
                    Embedded(doc_ids, stored["doc_tokens"], stored["doc_counts"]),
                    Embedded(query_ids, stored["query_tokens"], stored["query_counts"]),
                )
        print(f"{cache} holds other ids: encoding again", file=sys.stderr)
    encoder = ColbertEncoder(ColbertConfig())
    query_tokens, query_counts = encode_all(
        [queries[q] for q in query_ids], encoder.encode_queries, "encoding queries"
    )
    doc_tokens, doc_counts = encode_all(
        [docs[d] for d in doc_ids],
        lambda batch: encoder.encode_documents(batch).embeddings,
        "encoding documents",
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache,
        doc_ids=np.array(doc_ids),
        doc_tokens=doc_tokens,
        doc_counts=doc_counts,
        query_ids=np.array(query_ids),
        query_tokens=query_tokens,
        query_counts=query_counts,
    )
    return Embedded(doc_ids, doc_tokens, doc_counts), Embedded(
        query_ids, query_tokens, query_counts
    )


def exact_scores(cache: Path, documents: Embedded, queries: Embedded) -> Scores:
    """``[queries, documents]`` exact Chamfer (MaxSim) scores, from ``cache`` when it matches."""
    key = f"{len(documents.ids)}:{documents.tokens.shape}:{queries.tokens.shape}"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["key"]) == key:
                return np.asarray(stored["scores"])
    if (queries.counts == 0).any():
        raise ValueError("A query encoded to 0 tokens: exact MaxSim is undefined for it.")
    scores = np.zeros((len(queries.ids), len(documents.ids)), dtype=np.float32)
    ends = np.cumsum(documents.counts)
    first = 0
    with progress_bar(
        total=len(documents.ids), desc="exact MaxSim", unit="doc", enabled=True
    ) as bar:
        while first < len(documents.ids):
            last = max(first + 1, int(np.searchsorted(ends, ends[first] + EXACT_CHUNK_TOKENS)))
            last = min(last, len(documents.ids))
            present = first + np.flatnonzero(documents.counts[first:last])
            start = documents.starts[first]
            chunk = documents.tokens[start : ends[last - 1]]
            sims = queries.tokens @ chunk.T  # [query tokens, chunk tokens]
            best = np.maximum.reduceat(sims, documents.starts[present] - start, axis=1)
            scores[:, present] = np.add.reduceat(best, queries.starts, axis=0)
            bar.update(last - first)
            first = last
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.array(key), scores=scores)
    return scores


def top_ids(scores: Scores, k: int = TOP) -> npt.NDArray[np.int64]:
    """``[queries, k]`` column indices of each row's ``k`` best scores, best first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def rank_correlation(a: Scores, b: Scores) -> float:
    """Spearman's rho of two score rows over the whole corpus (continuous scores: no ties)."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def as_run(ids: list[str], doc_ids: list[str], top: npt.NDArray[np.int64], scores: Scores) -> Run:
    return {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(ids)}


def evaluate(
    config: MuveraConfig,
    documents: Embedded,
    queries: Embedded,
    exact: Scores,
    qrels: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """One grid row: encode, rank by dot product, compare with exact MaxSim and the qrels."""
    encoder = MuveraEncoder(config, token_dim=documents.tokens.shape[1])
    started = time.perf_counter()
    doc_fde = encoder.encode_documents(documents.split())
    encode_s = time.perf_counter() - started
    scores = encoder.encode_queries(queries.split()) @ doc_fde.T
    return {
        "simhash_bits": config.simhash_bits,
        "projection_dim": config.projection_dim,
        "repetitions": config.repetitions,
        "final_dim": config.final_dim,
        "seed": config.seed,
        "dimension": encoder.dimension,
        **ranking_quality(scores, documents, queries, exact, qrels),
        "encode_ms_per_doc": 1000 * encode_s / len(documents.ids),
    }


def ranking_quality(
    scores: Scores,
    documents: Embedded,
    queries: Embedded,
    exact: Scores,
    qrels: dict[str, dict[str, int]],
) -> dict[str, float]:
    """How ``scores`` ``[queries, documents]`` rank the corpus, against MaxSim and the qrels."""
    top, exact_top = top_ids(scores), top_ids(exact)
    overlap = [len(set(a) & set(b)) / TOP for a, b in zip(top, exact_top, strict=True)]
    head = [len(set(a) & set(b[:10])) / 10 for a, b in zip(top, exact_top, strict=True)]
    spearman = [rank_correlation(a, b) for a, b in zip(scores, exact, strict=True)]
    fde = retrieval_metrics(qrels, as_run(queries.ids, documents.ids, top, scores))
    reranked = retrieval_metrics(qrels, as_run(queries.ids, documents.ids, top, exact))
    return {
        RECALL: float(np.mean(overlap)),
        "maxsim_top10_in_top100": float(np.mean(head)),
        "spearman_vs_maxsim": float(np.mean(spearman)),
        "recall@100": fde["recall@100"],
        "ndcg@10": fde["ndcg@10"],
        "ndcg@10_reranked": reranked["ndcg@10"],
    }


def mean_pooling(
    documents: Embedded, queries: Embedded, exact: Scores, qrels: dict[str, dict[str, int]]
) -> dict[str, float]:
    """The baseline with no partitions at all: mean document token . summed query tokens."""
    doc_means = np.add.reduceat(documents.tokens, documents.starts, axis=0)
    doc_means /= np.maximum(documents.counts, 1)[:, None]
    query_sums = np.add.reduceat(queries.tokens, queries.starts, axis=0)
    return ranking_quality(query_sums @ doc_means.T, documents, queries, exact, qrels)


def grid(quick: bool) -> list[MuveraConfig]:
    """The configurations swept: SimHash bits 2-6 x projection width 8/16/32 at 4096 dims,
    bits 2-5 x width 16/32 at 2048, bits 2-4 x width 16 at 1024; no inner projection with
    1-3 bits; count-sketched 6144-16384-dim concatenations down to 4096."""
    if quick:
        return [MuveraConfig(1, None, 4), MuveraConfig(4, 16, 16), MuveraConfig(3, 16, 8)]
    shapes = {4096: ((2, 3, 4, 5, 6), (8, 16, 32)), 2048: ((2, 3, 4, 5), (16, 32))}
    shapes[1024] = ((2, 3, 4), (16,))
    configs = [
        MuveraConfig(bits, proj, dim // (2**bits * proj))
        for dim, (all_bits, projections) in shapes.items()
        for bits in all_bits
        for proj in projections
    ]
    configs += [MuveraConfig(1, None, reps) for reps in (2, 3, 4, 5)]
    configs += [MuveraConfig(2, None, 1), MuveraConfig(2, None, 2), MuveraConfig(3, None, 1)]
    configs += [
        MuveraConfig(4, 16, 32, final_dim=4096),
        MuveraConfig(4, None, 1, final_dim=4096),
        MuveraConfig(5, 32, 16, final_dim=4096),
    ]
    return configs


def sweep(
    configs: list[MuveraConfig],
    seeds: list[int],
    documents: Embedded,
    queries: Embedded,
    exact: Scores,
    qrels: dict[str, dict[str, int]],
) -> list[dict[str, Any]]:
    """One row per configuration: its metrics averaged over ``seeds``, with the spread of
    recall vs MaxSim across them."""
    rows = []
    total = len(configs) * len(seeds)
    with progress_bar(total=total, desc="FDE grid", unit="encoding", enabled=True) as bar:
        for config in configs:
            runs = []
            for seed in seeds:
                runs.append(evaluate(replace(config, seed=seed), documents, queries, exact, qrels))
                bar.update(1)
            rows.append(averaged(runs))
            bar.set_postfix(last=label(rows[-1]), recall=f"{rows[-1][RECALL]:.3f}")
    return rows


def averaged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``runs`` (one configuration, several seeds) as one row of mean metrics."""
    row = {key: value for key, value in runs[0].items() if key != "seed"}
    for key in AVERAGED:
        row[key] = float(np.mean([run[key] for run in runs]))
    row["seeds"] = [run["seed"] for run in runs]
    row["recall_spread"] = max(r[RECALL] for r in runs) - min(r[RECALL] for r in runs)
    return row


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best recall vs MaxSim within MAX_DIM; among rows within WITHIN of it, the smallest
    dimension, then the best recall."""
    allowed = [row for row in rows if row["dimension"] <= MAX_DIM]
    best = max(row["recall@100_vs_maxsim"] for row in allowed)
    close = [row for row in allowed if row["recall@100_vs_maxsim"] >= best - WITHIN]
    return min(close, key=lambda row: (row["dimension"], -row["recall@100_vs_maxsim"]))


def ms_per_100_token_doc(row: dict[str, Any], token_dim: int) -> float:
    """Encoding time of 1,000 random 100-token documents with ``row``'s configuration (the
    best of three passes after a warm-up one, as the CPUs here are shared)."""
    names = ("simhash_bits", "projection_dim", "repetitions", "final_dim")
    encoder = MuveraEncoder(MuveraConfig(*(row[n] for n in names)), token_dim)
    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((100, token_dim)).astype(np.float32) for _ in range(1000)]
    times = []
    for _ in range(4):
        started = time.perf_counter()
        encoder.encode_documents(docs)
        times.append(time.perf_counter() - started)
    return 1000 * min(times[1:]) / len(docs)


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table, best recall vs MaxSim first, the chosen row marked."""
    exact, pooled = report["exact_maxsim"], report["mean_pooling"]
    lines = [
        "# MUVERA FDE tuning on SciFact",
        "",
        f"{report['documents']} documents ({report['tokens_per_document']:.0f} tokens each on "
        f"average), {report['queries']} test queries, {report['token_dim']}-dim "
        f"all-MiniLM-L6-v2 zero-shot tokens. Exact MaxSim over the whole corpus: "
        f"recall@100 {exact['recall@100']:.3f}, nDCG@10 {exact['ndcg@10']:.3f}. Baseline "
        f"with no partitions (mean document token . summed query tokens, 384 dims): recall@100 "
        f"vs MaxSim {pooled[RECALL]:.3f}, Spearman {pooled['spearman_vs_maxsim']:.3f}, "
        f"recall@100 {pooled['recall@100']:.3f}, nDCG@10 {pooled['ndcg@10']:.3f}.",
        f"Chosen ({report['rule']}): {label(report['chosen'])}, "
        f"{report['chosen_ms_per_100_token_doc']:.3f} ms per 100-token document.",
        "",
        f"Each row is the mean over matrix seeds {report['seeds']} (numpy {report['numpy']}, "
        f"{report['machine']}, shared CPUs: times are indicative). Recall@100 vs MaxSim: share "
        "of exact MaxSim's top 100 in the FDE top 100; MaxSim top-10 in top-100: the same for "
        "its top 10; Spearman: per-query rank correlation over the whole corpus; recall@100 and "
        "nDCG@10 of the FDE ranking against the qrels; nDCG@10 reranked: the FDE top 100 "
        "reranked by exact MaxSim; encode ms/doc: corpus documents, all at once.",
        "",
        "| config (bits, d_proj, reps, final) | dim | recall@100 vs MaxSim (seed spread) "
        "| MaxSim top-10 in top-100 | Spearman vs MaxSim | recall@100 | nDCG@10 "
        "| nDCG@10 reranked | encode ms/doc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = sorted(report["rows"], key=lambda r: -r["recall@100_vs_maxsim"])
    for row in rows:
        mark = " **(chosen)**" if row == report["chosen"] else ""
        lines.append(
            f"| {label(row)}{mark} | {row['dimension']} | {row[RECALL]:.3f} "
            f"({row['recall_spread']:.3f}) "
            f"| {row['maxsim_top10_in_top100']:.3f} | {row['spearman_vs_maxsim']:.3f} "
            f"| {row['recall@100']:.3f} | {row['ndcg@10']:.3f} | {row['ndcg@10_reranked']:.3f} "
            f"| {row['encode_ms_per_doc']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def label(row: dict[str, Any]) -> str:
    final = row["final_dim"] or "-"
    return f"{row['simhash_bits']}, {row['projection_dim'] or '-'}, {row['repetitions']}, {final}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--cache", type=Path, default=Path("runs/muvera"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/muvera"))
    parser.add_argument("--quick", action="store_true", help="three configurations only")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="matrix seeds")
    args = parser.parse_args()
    docs, query_texts, qrels = read_texts(args.dataset)
    documents, queries = cached_embeddings(args.cache / "embeddings.npz", docs, query_texts)
    exact = exact_scores(args.cache / "exact.npz", documents, queries)
    exact_top = top_ids(exact)
    rows = sweep(grid(args.quick), args.seeds, documents, queries, exact, qrels)
    chosen = choose(rows)
    report = {
        "dataset": str(args.dataset),
        "documents": len(documents.ids),
        "queries": len(queries.ids),
        "token_dim": int(documents.tokens.shape[1]),
        "tokens_per_document": float(documents.counts.mean()),
        "tokens_per_query": float(queries.counts.mean()),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "numpy": np.__version__,
        "exact_maxsim": retrieval_metrics(
            qrels, as_run(queries.ids, documents.ids, exact_top, exact)
        ),
        "seeds": args.seeds,
        "mean_pooling": mean_pooling(documents, queries, exact, qrels),
        "rule": f"best recall@100 vs MaxSim at dim <= {MAX_DIM}, smallest dim within {WITHIN}",
        "chosen": chosen,
        "chosen_ms_per_100_token_doc": ms_per_100_token_doc(chosen, documents.tokens.shape[1]),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tuning.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "tuning.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
