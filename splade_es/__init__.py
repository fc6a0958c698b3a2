"""splade-es: SPLADE learned sparse retrieval in Elasticsearch and OpenSearch.

Documents are encoded with a SPLADE model on the client, stored as ``rank_features`` (or
``sparse_vector``), and retrieved with an exact sparse dot product through the ordinary
inverted index. ColBERT reranking lives in the sibling package ``colbert_rerank``.

Example:
    >>> from splade_es import ClusterConfig, EncoderConfig, SearchConfig, Searcher
    >>> from splade_es import SpladeEncoder, connect
    >>> cluster = connect(ClusterConfig(url="http://127.0.0.1:9200"))  # doctest: +SKIP
    >>> encoder = SpladeEncoder(EncoderConfig(model="splade-tiny"))  # doctest: +SKIP
    >>> searcher = Searcher(cluster, encoder, SearchConfig(index="docs"))  # doctest: +SKIP
    >>> searcher.search("aspirin and heart attacks", k=5)  # doctest: +SKIP

Names are imported lazily, so ``import splade_es`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BulkConfig": "splade_es.indexing.bulk",
    "BulkFailedError": "splade_es.indexing.bulk",
    "IndexReport": "splade_es.indexing.bulk",
    "index_documents": "splade_es.indexing.bulk",
    "Cluster": "splade_es.cluster.connection",
    "ClusterConfig": "splade_es.cluster.connection",
    "ClusterError": "splade_es.cluster.connection",
    "connect": "splade_es.cluster.connection",
    "Document": "splade_es.data.corpus",
    "FieldNames": "splade_es.data.corpus",
    "Limits": "splade_es.data.corpus",
    "from_records": "splade_es.data.corpus",
    "read_corpus": "splade_es.data.corpus",
    "EncoderConfig": "splade_es.encoding.encoder",
    "SpladeEncoder": "splade_es.encoding.encoder",
    "EvalConfig": "splade_es.evaluation.evaluator",
    "evaluate": "splade_es.evaluation.evaluator",
    "Pruning": "splade_es.encoding.features",
    "SparseVector": "splade_es.encoding.features",
    "swap_alias": "splade_es.cluster.admin",
    "SpladeFields": "splade_es.indexing.splade_fields",
    "prepare_index": "splade_es.indexing.splade_fields",
    "MiningConfig": "splade_es.training.negatives",
    "mine_negatives": "splade_es.training.negatives",
    "SpladeTrainConfig": "splade_es.training.splade",
    "train_splade": "splade_es.training.splade",
    "Judgements": "splade_es.training.data",
    "TrainingExample": "splade_es.training.data",
    "build_examples": "splade_es.training.data",
    "load_judgements": "splade_es.training.data",
    "Hit": "splade_es.search.searcher",
    "SearchConfig": "splade_es.search.searcher",
    "Searcher": "splade_es.search.searcher",
}

__all__ = [
    "BulkConfig",
    "BulkFailedError",
    "Cluster",
    "ClusterConfig",
    "ClusterError",
    "Document",
    "EncoderConfig",
    "EvalConfig",
    "FieldNames",
    "Hit",
    "IndexReport",
    "Judgements",
    "Limits",
    "MiningConfig",
    "Pruning",
    "SearchConfig",
    "Searcher",
    "SparseVector",
    "SpladeEncoder",
    "SpladeFields",
    "SpladeTrainConfig",
    "TrainingExample",
    "__version__",
    "build_examples",
    "connect",
    "evaluate",
    "from_records",
    "index_documents",
    "load_judgements",
    "mine_negatives",
    "prepare_index",
    "read_corpus",
    "swap_alias",
    "train_splade",
]

if TYPE_CHECKING:
    from splade_es.cluster.admin import swap_alias
    from splade_es.cluster.connection import Cluster, ClusterConfig, ClusterError, connect
    from splade_es.data.corpus import Document, FieldNames, Limits, from_records, read_corpus
    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
    from splade_es.encoding.features import Pruning, SparseVector
    from splade_es.evaluation.evaluator import EvalConfig, evaluate
    from splade_es.indexing.bulk import BulkConfig, BulkFailedError, IndexReport, index_documents
    from splade_es.indexing.splade_fields import SpladeFields, prepare_index
    from splade_es.search.searcher import Hit, SearchConfig, Searcher
    from splade_es.training.data import Judgements, TrainingExample, build_examples, load_judgements
    from splade_es.training.negatives import MiningConfig, mine_negatives
    from splade_es.training.splade import SpladeTrainConfig, train_splade


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'splade_es' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    """Lets ``dir()`` and ``pydoc`` see the lazily imported names."""
    return sorted(set(globals()) | set(__all__))
