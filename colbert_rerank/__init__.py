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

from typing import TYPE_CHECKING

from colbert_rerank.exports import lazy_exports

__version__ = "0.1.0"

# The export table, written once: these imports are what the package exports, lazily
# (see colbert_rerank.exports); the redundant aliases mark re-exports for type checkers.
if TYPE_CHECKING:
    from colbert_rerank.codebook import Codebook as Codebook
    from colbert_rerank.codebook import fit_codebook as fit_codebook
    from colbert_rerank.codecs import Codec as Codec
    from colbert_rerank.codecs import CodecError as CodecError
    from colbert_rerank.encoder import ColbertConfig as ColbertConfig
    from colbert_rerank.encoder import ColbertEncoder as ColbertEncoder
    from colbert_rerank.fusion import Fusion as Fusion
    from colbert_rerank.fusion import fuse as fuse
    from colbert_rerank.maxsim import PackedDocuments as PackedDocuments
    from colbert_rerank.maxsim import maxsim as maxsim
    from colbert_rerank.pooling import pool_tokens as pool_tokens
    from colbert_rerank.pooling import pooled_labels as pooled_labels
    from colbert_rerank.rerank import RerankConfig as RerankConfig
    from colbert_rerank.rerank import Reranker as Reranker
    from colbert_rerank.rerank import RerankError as RerankError
    from colbert_rerank.rerank import RerankResult as RerankResult
    from colbert_rerank.storage import EmbeddingFields as EmbeddingFields
    from colbert_rerank.storage import mget_fetcher as mget_fetcher
    from colbert_rerank.training import ColbertTrainConfig as ColbertTrainConfig
    from colbert_rerank.training import train_colbert as train_colbert
    from colbert_rerank.training_support import Schedule as Schedule

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__, also=["__version__"])
