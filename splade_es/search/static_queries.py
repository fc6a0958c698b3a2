"""Inference-free SPLADE queries: the query's own tokens weighted by their IDF in the index.

Documents keep the SPLADE encoder; a query runs no model. Its weights are the tokenizer's
tokens of the query text (no special tokens, each distinct token once), each weighted by
BM25's ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`` (always ``> 0``), where ``df`` counts
the documents whose stored SPLADE vector holds ``t`` and ``N`` the documents read. Tokens no
document holds (``df = 0``) are dropped: they match nothing.

The table is computed once per index from the stored vectors and kept in the companion index
``<index>-splade-idf`` (see :mod:`splade_es.cluster.companion`), then reused until the index's
document count moves more than :data:`STALE_TOLERANCE` away from the ``N`` it was computed on.

Everything here is pure except :func:`load_or_compute`, the one function that talks to the
cluster (the stored vectors themselves are read by the Searcher, the module that reads search
results, and handed in as a callable).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from splade_es.cluster.admin import index_uuid
from splade_es.cluster.companion import idf_index_name, load_idf_document, store_idf_document
from splade_es.cluster.connection import Cluster, ClusterError
from splade_es.encoding.features import FeatureVocabulary, SparseVector

__all__ = [
    "STALE_TOLERANCE",
    "IdfTable",
    "bm25_idf",
    "document_frequencies",
    "is_stale",
    "load_or_compute",
    "table_document",
    "table_from_document",
]

logger = logging.getLogger(__name__)

STALE_TOLERANCE = 0.1  # recompute when the document count moved more than 10% from N
FORMAT = "splade-es-idf/1"  # the companion document's format tag


def bm25_idf(df: npt.ArrayLike, documents: int) -> npt.NDArray[np.float32]:
    """BM25's IDF, ``ln(1 + (N - df + 0.5) / (df + 0.5))``, computed in float64.

    Args:
        df: document frequencies, shape ``[n]``, each in ``0..documents``.
        documents: ``N``, the number of documents counted.

    Returns:
        float32 IDF, shape ``[n]``, every value ``> 0``.

    Raises:
        ValueError: a frequency is negative or above ``documents``.

    Example:
        >>> [round(float(x), 4) for x in bm25_idf([1, 10], 10)]
        [1.9924, 0.0465]
    """
    counts = np.asarray(df, dtype=np.float64)
    if counts.size and (counts.min() < 0 or counts.max() > documents):
        raise ValueError(
            f"Document frequencies must lie in 0..{documents} (N), got "
            f"{counts.min():g}..{counts.max():g}: count them over the same documents as N."
        )
    return np.log1p((documents - counts + 0.5) / (counts + 0.5)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class IdfTable:
    """Document frequencies of the SPLADE features of one index, and their IDF.

    Attributes:
        documents: ``N``, the documents read (those without a SPLADE field included).
        ids: vocabulary ids of the features held by at least one document, int64, ascending,
            shape ``[n]``.
        df: their document frequencies, int64, shape ``[n]``, each in ``1..documents``.
        idf: their IDF (:func:`bm25_idf`), float32, shape ``[n]``.

    The arrays are read-only, so one table is safely shared by every thread.
    """

    documents: int
    ids: npt.NDArray[np.int64]
    df: npt.NDArray[np.int64]
    idf: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.ids.ndim != 1 or self.ids.shape != self.df.shape:
            raise ValueError(
                f"ids {self.ids.shape} and df {self.df.shape} must be equal 1-d shapes."
            )
        if self.ids.size and (np.any(np.diff(self.ids) <= 0) or self.ids[0] < 0):
            raise ValueError("IDF table ids must be distinct, non-negative and ascending.")
        if self.df.size and self.df.min() < 1:
            raise ValueError("IDF table frequencies must be >= 1 (absent tokens are left out).")
        idf = bm25_idf(self.df, self.documents)
        for array in (self.ids, self.df, idf):
            array.flags.writeable = False
        object.__setattr__(self, "idf", idf)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def query_vector(self, token_ids: Sequence[int]) -> SparseVector:
        """The query weights of tokenised query text: each distinct token once, weighted by
        its IDF; tokens no document holds are dropped (an empty vector when none is held).

        Example:
            >>> table = IdfTable(10, np.array([3, 7]), np.array([1, 10]))
            >>> vector = table.query_vector([7, 3, 3, 99])
            >>> vector.ids.tolist(), [round(float(w), 3) for w in vector.weights]
            ([3, 7], [1.992, 0.047])
        """
        distinct = np.unique(np.asarray(token_ids, dtype=np.int64))
        at = np.searchsorted(self.ids, distinct)
        found = at < len(self)
        found[found] = self.ids[at[found]] == distinct[found]
        ids, weights = distinct[found], self.idf[at[found]]
        order = np.argsort(-weights, kind="stable")  # highest weight first, as encoders return
        return SparseVector(ids[order].astype(np.int64), weights[order].astype(np.float32))


def document_frequencies(stored: Iterable[Any], vocabulary: FeatureVocabulary) -> IdfTable:
    """Count, for each feature, the documents whose stored SPLADE field holds it.

    Args:
        stored: each document's raw SPLADE field (``{feature key: weight}``); anything else
            (``None`` for a document without the field) counts as a document with no term.
        vocabulary: the model's feature keys. Entries it cannot read (another model's keys,
            values that are not positive numbers) are not counted, as they score nothing.

    Example:
        >>> vocabulary = FeatureVocabulary(["a", "b", "c"])
        >>> table = document_frequencies([{"a": 1.0, "b": 2.0}, {"b": 0.5}, None], vocabulary)
        >>> table.documents, table.ids.tolist(), table.df.tolist()
        (3, [0, 1], [1, 2])
    """
    counts = np.zeros(len(vocabulary), dtype=np.int64)
    documents = 0
    for features in stored:
        documents += 1
        if isinstance(features, Mapping):
            vector, _ = vocabulary.split_features(features)
            counts[vector.ids] += 1  # ids are distinct within one document
    ids = np.flatnonzero(counts).astype(np.int64)
    return IdfTable(documents, ids, counts[ids])


def is_stale(table_documents: int, current_documents: int) -> bool:
    """Whether the index's document count moved more than :data:`STALE_TOLERANCE` away from
    the ``N`` a table was computed on (an empty table is stale once a document arrives).

    Example:
        >>> is_stale(1000, 1100), is_stale(1000, 1101), is_stale(0, 0)
        (False, True, False)
    """
    return abs(current_documents - table_documents) > STALE_TOLERANCE * max(table_documents, 1)


def table_document(table: IdfTable, fingerprint: Mapping[str, str]) -> dict[str, Any]:
    """The companion index's document: ``N``, the model fingerprint, and the ids and
    frequencies as base64 of little-endian int32 (IDF is recomputed from them on load)."""
    return {
        "format": FORMAT,
        "documents": table.documents,
        "terms": len(table),
        "fingerprint": dict(fingerprint),
        "ids": _encode(table.ids),
        "df": _encode(table.df),
    }


def table_from_document(document: Mapping[str, Any]) -> tuple[IdfTable, dict[str, str]]:
    """The table and model fingerprint of a :func:`table_document`.

    Raises:
        ValueError: the document was not written by :func:`table_document`.
    """
    if document.get("format") != FORMAT:
        raise ValueError(
            f"The IDF companion document has format {document.get('format')!r}, not {FORMAT!r}: "
            "it was not written by this splade-es. Delete the companion index to recompute it."
        )
    ids, df = _decode(document["ids"]), _decode(document["df"])
    return IdfTable(int(document["documents"]), ids, df), dict(document["fingerprint"])


def _encode(values: npt.NDArray[np.int64]) -> str:
    return base64.b64encode(values.astype("<i4").tobytes()).decode("ascii")


def _decode(text: str) -> npt.NDArray[np.int64]:
    return np.frombuffer(base64.b64decode(text), dtype="<i4").astype(np.int64)


def load_or_compute(
    cluster: Cluster,
    index: str,
    fingerprint: Mapping[str, str],
    compute: Callable[[], IdfTable],
) -> IdfTable:
    """The IDF table of ``index``: stored in ``<index>-splade-idf``, else computed and stored.

    A stored table is recomputed (with a warning) when it was made for another model
    fingerprint or when the index's document count moved more than :data:`STALE_TOLERANCE`
    from its ``N``. A cluster that refuses the write (403) leaves the table in memory only.

    Args:
        cluster: the connection.
        index: the concrete index (not an alias: each index has its own table).
        fingerprint: the encoder's :meth:`~splade_es.encoding.encoder.SpladeEncoder.fingerprint`.
        compute: reads every stored vector and counts them (:func:`document_frequencies`).
    """
    companion = idf_index_name(index)
    current = int(cluster.request("GET", f"/{index}/_count")["count"])
    # The index's UUID too: an index deleted and rebuilt under the same name gets a new table.
    fingerprint = {**fingerprint, "index_uuid": index_uuid(cluster, index)}
    stored = load_idf_document(cluster, companion)
    if stored is not None:
        table, made_for = table_from_document(stored)
        reason = _recompute_reason(table, made_for, fingerprint, current)
        if reason is None:
            return table
        logger.warning("Recomputing the IDF table of %s: %s.", index, reason)
    started = time.perf_counter()
    table = compute()
    logger.info(
        "IDF table of %s: %d terms over %d documents in %.1f s.",
        index,
        len(table),
        table.documents,
        time.perf_counter() - started,
    )
    try:
        store_idf_document(cluster, companion, table_document(table, fingerprint))
    except ClusterError as error:
        if error.status != 403:
            raise
        logger.warning("Cannot store the IDF table in %s (%s): kept in memory.", companion, error)
    return table


def _recompute_reason(
    table: IdfTable, made_for: Mapping[str, str], fingerprint: Mapping[str, str], current: int
) -> str | None:
    """Why a stored table cannot be reused (``None``: it can)."""
    if dict(made_for) != dict(fingerprint):
        return "it was computed for another model, or another index of that name"
    if is_stale(table.documents, current):
        return (
            f"the index holds {current} documents, more than {STALE_TOLERANCE:.0%} away from "
            f"the {table.documents} it was computed on"
        )
    return None
