"""The answers the service writes, in the engines' own shapes. Pure.

A reranked ``_search`` answer is the upstream's answer (``took``, ``_shards``, ``hits.total``,
aggregations, ...) with its hits reordered, each reranked hit carrying ``_first_stage_score``
and ``_colbert_score``, then cut to the app's ``from``/``size``. A fail-open answer is the
first stage's, cut the same way. Both carry the best ``_score`` of the hits ranked (not
the app query's, whose scores are on another scale). Errors the service raises itself (413,
429, 502, 503) have the engines' error body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from splade_es.service.queries import SearchPlan

__all__ = ["error_body", "first_stage_answer", "max_score", "reranked_answer"]


def reranked_answer(
    answer: Mapping[str, Any],
    reranked: Sequence[Mapping[str, Any]],
    plan: SearchPlan,
    service_ms: float,
) -> dict[str, Any]:
    """The app's answer: the first stage's, its head reordered by the reranker.

    Args:
        answer: the first-stage answer (``hits.hits`` in first-stage order).
        reranked: the reranker's hits for the head of ``hits.hits`` (``_id``, ``_score``,
            ``_first_stage_score``, ``_colbert_score``), best first.
        plan: the request's plan (``from``/``size``, what to strip).
        service_ms: time the service added, in milliseconds (added to ``took``).

    Raises:
        ValueError: ``reranked`` names a hit that is not in the head of the answer.

    Example:
        >>> from splade_es.service.embeddings import EmbeddingSource
        >>> from splade_es.service.queries import plan_search
        >>> plan = plan_search({"query": {"match": {"t": "x"}}, "size": 1}, [], 2,
        ...                    EmbeddingSource("colbert", "source"))
        >>> answer = {"took": 3, "hits": {"max_score": 2.0, "hits": [
        ...     {"_id": "a", "_score": 2.0}, {"_id": "b", "_score": 1.0}]}}
        >>> order = [{"_id": "b", "_score": 0.9, "_first_stage_score": 1.0, "_colbert_score": 0.9},
        ...          {"_id": "a", "_score": 0.5, "_first_stage_score": 2.0, "_colbert_score": 0.5}]
        >>> reranked_answer(answer, order, plan, 2.4)["hits"]["hits"][0]["_id"]
        'b'
    """
    hits = list(answer.get("hits", {}).get("hits", []))
    head = {str(hit["_id"]): hit for hit in hits[: len(reranked)]}
    ordered = []
    for scored in reranked:
        original = head.get(str(scored.get("_id")))
        if original is None:
            raise ValueError(
                f"Reranked hit {scored.get('_id')!r} is not among the first "
                f"{len(reranked)} first-stage hits: rerank exactly the head of the answer."
            )
        hit = dict(original)
        hit["_score"] = scored["_score"]
        hit["_first_stage_score"] = scored.get("_first_stage_score")
        hit["_colbert_score"] = scored.get("_colbert_score")
        ordered.append(hit)
    ordered += hits[len(reranked) :]
    out = _with_hits(answer, ordered, plan)
    out["took"] = int(answer.get("took", 0)) + round(service_ms)
    return out


def first_stage_answer(answer: Mapping[str, Any], plan: SearchPlan) -> dict[str, Any]:
    """The first-stage answer as the app asked for it (fail open): its ``from``/``size``
    applied, and the embeddings the service asked for taken out of the hits.

    Example:
        >>> from splade_es.service.embeddings import EmbeddingSource
        >>> from splade_es.service.queries import plan_search
        >>> plan = plan_search({"query": {"match": {"t": "x"}}, "from": 1, "size": 1}, [], 5,
        ...                    EmbeddingSource("colbert", "source"))
        >>> answer = {"hits": {"hits": [{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]}}
        >>> first_stage_answer(answer, plan)["hits"]["hits"]
        [{'_id': 'b'}]
    """
    return _with_hits(answer, list(answer.get("hits", {}).get("hits", [])), plan)


def error_body(status: int, error_type: str, reason: str) -> dict[str, Any]:
    """An error answer in the engines' shape.

    Example:
        >>> error_body(429, "es_rejected_execution_exception", "too many requests")["status"]
        429
    """
    cause = {"type": error_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def max_score(hits: Sequence[Mapping[str, Any]]) -> float | None:
    """The largest ``_score`` of ``hits`` (``None`` when none has one).

    Example:
        >>> max_score([{"_score": 0.2}, {"_score": 3}, {"_score": None}]), max_score([])
        (3.0, None)
    """
    scores = [float(h["_score"]) for h in hits if isinstance(h.get("_score"), int | float)]
    return max(scores) if scores else None


def _with_hits(
    answer: Mapping[str, Any], ordered: Sequence[Mapping[str, Any]], plan: SearchPlan
) -> dict[str, Any]:
    """``answer`` holding the page ``ordered[from:from+size]``, stripped (a new dict), its
    ``max_score`` the best of ``ordered`` (as the engines give the best overall, whatever
    ``from``; ``None`` when there is none): a reranked head, RRF scores or SPLADE scores are
    not on the scale of the app query's ``max_score``."""
    page = ordered[plan.offset : plan.offset + plan.size]
    out = dict(answer)
    out["hits"] = dict(answer.get("hits", {}))
    out["hits"]["hits"] = [plan.route.strip(hit) for hit in page]
    out["hits"]["max_score"] = max_score(ordered)
    return out
