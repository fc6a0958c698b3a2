"""Search-time pruning of a SPLADE query: which terms find the candidates, which only rescore.

A SPLADE query carries dozens of terms (expansion terms included), and every term is a
posting list the engine walks; on a large index the long, low-weight ones cost the most and
move the ranking the least. :class:`QueryPruning` splits an encoded query into the terms
sent as the query and the terms dropped from it, by any combination of:

* ``top_k``: keep the ``top_k`` highest-weight terms;
* ``weight_ratio``: keep the terms weighing at least ``weight_ratio`` x the query's largest;
* ``df_ratio``: drop the terms held by more than ``df_ratio`` of the index's documents
  (document frequencies from the index's IDF table,
  :mod:`splade_es.search.static_queries`);
* ``rescore_window``: the two-phase form. The pruned query finds the candidates and the
  dropped terms are added back, exactly, to the top ``rescore_window`` of each shard with the
  engine's ``rescore`` (``score_mode: total``), so those documents get their full dot product.

When the rules would drop every term, the query's largest is kept, so a query never prunes
down to nothing. Pure:
no client, no model; the searcher hands in the document frequencies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from splade_es.encoding.features import SparseVector

__all__ = [
    "AUTO_FROM_DOCUMENTS",
    "AUTO_PRUNING",
    "DocumentShare",
    "QueryPruning",
    "QuerySplit",
    "auto_pruning",
    "parse_pruning",
    "rescore_clause",
]

DocumentShare = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]]
"""Vocabulary ids -> the share of the index's documents holding each (``df / N``)."""

_KEYS = {"top_k": "top_k", "weight": "weight_ratio", "df": "df_ratio", "rescore": "rescore_window"}


@dataclass(frozen=True)
class QueryPruning:
    """A search-time pruning policy (all ``None``: the exact query, every term sent).

    Attributes:
        top_k: keep at most this many terms, highest weight first.
        weight_ratio: keep terms with ``weight >= weight_ratio * max weight`` (0 < r <= 1).
        df_ratio: drop terms held by more than this share of the documents (0 < r <= 1).
        rescore_window: two-phase: rescore the top ``rescore_window`` hits of each shard
            with the dropped terms (at least the ``k`` asked for); ``None``: dropped terms
            are not used at all.
    """

    top_k: int | None = None
    weight_ratio: float | None = None
    df_ratio: float | None = None
    rescore_window: int | None = None

    def __post_init__(self) -> None:
        for name in ("top_k", "rescore_window"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name}={value!r}: expected a positive integer or None.")
            if value is not None and value < 1:
                raise ValueError(f"{name}={value!r}: expected a positive integer or None.")
        for name in ("weight_ratio", "df_ratio"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}={value!r}: expected a number in (0, 1] or None.")
            if not (0 < value <= 1) or math.isnan(value):
                raise ValueError(f"{name}={value!r}: expected a number in (0, 1] or None.")
        if self.rescore_window is not None and not self.prunes:
            raise ValueError(
                f"rescore_window={self.rescore_window} without a pruning rule rescores "
                "nothing: add top_k, weight_ratio or df_ratio (e.g. 'weight=0.2,rescore=200')."
            )

    @property
    def prunes(self) -> bool:
        """Whether any rule drops terms."""
        return any(v is not None for v in (self.top_k, self.weight_ratio, self.df_ratio))

    @property
    def needs_document_share(self) -> bool:
        return self.df_ratio is not None

    @property
    def name(self) -> str:
        """The policy as ``parse_pruning`` reads it, e.g. ``weight=0.2,rescore=200``."""
        short = {full: key for key, full in _KEYS.items()}
        parts = [
            f"{short[full]}={getattr(self, full)!r}"
            for full in _KEYS.values()
            if getattr(self, full) is not None
        ]
        return ",".join(parts) or "none"

    def split(self, vector: SparseVector, share: DocumentShare | None = None) -> QuerySplit:
        """The terms to send and the terms dropped (both ordered by weight, highest first).

        Raises:
            ValueError: the policy has a ``df_ratio`` and no ``share`` was given.
        """
        order = np.argsort(-vector.weights, kind="stable")
        ids, weights = vector.ids[order], vector.weights[order]
        keep = np.ones(len(ids), dtype=bool)
        if self.top_k is not None:
            keep[self.top_k :] = False
        if self.weight_ratio is not None and len(ids):
            keep &= weights >= self.weight_ratio * weights[0]
        if self.df_ratio is not None:
            if share is None:
                raise ValueError(
                    "df_ratio pruning needs the index's document frequencies: search through "
                    "a Searcher (it reads the IDF table) or pass share=."
                )
            keep &= share(ids) <= self.df_ratio
        if len(ids) and not keep.any():
            keep[0] = True  # never prune a query down to nothing
        kept = SparseVector(ids[keep], weights[keep])
        dropped = SparseVector(ids[~keep], weights[~keep])
        return QuerySplit(kept, dropped, self.rescore_window)


