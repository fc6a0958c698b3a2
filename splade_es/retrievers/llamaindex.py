"""A LlamaIndex retriever over an index built by splade-es
(``pip install 'splade-es[llamaindex]'``).

:class:`SpladeNodeRetriever` runs :func:`~splade_es.search.pipeline.search_then_rerank`
(SPLADE, BM25 or hybrid first stage, optional ColBERT rerank) and returns
``NodeWithScore(TextNode(...), score)``: the page text from the text fields, the other stored
fields and every score in the node's ``metadata`` (scores are kept out of the text an LLM or
an embedding model sees). LlamaIndex ``MetadataFilters`` become engine filter clauses
(:func:`metadata_filter_clauses`).

Example:
    >>> from splade_es.retrievers.llamaindex import SpladeNodeRetriever  # doctest: +SKIP
    >>> retriever = SpladeNodeRetriever.from_cluster(
    ...     "http://127.0.0.1:9200", "docs", Retrieval(k=5), rerank=True
    ... )  # doctest: +SKIP
    >>> nodes = retriever.retrieve("aspirin")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from colbert_rerank.rerank import Reranker
from splade_es.cluster.connection import ClusterConfig
from splade_es.retrievers.backend import (
    DEFAULT_MODELS,
    DEFAULT_PAGES,
    DEFAULT_RETRIEVAL,
    IndexModels,
    check_pages,
    find_pages,
    open_parts,
)
from splade_es.retrievers.documents import SCORE_KEYS, Page, PageFields
from splade_es.search.pipeline import Retrieval
from splade_es.search.searcher import Searcher

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.core.vector_stores.types import (
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )
except ImportError as error:
    raise ImportError(
        "splade_es.retrievers.llamaindex needs LlamaIndex: pip install "
        f"'splade-es[llamaindex]' ({error})."
    ) from error

__all__ = ["SpladeNodeRetriever", "metadata_filter_clauses"]

_RANGES = {
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}
_SUPPORTED = "==, in, >, >=, <, <= (combined with AND or OR)"
# Scores stay in the metadata but out of the text given to an LLM or an embedding model.
_NOT_FOR_MODELS = [key for key in SCORE_KEYS if key != "id"]


def metadata_filter_clauses(
    filters: MetadataFilters, fields: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """LlamaIndex metadata filters as engine filter clauses (for ``Retrieval.filters``).

    ``==`` becomes ``term``, ``in`` ``terms``, ``>``/``>=``/``<``/``<=`` ``range``; the
    key ``id`` filters by document id (``ids``). AND gives one clause per filter, OR one
    ``bool.should``; nested ``MetadataFilters`` nest. ``==``/``in`` match exact values: on a
    ``text`` field (analysed, so a term matches no stored value) they target its ``keyword``
    subfield, given the index's ``fields``; a text field without one is refused.

    Args:
        filters: the LlamaIndex filters.
        fields: the index's field mapping (``properties``); ``None``: keys are used as
            they are (no check).

    Raises:
        ValueError: an operator or condition other than those (named, with the supported
            ones), a value of the wrong shape, a key that is a score, not a stored field, or
            ``==``/``in`` on a text field without a keyword subfield (the fix: index it as
            ``--keep-field name:keyword``).

    Example:
        >>> metadata_filter_clauses(MetadataFilters(filters=[
        ...     MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
        ...     MetadataFilter(key="topic", value=["med", "bio"], operator=FilterOperator.IN),
        ... ]))
        [{'range': {'year': {'gte': 2020}}}, {'terms': {'topic': ['med', 'bio']}}]
    """
    clauses = [_nested_clause(item, fields) for item in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return clauses
    if condition == FilterCondition.OR:
        return [{"bool": {"should": clauses, "minimum_should_match": 1}}] if clauses else []
    raise ValueError(
        f"MetadataFilters(condition={condition.value!r}) is not supported: use AND or OR "
        "(for a negation, pass an engine clause such as {'bool': {'must_not': [...]}} in "
        "Retrieval(filters=[...]))."
    )


def _nested_clause(
    item: MetadataFilter | MetadataFilters, fields: Mapping[str, Any] | None
) -> dict[str, Any]:
    if isinstance(item, MetadataFilters):
        inner = metadata_filter_clauses(item, fields)
        return inner[0] if len(inner) == 1 else {"bool": {"filter": inner}}
    return _filter_clause(item, fields)


def _exact_field(key: str, where: str, fields: Mapping[str, Any] | None) -> str:
    """The field an exact ``==``/``in`` match on ``key`` targets: ``key``, or for a
    ``text`` field its ``keyword`` subfield."""
    spec = _field_spec(fields, key) if fields is not None else None
    if spec is None or spec.get("type") != "text":
        return key
    for name, sub in (spec.get("fields") or {}).items():
        if isinstance(sub, Mapping) and sub.get("type") == "keyword":
            return f"{key}.{name}"
    raise ValueError(
        f"{where}: field {key!r} is mapped as text (analysed), so == and 'in' would match no "
        f"stored value: index it as a keyword (--keep-field {key}:keyword) or give it a "
        "keyword subfield, then filter on it."
    )


def _field_spec(fields: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """The mapping of field ``key`` (dotted: an object's property or a multi-field)."""
    spec: Any = {"properties": fields}
    for part in key.split("."):
        children = {**(spec.get("properties") or {}), **(spec.get("fields") or {})}
        spec = children.get(part)
        if not isinstance(spec, Mapping):
            return None
    found: Mapping[str, Any] = spec
    return found


def _filter_clause(item: MetadataFilter, fields: Mapping[str, Any] | None) -> dict[str, Any]:
    key, value, operator = item.key, item.value, item.operator
    where = f"MetadataFilter(key={key!r}, value={value!r:.60}, operator={operator.value!r})"
    if key in SCORE_KEYS and key != "id":
        raise ValueError(
            f"{where}: {key!r} is computed by the search, not a stored field: filter on "
            "stored fields (or 'id')."
        )
    if operator == FilterOperator.EQ:
        if value is None or isinstance(value, list):
            raise ValueError(f"{where}: == takes one value; for a list use operator 'in'.")
        if key == "id":
            return {"ids": {"values": [str(value)]}}
        return {"term": {_exact_field(key, where, fields): value}}
    if operator == FilterOperator.IN:
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: 'in' takes a non-empty list, e.g. value=['a', 'b'].")
        if key == "id":
            return {"ids": {"values": [str(v) for v in value]}}
        return {"terms": {_exact_field(key, where, fields): list(value)}}
    if operator in _RANGES:
        if value is None or isinstance(value, list) or key == "id":
            raise ValueError(f"{where}: {operator.value} takes one number, date or string.")
        return {"range": {key: {_RANGES[operator]: value}}}
    raise ValueError(
        f"{where}: operator {operator.value!r} is not supported; use one of {_SUPPORTED}, or "
        "pass engine filter clauses in Retrieval(filters=[...])."
    )


class SpladeNodeRetriever(BaseRetriever):
    """LlamaIndex retriever: search then rerank over a splade-es index.

    Args:
        searcher: the index's searcher (``SearchConfig(include_embeddings=True)`` to rerank
            without a second request).
        retrieval: k, first stage (``splade``, ``bm25``, ``hybrid``), rerank depth, and
            engine filter clauses always applied.
        reranker: ColBERT reranker of the index; ``None``: first stage only.
        pages: which stored fields make the node text.
        filters: LlamaIndex metadata filters, applied on top of ``retrieval.filters``
            (checked here against the index's mapping: an unsupported operator, or ``==``
            on a text field without a keyword subfield, fails now, not at query time).
        callback_manager: LlamaIndex callbacks.

    Raises:
        ValueError: a text field the index does not map, a stored field named like a score
            key, unsupported filters.

    Example:
        >>> retriever = SpladeNodeRetriever(searcher, Retrieval(k=3))  # doctest: +SKIP
        >>> [(n.node.node_id, n.score) for n in retriever.retrieve("aspirin")]  # doctest: +SKIP
    """

    def __init__(
        self,
        searcher: Searcher,
        retrieval: Retrieval = DEFAULT_RETRIEVAL,
        reranker: Reranker | None = None,
        pages: PageFields = DEFAULT_PAGES,
        filters: MetadataFilters | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        fields = check_pages(searcher, pages)
        clauses = metadata_filter_clauses(filters, fields) if filters is not None else []
        self.searcher, self.retrieval, self.reranker = searcher, retrieval, reranker
        self.pages, self.filters = pages, filters
        self._all_filters = (*retrieval.filters, *clauses)
        super().__init__(callback_manager=callback_manager)

    @classmethod
    def from_cluster(
        cls,
        cluster: str | ClusterConfig,
        index: str,
        retrieval: Retrieval = DEFAULT_RETRIEVAL,
        *,
        rerank: bool = False,
        models: IndexModels = DEFAULT_MODELS,
        pages: PageFields = DEFAULT_PAGES,
        filters: MetadataFilters | None = None,
    ) -> SpladeNodeRetriever:
        """Connect, load the index's models and return a retriever over ``index``
        (arguments as for :class:`SpladeNodeRetriever` and
        :func:`~splade_es.retrievers.backend.open_parts`)."""
        parts = open_parts(cluster, index, rerank, models)
        return cls(parts.searcher, retrieval, parts.reranker, pages, filters)

    def with_filters(self, filters: MetadataFilters | None) -> SpladeNodeRetriever:
        """A copy whose metadata filters are ``filters`` (``retrieval.filters`` still apply)."""
        return SpladeNodeRetriever(
            self.searcher, self.retrieval, self.reranker, self.pages, filters, self.callback_manager
        )

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        retrieval = replace(self.retrieval, filters=self._all_filters)
        found = find_pages(
            self.searcher, query_bundle.query_str, retrieval, self.reranker, self.pages
        )
        return [NodeWithScore(node=_node(page), score=page.score) for page in found]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # search and rerank block: run them in a worker thread so the event loop runs on
        return await asyncio.to_thread(self._retrieve, query_bundle)


def _node(page: Page) -> TextNode:
    return TextNode(
        id_=page.id,
        text=page.text,
        metadata=page.metadata,
        excluded_llm_metadata_keys=list(_NOT_FOR_MODELS),
        excluded_embed_metadata_keys=list(_NOT_FOR_MODELS),
    )
