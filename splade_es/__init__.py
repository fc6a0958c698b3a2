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

from typing import TYPE_CHECKING

from colbert_rerank.exports import lazy_exports

__version__ = "0.1.0"

# The export table, written once: these imports are what the package exports, lazily
# (see colbert_rerank.exports); the redundant aliases mark re-exports for type checkers.
if TYPE_CHECKING:
    from splade_es.cluster.admin import swap_alias as swap_alias
    from splade_es.cluster.connection import Cluster as Cluster
    from splade_es.cluster.connection import ClusterConfig as ClusterConfig
    from splade_es.cluster.connection import ClusterError as ClusterError
    from splade_es.cluster.connection import connect as connect
    from splade_es.cluster.mapping import load_template as load_template
    from splade_es.data.corpus import Document as Document
    from splade_es.data.corpus import FieldNames as FieldNames
    from splade_es.data.corpus import Limits as Limits
    from splade_es.data.corpus import from_records as from_records
    from splade_es.data.readers import read_corpus as read_corpus
    from splade_es.encoding.encoder import EncoderConfig as EncoderConfig
    from splade_es.encoding.encoder import SpladeEncoder as SpladeEncoder
    from splade_es.encoding.features import Pruning as Pruning
    from splade_es.encoding.features import SparseVector as SparseVector
    from splade_es.evaluation.evaluator import EvalConfig as EvalConfig
    from splade_es.evaluation.evaluator import evaluate as evaluate
    from splade_es.indexing.build import BuildConfig as BuildConfig
    from splade_es.indexing.build import BuildResult as BuildResult
    from splade_es.indexing.build import ColbertIndexing as ColbertIndexing
    from splade_es.indexing.build import build_index as build_index
    from splade_es.indexing.bulk import BulkConfig as BulkConfig
    from splade_es.indexing.bulk import BulkFailedError as BulkFailedError
    from splade_es.indexing.bulk import IndexReport as IndexReport
    from splade_es.indexing.bulk import index_documents as index_documents
    from splade_es.indexing.colbert_fields import ColbertStorage as ColbertStorage
    from splade_es.indexing.distributed import RayConfig as RayConfig
    from splade_es.indexing.splade_fields import SpladeFields as SpladeFields
    from splade_es.indexing.splade_fields import prepare_index as prepare_index
    from splade_es.search.pipeline import Ranking as Ranking
    from splade_es.search.pipeline import Retrieval as Retrieval
    from splade_es.search.pipeline import search_then_rerank as search_then_rerank
    from splade_es.search.rerank import open_reranker as open_reranker
    from splade_es.search.searcher import Hit as Hit
    from splade_es.search.searcher import SearchConfig as SearchConfig
    from splade_es.search.searcher import Searcher as Searcher
    from splade_es.training.data import Judgements as Judgements
    from splade_es.training.data import TrainingExample as TrainingExample
    from splade_es.training.data import build_examples as build_examples
    from splade_es.training.data import load_judgements as load_judgements
    from splade_es.training.negatives import MiningConfig as MiningConfig
    from splade_es.training.negatives import mine_negatives as mine_negatives
    from splade_es.training.splade import SpladeTrainConfig as SpladeTrainConfig
    from splade_es.training.splade import train_splade as train_splade

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__, also=["__version__"])
