"""The one positive-integer check every config uses: the message names the field and echoes
the value, booleans are refused, ``None`` only where a config allows it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.encoder import ColbertConfig
from colbert_rerank.fusion import Fusion
from splade_es.encoding.features import Pruning
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.search.pipeline import Retrieval


@pytest.mark.parametrize(
    ("value", "message"),
    [(0, "k=0"), (-2, "k=-2"), (True, "k=True"), (1.5, "k=1.5"), ("3", "k='3'"), (None, "k=None")],
)
def test_refuses_what_is_not_a_positive_integer(value, message):
    with pytest.raises(ValueError, match=f"^{message}: expected a positive integer\\.$"):
        check_positive_ints(SimpleNamespace(k=value), "k")


def test_optional_accepts_none_and_says_so():
    check_positive_ints(SimpleNamespace(k=None, n=3), "k", "n", optional=True)
    with pytest.raises(ValueError, match=r"^n=0: expected a positive integer or None\.$"):
        check_positive_ints(SimpleNamespace(k=None, n=0), "k", "n", optional=True)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BulkConfig(index="docs", chunk_docs=0), "chunk_docs=0"),
        (lambda: Retrieval(rerank_k=False), "rerank_k=False"),
        (lambda: Pruning(top_k=0), "top_k=0"),
        (lambda: ColbertStorage(centroids=0), "centroids=0"),
        (lambda: ColbertConfig(max_stored_tokens=0), "max_stored_tokens=0"),
        (lambda: Fusion(rrf_k=0), "rrf_k=0"),
    ],
)
def test_configs_use_it(build, message):
    with pytest.raises(ValueError, match=f"^{message}: expected a positive integer"):
        build()
