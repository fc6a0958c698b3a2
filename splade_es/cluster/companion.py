"""The ColBERT codebook companion index: ``<index>-colbert-codebook``, one document.

A residual codec's codebook (and an optional dimension-reducing projection) is fitted once
per index and stored here, created from the packaged ``mappings/codebook.json``. The main
index's ``_meta.colbert_rerank.codebook_index`` names it; readers load it from there.
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

__all__ = ["codebook_index_name", "existing_fit", "load_fit", "store_fit"]


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
