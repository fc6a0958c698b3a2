"""Probe what a cluster supports for learned sparse retrieval and token-embedding storage.

Each check creates its own throw-away index (a mapping error in one must not hide another),
indexes one document, runs the query, compares the score with the exact expected value, and
deletes only the index it created: a name is deleted only after this call's own ``PUT``
created it, so an index that already had the generated name is left alone (the probe then
stops with a ValueError instead of reporting the check as unsupported). The result is what
the README's capability table shows and what ``mapping_type="auto"`` decides from.
"""

from __future__ import annotations

import base64
import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from splade_es.cluster.connection import Cluster, ClusterError
from splade_es.cluster.mapping import packaged_template
from splade_es.cluster.names import check_index_name
from splade_es.cluster.vectors import VectorField, knn_query, needs_knn_setting, vector_property

logger = logging.getLogger(__name__)

# A document with two weighted terms and a query that weights them; both weights are exact
# in rank_features' 9-bit mantissa, so the expected score is exact: 1.5*2 + 2*0.5 = 4.
_DOC_WEIGHTS = {"alpha": 1.5, "beta": 2.0}
_QUERY_WEIGHTS = {"alpha": 2.0, "beta": 0.5}
_EXPECTED = 4.0
_BLOB = "AAECAwQFBgc="  # base64 of bytes 0..7


@dataclass(frozen=True)
class Capabilities:
    """What one cluster supports; every flag was verified by a real request.

    Attributes:
        engine / version: the cluster's engine and version.
        rank_features: ``rank_features`` field, and ``rank_feature`` queries with the linear
            function summed in a ``bool`` give the exact dot product.
        rank_features_term: a ``term`` query on a ``rank_features`` field scores by weight.
        sparse_vector: ``sparse_vector`` field with ``term`` queries giving weight x boost.
        sparse_vector_query: the ``sparse_vector`` query with a ``query_vector`` gives the
            exact dot product.
        binary: ``binary`` field (no doc values) returned intact in ``_source``.
        binary_doc_values: ``binary`` field with ``doc_values`` returned by
            ``docvalue_fields``.
        dense_vector: ``dense_vector`` field accepted and stored.
        knn: approximate kNN on a vector field (Elasticsearch's indexed ``dense_vector``,
            OpenSearch's ``knn_vector`` from its k-NN plugin) finds the stored vector.

    A flag is ``None`` when its check was not run.
    """

    engine: str
    version: str
    rank_features: bool | None = None
    rank_features_term: bool | None = None
    sparse_vector: bool | None = None
    sparse_vector_query: bool | None = None
    binary: bool | None = None
    binary_doc_values: bool | None = None
    dense_vector: bool | None = None
    knn: bool | None = None


COLUMNS: Mapping[str, str] = {
    "engine": "engine",
    "version": "version",
    "rank_features": "`rank_features` + `rank_feature` (linear)",
    "rank_features_term": "`term` on `rank_features`",
    "sparse_vector": "`sparse_vector` + `term`",
    "sparse_vector_query": "`sparse_vector` query",
    "binary": "`binary`",
    "binary_doc_values": "`binary` + doc values",
    "dense_vector": "`dense_vector`",
    "knn": "kNN vector search",
}


