"""The rerank hook: rescore first-stage hits by MaxSim over their stored token embeddings.

Takes plain hits, as the ``elasticsearch`` and ``opensearch-py`` clients return them (dicts
with ``_id``, ``_score`` and ``_source``), or ``(id, score)`` pairs with embeddings given
separately, and returns new hit dicts reordered by the fused score. Nothing here knows about
splade_es: it drops into any search app.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.codecs import Codec, CodecError
from colbert_rerank.decoding import decode_hits
from colbert_rerank.devices import check_device, pick_device
from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.fusion import Fusion, fuse
from colbert_rerank.hits import (
    HitLike,
    check_index,
    hit_value,
    normalise_hits,
    reranked_hits,
    stored_embeddings,
    unreranked_hits,
)
from colbert_rerank.maxsim import PackedDocuments, align, maxsim
from colbert_rerank.pooling import pool_tokens, pooled_labels

__all__ = [
    "Fetcher",
    "HitLike",
    "RerankConfig",
    "RerankError",
    "RerankResult",
    "RerankStats",
    "Reranker",
    "TokenMatch",
]

logger = logging.getLogger(__name__)

# ids -> {id: blob} for hits whose embeddings are not in their _source (e.g. an mget).
Fetcher = Callable[[Sequence[str]], Mapping[str, bytes | str]]


class RerankError(ValueError):
    """A hit cannot be reranked (no or bad stored embeddings) and the policy is ``error``.

    Attributes:
        unusable: ``{hit id: reason}`` for every hit that could not be reranked (empty when
            the error is about one text, as in :meth:`Reranker.explain`).
    """

    def __init__(self, message: str, unusable: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.unusable = dict(unusable or {})


@dataclass(frozen=True)
class RerankConfig:
    """How to rerank.

    Attributes:
        field: the ``_source`` field holding the encoded token embeddings.
        top_k: rerank only the first ``top_k`` hits (``None``: all). The others follow in
            their first-stage order. A ``top_k`` larger than the hit list reranks them all.
        fusion: how the first-stage and MaxSim scores combine (``replace`` by default).
        on_missing: a hit without usable embeddings (absent even after the fetch, or corrupt):
            ``error`` raises :class:`RerankError`; ``first_stage`` places it after the
            reranked hits in first-stage order and counts it.
        device: where MaxSim runs (``None``: the encoder's device).
    """

    field: str = "colbert"
    top_k: int | None = None
    fusion: Fusion = dataclasses.field(default_factory=Fusion)
    on_missing: Literal["error", "first_stage"] = "error"
    device: str | None = None

    def __post_init__(self) -> None:
        check_positive_ints(self, "top_k", optional=True)
        check_device(self.device)
        if self.on_missing not in ("error", "first_stage"):
            raise ValueError(f"on_missing={self.on_missing!r}: expected error or first_stage.")


@dataclass(frozen=True)
class RerankStats:
    """What one rerank call did, with timings in milliseconds."""

    reranked: int
    fetched: int
    unusable: dict[str, str]
    encode_ms: float
    fetch_ms: float
    decode_ms: float
    maxsim_ms: float


@dataclass(frozen=True)
class RerankResult:
    """Reranked hits (new dicts: ``_score`` is the final score, ``_first_stage_score`` and
    ``_colbert_score`` are kept), and the stats."""

    hits: list[dict[str, Any]]
    stats: RerankStats


@dataclass(frozen=True)
class TokenMatch:
    """One query token, the document token it matched, and its MaxSim contribution."""

    query_token: str
    document_token: str
    document_position: int
    contribution: float


class Reranker:
    """MaxSim reranking with a token encoder and the codec the index was written with.

    Args:
        encoder: encodes the query (the same model that encoded the documents).
        codec: decodes stored embeddings.
        config: field, top_k, fusion, missing-embedding policy.
        fetch: called with the ids of hits whose ``_source`` lacks the field.
        index: the concrete index whose embeddings ``fetch`` reads (``open_reranker`` sets
            it): hits whose ``_index`` names another index are refused.
        pool_factor: the token pooling the documents were stored with (the index
            ``_meta``'s, see :func:`colbert_rerank.storage.stored_pool_factor`): only
            :meth:`explain` needs it, to label merged rows.

    Safe to share across threads: it keeps no per-call state, the fetch function is called
    from the caller's thread (``mget_fetcher``'s clients are thread-safe), and the encoder
    serialises only tokenisation (see :class:`~colbert_rerank.encoder.ColbertEncoder`).

    Example:
        >>> reranker = Reranker(encoder, Codec("float16", encoder.dim))  # doctest: +SKIP
        >>> result = reranker.rerank("aspirin and heart attacks", es_response["hits"]["hits"])
    """

    def __init__(
        self,
        encoder: ColbertEncoder,
        codec: Codec,
        config: RerankConfig | None = None,
        fetch: Fetcher | None = None,
        index: str | None = None,
        pool_factor: int = 1,
    ) -> None:
        if codec.input_dim != encoder.dim:
            raise ValueError(
                f"The codec stores embeddings of a {codec.input_dim}-dim model but the encoder "
                f"makes {encoder.dim}: use the model the index was built with."
            )
        self.encoder = encoder
        self.codec = codec
        self.config = config or RerankConfig()
        self.fetch = fetch
        self.index = index
        self.pool_factor = pool_factor
        device = self.config.device
        self.device = pick_device(device) if device else encoder.model.device

    def rerank(
        self,
        query: str,
        hits: Sequence[HitLike],
        embeddings: Mapping[str, bytes | str | np.ndarray] | None = None,
        query_embeddings: np.ndarray | None = None,
    ) -> RerankResult:
        """Rescore and reorder ``hits`` for ``query``.

        Args:
            query: the query text.
            hits: hit dicts (``_id``, ``_score``, ``_source``) or ``(id, score)`` pairs.
            embeddings: embeddings by id for hits that do not carry them: blobs (bytes or
                base64 text) or ``[tokens, dim]`` arrays.
            query_embeddings: the query's ``encoder.encode_queries`` output when the caller
                has it already (a MUVERA first stage); ``None`` encodes the query here.

        A hit whose embeddings are missing or unreadable (truncated, another codec or
        dimension, not base64, NaN/infinity, a centroid id beyond the codebook) is named in
        ``stats.unusable`` with its own reason, and under ``on_missing='error'`` in the
        :class:`RerankError`.

        Raises:
            RerankError: a hit has no usable embeddings and ``on_missing`` is ``error``.
            ValueError: empty query (or a lone surrogate in it), malformed hits, a
                non-finite score, duplicate ids, hits of another index than ``index``.
            TypeError: a query that is not a string, an ``_id`` that is not a string, a score
                that is not a number.
        """
        _check_query(query)
        records = normalise_hits(hits)
        if self.index is not None:
            check_index(records, self.index)
        limit = len(records) if self.config.top_k is None else min(self.config.top_k, len(records))
        head, tail = records[:limit], records[limit:]

        started = time.perf_counter()
        query_vectors = self._query_vectors(query, query_embeddings)
        encode_ms = _ms_since(started)

        started = time.perf_counter()
        raw, fetched = self._gathered(head, embeddings)
        fetch_ms = _ms_since(started)

        started = time.perf_counter()
        buffer, counts, usable, unusable = self._readable(head, raw)
        decode_ms = _ms_since(started)

        started = time.perf_counter()
        scores = self._scored(query_vectors, buffer, counts, usable)
        maxsim_ms = _ms_since(started)

        first = {r["_id"]: float(r.get("_score") or 0.0) for r in usable}
        final = fuse(first, scores, self.config.fusion)
        out = reranked_hits(usable, first, scores, final)
        out += unreranked_hits([r for r in head if r["_id"] in unusable] + tail)
        stats = RerankStats(
            len(usable), fetched, unusable, encode_ms, fetch_ms, decode_ms, maxsim_ms
        )
        return RerankResult(out, stats)

    def _query_vectors(self, query: str, given: np.ndarray | None) -> torch.Tensor:
        """The query's token embeddings as the codec scores them, on the reranker's device:
        ``given`` (checked) or encoded here."""
        if given is None:
            given = self.encoder.encode_queries([query])[0]
        elif given.ndim != 2 or given.shape[1] != self.encoder.dim:
            raise ValueError(
                f"query_embeddings of shape {given.shape}: expected [tokens, "
                f"{self.encoder.dim}] from this reranker's encoder.encode_queries."
            )
        return torch.from_numpy(self.codec.prepare_query(given)).to(self.device)

    def _gathered(
        self,
        head: Sequence[Mapping[str, Any]],
        embeddings: Mapping[str, bytes | str | np.ndarray] | None,
    ) -> tuple[dict[str, Any], int]:
        """The stored value of each hit (its ``_source`` or ``fields``, then ``embeddings``,
        then the fetch), and how many hits the fetch returned."""
        raw: dict[str, Any] = {}
        for record in head:
            stored = hit_value(record, self.config.field)
            if stored is not None:
                raw[record["_id"]] = stored
            elif embeddings is not None and record["_id"] in embeddings:
                raw[record["_id"]] = embeddings[record["_id"]]
        missing = [record["_id"] for record in head if record["_id"] not in raw]
        fetched = 0
        if missing and self.fetch is not None:
            got = self.fetch(missing)
            fetched = len(got)
            raw.update({doc_id: blob for doc_id, blob in got.items() if doc_id in set(missing)})
        return raw, fetched

    def _readable(
        self, head: Sequence[dict[str, Any]], raw: Mapping[str, Any]
    ) -> tuple[np.ndarray, dict[str, int], list[dict[str, Any]], dict[str, str]]:
        """Check and decode the stored values: the ``[tokens, dim]`` buffer, token counts by
        id, the usable hits, and ``{id: reason}`` for the others.

        Raises:
            RerankError: a hit is unusable and ``on_missing`` is ``error``.
        """
        blobs: dict[str, bytes | np.ndarray] = {}
        counts: dict[str, int] = {}
        unusable: dict[str, str] = {}
        for record in head:
            doc_id = record["_id"]
            if doc_id not in raw:
                unusable[doc_id] = f"no {self.config.field!r} embeddings in the hit or the fetch"
                continue
            try:
                blobs[doc_id], counts[doc_id] = self._checked(raw[doc_id])
            except CodecError as error:
                unusable[doc_id] = f"stored embeddings unreadable: {error}"
        usable = [record for record in head if record["_id"] in blobs]
        buffer, usable = decode_hits(self.codec, usable, blobs, counts, unusable)
        if unusable and self.config.on_missing == "error":
            sample = "; ".join(f"{k}: {v}" for k, v in list(unusable.items())[:3])
            raise RerankError(
                f"{len(unusable)} hit(s) cannot be reranked: {list(unusable)[:20]} ({sample}). "
                "Index the embeddings, pass a fetch function, or use on_missing='first_stage'.",
                unusable,
            )
        return buffer, counts, usable, unusable

    def _scored(
        self,
        query_vectors: torch.Tensor,
        buffer: np.ndarray,
        counts: Mapping[str, int],
        usable: Sequence[Mapping[str, Any]],
    ) -> dict[str, float]:
        """MaxSim score by hit id for the usable hits (packed in ``buffer``)."""
        if not usable:
            return {}
        lengths = torch.tensor([counts[r["_id"]] for r in usable], dtype=torch.long)
        packed = PackedDocuments(torch.from_numpy(buffer), lengths)
        values = maxsim(query_vectors, _to(packed, self.device)).cpu().tolist()
        return {r["_id"]: float(v) for r, v in zip(usable, values, strict=True)}

    def explain(
        self, query: str, document_text: str, stored: bytes | str | np.ndarray
    ) -> list[TokenMatch]:
        """Each query token with the stored document token it matched, and its contribution.

        The document's token labels come from encoding ``document_text`` again (the text the
        embeddings were made from); the similarities come from the stored embeddings. On a
        pooled index each stored row is labelled with the tokens it merged (``a+b``), found by
        pooling the fresh encoding again: deterministic, but a document encoded alone can
        differ in the last float bits from one encoded in a batch, so where two merges were
        near-tied a label may name another grouping than the stored row's.

        Raises:
            RerankError: the text does not give the stored number of tokens (another text,
                model or token cap).
        """
        value, _ = self._checked(stored)
        vectors = torch.from_numpy(
            value.astype(np.float32) if isinstance(value, np.ndarray) else self.codec.decode(value)
        )
        fresh = self.encoder.encode_documents([document_text])
        labels = self.encoder.tokens(fresh.token_ids[0])
        if self.pool_factor > 1:  # stored rows are merged tokens: label them as merged
            labels = pooled_labels(labels, pool_tokens(fresh.embeddings[0], self.pool_factor)[1])
        if len(labels) != vectors.shape[0]:
            raise RerankError(
                f"The text gives {len(labels)} document tokens but {vectors.shape[0]} are stored: "
                "pass the exact text that was indexed (title and text as encoded)."
            )
        query_vectors = self.codec.prepare_query(self.encoder.encode_queries([query])[0])
        query_labels = self._query_tokens(query, query_vectors.shape[0])
        matches = align(torch.from_numpy(query_vectors), vectors)
        return [
            TokenMatch(
                query_labels[m.query_position],
                labels[m.document_position],
                m.document_position,
                m.similarity,
            )
            for m in matches
        ]

    def _query_tokens(self, query: str, count: int) -> list[str]:
        outputs: Any = self.encoder.model.encode_query([query], output_value=None)
        ids = outputs[0]["input_ids"][outputs[0]["attention_mask"].bool()].tolist()
        labels = self.encoder.tokens(np.asarray(ids, dtype=np.int64))
        return labels if len(labels) == count else [f"q{i}" for i in range(count)]

    def _checked(self, value: bytes | str | np.ndarray) -> tuple[bytes | np.ndarray, int]:
        """The stored value as bytes (or an array) and its token count, validated."""
        return stored_embeddings(value, self.codec)


def _to(packed: PackedDocuments, device: torch.device) -> PackedDocuments:
    return PackedDocuments(packed.embeddings.to(device), packed.lengths.to(device))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _check_query(query: str) -> None:
    """Raise unless ``query`` is non-empty text."""
    if not isinstance(query, str):
        raise TypeError(f"Query {query!r:.60} is {type(query).__name__}: pass the text.")
    if not query.strip():
        raise ValueError(f"Query {query!r} is empty: pass the text that found the hits.")
