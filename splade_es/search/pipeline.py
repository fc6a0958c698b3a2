"""Search then rerank: the one way the CLI, evaluation, the quickstart and the load benchmark run
a first stage and, optionally, ColBERT MaxSim over its top hits (``bench_colbert.py`` alone
times the two phases apart, on query vectors encoded beforehand).

Query: text -> first stage (SPLADE, BM25 or both fused) -> top ``rerank_k`` hits -> MaxSim ->
hits. The first stage runs in the engine; reranking runs here, on the embeddings stored with
each hit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.fusion import Fusion
from colbert_rerank.rerank import Reranker, RerankStats
from splade_es.search.searcher import RRF, Hit, Hits, Searcher, ShardReport
from splade_es.search.stages import QueryTokens, VectorQueries, fused_hits, sources

NO_VECTORS = VectorQueries()  # no kNN field: the dense and muvera stages refuse to run

Mode = Literal["splade", "bm25", "hybrid"]
MODES: tuple[Mode, ...] = ("splade", "bm25", "hybrid")
# Any other mode joins first stages with "|": "dense", "muvera", "splade|dense|muvera", ...
# (splade_es.search.stages).


@dataclass(frozen=True)
class Retrieval:
    """What to retrieve for a query.

    Attributes:
        k: hits returned.
        mode: the first stage: ``splade`` (exact dot product), ``bm25``, ``hybrid`` (both,
            fused client-side with ``fusion``), ``dense`` or ``muvera`` (kNN; they need
            :class:`~splade_es.search.stages.VectorQueries`), or several joined by ``|``
            (``splade|dense|muvera``), fused client-side with ``fusion``.
        fusion: how ``hybrid`` combines BM25 and SPLADE (``weight`` is SPLADE's share), and
            how a ``|`` list combines its stages (``rrf`` or ``weighted``, equal shares).
        hybrid_depth: hits taken from each ranking before fusing (``hybrid`` and ``|``).
        rerank_k: first-stage hits rescored by the reranker (when one is given); the first
            stage then retrieves ``max(k, rerank_k)`` hits.
        filters: filter clauses (they restrict, never score), e.g. ``{"term": {"year": 2020}}``.
    """

    k: int = 10
    mode: Mode | str = "splade"
    fusion: Fusion = RRF
    hybrid_depth: int = 100
    rerank_k: int = 100
    filters: Sequence[Mapping[str, Any]] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_positive_ints(self, "k", "hybrid_depth", "rerank_k")
        if self.mode not in MODES:
            sources(self.mode)  # raises for an unknown name


@dataclass(frozen=True)
class Ranking:
    """The hits of one query and what it cost.

    Attributes:
        hits: best first. After reranking, each hit carries ``first_stage_score``,
            ``first_stage_rank`` and ``colbert_score`` (``None`` for a hit that was not
            reranked); ``score`` is the final (fused) score.
        search_ms: the first stage, client side (encoding the query and the engine's answer).
        rerank: the reranker's counts and timings; ``None`` without a reranker.
        query_encode_ms: the part of ``search_ms`` spent making the SPLADE query weights
            (``splade`` mode; 0 for the others, whose encoding is not timed apart).
        shards: how many shards answered the first stage (``shards.partial``: some did not,
            and the hits come from the others only).
    """

    hits: list[Hit]
    search_ms: float
    rerank: RerankStats | None = None
    query_encode_ms: float = 0.0
    shards: ShardReport = field(default_factory=ShardReport)


def first_stage(
    searcher: Searcher,
    query: str,
    retrieval: Retrieval,
    depth: int,
    vectors: VectorQueries = NO_VECTORS,
    colbert_query: QueryTokens | None = None,
) -> tuple[Hits, float]:
    """The top ``depth`` hits of ``retrieval.mode`` for ``query``, and the milliseconds spent
    making the SPLADE query weights (``splade`` mode; 0 for the others)."""
    if retrieval.mode not in MODES:
        names = sources(retrieval.mode)
        width = max(retrieval.hybrid_depth, depth) if len(names) > 1 else depth
        hits = fused_hits(
            searcher,
            vectors,
            query,
            names,
            width,
            depth,
            retrieval.fusion,
            retrieval.filters,
            colbert_query,
        )
        return hits, 0.0
    if retrieval.mode == "splade":
        started = time.perf_counter()
        vector = searcher.encode_query(query)
        encode_ms = (time.perf_counter() - started) * 1000
        return searcher.search_vector(vector, depth, retrieval.filters), encode_ms
    if retrieval.mode == "bm25":
        return searcher.bm25(query, depth, retrieval.filters), 0.0
    hits = searcher.hybrid(
        query,
        depth,
        retrieval.fusion,
        max(retrieval.hybrid_depth, depth),
        retrieval.filters,
    )
    return hits, 0.0


def search_then_rerank(
    searcher: Searcher,
    query: str,
    retrieval: Retrieval = Retrieval(),
    reranker: Reranker | None = None,
    vectors: VectorQueries = NO_VECTORS,
) -> Ranking:
    """Run the first stage and, with a ``reranker``, rescore its top ``rerank_k`` hits.

    Args:
        searcher: the index's searcher. To rerank without a second round trip, open it with
            ``SearchConfig(include_embeddings=True)``; otherwise the reranker fetches the
            embeddings of the hits by id.
        query: the query text.
        retrieval: k, first stage, fusion, rerank depth, filters.
        reranker: e.g. :func:`splade_es.search.rerank.open_reranker`; ``None`` returns the
            first stage's top ``k``.
        vectors: the index's kNN query side (:func:`~splade_es.search.stages.
            open_vector_queries`), for the ``dense`` and ``muvera`` stages.

    Returns:
        The top ``k`` hits (reranked ones first, in final-score order) and the timings.

    Raises:
        ValueError: an empty query, a query without terms, bad filters.
        colbert_rerank.RerankError: a hit has no usable embeddings (per the reranker's
            ``on_missing`` policy).

    Example:
        >>> ranking = search_then_rerank(searcher, "heart attack", Retrieval(k=5), reranker)
        ... # doctest: +SKIP
        >>> [(hit.id, hit.first_stage_rank) for hit in ranking.hits]  # doctest: +SKIP
    """
    depth = max(retrieval.k, retrieval.rerank_k) if reranker is not None else retrieval.k
    started = time.perf_counter()
    tokens = None  # the ColBERT query, encoded once for MUVERA and MaxSim
    if reranker is not None and "muvera" in _names(retrieval.mode):
        tokens = QueryTokens(reranker.encoder, query)
    hits, encode_ms = first_stage(searcher, query, retrieval, depth, vectors, tokens)
    search_ms = (time.perf_counter() - started) * 1000
    if reranker is None:
        return Ranking(hits[: retrieval.k], search_ms, None, encode_ms, hits.shards)
    head, tail = hits[: retrieval.rerank_k], hits[retrieval.rerank_k :]
    given = tokens() if tokens is not None else None
    result = reranker.rerank(query, [hit.as_dict() for hit in head], query_embeddings=given)
    if tokens is not None:  # encoded (and timed) within the first stage
        result = replace(result, stats=replace(result.stats, encode_ms=tokens.encode_ms))
    by_id = {hit.id: hit for hit in head}
    reranked = [
        _reranked_hit(by_id[str(hit["_id"])], hit, rank)
        for rank, hit in enumerate(result.hits, start=1)
    ]
    rest = [
        replace(hit, rank=rank, first_stage_score=hit.score, first_stage_rank=hit.rank)
        for rank, hit in enumerate(tail, start=len(reranked) + 1)
    ]
    ranked = (reranked + rest)[: retrieval.k]
    return Ranking(ranked, search_ms, result.stats, encode_ms, hits.shards)


def _names(mode: str) -> tuple[str, ...]:
    return (mode,) if mode in MODES else sources(mode)


def _reranked_hit(first: Hit, reranked: Mapping[str, Any], rank: int) -> Hit:
    """``first`` with the reranker's scores, at its new ``rank``."""
    colbert = reranked.get("_colbert_score")
    return replace(
        first,
        score=float(reranked["_score"]),
        rank=rank,
        first_stage_score=first.score,
        first_stage_rank=first.rank,
        colbert_score=None if colbert is None else float(colbert),
    )
