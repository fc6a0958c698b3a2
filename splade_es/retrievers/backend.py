"""What both framework retrievers run, written once: search then rerank, hits to pages; and
the parts of an index opened from a URL (connection, encoders, searcher, reranker).

The LangChain and LlamaIndex retrievers are thin adapters over :func:`find_pages` and
:func:`open_parts`; nothing here imports a framework.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from colbert_rerank.storage import META_KEY as COLBERT_META_KEY
from splade_es.cluster.admin import require_index
from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.cluster.names import check_index_name
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.retrievers.documents import (
    Page,
    PageFields,
    check_stored_fields,
    check_text_fields,
    hit_page,
)
from splade_es.search.pipeline import Retrieval, search_then_rerank
from splade_es.search.rerank import missing_embeddings, open_reranker
from splade_es.search.searcher import SearchConfig, Searcher

if TYPE_CHECKING:
    from colbert_rerank.rerank import Reranker
    from splade_es.cluster.connection import Cluster

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_PAGES",
    "DEFAULT_RETRIEVAL",
    "IndexModels",
    "RetrieverParts",
    "check_pages",
    "find_pages",
    "open_parts",
]

logger = logging.getLogger(__name__)
# Frozen defaults, shared by the retrievers' signatures.
DEFAULT_RETRIEVAL = Retrieval()
DEFAULT_PAGES = PageFields()


@dataclass(frozen=True)
class IndexModels:
    """The models a retriever opened from a URL loads.

    Attributes:
        splade: the SPLADE model; ``None``: the one the index records (``_meta``).
        colbert: the ColBERT model (with ``rerank``); ``None``: the one that wrote the
            index's embeddings.
        device: ``cpu``, ``cuda``...; ``None`` picks the best available.
    """

    splade: str | None = None
    colbert: str | None = None
    device: str | None = None


DEFAULT_MODELS = IndexModels()


@dataclass(frozen=True)
class RetrieverParts:
    """An index opened for retrieval: its searcher and, to rerank, its reranker."""

    searcher: Searcher
    reranker: Reranker | None = None


def text_fields(searcher: Searcher, pages: PageFields) -> tuple[str, ...]:
    """The fields that make the page text: ``pages.text``, else the index's text fields."""
    return pages.text if pages.text is not None else tuple(searcher.text_fields)


def hidden_fields(searcher: Searcher) -> tuple[str, ...]:
    """Stored fields never put in the metadata: the SPLADE weights and ColBERT embeddings."""
    return tuple(f for f in (searcher.field, searcher.embeddings_field) if f)


def check_pages(searcher: Searcher, pages: PageFields) -> dict[str, Any]:
    """Refuse, at construction, text fields the index does not map and stored fields that
    would go in the metadata under a name the retriever uses for its scores (one request).

    Returns:
        The index's field mapping (``properties``), for the filters built on it.

    Raises:
        ValueError: names the unmapped text fields (see
            :func:`~splade_es.retrievers.documents.check_text_fields`) or the clashing stored
            fields (see :func:`~splade_es.retrievers.documents.check_stored_fields`).
    """
    check_index_name(searcher.concrete_index)
    answer = searcher.cluster.request("GET", f"/{searcher.concrete_index}/_mapping")
    properties: dict[str, Any] = next(iter(answer.values()))["mappings"].get("properties", {})
    fields = list(text_fields(searcher, pages))
    mapped = {n: str(properties[n].get("type", "object")) for n in fields if n in properties}
    check_text_fields(fields, mapped, searcher.config.index)
    includes = searcher.config.source_includes
    stored = [name for name in properties if includes is None or name in includes]
    left_out = {*fields, *hidden_fields(searcher)}
    check_stored_fields([n for n in stored if n not in left_out], searcher.config.index)
    return properties


def find_pages(
    searcher: Searcher,
    query: str,
    retrieval: Retrieval = DEFAULT_RETRIEVAL,
    reranker: Reranker | None = None,
    pages: PageFields = DEFAULT_PAGES,
) -> list[Page]:
    """The pages of :func:`~splade_es.search.pipeline.search_then_rerank`'s hits, best first.

    Args:
        searcher: the index's searcher.
        query: the query text.
        retrieval: k, first stage (``splade``, ``bm25``, ``hybrid``), rerank depth, filters.
        reranker: rescores the top ``retrieval.rerank_k`` hits; ``None``: the first stage.
        pages: which stored fields make the page text.

    Returns:
        One :class:`~splade_es.retrievers.documents.Page` a hit, in the ranking's order,
        with the ranking's scores.

    Raises:
        ValueError: an empty query, bad filters, a hit without text (see
            :func:`~splade_es.retrievers.documents.hit_page`).

    Example:
        >>> find_pages(searcher, "aspirin", Retrieval(k=3, mode="hybrid"))  # doctest: +SKIP
    """
    ranking = search_then_rerank(searcher, query, retrieval, reranker)
    fields, hidden = text_fields(searcher, pages), hidden_fields(searcher)
    return [hit_page(hit, fields, pages.separator, hidden) for hit in ranking.hits]


def open_parts(
    cluster: str | ClusterConfig,
    index: str,
    rerank: bool = False,
    models: IndexModels = DEFAULT_MODELS,
) -> RetrieverParts:
    """Connect to ``cluster`` and open ``index``: load its SPLADE model and, with ``rerank``,
    its ColBERT model (seconds; once per retriever).

    Args:
        cluster: the URL, or a :class:`~splade_es.cluster.connection.ClusterConfig` for
            credentials and TLS.
        index: an index (or alias) built by splade-es.
        rerank: rerank with ColBERT (the index must store ColBERT embeddings); the searcher
            then returns them with the hits, so reranking needs no second request.
        models: which models to load (by default the ones the index records).

    Raises:
        ValueError: the index does not exist, was not built by splade-es, stores no
            embeddings while ``rerank``, or ``models.colbert`` is set without ``rerank``.
        splade_es.cluster.connection.ClusterUnavailableError: nothing answers at the URL.
    """
    if models.colbert is not None and not rerank:
        raise ValueError(
            f"IndexModels(colbert={models.colbert!r}) without rerank: pass rerank=True to "
            "rerank with it, or leave colbert out."
        )
    config = ClusterConfig(url=cluster) if isinstance(cluster, str) else cluster
    connection = connect(config)
    try:
        return _open(connection, index, rerank, models)
    except BaseException:
        connection.close()
        raise


def _open(cluster: Cluster, index: str, rerank: bool, models: IndexModels) -> RetrieverParts:
    info = require_index(cluster, index)
    stored = info.all_meta.get(COLBERT_META_KEY) or {}
    if rerank and not stored:
        raise ValueError(missing_embeddings(index))
    splade = models.splade or info.meta.get("model") or EncoderConfig().model
    logger.info("loading SPLADE model %s for %s", splade, index)
    encoder = SpladeEncoder(EncoderConfig(model=splade, device=models.device))
    searcher = Searcher(cluster, encoder, SearchConfig(index=index, include_embeddings=rerank))
    if not rerank:
        return RetrieverParts(searcher)
    colbert = models.colbert or stored["model"]
    logger.info("loading ColBERT model %s for %s", colbert, index)
    colbert_encoder = ColbertEncoder(ColbertConfig(model=colbert, device=models.device))
    return RetrieverParts(searcher, open_reranker(cluster, index, colbert_encoder))
