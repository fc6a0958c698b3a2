"""Search results: hits, and the term-level explanation of one hit's SPLADE score.

Plain frozen values built by :class:`~splade_es.search.searcher.Searcher` (which re-exports
them) and passed down the query flow: hits -> rerank -> hits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Explanation", "Hit", "TermImpact"]


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: document ``_id``.
        score: the engine's score (or the fused score for hybrid search).
        rank: 1-based position.
        source: the stored fields returned (the SPLADE field is left out by default).
        index: the concrete index it came from.
        first_stage_score / first_stage_rank: the first stage's score and rank, set once
            the hit went through :func:`~splade_es.search.pipeline.search_then_rerank` with
            a reranker.
        colbert_score: its MaxSim score (``None``: not reranked).
    """

    id: str
    score: float
    rank: int
    source: Mapping[str, Any]
    index: str
    first_stage_score: float | None = None
    first_stage_rank: int | None = None
    colbert_score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The hit in the shape the official clients return (``_id``, ``_score``...), with
        ``_first_stage_score`` and ``_colbert_score`` once it was reranked."""
        out = {"_index": self.index, "_id": self.id, "_score": self.score, "_source": self.source}
        if self.first_stage_rank is not None:
            out["_first_stage_score"] = self.first_stage_score
            out["_colbert_score"] = self.colbert_score
        return out


@dataclass(frozen=True)
class TermImpact:
    """One shared term: its contribution to the score is ``query_weight * doc_weight``."""

    token: str
    query_weight: float
    doc_weight: float

    @property
    def contribution(self) -> float:
        return self.query_weight * self.doc_weight


@dataclass(frozen=True)
class Explanation:
    """Why a document scored what it did.

    Attributes:
        id: the document.
        score: sum of the contributions (what the engine computes, up to float rounding).
        impacts: shared terms, largest contribution first.
        query_expansion: query terms that are not tokens of the query text itself.
        query_terms: the number of query terms.
        foreign_terms: stored entries of the document's SPLADE field that this model did not
            write (``{raw key: raw value}``: another model or tool, a non-canonical escape,
            a value that is not a positive number). They match no query key of this model,
            so they add nothing to ``score``; they are listed, never dropped silently.
    """

    id: str
    score: float
    impacts: list[TermImpact]
    query_expansion: list[str]
    query_terms: int
    foreign_terms: dict[str, Any] = field(default_factory=dict)
