"""Query bodies: SPLADE exact dot product, BM25, filters. Pure functions only.

SPLADE scoring must be the plain dot product ``sum_t q_t * d_t``. On ``rank_features`` that
is a ``bool``/``should`` of ``rank_feature`` clauses with the **linear** function and
``boost = q_t`` (the default saturation function is not SPLADE). On ``sparse_vector`` it is
a ``bool``/``should`` of ``term`` clauses with ``boost = q_t``, which score ``q_t * d_t`` in
every version that has the field (the ``sparse_vector`` query prunes tokens by default on
newer versions, which would make results inexact).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from splade_es.cluster.mapping import MappingType
from splade_es.data.corpus import has_lone_surrogate


def splade_query(
    field: str, weights: Mapping[str, float], mapping_type: MappingType
) -> dict[str, Any]:
    """The exact dot-product query for query term weights ``{feature key: weight}``.

    Raises:
        ValueError: no weights (a query must have at least one term).
    """
    if not weights:
        raise ValueError(
            "The query has no terms after encoding and pruning: use a longer query or a "
            "lower query min_weight / higher top_k."
        )
    clauses: list[dict[str, Any]] = []
    for key, weight in weights.items():
        if not weight > 0:
            raise ValueError(f"Query weight for {key!r} is {weight!r}; weights must be > 0.")
        if mapping_type == "rank_features":
            clauses.append(
                {"rank_feature": {"field": f"{field}.{key}", "linear": {}, "boost": weight}}
            )
        else:
            clauses.append({"term": {field: {"value": key, "boost": weight}}})
    return {"bool": {"should": clauses}}


def bm25_query(text: str, fields: Sequence[str]) -> dict[str, Any]:
    """BM25 over the text fields (best field wins, others add 0.5 of theirs; as BEIR's).

    Raises:
        ValueError: the text is not a string, is empty, or holds a lone surrogate (it could
            not be sent as JSON).
    """
    if not isinstance(text, str):
        raise ValueError(f"The query is {type(text).__name__} {text!r:.60}, not text.")
    if has_lone_surrogate(text):
        raise ValueError(
            "The query text has a lone surrogate: it is not valid Unicode. Decode the input "
            "with errors='replace' or drop the character."
        )
    if not text.strip():
        raise ValueError("The query text is empty: pass some words to search for.")
    return {"multi_match": {"query": text, "fields": list(fields), "tie_breaker": 0.5}}


def with_filters(query: Mapping[str, Any], filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``query`` restricted by Elasticsearch filter clauses (which do not change scores)."""
    if not filters:
        return dict(query)
    for clause in filters:
        if not isinstance(clause, Mapping) or len(clause) != 1:
            raise ValueError(
                f"Filter {clause!r} is not a query clause: pass e.g. "
                '{"term": {"year": 2020}} or {"range": {"year": {"gte": 2010}}}.'
            )
    return {"bool": {"must": [dict(query)], "filter": [dict(c) for c in filters]}}


def search_body(
    query: Mapping[str, Any], size: int, source: bool | Sequence[str] | Mapping[str, Any]
) -> dict[str, Any]:
    """A ``_search`` body for the top ``size`` hits."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"k={size!r}: expected a positive integer.")
    chosen: bool | list[str] | dict[str, Any]
    if isinstance(source, bool):
        chosen = source
    elif isinstance(source, Mapping):
        chosen = dict(source)
    else:
        # An empty include list means "everything" to the engines: send false instead.
        chosen = list(source) or False
    return {"query": dict(query), "size": size, "track_total_hits": False, "_source": chosen}
