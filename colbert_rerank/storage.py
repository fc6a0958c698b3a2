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
from typing import Any, Literal, Protocol

from colbert_rerank import __version__
from colbert_rerank.codebook import Codebook
from colbert_rerank.codecs import Codec
from colbert_rerank.encoder import ColbertEncoder, DocumentEmbeddings
from colbert_rerank.hits import hit_value
from colbert_rerank.pooling import check_pool_factor, pool_tokens
from colbert_rerank.projection import Projection

__all__ = [
    "CODEBOOK_ID",
    "FORMS",
    "META_KEY",
    "EmbeddingFields",
    "StoredBatch",
    "StoredForm",
    "TextDocument",
    "check_encoder",
    "check_form",
    "codebook_document",
    "codebook_from_document",
    "codec_for",
    "fetch_by_id",
    "fetch_clause",
    "index_meta",
    "mapping_properties",
    "mget_fetcher",
    "stored_form",
    "stored_pool_factor",
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

    With ``pool_factor`` above 1, each document's similar tokens are merged
    (:func:`~colbert_rerank.pooling.pool_tokens`) before the codec encodes them.

    Counters: ``colbert_tokens`` (stored tokens), ``colbert_bytes`` (blob bytes),
    ``colbert_truncated`` (texts longer than the model's document length),
    ``colbert_capped_docs`` / ``colbert_capped_tokens`` (the ``max_stored_tokens`` policy),
    and, when pooling, ``colbert_tokens_before_pooling`` (tokens the model gave).
    """

    def __init__(
        self, encoder: ColbertEncoder, codec: Codec, field: str = "colbert", pool_factor: int = 1
    ) -> None:
        if codec.input_dim != encoder.dim:
            raise ValueError(
                f"codec input dim {codec.input_dim} differs from the encoder's {encoder.dim}."
            )
        self.encoder = encoder
        self.codec = codec
        self.field = field
        self.pool_factor = check_pool_factor(pool_factor)

    def encode(self, documents: Sequence[TextDocument]) -> StoredBatch:
        """The embeddings field of each document (encoded blobs), with token counts."""
        return self.store(self.encoder.encode_documents([d.encoded_text for d in documents]))

    def store(self, batch: DocumentEmbeddings) -> StoredBatch:
        """The embeddings field of each document of an encoded ``batch`` (for callers that
        also use the token embeddings for something else, e.g. a MUVERA encoding)."""
        fields, stored_bytes, tokens, before = [], 0, 0, 0
        for embedded in batch.embeddings:
            before += embedded.shape[0]
            vectors = pool_tokens(embedded, self.pool_factor)[0]
            blob = self.codec.encode(vectors)
            stored_bytes += len(blob)
            tokens += vectors.shape[0]
            fields.append({self.field: base64.b64encode(blob).decode("ascii")})
        counters = {
            "colbert_tokens": tokens,
            "colbert_bytes": stored_bytes,
            "colbert_truncated": sum(batch.truncated),
            "colbert_capped_docs": sum(1 for c in batch.capped if c),
            "colbert_capped_tokens": sum(batch.capped),
        }
        if self.pool_factor > 1:
            counters["colbert_tokens_before_pooling"] = before
        return StoredBatch(fields, counters)


# Where the embeddings are kept, hence how a search returns them: ``source`` (in ``_source``;
# every hit then costs the engine a parse of the whole stored document), ``doc_values``
# (binary doc values, left out of ``_source``, returned by ``docvalue_fields``) or ``stored``
# (a stored field, left out of ``_source``, returned by ``stored_fields``).
StoredForm = Literal["source", "doc_values", "stored"]
FORMS: tuple[StoredForm, ...] = ("source", "doc_values", "stored")


def check_form(form: str) -> StoredForm:
    """``form`` if it is one of :data:`FORMS`, else a ValueError naming them."""
    if form not in FORMS:
        raise ValueError(f"form={form!r}: expected one of {', '.join(FORMS)}.")
    return form


def mapping_properties(field: str = "colbert", form: StoredForm = "source") -> dict[str, Any]:
    """Mapping of the embeddings field (never indexed) for the stored ``form``; the other
    forms also need the field left out of ``_source`` (``mappings._source.excludes``)."""
    spec: dict[str, Any] = {"type": "binary", "doc_values": check_form(form) == "doc_values"}
    if form == "stored":
        spec["store"] = True
    return {field: spec}


def stored_form(meta: Mapping[str, Any]) -> StoredForm:
    """The form an index's ``_meta.colbert_rerank`` records (``source`` when absent)."""
    return check_form(str(meta.get("form", "source")))


def fetch_clause(field: str, form: StoredForm) -> dict[str, Any]:
    """What a search body adds to get the embeddings back (``source``: nothing, the caller
    includes ``field`` in ``_source``); read them with :func:`colbert_rerank.hits.hit_value`."""
    if form == "doc_values":
        return {"docvalue_fields": [field]}
    if form == "stored":
        return {"stored_fields": [field]}
    return {}


def index_meta(
    encoder: ColbertEncoder,
    codec: Codec,
    field: str = "colbert",
    codebook_index: str | None = None,
    pool_factor: int = 1,
    form: StoredForm = "source",
) -> dict[str, Any]:
    """The ``_meta.colbert_rerank`` record: model, codec, dim, codebook, pooling, form.

    ``form`` is recorded only when it is not ``source``, for the same reason.

    ``pool_factor`` is recorded only above 1, so the record of an index that stores every
    token is the same as before pooling existed (and such indices are reused as they are);
    read it back with :func:`stored_pool_factor`.
    """
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
    if check_pool_factor(pool_factor) > 1:
        meta["pool_factor"] = pool_factor
    if check_form(form) != "source":
        meta["form"] = form
    return meta


def stored_pool_factor(meta: Mapping[str, Any]) -> int:
    """The pool factor an index's ``_meta.colbert_rerank`` records (1 when absent: indices
    written before pooling, or without it, store every token).

    With a factor above 1 the stored rows are merged tokens, so they no longer line up with
    the tokenizer's pieces one to one.

    Raises:
        ValueError: the recorded value is not a positive integer.

    Example:
        >>> stored_pool_factor({}), stored_pool_factor({"pool_factor": 2})
        (1, 2)
    """
    value = meta.get("pool_factor", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"_meta.{META_KEY}.pool_factor={value!r}: expected a positive integer; the index "
            "metadata was edited by hand, re-create the index."
        )
    return value


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
    client: Any, index: str, field: str = "colbert", form: StoredForm = "source"
) -> Callable[[Sequence[str]], dict[str, str]]:
    """A fetch function for :class:`~colbert_rerank.rerank.Reranker` over an official client.

    One call serves both clients, so nothing here depends on the engine: elasticsearch-py
    (8/9) accepts ``body=`` (its ``ids`` body field) and the ``_source_includes`` alias of
    ``source_includes``, and opensearch-py takes ``body=`` and ``_source_includes`` as a query
    parameter. Neither warns. ``_mget`` is real time; the ``doc_values`` form is read with a
    search, which sees documents once the index has refreshed. Ids ``_mget`` does not find
    (documents indexed with a custom routing live on another shard than their id says, and an
    index that requires routing refuses the lookup) are looked up again with one search by id
    over every shard, which finds them once the index has refreshed.

    Args:
        client: an ``elasticsearch.Elasticsearch`` or ``opensearchpy.OpenSearch`` client.
        index: the index holding the embeddings.
        field: the embeddings field (a top-level field).
        form: how the index stores them (its ``_meta``: :func:`stored_form`).

    Returns:
        ``fetch(ids) -> {id: base64 blob}`` for the ids found with the field.

    Example:
        >>> reranker = Reranker(encoder, codec, fetch=mget_fetcher(client, "docs"))
    """
    check_form(form)

    def mget(ids: list[str], params: dict[str, str]) -> Any:
        response = client.mget(index=index, body={"ids": ids}, **params)
        return getattr(response, "body", response)  # elasticsearch-py wraps the body

    def search(body: dict[str, Any]) -> Any:
        response = client.search(index=index, body=body)
        return getattr(response, "body", response)

    def fetch(ids: Sequence[str]) -> dict[str, str]:
        return fetch_by_id(ids, field, form, mget, search)

    return fetch


def fetch_by_id(
    ids: Sequence[str],
    field: str,
    form: StoredForm,
    mget: Callable[[list[str], dict[str, str]], Any],
    search: Callable[[dict[str, Any]], Any],
) -> dict[str, Any]:
    """``field`` of each of ``ids``: ``_mget`` for ``source`` and ``stored``, then one search
    by id for the ids ``_mget`` missed (custom routing) and for the ``doc_values`` form.

    The requests go through ``mget(ids, params)`` and ``search(body)``, which return the
    decoded answers: :func:`mget_fetcher` sends them with an official client, and
    ``splade_es``'s ``Cluster.fetch_field`` with its own error handling.

    Returns:
        ``{id: value}`` for the documents found holding ``field``; the others are left out.
    """
    if not ids:
        return {}
    docs: list[Any] = []
    if form != "doc_values":
        params = {"stored_fields": field} if form == "stored" else {"_source_includes": field}
        docs = [doc for doc in mget(list(ids), params)["docs"] if doc.get("found")]
    found = {doc["_id"] for doc in docs}
    missing = [doc_id for doc_id in ids if doc_id not in found]
    if missing:  # doc values, or ids stored under a custom routing that _mget misses
        body: dict[str, Any] = {"query": {"ids": {"values": missing}}, "size": len(missing)}
        body["_source"] = [field] if form == "source" else False
        body.update(fetch_clause(field, form))
        docs += search(body)["hits"]["hits"]
    values = {doc["_id"]: hit_value(doc, field) for doc in docs}
    return {doc_id: value for doc_id, value in values.items() if value is not None}
