"""colbert_rerank: late-interaction (MaxSim) reranking of search hits.

Stands alone (it does not import ``splade_es``): give it hits as the ``elasticsearch`` or
``opensearch-py`` client returns them, and the token embeddings stored with them.

Example:
    >>> from colbert_rerank import Codec, ColbertConfig, ColbertEncoder, Reranker
    >>> encoder = ColbertEncoder(ColbertConfig())  # doctest: +SKIP
    >>> reranker = Reranker(encoder, Codec("float16", encoder.dim))  # doctest: +SKIP
    >>> reranker.rerank("heart attack", response["hits"]["hits"]).hits  # doctest: +SKIP

Names are imported lazily, so ``import colbert_rerank`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Codebook": "colbert_rerank.codebook",
    "fit_codebook": "colbert_rerank.codebook",
    "Codec": "colbert_rerank.codecs",
    "CodecError": "colbert_rerank.codecs",
    "ColbertConfig": "colbert_rerank.encoder",
    "ColbertEncoder": "colbert_rerank.encoder",
    "Fusion": "colbert_rerank.fusion",
    "fuse": "colbert_rerank.fusion",
    "PackedDocuments": "colbert_rerank.maxsim",
    "maxsim": "colbert_rerank.maxsim",
    "RerankConfig": "colbert_rerank.rerank",
    "RerankError": "colbert_rerank.rerank",
    "RerankResult": "colbert_rerank.rerank",
    "Reranker": "colbert_rerank.rerank",
    "ColbertTrainConfig": "colbert_rerank.training",
    "train_colbert": "colbert_rerank.training",
    "Schedule": "colbert_rerank.training_support",
    "EmbeddingFields": "colbert_rerank.storage",
    "mget_fetcher": "colbert_rerank.storage",
}

__all__ = [
    "Codebook",
    "Codec",
    "CodecError",
    "ColbertConfig",
    "ColbertEncoder",
    "ColbertTrainConfig",
    "EmbeddingFields",
    "Fusion",
    "PackedDocuments",
    "RerankConfig",
    "RerankError",
    "RerankResult",
    "Reranker",
    "Schedule",
    "__version__",
    "fit_codebook",
    "fuse",
    "maxsim",
    "mget_fetcher",
    "train_colbert",
]

if TYPE_CHECKING:
    from colbert_rerank.codebook import Codebook, fit_codebook
    from colbert_rerank.codecs import Codec, CodecError
    from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
    from colbert_rerank.fusion import Fusion, fuse
    from colbert_rerank.maxsim import PackedDocuments, maxsim
    from colbert_rerank.rerank import RerankConfig, Reranker, RerankError, RerankResult
    from colbert_rerank.storage import EmbeddingFields, mget_fetcher
    from colbert_rerank.training import ColbertTrainConfig, train_colbert
    from colbert_rerank.training_support import Schedule


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'colbert_rerank' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    """Lets ``dir()`` and ``pydoc`` see the lazily imported names."""
    return sorted(set(globals()) | set(__all__))
