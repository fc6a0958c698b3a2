"""ColBERT reranking benchmarks, measured in one run on one machine.

1. Codecs: bytes per token and nDCG@10 of reranking the SPLADE top-100 of every SciFact test
   query, for float32 (the baseline) and each codec, at the model's dimension and after a
   128-dim projection (PCA fitted on the codebook sample).
2. MaxSim: the vectorised scorer vs a per-document loop, for k = 10 / 100 / 1000 candidates.
3. End to end over loopback: top-100 SPLADE hits fetched with their stored embeddings, decoded
   and scored (query encoding reported separately), from an index built by ``splade-es eval``
   with ``--stages splade+colbert`` (384-dim residual embeddings), and the same again from an
   index built with ``--colbert-dim 128`` when ``--colbert-index-128`` names one (the row is
   skipped, and the markdown says so, when it does not).

Usage:
    python benchmarks/bench_colbert.py --dataset ../shared/datasets/scifact --es-url URL \
        --splade-index eval-scifact-... [--colbert-index eval-scifact-...-residual2] \
        [--colbert-index-128 eval-scifact-...-residual2-d128] --out benchmarks/results

Every row's nDCG@10 loss is computed from the float32 rows' scores (in its own space, and at
the model's native dimension); a missing float32 row is an error.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colbert_rerank.codebook import fit_codebook
from colbert_rerank.codecs import Codec
from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from colbert_rerank.maxsim import PackedDocuments, maxsim, maxsim_reference
from colbert_rerank.projection import Projection, fit_projection
from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.data.beir import load_qrels, load_queries
from splade_es.data.corpus import Document
from splade_es.data.readers import read_beir
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.evaluation.metrics import retrieval_metrics
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher


def project(x: np.ndarray, projection: Projection | None) -> np.ndarray:
    return x if projection is None else projection.apply(x)


def rerank_quality(
    first_stage: dict[str, list[str]],
    query_vectors: dict[str, np.ndarray],
    doc_vectors: dict[str, np.ndarray],
    qrels: dict[str, dict[str, int]],
) -> float:
    run = {}
    for query_id, candidates in first_stage.items():
        q = torch.from_numpy(query_vectors[query_id])
        packed = PackedDocuments.pack([torch.from_numpy(doc_vectors[d]) for d in candidates])
        scores = maxsim(q, packed).tolist()
        run[query_id] = dict(zip(candidates, scores, strict=True))
    return float(retrieval_metrics(qrels, run)["ndcg@10"])


def add_losses(rows: list[dict[str, Any]]) -> None:
    """Set each row's nDCG@10 loss against float32 in its own space and against float32 at
    the model's native dimension (the ``native`` space), from those rows' scores.

    Raises:
        ValueError: a baseline row is missing (a loss is never assumed to be 0).
    """
    baselines = {row["space"]: row["ndcg@10"] for row in rows if row["codec"] == "float32"}
    for row in rows:
        for space, key in (
            (row["space"], "loss_vs_float32_same_dim"),
            ("native", "loss_vs_float32_native"),
        ):
            if space not in baselines:
                raise ValueError(
                    f"No float32 row in space {space!r} (rows: "
                    f"{sorted({(r['space'], r['codec']) for r in rows})}): cannot compute {key}."
                )
            row[key] = baselines[space] - row["ndcg@10"]


def judged_queries(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The first ``--max-queries`` judged test queries and their judgements."""
    qrels = load_qrels(args.dataset, "test")
    queries = dict(
        itertools.islice(load_queries(args.dataset, set(qrels)).items(), args.max_queries)
    )
    return queries, {q: qrels[q] for q in queries}


def document_embeddings(
    args: argparse.Namespace, colbert: ColbertEncoder, texts: dict[str, str]
) -> tuple[dict[str, np.ndarray], float | None]:
    """Token embeddings of ``texts`` (from ``--cache`` when this set was encoded before) and
    the seconds their encoding took in this run (``None`` when they came from the cache)."""
    ids = sorted(texts)
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
    weights = colbert.fingerprint()["weights_sha256"]
    name = f"colbert-{weights}-{colbert.document_length}-{digest}.npz"
    cache = args.cache / name if args.cache else None
    if cache is not None and cache.exists():
        stored = np.load(cache)
        return {i: stored[i] for i in ids}, None
    started = time.perf_counter()
    embedded = colbert.encode_documents([texts[i] for i in ids]).embeddings
    encode_s = time.perf_counter() - started
    docs = dict(zip(ids, embedded, strict=True))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **docs)
    return docs, encode_s


