"""Score fusion of two rankings: replace, weighted sum of normalised scores, RRF. Pure.

Used to combine a first stage with a reranker, or BM25 with SPLADE (hybrid search).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from colbert_rerank.checks import check_positive_ints

__all__ = [
    "Fusion",
    "FusionMethod",
    "fuse",
    "fuse_lists",
    "min_max",
    "ranks",
]

FusionMethod = Literal["replace", "weighted", "rrf"]


@dataclass(frozen=True)
class Fusion:
    """How to combine two scores per document.

    Attributes:
        method: ``replace`` (second score only), ``weighted`` (``(1-w)*a + w*b`` of min-max
            normalised scores), or ``rrf`` (reciprocal rank fusion, ``1/(k+rank)`` summed).
        weight: ``w`` of the second ranking for ``weighted``, in [0, 1].
        rrf_k: the ``k`` constant of RRF (60 in the original paper).
    """

    method: FusionMethod = "replace"
    weight: float = 0.5
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.method not in ("replace", "weighted", "rrf"):
            raise ValueError(f"fusion={self.method!r}: expected replace, weighted or rrf.")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"fusion weight={self.weight!r}: expected a number in [0, 1].")
        check_positive_ints(self, "rrf_k")


def min_max(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores scaled to [0, 1] (all 1.0 when they are equal)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return dict.fromkeys(scores, 1.0)
    return {key: (value - low) / (high - low) for key, value in scores.items()}


def ranks(scores: Mapping[str, float]) -> dict[str, int]:
    """1-based ranks by descending score (ties keep insertion order)."""
    ordered = sorted(scores, key=lambda key: -scores[key])
    return {key: rank for rank, key in enumerate(ordered, start=1)}


def fuse(
    first: Mapping[str, float], second: Mapping[str, float], fusion: Fusion
) -> dict[str, float]:
    """Combined score of every document in either ranking.

    A document missing from one ranking gets 0 from it (normalised score or RRF term).
    """
    if fusion.method == "replace":
        return dict(second)
    if fusion.method == "weighted":
        a, b = min_max(first), min_max(second)
        return {
            key: (1 - fusion.weight) * a.get(key, 0.0) + fusion.weight * b.get(key, 0.0)
            for key in {**first, **second}
        }
    ra, rb = ranks(first), ranks(second)
    return {
        key: (1 / (fusion.rrf_k + ra[key]) if key in ra else 0.0)
        + (1 / (fusion.rrf_k + rb[key]) if key in rb else 0.0)
        for key in {**first, **second}
    }


def fuse_lists(
    rankings: Sequence[Mapping[str, float]],
    fusion: Fusion,
    weights: Sequence[float] | None = None,
) -> dict[str, float]:
    """Combined score of every document in any of several rankings (e.g. SPLADE, dense and
    MUVERA first stages).

    ``rrf`` sums ``w_i / (rrf_k + rank_i)``; ``weighted`` sums ``w_i * min_max(score_i)``;
    a document missing from a ranking gets 0 from it. ``weights`` default to equal ones
    (``1 / len(rankings)``); ``replace`` is refused (it keeps one ranking only).

    Example:
        >>> fused = fuse_lists([{"a": 3.0, "b": 1.0}, {"b": 0.9}], Fusion("rrf"))
        >>> max(fused, key=fused.get)
        'b'
    """
    if fusion.method == "replace":
        raise ValueError("fusion='replace' keeps one ranking: use 'rrf' or 'weighted'.")
    if not rankings:
        return {}
    shares = [1.0 / len(rankings)] * len(rankings) if weights is None else list(weights)
    if len(shares) != len(rankings) or any(not 0 <= w < math.inf for w in shares):
        raise ValueError(
            f"weights={weights!r}: expected {len(rankings)} finite numbers >= 0, one per ranking."
        )
    fused: dict[str, float] = {}
    for ranking, share in zip(rankings, shares, strict=True):
        if fusion.method == "rrf":
            terms = {key: share / (fusion.rrf_k + rank) for key, rank in ranks(ranking).items()}
        else:
            terms = {key: share * value for key, value in min_max(ranking).items()}
        for key, term in terms.items():
            fused[key] = fused.get(key, 0.0) + term
    return fused