@dataclass(frozen=True)
class QuerySplit:
    """An encoded query split by a :class:`QueryPruning`.

    Attributes:
        kept: the terms sent as the query.
        dropped: the terms left out of it.
        rescore_window: the two-phase window (``None``: the dropped terms are not used).
    """

    kept: SparseVector
    dropped: SparseVector
    rescore_window: int | None

    @property
    def rescores(self) -> bool:
        return self.rescore_window is not None and len(self.dropped) > 0


AUTO_PRUNING = QueryPruning(weight_ratio=0.3, rescore_window=400)
"""The policy ``auto`` picks for a large index. Measured (BENCHMARKS.md, "Scale") at 1M
documents: p50 0.80x the exact query's, recall@100 0.997 against it, SciFact nDCG@10
identical to exact (every top-10 document gets its full score in the rescore window). A
window of 300 was 5% faster (0.76x) at recall 0.993, too close to 0.99 to be the default; of
200, 0.72x at 0.981. Caveats of that measurement: one shard (the window is per shard, so more
shards rescore more), a synthetic corpus grown from 5,183 real documents (near-clones share
the top 100)."""

AUTO_FROM_DOCUMENTS = 100_000
"""``auto`` prunes from this many documents: at 100k the policy took 0.85x the exact
query's p50 (recall@100 0.997), at 10k 1.05x (the rescore costs more than the pruning saves)."""


def auto_pruning(documents: int) -> QueryPruning:
    """The ``auto`` policy for an index of ``documents``: exact below
    :data:`AUTO_FROM_DOCUMENTS`, :data:`AUTO_PRUNING` from there."""
    return AUTO_PRUNING if documents >= AUTO_FROM_DOCUMENTS else QueryPruning()


def rescore_clause(query: dict[str, Any], window: int) -> dict[str, Any]:
    """The ``rescore`` section that adds ``query``'s score to the top ``window`` hits of
    each shard (``total``: first-phase score + rescore score, each with weight 1)."""
    return {
        "window_size": window,
        "query": {
            "rescore_query": query,
            "query_weight": 1.0,
            "rescore_query_weight": 1.0,
            "score_mode": "total",
        },
    }


def parse_pruning(text: str) -> QueryPruning | Literal["auto"]:
    """A policy from its short form: ``auto``, ``none``, or comma-separated ``top_k=N``,
    ``weight=R``, ``df=R``, ``rescore=W`` (e.g. ``weight=0.2,rescore=200``).

    Raises:
        ValueError: an unknown key, a repeated key or a bad value (the message lists the keys).
    """
    spec = text.strip()
    if spec == "auto":
        return "auto"
    if spec in ("", "none"):
        return QueryPruning()
    values: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, raw = part.strip().partition("=")
        if not sep or key not in _KEYS:
            raise ValueError(
                f"Pruning {text!r}: {part.strip()!r} is not KEY=VALUE with KEY one of "
                f"{', '.join(_KEYS)} (e.g. 'weight=0.2,rescore=200', or 'none')."
            )
        if _KEYS[key] in values:
            raise ValueError(f"Pruning {text!r} gives {key!r} twice: give it once.")
        try:
            number: float = int(raw) if key in ("top_k", "rescore") else float(raw)
        except ValueError:
            raise ValueError(f"Pruning {text!r}: {key}={raw!r} is not a number.") from None
        values[_KEYS[key]] = number
    return QueryPruning(**values)