def markdown_table(rows: list[Capabilities]) -> str:
    """The capability table as Markdown, one row per cluster."""
    names = [f.name for f in fields(Capabilities)]
    lines = [
        "| " + " | ".join(COLUMNS[n] for n in names) + " |",
        "|" + "|".join("---" for _ in names) + "|",
    ]
    for row in rows:
        cells = []
        for name in names:
            value = getattr(row, name)
            if value is None:
                cells.append("-")
            else:
                cells.append(("yes" if value else "no") if isinstance(value, bool) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _linear_bool(field: str) -> dict[str, Any]:
    return {
        "bool": {
            "should": [
                {"rank_feature": {"field": f"{field}.{term}", "linear": {}, "boost": weight}}
                for term, weight in _QUERY_WEIGHTS.items()
            ]
        }
    }


def _term_sum(field: str) -> dict[str, Any]:
    return {
        "bool": {
            "should": [
                {"term": {field: {"value": term, "boost": weight}}}
                for term, weight in _QUERY_WEIGHTS.items()
            ]
        }
    }


def _score_is_exact(cluster: Cluster, index: str, query: dict[str, Any]) -> bool:
    result = cluster.request("POST", f"/{index}/_search", body={"query": query})
    hits = result["hits"]["hits"]
    return len(hits) == 1 and math.isclose(hits[0]["_score"], _EXPECTED, rel_tol=1e-6)


def _check_rank_features(cluster: Cluster, index: str, created: set[str]) -> dict[str, bool]:
    _create(cluster, index, created, {"w": {"type": "rank_features"}}, {"w": _DOC_WEIGHTS})
    return {
        "rank_features": _score_is_exact(cluster, index, _linear_bool("w")),
        "rank_features_term": _attempt(lambda: _score_is_exact(cluster, index, _term_sum("w"))),
    }


def _check_sparse_vector(cluster: Cluster, index: str, created: set[str]) -> dict[str, bool]:
    _create(cluster, index, created, {"w": {"type": "sparse_vector"}}, {"w": _DOC_WEIGHTS})
    query = {"sparse_vector": {"field": "w", "query_vector": _QUERY_WEIGHTS}}
    return {
        "sparse_vector": _score_is_exact(cluster, index, _term_sum("w")),
        "sparse_vector_query": _attempt(lambda: _score_is_exact(cluster, index, query)),
    }


def _check_binary(cluster: Cluster, index: str, created: set[str]) -> dict[str, bool]:
    _create(cluster, index, created, {"b": {"type": "binary"}}, {"b": _BLOB})
    result = cluster.request("POST", f"/{index}/_search", body={"query": {"match_all": {}}})
    hits = result["hits"]["hits"]
    return {"binary": len(hits) == 1 and hits[0]["_source"].get("b") == _BLOB}


def _check_binary_doc_values(cluster: Cluster, index: str, created: set[str]) -> dict[str, bool]:
    _create(cluster, index, created, {"b": {"type": "binary", "doc_values": True}}, {"b": _BLOB})
    result = cluster.request(
        "POST",
        f"/{index}/_search",
        body={"query": {"match_all": {}}, "docvalue_fields": ["b"], "_source": False},
    )
    hits = result["hits"]["hits"]
    values = hits[0].get("fields", {}).get("b", []) if len(hits) == 1 else []
    # OpenSearch returns doc-value base64 without padding; compare the bytes.
    return {"binary_doc_values": len(values) == 1 and _b64(values[0]) == _b64(_BLOB)}


def _check_dense_vector(cluster: Cluster, index: str, created: set[str]) -> dict[str, bool]:
    _create(
        cluster, index, created, {"v": {"type": "dense_vector", "dims": 3}}, {"v": [0.5, 1.0, 2.0]}
    )
    count = cluster.request("GET", f"/{index}/_count")["count"]
    return {"dense_vector": count == 1}


def _check_knn(cluster: Cluster, index: str, created: set[str]) -> dict[str, bool]:
    spec = vector_property(VectorField("v", 3, "none"), cluster.engine)
    settings = {"knn": True} if needs_knn_setting(cluster.engine) else {}
    _create(cluster, index, created, {"v": spec}, {"v": [1.0, 0.0, 0.0]}, settings)
    query = knn_query("v", np.array([1.0, 0.0, 0.0]), 1, 10, cluster.engine)
    hits = cluster.request("POST", f"/{index}/_search", body={"query": query})["hits"]["hits"]
    return {"knn": len(hits) == 1}


def require_knn(cluster: Cluster) -> None:
    """Raise, saying why and what to do, when ``cluster`` has no kNN vector search (the dense
    and MUVERA fields need it): checked before anything is encoded or written."""
    if probe(cluster, checks=["knn"]).knn:
        return
    fix = (
        "install the opensearch-knn plugin of the same version (the launcher's 'node start' "
        "adds it to OpenSearch 2.19.6; its secured node, 2.19.4, has none: no plugin is "
        "published for that version)"
        if cluster.engine == "opensearch"
        else "use Elasticsearch 8.15 or later (the knn query with k)"
    )
    raise ValueError(
        f"{cluster.engine} {cluster.version} has no kNN vector search, which the dense and "
        f"MUVERA fields need: {fix}, or leave --dense/--muvera out."
    )


_CHECKS: Mapping[str, Callable[[Cluster, str, set[str]], dict[str, bool]]] = {
    "rank_features": _check_rank_features,
    "sparse_vector": _check_sparse_vector,
    "binary": _check_binary,
    "binary_doc_values": _check_binary_doc_values,
    "dense_vector": _check_dense_vector,
    "knn": _check_knn,
}
_FLAGS = {
    "rank_features": ("rank_features", "rank_features_term"),
    "sparse_vector": ("sparse_vector", "sparse_vector_query"),
    "binary": ("binary",),
    "binary_doc_values": ("binary_doc_values",),
    "dense_vector": ("dense_vector",),
    "knn": ("knn",),
}


def probe(
    cluster: Cluster,
    index_prefix: str = "splade-es-probe",
    checks: Sequence[str] | None = None,
) -> Capabilities:
    """Run the checks (all by default) against ``cluster`` and return what passed.

    Args:
        cluster: the cluster to probe.
        index_prefix: prefix of the throw-away indices.
        checks: a subset of ``rank_features``, ``sparse_vector``, ``binary``,
            ``binary_doc_values``, ``dense_vector``, ``knn``.

    Creates and deletes indices named ``<index_prefix>-<random>-<check>``; nothing else in
    the cluster is touched: an index is deleted only if this call created it.

    Raises:
        ValueError: ``index_prefix`` is not a plain index name, or an index with a generated
            name already exists (it is left as it is).
    """
    check_index_name(index_prefix)
    unknown = set(checks or ()) - set(_CHECKS)
    if unknown:
        raise ValueError(f"Unknown checks {sorted(unknown)}: expected some of {list(_CHECKS)}.")
    run = uuid.uuid4().hex[:8]
    flags: dict[str, bool] = {}
    created: set[str] = set()
    for name, check in _CHECKS.items():
        if checks is not None and name not in checks:
            continue
        index = check_index_name(f"{index_prefix}-{run}-{name.replace('_', '-')}")
        try:
            flags.update(check(cluster, index, created))
        except ClusterError as error:
            if error.status is None:
                raise
            logger.info("%s %s: %s unsupported (%s)", cluster.engine, cluster.version, name, error)
            flags.update(dict.fromkeys(_FLAGS[name], False))
        finally:
            if index in created:
                _delete_created(cluster, index)
    return Capabilities(engine=cluster.engine, version=cluster.version, **flags)


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _attempt(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except ClusterError as error:
        if error.status is None:
            raise
        return False


def _create(
    cluster: Cluster,
    index: str,
    created: set[str],
    properties: dict[str, Any],
    document: dict[str, Any],
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Create ``index`` (recorded in ``created`` once the PUT succeeded) with one document:
    the packaged ``mappings/probe.json`` plus the one field under test."""
    body = packaged_template("probe")
    body["mappings"]["properties"] = properties
    body.setdefault("settings", {}).setdefault("index", {}).update(settings or {})
    try:
        cluster.request("PUT", f"/{index}", body=body)
    except ClusterError as error:
        if error.error_type == "resource_already_exists_exception":
            raise ValueError(
                f"The probe index {index!r} already exists and was not created by this probe: "
                "it is left untouched; run the probe again (it picks a new random name) or pass "
                "another index_prefix."
            ) from error
        raise
    created.add(index)
    cluster.request("PUT", f"/{index}/_doc/1", body=document, params={"refresh": "true"})


def _delete_created(cluster: Cluster, index: str) -> None:
    """Delete ``index``, which this probe created (see :func:`probe`)."""
    try:
        cluster.request("DELETE", f"/{index}")
    except ClusterError as error:
        if error.status != 404:
            raise
