"""Reading an app's ``_search`` request and rewriting it for the first stage. Pure.

The query text comes from the app's own query: ``match``, ``match_phrase``, ``multi_match``,
``query_string`` and ``simple_query_string``, alone or inside ``bool.must``/``bool.should``
(the readable clauses' texts, joined). A request the service cannot rerank faithfully
(no readable text, a ``sort``, ``search_after``, a scroll, ``size`` 0, ...) raises
:class:`Unhandled` with a short reason, and passes through untouched.

The first stage asks the upstream for ``max(rerank_k, from + size)`` hits from 0, keeping
everything else of the app's body (filters, ``_source``, ``track_total_hits``,
aggregations); ``from``/``size`` are applied after reranking
(:mod:`splade_es.service.responses`). A SPLADE first stage replaces the app's text clauses
and keeps every other restriction as a filter (:func:`app_filters`); a restriction it cannot
keep exactly passes the request through, so it never matches more than the app's query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from splade_es.service.embeddings import EmbeddingSource, Route, embedding_route

__all__ = [
    "UNSUPPORTED_BODY_KEYS",
    "UNSUPPORTED_PARAMS",
    "SearchPlan",
    "Unhandled",
    "app_filters",
    "plan_search",
    "query_text",
]

# Keys whose presence means the hit order is not the relevance order, or that paging is not
# from/size: the service cannot rerank those faithfully.
UNSUPPORTED_BODY_KEYS = (
    "sort",
    "search_after",
    "collapse",
    "rescore",
    "pit",
    "knn",
    "retriever",
    "rank",
    "slice",
)
UNSUPPORTED_PARAMS = ("q", "scroll", "sort", "filter_path")
TEXT_FIELDS = {"multi_match", "query_string", "simple_query_string"}
MATCH_KINDS = {"match", "match_phrase", "match_bool_prefix"}
# Text clauses a SPLADE first stage replaces; every other clause restricts the hits.
PURE_TEXT = MATCH_KINDS | {"multi_match"}
BOOL_KEYS = {"must", "filter", "should", "must_not", "boost", "_name", "minimum_should_match"}
DEFAULT_SIZE = 10


class Unhandled(ValueError):
    """The request is passed through untouched; ``reason`` says why (a short phrase, used in
    the ``X-Splade-Es`` header and as a metric label)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SearchPlan:
    """How one app ``_search`` is served.

    Attributes:
        text: the query text the reranker (and a SPLADE first stage) encodes.
        offset / size: the app's ``from`` and ``size``, applied after reranking.
        depth: hits the first stage asks for (``max(rerank_k, offset + size)``).
        body: the first-stage body (the app's, with ``size``/``from`` replaced and the
            embeddings asked for when they come with the hits).
        params: the first-stage query string pairs (the app's, less ``size``/``from``).
        route: where the embeddings come from, and what to strip from the hits.
    """

    text: str
    offset: int
    size: int
    depth: int
    body: dict[str, Any]
    params: tuple[tuple[str, str], ...]
    route: Route


def query_text(query: Any) -> str | None:
    """The text of an app's query clause, or ``None`` when the clause is not readable.

    Example:
        >>> query_text({"bool": {"must": [{"match": {"title": "heart attack"}}],
        ...                      "filter": [{"term": {"year": 2020}}]}})
        'heart attack'
        >>> query_text({"term": {"tag": "x"}}) is None
        True
    """
    if not isinstance(query, Mapping) or len(query) != 1:
        return None
    kind, clause = next(iter(query.items()))
    if kind in MATCH_KINDS and isinstance(clause, Mapping) and len(clause) == 1:
        value = next(iter(clause.values()))
        text = value.get("query") if isinstance(value, Mapping) else value
    elif kind in TEXT_FIELDS and isinstance(clause, Mapping):
        text = clause.get("query")
    elif kind == "bool" and isinstance(clause, Mapping):
        parts = [query_text(sub) for key in ("must", "should") for sub in _listed(clause.get(key))]
        text = " ".join(part for part in parts if part)
    else:
        return None
    return text.strip() if isinstance(text, str) and text.strip() else None


