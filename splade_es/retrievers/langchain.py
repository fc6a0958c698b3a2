"""A LangChain retriever over an index built by splade-es (``pip install 'splade-es[langchain]'``).

:class:`SpladeRetriever` runs :func:`~splade_es.search.pipeline.search_then_rerank` (SPLADE,
BM25 or hybrid first stage, optional ColBERT rerank, filters) and returns LangChain
``Document`` objects: the page text from the text fields, the other stored fields and every
score in ``metadata`` (see :mod:`splade_es.retrievers.documents`).

Example:
    >>> from splade_es.retrievers.langchain import SpladeRetriever  # doctest: +SKIP
    >>> retriever = SpladeRetriever.from_cluster(
    ...     "http://127.0.0.1:9200", "docs", Retrieval(k=5, mode="hybrid"), rerank=True
    ... )  # doctest: +SKIP
    >>> docs = retriever.invoke("aspirin", filters=[{"term": {"year": 2020}}])  # doctest: +SKIP

Per-call ``filters`` add to ``Retrieval.filters``; they never replace them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from splade_es.retrievers.documents import PageFields
from splade_es.search.pipeline import Retrieval
from splade_es.search.searcher import Searcher

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables.config import run_in_executor
except ImportError as error:
    raise ImportError(
        "splade_es.retrievers.langchain needs LangChain: pip install 'splade-es[langchain]' "
        f"({error})."
    ) from error

__all__ = ["SpladeRetriever"]

Filters = Sequence[Mapping[str, Any]]


class SpladeRetriever(BaseRetriever):
    """LangChain retriever: search then rerank over a splade-es index.

    Attributes:
        searcher: the index's searcher (open it with ``SearchConfig(include_embeddings=True)``
            to rerank without a second request).
        reranker: ColBERT reranker of the index (:func:`splade_es.search.rerank.open_reranker`);
            ``None``: first stage only.
        retrieval: k, first stage (``splade``, ``bm25``, ``hybrid``), rerank depth and the
            default filters (engine filter clauses).
        pages: which stored fields make ``page_content``.

    ``invoke(query, filters=[...])`` (and ``ainvoke``) adds filters for that call to
    ``retrieval.filters``, which always apply (as the LlamaIndex retriever's do): a default
    filter such as a tenant's cannot be dropped by a call. Each document's ``metadata``
    holds the other stored fields and ``id``, ``index``, ``score``, ``rank``,
    ``first_stage_score``, ``first_stage_rank``, ``colbert_score``.

    Example:
        >>> retriever = SpladeRetriever(searcher=searcher)  # doctest: +SKIP
        >>> [d.metadata["score"] for d in retriever.invoke("heart attack")]  # doctest: +SKIP
    """

    searcher: Searcher
    reranker: Reranker | None = None
    retrieval: Retrieval = DEFAULT_RETRIEVAL
    pages: PageFields = DEFAULT_PAGES

    def model_post_init(self, context: Any, /) -> None:
        """Check once that the index maps the page's text fields."""
        super().model_post_init(context)
        check_pages(self.searcher, self.pages)

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
    ) -> SpladeRetriever:
        """Connect, load the index's models and return a retriever over ``index``.

        Args:
            cluster: the URL, or a ``ClusterConfig`` (credentials, TLS).
            index: an index or alias built by splade-es.
            retrieval: k, first stage, rerank depth, default filters.
            rerank: rerank with the ColBERT model that wrote the index's embeddings.
            models: other models or a device (see :class:`~.backend.IndexModels`).
            pages: which stored fields make ``page_content``.

        Raises:
            ValueError: see :func:`~splade_es.retrievers.backend.open_parts`.
        """
        parts = open_parts(cluster, index, rerank, models)
        return cls(
            searcher=parts.searcher, reranker=parts.reranker, retrieval=retrieval, pages=pages
        )

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        filters: Filters | None = None,
    ) -> list[Document]:
        """The documents of ``query``, best first; ``filters`` apply on top of the default
        ones (``retrieval.filters``)."""
        retrieval = self.retrieval
        if filters:
            retrieval = replace(retrieval, filters=(*retrieval.filters, *filters))
        found = find_pages(self.searcher, query, retrieval, self.reranker, self.pages)
        return [Document(page_content=p.text, metadata=p.metadata, id=p.id) for p in found]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        filters: Filters | None = None,
    ) -> list[Document]:
        """The same in a worker thread (search and rerank block), so the event loop runs on."""
        documents: list[Document] = await run_in_executor(
            None,
            self._get_relevant_documents,
            query,
            run_manager=run_manager.get_sync(),
            filters=filters,
        )
        return documents
