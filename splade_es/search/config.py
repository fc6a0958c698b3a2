"""How a :class:`~splade_es.search.searcher.Searcher` reads an index: a frozen config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from splade_es.search.pruning import QueryPruning

__all__ = ["QUERY_ENCODERS", "SEARCH_TYPES", "QueryEncoder", "SearchConfig", "SearchType"]

QueryEncoder = Literal["model", "idf"]
QUERY_ENCODERS: tuple[QueryEncoder, ...] = ("model", "idf")
SearchType = Literal["query_then_fetch", "dfs_query_then_fetch"]
SEARCH_TYPES: tuple[SearchType, ...] = ("query_then_fetch", "dfs_query_then_fetch")


@dataclass(frozen=True)
class SearchConfig:
    """How a Searcher reads an index.

    Attributes:
        index: index or alias to search.
        source_includes: stored fields to return (``None``: all but the SPLADE field).
        allow_model_mismatch: search even if the index was built with another model
            (experts only: scores are then meaningless unless the vocabularies agree).
        include_embeddings: return the stored ColBERT token embeddings with each hit, in its
            ``source`` under the embeddings field (for reranking; read from ``_source``, doc
            values or a stored field, as the index keeps them); left out otherwise.
        query_encoder: ``model`` runs the SPLADE model on the query; ``idf`` runs none (the
            "doc-only" mode): the query's own tokens weighted by their IDF in the index
            (see :mod:`splade_es.search.static_queries`).
        pruning: search-time query pruning (:class:`~splade_es.search.pruning.QueryPruning`);
            ``auto`` (the default) sends every term (the exact dot product) to an index of
            fewer than 100k documents and prunes a larger one with ``weight=0.3,rescore=400``
            (:func:`~splade_es.search.pruning.auto_pruning`, chosen from BENCHMARKS.md's
            "Scale" measurements); ``QueryPruning()`` is always exact.
        search_type: ``query_then_fetch`` (the engines' default) or ``dfs_query_then_fetch``,
            which first gathers term statistics from every shard. SPLADE scores do not depend
            on it (they have no IDF); BM25, and so hybrid, do: on a sharded index BM25 scores
            each shard with its own statistics unless ``dfs_query_then_fetch`` is asked for.
        allow_partial: when some shard has no copy that answers, return the other shards'
            hits (flagged: ``Hits.shards.partial`` and a logged warning); ``False`` makes the
            engine refuse, and the search raises instead.
    """

    index: str
    source_includes: Sequence[str] | None = None
    allow_model_mismatch: bool = False
    include_embeddings: bool = False
    query_encoder: QueryEncoder = "model"
    pruning: QueryPruning | Literal["auto"] = "auto"
    search_type: SearchType = "query_then_fetch"
    allow_partial: bool = True

    def __post_init__(self) -> None:
        if self.query_encoder not in QUERY_ENCODERS:
            raise ValueError(
                f"query_encoder={self.query_encoder!r}: expected 'model' (run the SPLADE model "
                "on the query) or 'idf' (the query's own tokens weighted by IDF, no model)."
            )
        if self.search_type not in SEARCH_TYPES:
            raise ValueError(
                f"search_type={self.search_type!r}: expected one of {', '.join(SEARCH_TYPES)}."
            )
        if not isinstance(self.pruning, QueryPruning) and self.pruning != "auto":
            raise TypeError(
                f"pruning={self.pruning!r}: expected 'auto' or a QueryPruning "
                "(parse_pruning('weight=0.3,rescore=400'); QueryPruning() for the exact query)."
            )