def app_filters(query: Any) -> list[dict[str, Any]]:
    """The app's restrictions, as filters a SPLADE first stage must keep: every clause of
    ``bool.must`` but the text ones (``match``, ``match_phrase``, ``match_bool_prefix``,
    ``multi_match``, which SPLADE replaces), every ``bool.filter``, and ``bool.must_not`` as
    one negated filter; nested ``bool`` clauses of ``must`` the same way.

    ``query_string`` and ``simple_query_string`` give the query text but are kept as
    filters too (their syntax can name fields and exclude terms).

    Raises:
        Unhandled: a restriction that a filter cannot keep exactly (a ``should`` clause
            other than a text one, ``minimum_should_match``, an unknown ``bool`` key): the
            request passes through rather than match more than the app's query does.

    Example:
        >>> app_filters({"bool": {"must": [{"match": {"t": "x"}}, {"ids": {"values": ["a"]}}],
        ...                       "filter": {"term": {"y": 1}}}})
        [{'ids': {'values': ['a']}}, {'term': {'y': 1}}]
    """
    if _pure_text(query):
        return []
    if not isinstance(query, Mapping) or len(query) != 1 or "bool" not in query:
        return [dict(query)] if isinstance(query, Mapping) else []
    clause = query["bool"]
    if not isinstance(clause, Mapping):
        raise Unhandled("bool query unreadable")
    if set(clause) - BOOL_KEYS:
        raise Unhandled("bool query key unreadable")
    if "minimum_should_match" in clause:
        raise Unhandled("bool.minimum_should_match with a splade first stage")
    for sub in _listed(clause.get("should")):
        if not _pure_text(sub) and app_filters(sub):
            raise Unhandled("bool.should restricts the hits of a splade first stage")
    found = [kept for sub in _listed(clause.get("must")) for kept in _must_filters(sub)]
    found += [dict(sub) for sub in _listed(clause.get("filter")) if isinstance(sub, Mapping)]
    negated = [dict(sub) for sub in _listed(clause.get("must_not")) if isinstance(sub, Mapping)]
    if negated:
        found.append({"bool": {"must_not": negated}})
    return found


def _must_filters(clause: Any) -> list[dict[str, Any]]:
    """The filters that keep what a ``bool.must`` clause restricts."""
    if _pure_text(clause) or not isinstance(clause, Mapping):
        return []
    if "bool" in clause and len(clause) == 1 and query_text(clause) is not None:
        return app_filters(clause)  # text and restrictions mixed: keep the restrictions
    return [dict(clause)]  # no text in it: kept whole


def _pure_text(clause: Any) -> bool:
    """Whether ``clause`` is a readable full-text clause that restricts nothing else (the
    clauses a SPLADE first stage replaces)."""
    return (
        isinstance(clause, Mapping)
        and len(clause) == 1
        and next(iter(clause)) in PURE_TEXT
        and query_text(clause) is not None
    )


def plan_search(
    body: Any,
    params: Sequence[tuple[str, str]],
    rerank_k: int,
    source: EmbeddingSource,
) -> SearchPlan:
    """The first-stage request for an app's ``_search`` body and query string.

    Args:
        body: the app's decoded JSON body (``{}`` when it sent none).
        params: the app's query string pairs, in order.
        rerank_k: hits to rerank (the index's rule).
        source: where the index keeps the ColBERT embeddings.

    Raises:
        Unhandled: the request passes through untouched (the reason names what the
            service does not rewrite).

    Example:
        >>> plan = plan_search({"query": {"match": {"text": "aspirin"}}, "from": 5, "size": 5},
        ...                    [], 100, EmbeddingSource("colbert", "doc_values"))
        >>> plan.depth, plan.body["size"], plan.body["docvalue_fields"]
        (100, 100, ['colbert'])
    """
    if not isinstance(body, Mapping):
        raise Unhandled("body is not a JSON object")
    names = [name for name, _ in params]
    for key in UNSUPPORTED_BODY_KEYS:
        if key in body:
            raise Unhandled(f"{key} in the body")
    for key in UNSUPPORTED_PARAMS:
        if key in names:
            raise Unhandled(f"{key} in the query string")
    text = query_text(body.get("query"))
    if text is None:
        raise Unhandled("query text unreadable")
    offset = _paging(body, params, "from", 0)
    size = _paging(body, params, "size", DEFAULT_SIZE)
    if size == 0:
        raise Unhandled("size 0")
    depth = max(rerank_k, offset + size)
    upstream: dict[str, Any] = {k: v for k, v in body.items() if k != "from"}
    upstream["size"] = depth
    kept = tuple((k, v) for k, v in params if k not in ("from", "size"))
    route = embedding_route(upstream, kept, source)
    return SearchPlan(text, offset, size, depth, route.apply(upstream), kept, route)


def _paging(
    body: Mapping[str, Any], params: Sequence[tuple[str, str]], key: str, default: int
) -> int:
    """``from``/``size`` of the request (the query string wins, as in the engines)."""
    values = [value for name, value in params if name == key]
    raw: Any = values[-1] if values else body.get(key, default)
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise Unhandled(f"{key} is not a non-negative integer")
    return raw


def _listed(value: Any) -> list[Any]:
    """A bool clause's occurrence as a list (the engines take one clause or a list)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