def bench_codecs(args: argparse.Namespace, cluster: Any) -> dict[str, Any]:
    queries, qrels = judged_queries(args)
    splade = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
    searcher = Searcher(cluster, splade, SearchConfig(index=args.splade_index, source_includes=[]))
    first_stage = {q: [h.id for h in searcher.search(text, 100)] for q, text in queries.items()}
    first_run = {q: {d: 100.0 - i for i, d in enumerate(ids)} for q, ids in first_stage.items()}
    splade_ndcg = retrieval_metrics(qrels, first_run)["ndcg@10"]
    needed = {d for ids in first_stage.values() for d in ids}
    texts = {
        d.id: d.encoded_text
        for d in read_beir(args.dataset)
        if isinstance(d, Document) and d.id in needed
    }
    colbert = ColbertEncoder(ColbertConfig(device="cpu"))
    docs, encode_s = document_embeddings(args, colbert, texts)
    ids = sorted(docs)
    query_vectors = dict(zip(queries, colbert.encode_queries(list(queries.values())), strict=True))
    rng = np.random.default_rng(0)
    sample_ids = rng.choice(ids, size=min(256, len(ids)), replace=False)
    sample = np.concatenate([docs[i] for i in sample_ids])
    rows = []
    for label, matrix in (("native", None), ("pca128", fit_projection(sample, 128))):
        d_proj = {i: project(v, matrix) for i, v in docs.items()}
        q_proj = {q: project(v, matrix) for q, v in query_vectors.items()}
        dim = next(iter(d_proj.values())).shape[1]
        rows.append(
            {
                "space": label,
                "dim": dim,
                "codec": "float32",
                "bytes_per_token": 4 * dim,
                "ndcg@10": rerank_quality(first_stage, q_proj, d_proj, qrels),
            }
        )
        projected_sample = project(sample, matrix)
        for name, bits in (("float16", 0), ("int8", 0), ("residual", 2), ("residual", 1)):
            codebook = fit_codebook(projected_sample, bits=bits) if name == "residual" else None
            codec = Codec(name, dim, codebook)  # type: ignore[arg-type]
            decoded, size, tokens = {}, 0, 0
            for i, v in d_proj.items():
                blob = codec.encode(v)
                size += len(blob)
                tokens += v.shape[0]
                decoded[i] = codec.decode(blob)
            rows.append(
                {
                    "space": label,
                    "dim": dim,
                    "codec": f"{name}{bits if bits else ''}",
                    "bytes_per_token": codec.bytes_per_token,
                    "bytes_per_token_with_header": size / tokens,
                    "ndcg@10": rerank_quality(first_stage, q_proj, decoded, qrels),
                }
            )
    add_losses(rows)
    return {
        "queries": len(queries),
        "candidate_docs": len(ids),
        "splade_ndcg@10": splade_ndcg,
        # Only when encoded in this run: a cached rate may come from another machine.
        "colbert_doc_encode_docs_per_s": None if encode_s is None else len(ids) / encode_s,
        "tokens_per_doc": float(np.mean([v.shape[0] for v in docs.values()])),
        "rows": rows,
        "_docs": docs,
        "_query": next(iter(query_vectors.values())),
        "_projection": fit_projection(sample, 128),
    }


def _median_ms(function: Any, repeats: int) -> float:
    function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def bench_maxsim(
    docs: dict[str, np.ndarray], query: np.ndarray, projection: Projection
) -> list[dict[str, Any]]:
    """MaxSim alone (documents already decoded and packed), at 384 and 128 dims."""
    out = []
    for label, chosen_projection in (("native", None), ("pca128", projection)):
        vectors = [torch.from_numpy(project(v, chosen_projection)) for v in docs.values()]
        q = torch.from_numpy(project(query, chosen_projection))
        for k in (10, 100, 1000):
            chosen = vectors[:k]
            packed = PackedDocuments.pack(chosen)
            assert torch.allclose(maxsim(q, packed), maxsim_reference(q, chosen), atol=1e-4)
            repeats = 50 if k <= 100 else 10
            vectorised = _median_ms(lambda p=packed, q=q: maxsim(q, p), repeats)
            loop = _median_ms(lambda c=chosen, q=q: maxsim_reference(q, c), repeats)
            out.append(
                {
                    "space": label,
                    "dim": int(q.shape[1]),
                    "query_tokens": int(q.shape[0]),
                    "k": k,
                    "doc_tokens": int(packed.embeddings.shape[0]),
                    "vectorised_ms": vectorised,
                    "per_document_loop_ms": loop,
                    "speedup": loop / vectorised,
                }
            )
    return out


E2E_KEYS = (
    "search_with_embeddings_top100",
    "decode_and_maxsim_top100",
    "fetch_decode_maxsim_top100",
    "colbert_query_encoding",
)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": statistics.median(ordered),
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
    }


