"""Retrieval metrics and parity checks. Pure functions.

Metrics come from ``ir_measures`` (trec_eval underneath), not hand code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def retrieval_metrics(qrels: Qrels, run: Run) -> dict[str, float]:
    """nDCG@10, Recall@100 and MRR@10 (RR@10), averaged over the queries of ``qrels`` that have
    a positive judgement (relevance > 0).

    A judged query missing from ``run``, or with no hits, scores 0 (trec_eval's ``-c``; BEIR,
    through pytrec_eval, would leave it out of the mean). A query with no positive judgement
    is left out (nothing to find, every system scores 0; TREC drops such topics): list them
    with :func:`without_positive` to report them.

    Raises:
        ValueError: no query has a positive judgement, or ``run`` has queries but none of them
            is in ``qrels`` (the run and the qrels do not belong together).

    Example:
        >>> retrieval_metrics({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d1": 1.0}})["mrr@10"]
        0.5
    """
    import ir_measures
    from ir_measures import RR, R, nDCG

    judged = {q: dict(d) for q, d in qrels.items() if any(v > 0 for v in d.values())}
    if not judged:
        raise ValueError(
            f"None of the {len(qrels)} queries of the qrels has a positive judgement "
            "(relevance > 0): check the qrels file and its split."
        )
    if run and not any(q in qrels for q in run):
        raise ValueError(
            f"No query of the run has relevance judgements (run ids e.g. {sorted(run)[:3]}, "
            f"qrels ids e.g. {sorted(qrels)[:3]}): the run and the qrels do not belong together."
        )
    # trec_eval drops queries without any hit; a placeholder miss scores them 0 instead.
    full_run = {q: dict(run.get(q) or {"__no_hit__": 0.0}) for q in judged}
    values = ir_measures.calc_aggregate([nDCG @ 10, R @ 100, RR @ 10], judged, full_run)
    return {
        "ndcg@10": float(values[nDCG @ 10]),
        "recall@100": float(values[R @ 100]),
        "mrr@10": float(values[RR @ 10]),
    }


def without_positive(qrels: Qrels) -> list[str]:
    """Ids of the queries whose judgements are all 0 or below, sorted: they are left out of
    :func:`retrieval_metrics`."""
    return sorted(
        q for q, judgements in qrels.items() if not any(v > 0 for v in judgements.values())
    )


def without_hits(qrels: Qrels, run: Run) -> list[str]:
    """Ids of the positively judged queries missing from ``run`` or with no hits, sorted: each
    scores 0 in :func:`retrieval_metrics`."""
    positive = set(qrels) - set(without_positive(qrels))
    return sorted(q for q in positive if not run.get(q))


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


def same_order_top_k(
    engine: Mapping[str, float], exact: Mapping[str, float], k: int = 10, rel_eps: float = 1e-5
) -> bool:
    """Whether the engine's top ``k`` is the exact top ``k`` in the same order.

    Stricter than :func:`same_top_k`: rank ``i`` of the engine must hold a document whose exact
    score is the exact ``i``-th score. Only documents tied (within ``rel_eps``) in exact score
    may swap places, since no order between them is right. ``engine`` is read in its score
    order (its own ties in insertion order, as the engine returned them).

    Example:
        >>> same_order_top_k({"a": 2.0, "b": 1.0}, {"a": 2.0, "b": 1.0})
        True
        >>> same_order_top_k({"b": 2.0, "a": 1.0}, {"a": 2.0, "b": 1.0})
        False
    """
    expected = sorted(exact.values(), reverse=True)[:k]
    ranked = [doc for doc, _ in sorted(engine.items(), key=lambda item: -item[1])[:k]]
    if len(ranked) != len(expected):
        return False
    for doc, want in zip(ranked, expected, strict=True):
        got = exact.get(doc)
        if got is None or abs(got - want) > rel_eps * max(abs(want), 1e-12):
            return False
    return True


def subset_queries(qrels: Qrels, limit: int | None) -> list[str]:
    """Judged query ids, in a stable order, at most ``limit``."""
    ids = sorted(qrels, key=lambda q: (len(q), q))
    return ids if limit is None else ids[:limit]
