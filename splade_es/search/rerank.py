"""The reranker of an index: its stored ColBERT codec and codebook, checked against the model.

Reading side of the token embeddings that :mod:`splade_es.indexing.colbert_fields` writes:
the index's ``_meta.colbert_rerank`` says which model, codec and codebook wrote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.rerank import RerankConfig, Reranker
from colbert_rerank.storage import (
    META_KEY,
    check_encoder,
    codec_for,
    stored_form,
    stored_pool_factor,
)
from splade_es.cluster.admin import require_index
from splade_es.cluster.companion import load_fit
from splade_es.cluster.connection import Cluster


def missing_embeddings(index: str) -> str:
    """What to do when ``index`` stores no ColBERT embeddings (they cannot be added in place)."""
    return (
        f"Index {index!r} stores no ColBERT embeddings (_meta.{META_KEY}), and they cannot be "
        f"added in place: index the corpus into a new index with them (splade-es index "
        f"<corpus> --index {index}-colbert --colbert --alias <alias>) and use that one."
    )


def open_reranker(
    cluster: Cluster,
    index: str,
    encoder: ColbertEncoder,
    config: RerankConfig | None = None,
    allow_model_mismatch: bool = False,
) -> Reranker:
    """A reranker for ``index``: its codec and codebook, checked against ``encoder``.

    Hits that come without their embeddings (``_source`` filtered) are fetched from the
    index by id; hits of another index are refused (aliases resolve to ``index``).

    Raises:
        ValueError: the index does not exist, has no stored embeddings, or another model
            wrote them (unless ``allow_model_mismatch``).

    Example:
        >>> colbert = ColbertEncoder(ColbertConfig())  # doctest: +SKIP
        >>> reranker = open_reranker(cluster, "docs", colbert)  # doctest: +SKIP
    """
    info = require_index(cluster, index)
    meta = info.all_meta.get(META_KEY)
    if not meta:
        raise ValueError(missing_embeddings(index))
    problems = check_encoder(meta, encoder)
    if problems and not allow_model_mismatch:
        raise ValueError(
            f"Index {index!r} stores embeddings of model {meta.get('model')!r}, not "
            f"{encoder.config.model!r} ({'; '.join(problems)}): rerank with the model that "
            "built the index."
        )
    codebook = projection = None
    if meta.get("codebook_index"):
        codebook, projection = load_fit(cluster, meta)
    chosen = config or RerankConfig(field=meta["field"])
    field, form = meta["field"], stored_form(meta)

    def fetch(ids: Sequence[str]) -> dict[str, Any]:
        return cluster.fetch_field(info.name, ids, field, form)

    codec = codec_for(meta, codebook, projection)
    return Reranker(encoder, codec, chosen, fetch, info.name, stored_pool_factor(meta))
