"""Stored token embeddings of many hits -> one ``[tokens, dim]`` buffer, naming bad hits.

All blobs are decoded in one vectorised pass (:meth:`Codec.decode_many`); only when that pass
fails (a residual centroid id beyond the codebook) or arrays are mixed in are they decoded one
at a time, so the failing hit is named with its reason instead of failing the whole query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from colbert_rerank.codecs import Codec

__all__ = ["decode_hits"]

Span = tuple[str, int, int]


def decode_hits(
    codec: Codec,
    usable: list[dict[str, Any]],
    blobs: Mapping[str, bytes | np.ndarray],
    counts: Mapping[str, int],
    unusable: dict[str, str],
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Decode the usable hits (checked blobs or arrays by id) into one buffer.

    A hit whose stored value passes the header check but does not decode, or decodes to
    NaN/infinity, is moved to ``unusable`` with its reason; the buffer and the list returned
    hold the remaining hits only.
    """
    buffer, spans = _buffer(codec, usable, blobs, counts, unusable)
    if not np.isfinite(buffer).all():  # one vectorised pass; per-hit only when it fails
        for doc_id, start, end in spans:
            if doc_id not in unusable and not np.isfinite(buffer[start:end]).all():
                unusable[doc_id] = "stored embeddings decode to NaN or infinity: corrupted"
    if not any(doc_id in unusable for doc_id, _, _ in spans):
        return buffer, usable
    rows = np.zeros(buffer.shape[0], dtype=bool)
    for doc_id, start, end in spans:
        rows[start:end] = doc_id not in unusable
    return buffer[rows], [r for r in usable if r["_id"] not in unusable]


def _buffer(
    codec: Codec,
    usable: list[dict[str, Any]],
    blobs: Mapping[str, bytes | np.ndarray],
    counts: Mapping[str, int],
    unusable: dict[str, str],
) -> tuple[np.ndarray, list[Span]]:
    """The decoded buffer and each hit's ``(id, start, end)`` rows."""
    ids = [r["_id"] for r in usable]
    ends = np.cumsum([counts[i] for i in ids]).tolist()
    spans = [(i, end - counts[i], end) for i, end in zip(ids, ends, strict=True)]
    values = [blobs[i] for i in ids]
    raw = [v for v in values if not isinstance(v, np.ndarray)]
    if len(raw) == len(values):
        try:
            return codec.decode_many(raw, [counts[i] for i in ids]), spans
        except ValueError:
            pass  # decode one at a time below, to name the hit that fails
    buffer = np.empty((ends[-1] if ends else 0, codec.dim), np.float32)
    for (doc_id, start, end), value in zip(spans, values, strict=True):
        try:
            if isinstance(value, np.ndarray):
                buffer[start:end] = value
            else:
                codec.decode_into(value, buffer[start:end])
        except ValueError as error:
            unusable[doc_id] = f"stored embeddings unreadable: {error}"
    return buffer, spans
