"""Search results: hits, and the term-level explanation of one hit's SPLADE score.

Plain frozen values built by :class:`~splade_es.search.searcher.Searcher` (which re-exports
them) and passed down the query flow: hits -> rerank -> hits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Explanation", "Hit", "Hits", "ShardReport", "TermImpact"]


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


@dataclass(frozen=True)
class ShardReport:
    """How many shards answered a search (the engine's ``_shards``, and ``timed_out``).

    Attributes:
        total / successful / skipped / failed: the engine's shard counts (the engines count
            skipped shards, which could hold no match, within ``successful``).
        reasons: why shards failed, one line each (e.g. ``no shard available``).
        timed_out: the engine stopped collecting at the search timeout.
    """

    total: int = 0
    successful: int = 0
    skipped: int = 0
    failed: int = 0
    reasons: tuple[str, ...] = ()
    timed_out: bool = False

    @property
    def partial(self) -> bool:
        """Whether some shard's documents are missing from the answer (failed or timed out):
        the hits are then the best of the shards that answered, not of the whole index."""
        return self.failed > 0 or self.timed_out or self.successful < self.total

    @property
    def missing(self) -> int:
        """Shards whose documents are not in the answer: the failed ones, and those the
        engine did not search at all because no copy was assigned (not counted as failed)."""
        return self.total - self.successful  # skipped shards count as successful

    @property
    def summary(self) -> str:
        """One line for a warning, e.g. ``1 of 3 shards did not answer (no shard available)``."""
        missing = self.missing
        reasons = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        timed_out = ", timed out" if self.timed_out else ""
        return f"{missing} of {self.total} shards did not answer{reasons}{timed_out}"

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> ShardReport:
        """The report of one ``_search`` answer."""
        shards = result.get("_shards") or {}
        reasons = []
        for failure in shards.get("failures") or ():
            cause = failure.get("reason") or {}
            text = cause.get("reason") or cause.get("type") or "unknown"
            where = (
                f"shard {failure.get('shard')}" if failure.get("shard") is not None else "a shard"
            )
            reasons.append(f"{where}: {text}")
        return cls(
            total=int(shards.get("total", 0)),
            successful=int(shards.get("successful", 0)),
            skipped=int(shards.get("skipped", 0)),
            failed=int(shards.get("failed", 0)),
            reasons=tuple(dict.fromkeys(reasons)),
            timed_out=bool(result.get("timed_out", False)),
        )

    def worst(self, other: ShardReport) -> ShardReport:
        """The report of a search made of two requests (hybrid): the one missing more."""
        mine = self.total - self.successful + int(self.timed_out)
        theirs = other.total - other.successful + int(other.timed_out)
        return self if mine >= theirs else other


class Hits(list[Hit]):
    """The hits of one search, best first, with how many shards answered.

    A plain list of :class:`Hit` (indexing, slicing and comparing work as on a list), plus
    ``shards``: when ``shards.partial`` the engine answered without some shards, and the
    searcher has logged a warning saying so. ``pruned_terms`` counts the query terms the
    pruning policy left out of the first phase (0 for an exact query).
    """

    shards: ShardReport
    pruned_terms: int

    def __init__(
        self, hits: Iterable[Hit] = (), shards: ShardReport | None = None, pruned_terms: int = 0
    ) -> None:
        super().__init__(hits)
        self.shards = shards if shards is not None else ShardReport()
        self.pruned_terms = pruned_terms
