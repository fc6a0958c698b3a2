"""ColBERT token embeddings in a splade-es index: codebook, mapping, and the reranker to read it.

The index gets a ``binary`` field with each document's encoded token embeddings, written by
the same bulk pipeline in the same pass as the SPLADE terms, and a ``_meta.colbert_rerank``
block (model hashes, codec, dim). The residual codec's codebook is fitted on a sample of the
corpus before indexing and stored once, in the companion index ``<index>-colbert-codebook``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from colbert_rerank.codebook import Codebook, fit_codebook
from colbert_rerank.codecs import Codec, CodecName
from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.projection import Projection, fit_projection
from colbert_rerank.rerank import RerankConfig, Reranker
from colbert_rerank.storage import (
    CODEBOOK_ID,
    META_KEY,
    EmbeddingFields,
    check_encoder,
    codebook_document,
    codebook_from_document,
    codec_for,
    index_meta,
    mapping_properties,
    mget_fetcher,
)
from splade_es.cluster.admin import check_index_name, get_index
from splade_es.cluster.connection import Cluster, ClusterError
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
    """

    codec: CodecName = "residual"
    bits: int = 2
    sample_documents: int = 256
    centroids: int | None = None
    field: str = "colbert"
    seed: int = 0
    dim: int | None = None

    def __post_init__(self) -> None:
        if self.codec not in ("residual", "int8", "float16"):
            raise ValueError(f"codec={self.codec!r}: expected residual, int8 or float16.")
        if self.bits not in (1, 2, 4, 8):
            raise ValueError(f"bits={self.bits!r}: expected 1, 2, 4 or 8.")
        if self.sample_documents < 1:
            raise ValueError(f"sample_documents={self.sample_documents!r}: expected >= 1.")
        if self.dim is not None and self.dim < 1:
            raise ValueError(f"dim={self.dim!r}: expected a positive integer or None.")

    @property
    def fitted(self) -> bool:
        """Whether a sample must be encoded first (residual codebook or projection)."""
        return self.codec == "residual" or self.dim is not None


def codebook_index_name(index: str) -> str:
    return f"{index}-colbert-codebook"


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
) -> tuple[EmbeddingFields, dict[str, Any], dict[str, Any]]:
    """Fit (or reuse) the codebook and return the field encoder, mapping properties and meta.

    A residual codebook is stored in ``<index>-colbert-codebook`` before any document is
    written; if the index already exists with a codebook, that codebook is reused so that a
    re-run keeps the same encoding.
    """
    check_index_name(index)
    book_index = codebook_index_name(index)
    codebook, projection = _existing_fit(cluster, index)
    if storage.fitted and codebook is None and projection is None:
        if not sample:
            raise ValueError("No valid document to fit the ColBERT codebook/projection on.")
        vectors = encoder.encode_documents([d.encoded_text for d in sample]).embeddings
        stacked = np.concatenate([v for v in vectors if v.shape[0]], axis=0)
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
            _store_fit(cluster, book_index, codebook, projection)
    dim = projection.output_dim if projection is not None else encoder.dim
    codec = Codec(storage.codec, dim, codebook, projection)
    fields = EmbeddingFields(encoder, codec, storage.field)
    fitted = codebook is not None or projection is not None
    meta = index_meta(encoder, codec, storage.field, book_index if fitted else None)
    return fields, mapping_properties(storage.field), {META_KEY: meta}


def open_reranker(
    cluster: Cluster,
    index: str,
    encoder: ColbertEncoder,
    config: RerankConfig | None = None,
    allow_model_mismatch: bool = False,
) -> Reranker:
    """A reranker for ``index``: its codec and codebook, checked against ``encoder``.

    Raises:
        ValueError: the index has no stored embeddings, or another model wrote them.
    """
    info = get_index(cluster, index)
    if info is None:
        raise ValueError(f"Index {index!r} does not exist.")
    meta = info.all_meta.get(META_KEY)
    if not meta:
        raise ValueError(
            f"Index {index!r} has no stored ColBERT embeddings (_meta.{META_KEY}): index it with "
            "'splade-es index --colbert'."
        )
    problems = check_encoder(meta, encoder)
    if problems and not allow_model_mismatch:
        raise ValueError(
            f"Index {index!r} stores embeddings of model {meta.get('model')!r}, not "
            f"{encoder.config.model!r} ({'; '.join(problems)}): rerank with the model that "
            "built the index."
        )
    codebook = projection = None
    if meta.get("codebook_index"):
        codebook, projection = _load_fit(cluster, meta)
    chosen = config or RerankConfig(field=meta["field"])
    fetch = mget_fetcher(cluster.client, info.name, meta["field"])
    return Reranker(encoder, codec_for(meta, codebook, projection), chosen, fetch)


def _existing_fit(cluster: Cluster, index: str) -> tuple[Codebook | None, Projection | None]:
    """The codebook/projection an existing index was written with (reused on re-runs)."""
    info = get_index(cluster, index)
    if info is None:
        return None, None
    meta = info.all_meta.get(META_KEY, {})
    if not meta.get("codebook_index"):
        return None, None
    return _load_fit(cluster, meta)


def _load_fit(
    cluster: Cluster, meta: Mapping[str, Any]
) -> tuple[Codebook | None, Projection | None]:
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


def _store_fit(
    cluster: Cluster, book_index: str, codebook: Codebook | None, projection: Projection | None
) -> None:
    check_index_name(book_index)
    try:
        cluster.request(
            "PUT",
            f"/{book_index}",
            body={
                "settings": {"index": {"number_of_shards": 1}},
                "mappings": {
                    "dynamic": False,
                    "properties": {
                        "codebook": {"type": "binary", "doc_values": False},
                        "projection": {"type": "binary", "doc_values": False},
                    },
                },
            },
        )
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