def bench_end_to_end(
    cluster: Any,
    queries: list[str],
    splade: SpladeEncoder,
    colbert: ColbertEncoder,
    indices: list[str],
) -> list[dict[str, Any]]:
    """Top-100 SPLADE hits fetched with their stored embeddings, decoded and MaxSim-scored,
    per index. The indices take turns query by query (a slow spell hits all of them alike),
    each warmed up on the same first queries. The codec and the stored dimension are read
    from each index (what ``splade-es eval`` wrote)."""
    searchers = [
        Searcher(
            cluster, splade, SearchConfig(index=i, source_includes=[], include_embeddings=True)
        )
        for i in indices
    ]
    rerankers = [open_reranker(cluster, index, colbert) for index in indices]
    vectors = [searchers[0].encode_query(q) for q in queries]
    timings: list[dict[str, list[float]]] = [
        {"fetch": [], "rerank": [], "encode": []} for _ in indices
    ]
    for i, text in enumerate(queries):
        for searcher, reranker, times in zip(searchers, rerankers, timings, strict=True):
            started = time.perf_counter()
            hits = searcher.search_vector(vectors[i], 100)
            fetched = (time.perf_counter() - started) * 1000
            result = reranker.rerank(text, [h.as_dict() for h in hits])
            if i < min(5, len(queries) - 1):  # warm-up: the first calls pay for lazy set-up
                continue
            times["fetch"].append(fetched)
            times["encode"].append(result.stats.encode_ms)
            times["rerank"].append(result.stats.decode_ms + result.stats.maxsim_ms)
    return [_e2e_run(index, reranker, times) for index, reranker, times in
            zip(indices, rerankers, timings, strict=True)]  # fmt: skip


def _e2e_run(index: str, reranker: Any, times: dict[str, list[float]]) -> dict[str, Any]:
    total = [f + r for f, r in zip(times["fetch"], times["rerank"], strict=True)]
    codec = reranker.codec
    return {
        "index": index,
        "queries": len(total),
        "codec": f"{codec.name}{codec.codebook.bits if codec.codebook is not None else ''}",
        "dim": codec.dim,
        "search_with_embeddings_top100": _percentiles(times["fetch"]),
        "decode_and_maxsim_top100": _percentiles(times["rerank"]),
        "fetch_decode_maxsim_top100": _percentiles(total),
        "colbert_query_encoding": _percentiles(times["encode"]),
    }


def end_to_end(args: argparse.Namespace, cluster: Any) -> dict[str, Any]:
    """The loopback timings for ``--colbert-index`` and, when given, ``--colbert-index-128``,
    over the same queries, taking turns."""
    queries = list(judged_queries(args)[0].values())[:105]
    splade = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
    colbert = ColbertEncoder(ColbertConfig(device="cpu"))
    indices = [args.colbert_index, *([args.colbert_index_128] if args.colbert_index_128 else [])]
    runs = bench_end_to_end(cluster, queries, splade, colbert, indices)
    if len(runs) == 2 and runs[1]["dim"] == runs[0]["dim"]:
        raise ValueError(
            f"--colbert-index-128 {args.colbert_index_128} stores {runs[1]['dim']} dims, as "
            f"--colbert-index does: build it with `splade-es eval ... --colbert-dim 128`."
        )
    out: dict[str, Any] = {"runs": runs}
    if len(runs) == 2:
        key = "fetch_decode_maxsim_top100"
        out["speedup_p50"] = runs[0][key]["p50_ms"] / runs[1][key]["p50_ms"]
    return out


