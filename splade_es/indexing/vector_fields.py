"""Dense and MUVERA vectors as fields of the bulk pipeline, written in the same pass as SPLADE.

* ``dense``: one sentence embedding per document (:class:`~splade_es.encoding.dense.
  DenseEncoder`, mean-pooled MiniLM by default).
* ``muvera``: the MUVERA fixed-dimensional encoding of the ColBERT token embeddings the index
  already computes for reranking (:mod:`colbert_rerank.muvera`): the token embeddings are
  computed once per batch and give both the stored ColBERT field and the encoding.

Both go into kNN vector fields (:mod:`splade_es.cluster.vectors`), described in the index's
``_meta.splade_es_vectors`` so that a search encodes its query the same way or is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from colbert_rerank.muvera import DEFAULT_MUVERA, MuveraConfig, MuveraEncoder
from colbert_rerank.storage import EmbeddingFields
from splade_es.cluster.mapping import VECTORS_META_KEY
from splade_es.cluster.vectors import Quantization, VectorField, vector_property
from splade_es.data.corpus import Document
from splade_es.encoding.dense import DenseEncoder
from splade_es.indexing.queue import DocumentEncoder, FieldBatch

__all__ = [
    "ColbertAndMuveraFields",
    "DenseFields",
    "DenseIndexing",
    "MuveraIndexing",
    "add_vector_fields",
    "check_vector_fields",
    "vector_fields_meta",
]


@dataclass(frozen=True)
class DenseIndexing:
    """Store a dense sentence embedding with each document (the ``dense`` first stage).

    Attributes:
        encoder: the sentence-embedding model.
        field: the vector field.
        quantization: how the kNN graph stores the vectors (:mod:`splade_es.cluster.vectors`).
    """

    encoder: DenseEncoder
    field: str = "dense"
    quantization: Quantization = "int8"

    def vector_field(self) -> VectorField:
        return VectorField(self.field, self.encoder.dim, self.quantization)


@dataclass(frozen=True)
class MuveraIndexing:
    """Store the MUVERA encoding of each document's ColBERT token embeddings (the ``muvera``
    first stage); needs ColBERT indexing.

    Attributes:
        config: the encoding's parameters (:data:`colbert_rerank.muvera.DEFAULT_MUVERA`).
        field: the vector field.
        quantization: how the kNN graph stores the vectors.
    """

    config: MuveraConfig = field(default_factory=lambda: DEFAULT_MUVERA)
    field: str = "muvera"
    quantization: Quantization = "int8"


class DenseFields:
    """Encodes documents into ``{field: [floats]}``. Counter: ``dense_vectors``."""

    def __init__(self, dense: DenseIndexing) -> None:
        self.encoder = dense.encoder
        self.field = dense.field

    def encode(self, documents: Sequence[Document]) -> FieldBatch:
        vectors = self.encoder.encode_documents([d.encoded_text for d in documents])
        fields = [{self.field: _floats(row)} for row in vectors]
        return FieldBatch(fields, {"dense_vectors": len(fields)})


class ColbertAndMuveraFields:
    """The ColBERT field and the MUVERA field of each document, from one run of the ColBERT
    model. Counters: the ColBERT field's, ``muvera_vectors``, and ``muvera_empty`` (documents
    without a token, stored as a zero vector: it scores 0 for every kNN query)."""

    def __init__(self, embeddings: EmbeddingFields, muvera: MuveraEncoder, field: str) -> None:
        if muvera.token_dim != embeddings.encoder.dim:
            raise ValueError(
                f"The MUVERA encoding takes {muvera.token_dim}-dim token embeddings but the "
                f"ColBERT model makes {embeddings.encoder.dim}: build it for that model."
            )
        self.embeddings = embeddings
        self.muvera = muvera
        self.field = field

    def encode(self, documents: Sequence[Document]) -> FieldBatch:
        batch = self.embeddings.encoder.encode_documents([d.encoded_text for d in documents])
        stored = self.embeddings.store(batch)
        encodings = self.muvera.encode_documents(batch.embeddings)
        fields = [
            {**colbert, self.field: _floats(row)}
            for colbert, row in zip(stored.fields, encodings, strict=True)
        ]
        counters = dict(stored.counters)
        counters["muvera_vectors"] = len(fields)
        counters["muvera_empty"] = sum(1 for e in batch.embeddings if e.shape[0] == 0)
        return FieldBatch(fields, counters)


def check_vector_fields(
    engine: str,
    fields: tuple[MuveraIndexing | None, DenseIndexing | None],
    token_dim: int | None,
    taken: Sequence[str],
) -> None:
    """Refuse, before any model runs or codebook is stored, vector fields the run could not
    write: MUVERA without ColBERT (``token_dim`` ``None``), a dimension or quantisation the
    engine lacks, a name already used by another field (``taken``) or by both."""
    muvera, dense = fields
    specs = []
    if muvera is not None:
        if token_dim is None:
            raise ValueError(
                "The MUVERA field encodes ColBERT token embeddings: index ColBERT too."
            )
        dims = muvera.config.dimension(token_dim)
        specs.append(VectorField(muvera.field, dims, muvera.quantization))
    if dense is not None:
        specs.append(dense.vector_field())
    names = [spec.name for spec in specs]
    for spec in specs:
        spec.check_engine(engine)
        if spec.name in taken or names.count(spec.name) > 1:
            raise ValueError(
                f"Vector field {spec.name!r} has the name of another field of the index: name "
                "the dense or MUVERA field otherwise (DenseIndexing.field / MuveraIndexing.field)."
            )


def add_vector_fields(
    engine: str,
    fields: tuple[MuveraIndexing | None, DenseIndexing | None],
    embeddings: EmbeddingFields | None,
    encoders: list[DocumentEncoder],
    mapping: tuple[dict[str, Any], dict[str, Any]],
) -> tuple[list[DocumentEncoder], dict[str, Any]]:
    """``encoders`` with the dense and MUVERA field encoders added (the MUVERA one replaces
    ``embeddings``, the ColBERT one: it writes both fields from one model run), and their
    mappings and ``_meta`` block added to ``mapping`` (properties, meta).

    Returns:
        The encoders to run, and the vector fields' mappings (empty without vector fields).

    Raises:
        ValueError: MUVERA without ColBERT embeddings, a vector field named like another
            field, a field the engine cannot index.
    """
    muvera, dense = fields
    if muvera is not None and embeddings is None:
        raise ValueError("The MUVERA field encodes ColBERT token embeddings: index ColBERT too.")
    properties, meta = mapping
    added: list[DocumentEncoder] = []
    with_muvera = None
    if muvera is not None and embeddings is not None:
        encoder = MuveraEncoder(muvera.config, embeddings.encoder.dim)
        with_muvera = (muvera, encoder, embeddings.encoder.config.model)
        added.append(ColbertAndMuveraFields(embeddings, encoder, muvera.field))
    if dense is not None:
        added.append(DenseFields(dense))
    if not added:
        return encoders, {}
    vector_properties, vector_meta = vector_fields_meta(engine, dense, with_muvera)
    clash = sorted(set(vector_properties) & set(properties))
    if clash:
        raise ValueError(
            f"Vector field {clash[0]!r} has the name of another field of the index: name the "
            "dense or MUVERA field otherwise (DenseIndexing.field / MuveraIndexing.field)."
        )
    properties.update(vector_properties)
    meta[VECTORS_META_KEY] = vector_meta
    if with_muvera is not None:  # it writes the ColBERT field too
        encoders = [e for e in encoders if e is not embeddings]
    return encoders + added, vector_properties


def vector_fields_meta(
    engine: str,
    dense: DenseIndexing | None,
    muvera: tuple[MuveraIndexing, MuveraEncoder, str] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mapping properties and the ``_meta.splade_es_vectors`` block of the vector fields.

    Args:
        engine: ``elasticsearch`` or ``opensearch``.
        dense: the dense field, if any.
        muvera: the MUVERA field, its encoder and the ColBERT model it encodes, if any.

    Raises:
        ValueError: a field the engine cannot index (too many dimensions, a quantisation it
            lacks), or both fields with one name.
    """
    properties: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    if dense is not None:
        spec = dense.vector_field()
        properties[spec.name] = vector_property(spec, engine)
        meta["dense"] = _field_meta(spec, dense.encoder.fingerprint())
    if muvera is not None:
        settings, encoder, colbert_model = muvera
        spec = VectorField(settings.field, encoder.dimension, settings.quantization)
        if spec.name in properties:
            raise ValueError(
                f"The dense and MUVERA fields are both named {spec.name!r}: rename one."
            )
        properties[spec.name] = vector_property(spec, engine)
        meta["muvera"] = _field_meta(
            spec, {**encoder.fingerprint(), "colbert_model": colbert_model}
        )
    return properties, meta


def _field_meta(spec: VectorField, model: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "field": spec.name,
        "dims": spec.dims,
        "quantization": spec.quantization,
        "model": dict(model),
    }


def _floats(row: np.ndarray) -> list[float]:
    """A vector as JSON numbers (float32 precision: the engines store float32)."""
    values: list[float] = np.asarray(row, dtype=np.float32).tolist()
    return values
