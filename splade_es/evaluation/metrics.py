"""Retrieval metrics and parity checks. Pure functions.

Metrics come from ``ir_measures`` (trec_eval underneath), not hand code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def retrieval_metrics(qrels: Qrels, run: Run) -> dict[str, float]:
    """nDCG@10, Recall@100 and MRR@10 (RR@10), averaged over the judged queries in ``run``.

    A judged query with no hits counts as 0 (it is added to the run empty).
    """
    import ir_measures
    from ir_measures import RR, R, nDCG

    judged = {q: dict(d) for q, d in qrels.items() if q in run}
    full_run = {q: dict(run.get(q, {})) for q in judged}
    if not judged:
        raise ValueError("No query of the run has relevance judgements.")
    # trec_eval drops queries without any hit; score them 0 explicitly instead.
    empty = [q for q, hits in full_run.items() if not hits]
    for q in empty:
        full_run[q] = {"__no_hit__": 0.0}
    values = ir_measures.calc_aggregate([nDCG @ 10, R @ 100, RR @ 10], judged, full_run)
    return {
        "ndcg@10": float(values[nDCG @ 10]),
        "recall@100": float(values[R @ 100]),
        "mrr@10": float(values[RR @ 10]),
    }


def percentiles_ms(latencies_ms: Sequence[float]) -> dict[str, float]:
    if not latencies_ms:
        return {"latency_ms_p50": 0.0, "latency_ms_p95": 0.0}
    values = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "latency_ms_p50": float(np.percentile(values, 50)),
        "latency_ms_p95": float(np.percentile(values, 95)),
    }


def same_top_k(
    engine: Mapping[str, float], exact: Mapping[str, float], k: int = 10, rel_eps: float = 1e-5
) -> bool:
    """Whether the engine's top ``k`` ids are the exact top ``k``, ties at the cut aside.

    A document tied (within ``rel_eps``) with the exact k-th score may be in or out.
    """
    exact_sorted = sorted(exact.items(), key=lambda item: -item[1])
    engine_top = {doc for doc, _ in sorted(engine.items(), key=lambda item: -item[1])[:k]}
    if len(exact_sorted) <= k:
        return engine_top == {doc for doc, _ in exact_sorted}
    cut = exact_sorted[k - 1][1]
    eps = rel_eps * max(abs(cut), 1e-12)
    certain = {doc for doc, score in exact_sorted if score > cut + eps}
    tied = {doc for doc, score in exact_sorted if abs(score - cut) <= eps}
    return certain <= engine_top <= certain | tied and len(engine_top) == k


def subset_queries(qrels: Qrels, limit: int | None) -> list[str]:
    """Judged query ids, in a stable order, at most ``limit``."""
    ids = sorted(qrels, key=lambda q: (len(q), q))
    return ids if limit is None else ids[:limit]
