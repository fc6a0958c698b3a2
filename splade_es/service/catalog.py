"""Which indices the service reranks, read from their ``_meta`` on first use and kept a while.

An index is reranked only when the config names it and its ``_meta`` says splade-es built
it with ColBERT embeddings of the model the service runs (and, for a SPLADE first stage, the
SPLADE model it runs). The mapping (and a residual codec's codebook) is read with the app's
own credentials, so the service needs none of its own; the app's need the privilege to read
the index's mapping (``view_index_metadata`` on Elasticsearch,
``indices:admin/mappings/get`` on OpenSearch), else its searches pass through with the
reason ``index mapping unreadable (status 403)``. Every answer, a failed read included, is
cached for ``meta_ttl_s`` seconds per index name (so an index whose mapping cannot be read
costs one extra request per ``meta_ttl_s``, not one per search); no answer at all (the
upstream down) is not cached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from colbert_rerank.rerank import RerankConfig, Reranker
from colbert_rerank.storage import (
    CODEBOOK_ID,
    check_encoder,
    codebook_from_document,
    codec_for,
    stored_form,
)
from colbert_rerank.storage import META_KEY as COLBERT_KEY
from splade_es.cluster.mapping import META_KEY as SPLADE_KEY
from splade_es.cluster.mapping import IndexLayout, encoder_meta, meta_differences
from splade_es.cluster.names import check_index_name
from splade_es.service.config import ServiceConfig
from splade_es.service.embeddings import EmbeddingSource
from splade_es.service.models import ServiceModels
from splade_es.service.queries import Unhandled
from splade_es.service.upstream import Upstream, read_json

__all__ = ["IndexCatalog", "IndexProfile", "SpladeField", "profile_from_mapping"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpladeField:
    """An index's SPLADE field and its type (for a SPLADE first stage)."""

    field: str
    mapping_type: str


@dataclass(frozen=True)
class IndexProfile:
    """What the service needs to rerank one index.

    Attributes:
        name: the concrete index (an alias's target).
        source: where its ColBERT embeddings are kept.
        colbert_meta: its ``_meta.colbert_rerank``.
        splade: its SPLADE field, when the first stage needs it.
    """

    name: str
    source: EmbeddingSource
    colbert_meta: Mapping[str, Any]
    splade: SpladeField | None


def profile_from_mapping(answer: Any, models: ServiceModels, needs_splade: bool) -> IndexProfile:
    """The profile of the index in a ``GET /{index}/_mapping`` answer. Pure.

    Raises:
        Unhandled: the index is not one the service can rerank (the reason says why).

    Example:
        >>> profile_from_mapping({"a": {}, "b": {}}, models, False)  # doctest: +SKIP
        Unhandled: the index name resolves to 2 indices
    """
    if not isinstance(answer, Mapping) or len(answer) != 1:
        count = len(answer) if isinstance(answer, Mapping) else 0
        raise Unhandled(f"the index name resolves to {count} indices")
    name, body = next(iter(answer.items()))
    mapping = body.get("mappings", {}) if isinstance(body, Mapping) else {}
    meta = mapping.get("_meta") or {}
    splade_meta, colbert = meta.get(SPLADE_KEY), meta.get(COLBERT_KEY)
    if not isinstance(splade_meta, Mapping) or not splade_meta:
        raise Unhandled("index not built by splade-es")
    if not isinstance(colbert, Mapping) or not colbert.get("field"):
        raise Unhandled("index has no ColBERT embeddings")
    if check_encoder(colbert, models.colbert):
        raise Unhandled("index embeddings are from another ColBERT model")
    try:
        source = EmbeddingSource(str(colbert["field"]), stored_form(colbert))
    except ValueError as error:
        raise Unhandled("index _meta.colbert_rerank unreadable") from error
    splade = None
    if needs_splade and models.splade is not None:
        field = str(splade_meta.get("field", ""))
        kind = mapping.get("properties", {}).get(field, {}).get("type")
        if kind not in ("rank_features", "sparse_vector"):
            raise Unhandled("index has no SPLADE field")
        current = encoder_meta(models.splade, IndexLayout(mapping_type=kind, field=field))
        if meta_differences(splade_meta, current):
            raise Unhandled("index built with another SPLADE model")
        splade = SpladeField(field, kind)
    return IndexProfile(str(name), source, colbert, splade)


class IndexCatalog:
    """Profiles and rerankers of the indices the service reranks, by index name."""

    def __init__(self, config: ServiceConfig, models: ServiceModels, upstream: Upstream) -> None:
        self.config = config
        self.models = models
        self.upstream = upstream
        self._profiles: dict[str, tuple[float, IndexProfile | Unhandled]] = {}
        self._rerankers: dict[str, tuple[Mapping[str, Any], Reranker]] = {}

    async def profile(self, target: str, headers: Sequence[tuple[bytes, bytes]]) -> IndexProfile:
        """The profile of index (or alias) ``target``, read with the app's ``headers``.

        Raises:
            Unhandled: not an index the service reranks, or its mapping cannot be read
                (either answer is cached for ``meta_ttl_s``, except a 401/403: those depend
                on the app's credentials).
            UpstreamUnavailable: no answer (not cached).
        """
        cached = self._profiles.get(target)
        if cached is not None and time.monotonic() - cached[0] < self.config.meta_ttl_s:
            return _raised(cached[1])
        try:
            check_index_name(target)
        except ValueError as error:
            raise Unhandled("not a single index name") from error
        response = await self.upstream.json_call("GET", f"/{target}/_mapping", [], headers)
        needs_splade = self.config.first_stage != "app"
        try:
            if response.status_code != 200:
                raise Unhandled(f"index mapping unreadable (status {response.status_code})")
            try:
                answer = read_json(response.content)
            except ValueError as error:
                raise Unhandled("index mapping is not JSON") from error
            found: IndexProfile | Unhandled = profile_from_mapping(
                answer, self.models, needs_splade
            )
        except Unhandled as error:
            found = error
        if response.status_code not in (401, 403):  # refused for these credentials only:
            self._profiles[target] = (time.monotonic(), found)  # another app may read it
        return _raised(found)

    async def reranker(
        self, profile: IndexProfile, headers: Sequence[tuple[bytes, bytes]]
    ) -> Reranker:
        """The reranker of ``profile``'s index (its codec, and codebook if it has one).

        Raises:
            Unhandled: the codebook cannot be read.
        """
        kept = self._rerankers.get(profile.name)
        if kept is not None and kept[0] == profile.colbert_meta:
            return kept[1]
        meta = profile.colbert_meta
        codebook = projection = None
        if meta.get("codebook_index"):
            book = str(meta["codebook_index"])
            path = f"/{check_index_name(book)}/_doc/{CODEBOOK_ID}"
            response = await self.upstream.json_call("GET", path, [], headers)
            if response.status_code != 200:
                raise Unhandled(f"codebook unreadable (status {response.status_code})")
            try:
                codebook, projection = codebook_from_document(
                    read_json(response.content)["_source"], meta
                )
            except (KeyError, ValueError) as error:
                raise Unhandled("codebook unreadable") from error
        config = RerankConfig(field=profile.source.field, on_missing="first_stage")
        codec = codec_for(meta, codebook, projection)
        reranker = Reranker(self.models.colbert, codec, config, None, profile.name)
        self._rerankers[profile.name] = (meta, reranker)
        return reranker


def _raised(found: IndexProfile | Unhandled) -> IndexProfile:
    if isinstance(found, Unhandled):
        raise Unhandled(found.reason)
    return found
