"""Companion indices of a main index, one document each.

- ``<index>-colbert-codebook``: a residual codec's codebook (and an optional
  dimension-reducing projection), fitted once per index and stored here, created from the
  packaged ``mappings/codebook.json``. The main index's ``_meta.colbert_rerank.codebook_index``
  names it; readers load it from there.
- ``<index>-splade-idf``: the IDF table of inference-free queries
  (:mod:`splade_es.search.static_queries` builds and reads the document), created on first
  need and overwritten when the table is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from colbert_rerank.codebook import Codebook
from colbert_rerank.projection import Projection
from colbert_rerank.storage import (
    CODEBOOK_ID,
    META_KEY,
    codebook_document,
    codebook_from_document,
)
from splade_es.cluster.admin import get_index
from splade_es.cluster.connection import Cluster, ClusterError
from splade_es.cluster.mapping import packaged_template
from splade_es.cluster.names import check_index_name

__all__ = [
    "codebook_index_name",
    "existing_fit",
    "idf_index_body",
    "idf_index_name",
    "load_fit",
    "load_idf_document",
    "store_fit",
    "store_idf_document",
]

IDF_ID = "idf"


def codebook_index_name(index: str) -> str:
    """The companion index that holds the codebook of ``index``.

    Example:
        >>> codebook_index_name("docs")
        'docs-colbert-codebook'
    """
    return f"{index}-colbert-codebook"


def existing_fit(cluster: Cluster, index: str) -> tuple[Codebook | None, Projection | None]:
    """The codebook and projection an existing index was written with (reused on re-runs).

    Args:
        cluster: the connection.
        index: the main index (or an alias to one).

    Returns:
        ``(None, None)`` when the index does not exist or stores no fitted codec.

    Raises:
        ValueError: the index refers to a companion index that is missing.
    """
    info = get_index(cluster, index)
    if info is None:
        return None, None
    meta = info.all_meta.get(META_KEY, {})
    if not meta.get("codebook_index"):
        return None, None
    return load_fit(cluster, meta)


def load_fit(
    cluster: Cluster, meta: Mapping[str, Any]
) -> tuple[Codebook | None, Projection | None]:
    """Load the codebook and projection named by an index's ``_meta.colbert_rerank``.

    Args:
        cluster: the connection.
        meta: the ``_meta.colbert_rerank`` block; its ``codebook_index`` names the companion.

    Raises:
        ValueError: the companion index is missing (the stored embeddings cannot be decoded)
            or its name is not a valid index name.
    """
    book_index = check_index_name(meta["codebook_index"])  # read from the index's _meta
    try:
        document = cluster.request("GET", f"/{book_index}/_doc/{CODEBOOK_ID}")
    except ClusterError as error:
        if error.status == 404:
            raise ValueError(
                f"The codebook index {book_index!r} is missing: the stored embeddings cannot be "
                "decoded; re-create the index."
            ) from error
        raise
    return codebook_from_document(document["_source"], meta)


def store_fit(
    cluster: Cluster, book_index: str, codebook: Codebook | None, projection: Projection | None
) -> None:
    """Create the companion index ``book_index`` and store the codebook/projection in it.

    The index is created from the packaged ``mappings/codebook.json``. An existing, empty
    companion index (e.g. left by an interrupted run) is reused.

    Args:
        cluster: the connection.
        book_index: the companion index (``codebook_index_name(index)``).
        codebook: the residual codec's codebook, if any.
        projection: the dimension-reducing projection, if any.

    Raises:
        ValueError: ``book_index`` already holds a codebook that no index refers to.
    """
    check_index_name(book_index)
    try:
        cluster.request("PUT", f"/{book_index}", body=packaged_template("codebook"))
    except ClusterError as error:
        if error.error_type != "resource_already_exists_exception":
            raise
        existing = cluster.request("GET", f"/{book_index}/_doc/{CODEBOOK_ID}")
        if existing.get("found"):
            raise ValueError(
                f"{book_index!r} already holds a codebook that no index refers to: delete it or "
                "choose another --index."
            ) from error
    cluster.request(
        "PUT",
        f"/{book_index}/_doc/{CODEBOOK_ID}",
        body=codebook_document(codebook, projection),
        params={"refresh": "true"},
    )


def idf_index_name(index: str) -> str:
    """The companion index that holds the IDF table of ``index``.

    Example:
        >>> idf_index_name("docs")
        'docs-splade-idf'
    """
    return f"{index}-splade-idf"


def idf_index_body(index: str) -> dict[str, Any]:
    """Settings and mappings of the IDF companion of ``index``: one shard, a replica where
    a second node can hold it, nothing indexed (the table lives in ``_source``)."""
    return {
        "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
        "mappings": {
            "dynamic": False,
            "_meta": {"splade_es_idf": {"index": index}},
            "properties": {"documents": {"type": "long"}},
        },
    }


def load_idf_document(cluster: Cluster, idf_index: str) -> dict[str, Any] | None:
    """The stored IDF document of the companion ``idf_index``; ``None`` when the companion
    index or its document does not exist yet."""
    check_index_name(idf_index)
    try:
        document = cluster.request("GET", f"/{idf_index}/_doc/{IDF_ID}")
    except ClusterError as error:
        if error.status == 404:
            return None
        raise
    source: dict[str, Any] | None = document.get("_source") if document.get("found") else None
    return source


def store_idf_document(cluster: Cluster, idf_index: str, document: Mapping[str, Any]) -> None:
    """Write the IDF ``document`` to the companion ``idf_index``, creating the index first
    when it does not exist (an existing one is reused and its document replaced).

    Raises:
        ValueError: ``idf_index`` exists but was not created as an IDF companion.
    """
    check_index_name(idf_index)
    main = idf_index.removesuffix("-splade-idf")
    try:
        cluster.request("PUT", f"/{idf_index}", body=idf_index_body(main))
    except ClusterError as error:
        if error.error_type != "resource_already_exists_exception":
            raise
        _check_idf_companion(cluster, idf_index)
    cluster.request(
        "PUT", f"/{idf_index}/_doc/{IDF_ID}", body=dict(document), params={"refresh": "true"}
    )


def _check_idf_companion(cluster: Cluster, idf_index: str) -> None:
    """Refuse to write into an existing index that splade-es did not create as a companion."""
    mappings = cluster.request("GET", f"/{idf_index}/_mapping")
    meta = next(iter(mappings.values())).get("mappings", {}).get("_meta", {})
    if "splade_es_idf" not in meta:
        raise ValueError(
            f"Index {idf_index!r} exists but is not an IDF companion index (no "
            "_meta.splade_es_idf): rename or delete it, or search with query_encoder='model'."
        )
