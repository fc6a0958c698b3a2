"""The query forms the scale benchmark compares, as ``_search`` bodies (pure builders).

``exact`` is the package's exact dot product (a ``bool`` of one clause per term). The
package's search-time pruning policies (:class:`splade_es.search.pruning.QueryPruning`) are
built exactly as the Searcher builds them. ``es-*`` are Elasticsearch's own ``sparse_vector``
query: ``es-exact`` with ``prune: false``, ``es-prune`` with its default ``pruning_config``
(drop tokens more than 5x the field's average document frequency, and tokens under 0.4 of
the query's best weight), and ``es-prune+rescore``, the two-phase form Elastic documents
(the pruned query, then a rescore of a window of ``k`` hits by the pruned tokens only);
``es-prune+rescore=W`` rescores a window of ``W`` hits instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from splade_es.encoding.features import SparseVector
from splade_es.search.pruning import DocumentShare, QueryPruning, parse_pruning, rescore_clause
from splade_es.search.query import splade_query

Body = dict[str, Any]
Keys = Callable[[SparseVector], dict[str, float]]

PACKAGE_POLICIES = (
    "top_k=20",
    "weight=0.1",
    "weight=0.2",
    "weight=0.3",
    "df=0.3",
    "top_k=20,rescore=400",
    "weight=0.2,rescore=400",
    "weight=0.2,rescore=200",
    "weight=0.3,rescore=200",
    "weight=0.3,rescore=300",
    "weight=0.3,rescore=400",
    "weight=0.3,rescore=1000",
    "weight=0.5,rescore=1000",
    "df=0.3,rescore=400",
)
ES_POLICIES = ("es-exact", "es-prune", "es-prune+rescore", "es-prune+rescore=400")
ES_DEFAULT_PRUNING = {"tokens_freq_ratio_threshold": 5, "tokens_weight_threshold": 0.4}


@dataclass(frozen=True)
class QueryForms:
    """Builds each form's body for one index."""

    field: str
    keys: Keys
    share: DocumentShare
    k: int = 100

    def body(self, policy: str, vector: SparseVector) -> Body:
        if policy == "exact":
            return self._wrap(splade_query(self.field, self.keys(vector), "sparse_vector"))
        if policy.startswith("es-"):
            return self._es(policy, self.keys(vector))
        pruning = parse_pruning(policy)
        if not isinstance(pruning, QueryPruning):
            raise ValueError(f"Query form {policy!r} is not a fixed policy.")
        return self._package(pruning, vector)

    def _wrap(self, query: Body, rescore: Body | None = None) -> Body:
        body: Body = {"query": query, "size": self.k, "track_total_hits": False, "_source": False}
        if rescore is not None:
            body["rescore"] = rescore
        return body

    def _package(self, pruning: QueryPruning, vector: SparseVector) -> Body:
        split = pruning.split(vector, self.share)
        query = splade_query(self.field, self.keys(split.kept), "sparse_vector")
        if not split.rescores or split.rescore_window is None:
            return self._wrap(query)
        dropped = splade_query(self.field, self.keys(split.dropped), "sparse_vector")
        return self._wrap(query, rescore_clause(dropped, max(split.rescore_window, self.k)))

    def _es(self, policy: str, features: Mapping[str, float]) -> Body:
        def sparse(prune: bool, only_pruned: bool = False) -> Body:
            clause: Body = {"field": self.field, "query_vector": dict(features), "prune": prune}
            if prune:
                config = {**ES_DEFAULT_PRUNING, "only_score_pruned_tokens": only_pruned}
                clause["pruning_config"] = config
            return {"sparse_vector": clause}

        if policy == "es-exact":
            return self._wrap(sparse(False))
        if policy == "es-prune":
            return self._wrap(sparse(True))
        if policy.startswith("es-prune+rescore"):
            _, _, window = policy.partition("=")
            rescore = {
                "window_size": max(int(window or self.k), self.k),
                "query": {"rescore_query": sparse(True, only_pruned=True), "score_mode": "total"},
            }
            return self._wrap(sparse(True), rescore)
        raise ValueError(f"Unknown query form {policy!r}: expected one of {ES_POLICIES}.")


def share_of(df: npt.NDArray[np.int64], documents: int) -> DocumentShare:
    """``df / N`` lookup for vocabulary ids (what the Searcher reads from its IDF table)."""
    shares = df.astype(np.float64) / max(documents, 1)

    def share(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return np.asarray(shares[ids], dtype=np.float64)

    return share


def bm25_body(text: str, k: int = 100) -> Body:
    return {
        "query": {"match": {"text": text}},
        "size": k,
        "track_total_hits": False,
        "_source": False,
    }
