"""Token embeddings stored next to each document: the field, its mapping, its ``_meta``.

The embeddings go into a ``binary`` field (base64 in ``_source``, not indexed, no doc values),
so they come back with every search hit and reranking needs no second round trip. A codebook
(residual codec) is stored once per index, in a companion index with one document.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from colbert_rerank import __version__
from colbert_rerank.codebook import Codebook
from colbert_rerank.codecs import Codec
from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.projection import Projection

__all__ = [
    "CODEBOOK_ID",
    "META_KEY",
    "EmbeddingFields",
    "StoredBatch",
    "TextDocument",
    "check_encoder",
    "codebook_document",
    "codebook_from_document",
    "codec_for",
    "index_meta",
    "mapping_properties",
    "mget_fetcher",
]

META_KEY = "colbert_rerank"
CODEBOOK_ID = "codebook"


class TextDocument(Protocol):
    """Anything with the text that was indexed (e.g. ``splade_es.Document``)."""

    @property
    def encoded_text(self) -> str: ...


@dataclass(frozen=True)
class StoredBatch:
    """Fields for each document of a batch and counters (the bulk pipeline's shape)."""

    fields: list[dict[str, Any]]
    counters: dict[str, int] = dataclasses.field(default_factory=dict)


class EmbeddingFields:
    """Encodes documents into ``{field: base64 blob}`` for a bulk pipeline.

    Counters: ``colbert_tokens`` (stored tokens), ``colbert_bytes`` (blob bytes),
    ``colbert_truncated`` (texts longer than the model's document length),
    ``colbert_capped_docs`` / ``colbert_capped_tokens`` (the ``max_stored_tokens`` policy).
    """

    def __init__(self, encoder: ColbertEncoder, codec: Codec, field: str = "colbert") -> None:
        if codec.input_dim != encoder.dim:
            raise ValueError(
                f"codec input dim {codec.input_dim} differs from the encoder's {encoder.dim}."
            )
        self.encoder = encoder
        self.codec = codec
        self.field = field

    def encode(self, documents: Sequence[TextDocument]) -> StoredBatch:
        """The embeddings field of each document (encoded blobs), with token counts."""
        batch = self.encoder.encode_documents([d.encoded_text for d in documents])
        fields, stored_bytes, tokens = [], 0, 0
        for vectors in batch.embeddings:
            blob = self.codec.encode(vectors)
            stored_bytes += len(blob)
            tokens += vectors.shape[0]
            fields.append({self.field: base64.b64encode(blob).decode("ascii")})
        return StoredBatch(
            fields,
            {
                "colbert_tokens": tokens,
                "colbert_bytes": stored_bytes,
                "colbert_truncated": sum(batch.truncated),
                "colbert_capped_docs": sum(1 for c in batch.capped if c),
                "colbert_capped_tokens": sum(batch.capped),
            },
        )


def mapping_properties(field: str = "colbert") -> dict[str, Any]:
    """Mapping of the embeddings field: stored in ``_source`` only, never indexed."""
    return {field: {"type": "binary", "doc_values": False}}


def index_meta(
    encoder: ColbertEncoder,
    codec: Codec,
    field: str = "colbert",
    codebook_index: str | None = None,
) -> dict[str, Any]:
    """The ``_meta.colbert_rerank`` record: model, codec, dim, codebook."""
    meta: dict[str, Any] = {
        "format": 1,
        "package_version": __version__,
        "model": encoder.config.model,
        **encoder.fingerprint(),
        "field": field,
        "codec": codec.name,
        "dim": codec.dim,
        "model_dim": codec.input_dim,
        "bits": codec.bits,
        "max_stored_tokens": encoder.config.max_stored_tokens,
        "document_length": encoder.document_length,
    }
    if codec.codebook is not None:
        meta["codebook_sha256"] = codec.codebook.sha256
    if codec.projection is not None:
        meta["projection_sha256"] = codec.projection.sha256
    if codec.codebook is not None or codec.projection is not None:
        meta["codebook_index"] = codebook_index
    return meta


def codebook_document(codebook: Codebook | None, projection: Projection | None) -> dict[str, Any]:
    """The one document of the companion index: codebook and/or projection, safetensors."""
    document: dict[str, Any] = {}
    if codebook is not None:
        document.update(
            {
                "codebook": base64.b64encode(codebook.to_bytes()).decode("ascii"),
                "sha256": codebook.sha256,
                "bits": codebook.bits,
                "centroids": int(codebook.centroids.shape[0]),
                "dim": codebook.dim,
            }
        )
    if projection is not None:
        document.update(
            {
                "projection": base64.b64encode(projection.to_bytes()).decode("ascii"),
                "projection_sha256": projection.sha256,
            }
        )
    return document


def codebook_from_document(
    source: Mapping[str, Any], meta: Mapping[str, Any]
) -> tuple[Codebook | None, Projection | None]:
    """Load the codebook and projection an index's ``_meta`` refers to, checking hashes."""
    codebook = projection = None
    try:
        if meta.get("codebook_sha256"):
            codebook = Codebook.from_bytes(base64.b64decode(source["codebook"], validate=True))
        if meta.get("projection_sha256"):
            projection = Projection.from_bytes(
                base64.b64decode(source["projection"], validate=True)
            )
    except (KeyError, ValueError) as error:
        raise ValueError(f"Codebook document is malformed ({error}).") from error
    for name, loaded, key in (
        ("Codebook", codebook, "codebook_sha256"),
        ("Projection", projection, "projection_sha256"),
    ):
        if loaded is not None and loaded.sha256 != meta.get(key):
            raise ValueError(
                f"{name} hash {loaded.sha256[:12]} differs from the index's "
                f"{str(meta.get(key))[:12]}: the companion codebook index was changed; "
                "re-create the index."
            )
    return codebook, projection


def codec_for(
    meta: Mapping[str, Any],
    codebook: Codebook | None = None,
    projection: Projection | None = None,
) -> Codec:
    """The codec an index was written with, from its ``_meta.colbert_rerank``."""
    name = meta.get("codec")
    if name == "residual" and codebook is None:
        raise ValueError("This index uses the residual codec: load its codebook first.")
    if meta.get("projection_sha256") and projection is None:
        raise ValueError("This index stores projected embeddings: load its projection first.")
    return Codec(name, int(meta["dim"]), codebook, projection)  # type: ignore[arg-type]


def check_encoder(meta: Mapping[str, Any], encoder: ColbertEncoder) -> list[str]:
    """Differences between the index's model and ``encoder`` (empty when they match)."""
    current = encoder.fingerprint()
    problems = [
        f"{key}: index has {meta.get(key)!r}, encoder has {current[key]!r}"
        for key in ("weights_sha256", "tokenizer_sha256")
        if meta.get(key) != current[key]
    ]
    model_dim = meta.get("model_dim", meta.get("dim"))
    if model_dim != encoder.dim:
        problems.append(f"dim: index has {model_dim!r}, encoder has {encoder.dim}")
    return problems


def mget_fetcher(
    client: Any, index: str, field: str = "colbert"
) -> Callable[[Sequence[str]], dict[str, str]]:
    """A fetch function for :class:`~colbert_rerank.rerank.Reranker` over an official client.

    One call serves both clients, so nothing here depends on the engine: elasticsearch-py
    (8/9) accepts ``body=`` (its ``ids`` body field) and the ``_source_includes`` alias of
    ``source_includes``, and opensearch-py takes ``body=`` and ``_source_includes`` as a query
    parameter. Neither warns.

    Args:
        client: an ``elasticsearch.Elasticsearch`` or ``opensearchpy.OpenSearch`` client.
        index: the index holding the embeddings.
        field: the embeddings field (a top-level ``_source`` field).

    Returns:
        ``fetch(ids) -> {id: base64 blob}`` for the ids found with the field.

    Example:
        >>> reranker = Reranker(encoder, codec, fetch=mget_fetcher(client, "docs"))
    """

    def fetch(ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        response = client.mget(index=index, body={"ids": list(ids)}, _source_includes=field)
        answer = getattr(response, "body", response)  # elasticsearch-py wraps the body
        return {
            doc["_id"]: doc["_source"][field]
            for doc in answer["docs"]
            if doc.get("found") and field in doc.get("_source", {})
        }

    return fetch