def end_to_end_markdown(e: dict[str, Any]) -> list[str]:
    runs = e["runs"]
    head = " | ".join(f"{r['codec']} {r['dim']} dims p50 ms | p95 ms" for r in runs)
    lines = [
        "",
        f"| over loopback, {runs[0]['queries']} queries, top 100 | {head} |",
        "|---|" + "---|---|" * len(runs),
    ]
    for key in E2E_KEYS:
        cells = " | ".join(f"{r[key]['p50_ms']:.2f} | {r[key]['p95_ms']:.2f}" for r in runs)
        lines.append(f"| {key} | {cells} |")
    lines.append("")
    if "speedup_p50" in e:
        lines.append(
            f"End to end (fetch + decode + MaxSim, p50): {runs[1]['dim']} dims take "
            f"1/{e['speedup_p50']:.2f} of the time {runs[0]['dim']} dims take "
            f"(p50 {runs[0]['dim']} / p50 {runs[1]['dim']} = {e['speedup_p50']:.2f}x; "
            f"indices `{runs[0]['index']}` and `{runs[1]['index']}`, queried in turns)."
        )
    else:
        lines.append(
            f"Index `{runs[0]['index']}`. No 128-dim index was given "
            "(`--colbert-index-128`): its end-to-end column is skipped."
        )
    return lines


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def target_lines(result: dict[str, Any]) -> list[str]:
    """Which targets the numbers in ``result`` meet, one sentence per target."""
    small = [r for r in result["codecs"]["rows"] if r["dim"] <= 128 and r["codec"] == "residual2"]
    lines = []
    for row in small:
        ok = row["bytes_per_token"] <= 36 and row["loss_vs_float32_same_dim"] <= 0.005
        lines.append(
            f"Target <= 36 B/token and <= 0.005 nDCG@10 loss against float32 at the same dim: "
            f"{_verdict(ok)} ({row['space']} residual2: {row['bytes_per_token']:.0f} B/token, "
            f"loss {row['loss_vs_float32_same_dim']:+.4f})."
        )
    for row in (r for r in result["maxsim"] if r["k"] == 100):
        ok = row["vectorised_ms"] <= 2 and row["speedup"] >= 5
        lines.append(
            f"Target MaxSim of a top 100 <= 2 ms and >= 5x the per-document loop: {_verdict(ok)} "
            f"at {row['dim']} dims ({row['vectorised_ms']:.2f} ms, {row['speedup']:.1f}x)."
        )
    for run in result.get("end_to_end", {}).get("runs", []):
        p50 = run["fetch_decode_maxsim_top100"]["p50_ms"]
        lines.append(
            f"Target end to end (fetch + decode + MaxSim of a top 100) <= 15 ms p50: "
            f"{_verdict(p50 <= 15)} at {run['dim']} dims ({p50:.1f} ms)."
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    codecs = result["codecs"]
    native_dim = next(r["dim"] for r in codecs["rows"] if r["space"] == "native")
    lines = [
        f"Machine: {result['machine']}; {result['engine']}; SPLADE top-100 of "
        f"{codecs['queries']} SciFact test queries (SPLADE alone: nDCG@10 "
        f"{codecs['splade_ndcg@10']:.4f}) reranked by zero-shot all-MiniLM-L6-v2 MaxSim "
        f"({codecs['tokens_per_doc']:.0f} stored tokens/doc).",
        "",
        "| space | dim | codec | bytes/token | nDCG@10 | loss vs float32 (same dim) "
        f"| loss vs float32 ({native_dim}) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in codecs["rows"]:
        lines.append(
            f"| {row['space']} | {row['dim']} | {row['codec']} | {row['bytes_per_token']:.0f} | "
            f"{row['ndcg@10']:.4f} | {row['loss_vs_float32_same_dim']:+.4f} | "
            f"{row['loss_vs_float32_native']:+.4f} |"
        )
    lines += [
        "",
        "| MaxSim only | dim | k | doc tokens | vectorised ms | per-document loop ms | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["maxsim"]:
        lines.append(
            f"| {row['space']} | {row['dim']} | {row['k']} | {row['doc_tokens']} | "
            f"{row['vectorised_ms']:.2f} | {row['per_document_loop_ms']:.2f} | "
            f"{row['speedup']:.1f}x |"
        )
    if "end_to_end" in result:
        lines += end_to_end_markdown(result["end_to_end"])
    lines += ["", *(f"* {line}" for line in target_lines(result))]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--splade-index", required=True)
    parser.add_argument("--colbert-index", help="An eval index with 384-dim residual embeddings.")
    parser.add_argument(
        "--colbert-index-128",
        help="An eval index built with --colbert-dim 128 (end-to-end comparison; needs "
        "--colbert-index).",
    )
    parser.add_argument(
        "--max-queries", type=int, default=10**9, help="First N judged queries (smoke runs)."
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--cache", type=Path, help="Folder to keep document embeddings between runs."
    )
    args = parser.parse_args()
    if args.colbert_index_128 and not args.colbert_index:
        parser.error("--colbert-index-128 is compared with --colbert-index: give both.")
    cluster = connect(ClusterConfig(url=args.es_url))
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "engine": f"{cluster.engine} {cluster.version}",
    }
    try:
        codecs = bench_codecs(args, cluster)
        docs, query, projection = (
            codecs.pop("_docs"),
            codecs.pop("_query"),
            codecs.pop("_projection"),
        )
        result["codecs"] = codecs
        result["maxsim"] = bench_maxsim(docs, query, projection)
        if args.colbert_index:
            result["end_to_end"] = end_to_end(args, cluster)
    finally:
        cluster.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "colbert.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "colbert.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
