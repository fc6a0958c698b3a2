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
    "BulkConfig": "splade_es.bulk",
    "BulkFailedError": "splade_es.bulk",
    "IndexReport": "splade_es.bulk",
    "index_documents": "splade_es.bulk",
    "Cluster": "splade_es.cluster",
    "ClusterConfig": "splade_es.cluster",
    "ClusterError": "splade_es.cluster",
    "connect": "splade_es.cluster",
    "Document": "splade_es.corpus",
    "FieldNames": "splade_es.corpus",
    "Limits": "splade_es.corpus",
    "from_records": "splade_es.corpus",
    "read_corpus": "splade_es.corpus",
    "EncoderConfig": "splade_es.encoder",
    "SpladeEncoder": "splade_es.encoder",
    "EvalConfig": "splade_es.evaluation",
    "evaluate": "splade_es.evaluation",
    "Pruning": "splade_es.features",
    "SparseVector": "splade_es.features",
    "swap_alias": "splade_es.index_admin",
    "SpladeFields": "splade_es.representation",
    "prepare_index": "splade_es.representation",
    "MiningConfig": "splade_es.negatives",
    "mine_negatives": "splade_es.negatives",
    "SpladeTrainConfig": "splade_es.splade_training",
    "train_splade": "splade_es.splade_training",
    "Judgements": "splade_es.training_data",
    "TrainingExample": "splade_es.training_data",
    "build_examples": "splade_es.training_data",
    "load_judgements": "splade_es.training_data",
    "Hit": "splade_es.search",
    "SearchConfig": "splade_es.search",
    "Searcher": "splade_es.search",
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
    from splade_es.bulk import BulkConfig, BulkFailedError, IndexReport, index_documents
    from splade_es.cluster import Cluster, ClusterConfig, ClusterError, connect
    from splade_es.corpus import Document, FieldNames, Limits, from_records, read_corpus
    from splade_es.encoder import EncoderConfig, SpladeEncoder
    from splade_es.evaluation import EvalConfig, evaluate
    from splade_es.features import Pruning, SparseVector
    from splade_es.index_admin import swap_alias
    from splade_es.negatives import MiningConfig, mine_negatives
    from splade_es.representation import SpladeFields, prepare_index
    from splade_es.search import Hit, SearchConfig, Searcher
    from splade_es.splade_training import SpladeTrainConfig, train_splade
    from splade_es.training_data import Judgements, TrainingExample, build_examples, load_judgements


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'splade_es' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    """Lets ``dir()`` and ``pydoc`` see the lazily imported names."""
    return sorted(set(globals()) | set(__all__))
