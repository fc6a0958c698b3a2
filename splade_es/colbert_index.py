"""Deprecated: the 0.1 location of :func:`open_reranker`, kept because the 0.1 README imported
it from here. Import it from ``splade_es`` instead; this module goes in 0.3."""

from __future__ import annotations

import warnings

from splade_es.search.rerank import open_reranker

__all__ = ["open_reranker"]

warnings.warn(
    "splade_es.colbert_index is deprecated: use `from splade_es import open_reranker`.",
    DeprecationWarning,
    stacklevel=2,
)
