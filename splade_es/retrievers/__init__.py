"""Retrievers for RAG frameworks over an index built by splade-es.

- :class:`SpladeRetriever` (:mod:`splade_es.retrievers.langchain`): a LangChain retriever
  (``pip install 'splade-es[langchain]'``).
- :class:`SpladeNodeRetriever` (:mod:`splade_es.retrievers.llamaindex`): a LlamaIndex
  retriever (``pip install 'splade-es[llamaindex]'``).
- :mod:`splade_es.retrievers.documents`: a hit's page text and metadata, framework-neutral.

Both run :func:`~splade_es.search.pipeline.search_then_rerank`: a SPLADE, BM25 or hybrid first
stage, optionally ColBERT reranking, with filters; every score lands in the metadata.

Names are imported lazily: ``import splade_es.retrievers`` loads neither framework nor torch,
and each retriever needs only its own framework.

Example:
    >>> from splade_es.retrievers import SpladeRetriever  # doctest: +SKIP
    >>> retriever = SpladeRetriever.from_cluster("http://127.0.0.1:9200", "docs")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colbert_rerank.exports import lazy_exports

# The export table (see colbert_rerank.exports): imported on first use.
if TYPE_CHECKING:
    from splade_es.retrievers.backend import IndexModels as IndexModels
    from splade_es.retrievers.documents import Page as Page
    from splade_es.retrievers.documents import PageFields as PageFields
    from splade_es.retrievers.langchain import SpladeRetriever as SpladeRetriever
    from splade_es.retrievers.llamaindex import SpladeNodeRetriever as SpladeNodeRetriever

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
