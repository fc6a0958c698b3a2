"""ColBERT token embeddings as a field of the bulk pipeline: the codec fitted, the mapping.

The index gets a ``binary`` field with each document's encoded token embeddings, written by
the same bulk pipeline in the same pass as the SPLADE terms, and a ``_meta.colbert_rerank``
block (model hashes, codec, dim). The residual codec's codebook is fitted on a sample of the
corpus before indexing and stored once, in the companion index ``<index>-colbert-codebook``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.codebook import fit_codebook
from colbert_rerank.codecs import Codec, CodecName
from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.pooling import pool_tokens
from colbert_rerank.progress import progress_bar
from colbert_rerank.projection import fit_projection
from colbert_rerank.storage import (
    META_KEY,
    EmbeddingFields,
    StoredForm,
    check_form,
    index_meta,
    mapping_properties,
    stored_form,
    stored_pool_factor,
)
from splade_es.cluster.admin import get_index
from splade_es.cluster.companion import codebook_index_name, existing_fit, store_fit
from splade_es.cluster.connection import Cluster
from splade_es.cluster.names import check_index_name
from splade_es.data.corpus import Document, Rejected

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColbertStorage:
    """How token embeddings are stored.

    Attributes:
        codec: ``residual`` (ColBERTv2 centroids + residual bits), ``int8`` or ``float16``.
        bits: residual bits per dimension (1 or 2).
        sample_documents: documents whose embeddings fit the codebook.
        centroids: codebook size (``None``: ColBERTv2's rule for the sample size).
        field: the binary field.
        seed: codebook fitting seed.
        dim: reduce embeddings to this many dimensions before storing them (a projection
            fitted on the same sample); ``None`` stores the model's dimension.
        pool_factor: merge each document's similar tokens into ``ceil(tokens / factor)``
            stored rows (hierarchical clustering); 1 stores every token. The codebook and
            projection are fitted on pooled samples, as stored. 2 by default: it halves the
            stored bytes with no measurable loss on SciFact (BENCHMARKS.md, "ColBERT
            storage").
        form: where the engine keeps them: ``doc_values`` (binary doc values, left out of
            ``_source``: a search returns them without parsing the stored document),
            ``stored`` (a stored field, likewise) or ``source`` (inside ``_source``, as
            before 0.2: kept by ``_reindex``, but every hit costs a parse of the whole
            document).
    """

    codec: CodecName = "residual"
    bits: int = 2
    sample_documents: int = 256
    centroids: int | None = None
    field: str = "colbert"
    seed: int = 0
    dim: int | None = None
    pool_factor: int = 2
    form: StoredForm = "doc_values"

    def __post_init__(self) -> None:
        check_form(self.form)
        if self.codec not in ("residual", "int8", "float16"):
            raise ValueError(f"codec={self.codec!r}: expected residual, int8 or float16.")
        if self.bits not in (1, 2, 4, 8):
            raise ValueError(f"bits={self.bits!r}: expected 1, 2, 4 or 8.")
        check_positive_ints(self, "sample_documents", "pool_factor")
        check_positive_ints(self, "dim", "centroids", optional=True)

    @property
    def needs_fit(self) -> bool:
        """Whether a sample must be encoded first (residual codebook or projection)."""
        return self.codec == "residual" or self.dim is not None


def adopt_existing(cluster: Cluster, index: str, storage: ColbertStorage) -> ColbertStorage:
    """``storage`` with the form and pool factor an existing ``index`` was written with, where
    ``storage`` has the defaults and the index others: re-running or resuming an index built
    before these defaults (``_source``, every token) continues it instead of being refused. A
    value set to something else than the default still has to match the index."""
    info = get_index(cluster, index)
    meta = info.all_meta.get(META_KEY) if info is not None else None
    if not meta:
        return storage
    default = ColbertStorage()
    changes: dict[str, Any] = {}
    if storage.form == default.form and stored_form(meta) != storage.form:
        changes["form"] = stored_form(meta)
    if (
        storage.pool_factor == default.pool_factor
        and stored_pool_factor(meta) != default.pool_factor
    ):
        changes["pool_factor"] = stored_pool_factor(meta)
    if changes:
        logger.info(
            "Index %s stores its ColBERT embeddings with %s: continuing so.", index, changes
        )
    return replace(storage, **changes)


def peek(
    items: Iterable[Document | Rejected], count: int
) -> tuple[list[Document], Iterator[Document | Rejected]]:
    """The first ``count`` valid documents, and an iterator that still yields everything."""
    iterator = iter(items)
    head: list[Document | Rejected] = []
    documents: list[Document] = []
    for item in iterator:
        head.append(item)
        if isinstance(item, Document):
            documents.append(item)
            if len(documents) >= count:
                break
    return documents, itertools.chain(head, iterator)


def prepare_embeddings(
    cluster: Cluster,
    index: str,
    encoder: ColbertEncoder,
    storage: ColbertStorage,
    sample: list[Document],
    progress: bool = False,
) -> tuple[EmbeddingFields, dict[str, Any], dict[str, Any]]:
    """Fit (or reuse) the codebook and return the field encoder, mapping properties and meta.

    A residual codebook is stored in ``<index>-colbert-codebook`` before any document is
    written; if the index already exists with a codebook, that codebook is reused so that a
    re-run keeps the same encoding. ``progress`` shows a bar while the sample is encoded
    (the slow part: tens of seconds on CPU).
    """
    check_index_name(index)
    book_index = codebook_index_name(index)
    codebook, projection = existing_fit(cluster, index)
    if storage.needs_fit and codebook is None and projection is None:
        if not sample:
            raise ValueError("No valid document to fit the ColBERT codebook/projection on.")
        stacked = _sample_embeddings(encoder, sample, storage.pool_factor, progress)
        if storage.dim is not None and storage.dim < encoder.dim:
            projection = fit_projection(stacked, storage.dim)
            stacked = projection.apply(stacked)
        if storage.codec == "residual":
            codebook = fit_codebook(
                stacked, bits=storage.bits, centroids=storage.centroids, seed=storage.seed
            )
            logger.info(
                "Fitted a %d-centroid %d-bit codebook on %d token embeddings",
                codebook.centroids.shape[0],
                codebook.bits,
                stacked.shape[0],
            )
        if codebook is not None or projection is not None:
            store_fit(cluster, book_index, codebook, projection)
    dim = projection.output_dim if projection is not None else encoder.dim
    codec = Codec(storage.codec, dim, codebook, projection)
    fields = EmbeddingFields(encoder, codec, storage.field, storage.pool_factor)
    fitted = codebook is not None or projection is not None
    meta = index_meta(
        encoder,
        codec,
        storage.field,
        book_index if fitted else None,
        storage.pool_factor,
        storage.form,
    )
    return fields, mapping_properties(storage.field, storage.form), {META_KEY: meta}


def _sample_embeddings(
    encoder: ColbertEncoder, sample: list[Document], pool_factor: int, progress: bool
) -> np.ndarray:
    """The token embeddings of ``sample``, pooled as they will be stored, stacked
    ``[tokens, dim]``, encoded batch by batch under a bar that says what is happening."""
    step = encoder.config.batch_size
    parts: list[np.ndarray] = []
    with progress_bar(
        total=len(sample), unit="doc", desc="fitting the ColBERT codebook", enabled=progress
    ) as bar:
        for start in range(0, len(sample), step):
            batch = sample[start : start + step]
            vectors = encoder.encode_documents([d.encoded_text for d in batch]).embeddings
            parts.extend(pool_tokens(v, pool_factor)[0] for v in vectors if v.shape[0])
            bar.update(len(batch))
    return np.concatenate(parts, axis=0)
