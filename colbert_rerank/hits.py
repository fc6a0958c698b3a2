"""Hits in and out of the rerank hook: validation of first-stage hits and of their stored
embeddings, and the hit dicts a rerank returns. Pure: no model, no device, no client.

A hit is a dict as the ``elasticsearch`` and ``opensearch-py`` clients return it (``_id``,
``_score``, ``_source``) or an ``(id, score)`` pair; :func:`normalise_hits` turns either into
a fresh dict with ``_id`` (a string), ``_score`` and a ``_source`` mapping.
"""

from __future__ import annotations

import binascii
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from colbert_rerank.codecs import Codec, CodecError

__all__ = [
    "HitLike",
    "check_index",
    "hit_value",
    "normalise_hit",
    "normalise_hits",
    "reranked_hits",
    "stored_embeddings",
    "unreranked_hits",
]

HitLike = Mapping[str, Any] | tuple[str, float]


def normalise_hits(hits: Sequence[HitLike]) -> list[dict[str, Any]]:
    """Each hit as a fresh dict (see :func:`normalise_hit`), checked for repeated ids.

    Args:
        hits: hit dicts (``_id``, ``_score``, ``_source``) or ``(id, score)`` pairs.

    Returns:
        One dict per hit, in the given order.

    Raises:
        ValueError: a malformed hit, a non-finite score, or an id given twice.
        TypeError: an ``_id`` that is not a string, a score that is not a number.

    Example:
        >>> normalise_hits([("d1", 2.5)])
        [{'_id': 'd1', '_score': 2.5, '_source': {}}]
    """
    records = [normalise_hit(hit, position) for position, hit in enumerate(hits)]
    ids = [record["_id"] for record in records]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"Hits repeat ids {duplicates[:5]}: pass each document once.")
    return records


def check_index(records: Sequence[Mapping[str, Any]], index: str) -> None:
    """Refuse hits whose ``_index`` is not ``index`` (hits without ``_index`` pass).

    Embeddings are looked up by ``_id``, so a hit of another index would be scored with the
    embeddings of whatever document has its id here.

    Raises:
        ValueError: names the other indices, a few of their hit ids, and the fix.

    Example:
        >>> check_index([{"_id": "d1", "_index": "docs-v2"}], "docs-v2")
    """
    foreign: dict[str, list[str]] = {}
    for record in records:
        other = record.get("_index")
        if other is not None and other != index:
            foreign.setdefault(str(other), []).append(str(record["_id"]))
    if foreign:
        shown = "; ".join(f"{name!r}: {ids[:3]}" for name, ids in sorted(foreign.items()))
        count = sum(len(ids) for ids in foreign.values())
        raise ValueError(
            f"{count} hit(s) come from other indices than {index!r}, whose embeddings this "
            f"reranker reads ({shown}): rerank each index's hits with a reranker of that index "
            "(open_reranker(cluster, <that index>, encoder))."
        )


def hit_value(hit: Mapping[str, Any], field: str) -> Any:
    """The stored embeddings of a hit: ``_source[field]``, or the first value of
    ``fields[field]`` (what ``docvalue_fields`` and ``stored_fields`` return); ``None``.

    Example:
        >>> hit_value({"_id": "d1", "fields": {"colbert": ["Q1I="]}}, "colbert")
        'Q1I='
    """
    source = hit.get("_source")
    if isinstance(source, Mapping) and source.get(field) is not None:
        return source[field]
    fields = hit.get("fields")
    values = fields.get(field) if isinstance(fields, Mapping) else None
    if isinstance(values, list) and values:
        return values[0]
    return None


def normalise_hit(hit: HitLike, position: int) -> dict[str, Any]:
    """One hit as a fresh dict with a string ``_id``, its ``_score`` and a ``_source`` mapping.

    Args:
        hit: a hit dict or an ``(id, score)`` pair (an int id becomes a string).
        position: the hit's place in the list, for the error messages.

    Raises:
        ValueError: a tuple that is not a pair, a dict without ``_id``, a non-finite score.
        TypeError: an ``_id`` that is not a string, a score that is not a number.

    Example:
        >>> normalise_hit({"_id": "d1", "_score": None}, 0)
        {'_id': 'd1', '_score': None, '_source': {}}
    """
    if isinstance(hit, tuple):
        if len(hit) != 2:
            raise ValueError(f"Hit {position} is a tuple of {len(hit)}: expected (id, score).")
        doc_id, score = hit
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
            raise TypeError(
                f"Hit {position} has id {doc_id!r:.60} ({type(doc_id).__name__}): pass "
                "(id, score) pairs with a str (or int) id."
            )
        if score is None:
            raise TypeError(f"Hit {position} ({doc_id!r:.60}) has score None: pass a number.")
        return {"_id": str(doc_id), "_score": _checked_score(score, position), "_source": {}}
    if not isinstance(hit, Mapping) or "_id" not in hit:
        raise ValueError(
            f"Hit {position} is {type(hit).__name__} without '_id': pass the hits as the client "
            "returns them (response['hits']['hits']) or (id, score) pairs."
        )
    if not isinstance(hit["_id"], str):
        raise TypeError(
            f"Hit {position} has _id {hit['_id']!r:.60} ({type(hit['_id']).__name__}): the "
            "engines' ids are strings; pass the hits as the client returns them."
        )
    if hit.get("_score") is not None:
        _checked_score(hit["_score"], position)
    record = dict(hit)
    source = record.get("_source")
    record["_source"] = source if isinstance(source, Mapping) else {}
    return record


def stored_embeddings(
    value: bytes | str | np.ndarray, codec: Codec
) -> tuple[bytes | np.ndarray, int]:
    """A stored value as bytes (or a ``[tokens, dim]`` array) and its token count, validated.

    Args:
        value: a blob written by ``codec`` (bytes, or base64 text as ``_source`` holds it), or
            a ``[tokens, codec.dim]`` array of embeddings.
        codec: the codec the index was written with.

    Raises:
        CodecError: the value is not base64, not bytes, has another codec's header or
            dimension, is truncated, holds no token, or is an array of the wrong shape/dtype.

    Example:
        >>> stored_embeddings(np.ones((3, 4), np.float32), Codec("float16", 4))[1]
        3
    """
    if isinstance(value, np.ndarray):
        if value.ndim != 2 or value.shape[1] != codec.dim or value.shape[0] == 0:
            raise CodecError(f"array of shape {value.shape}, expected [tokens >= 1, {codec.dim}]")
        if value.dtype.kind not in "fiu":
            raise CodecError(f"array of dtype {value.dtype}, expected float32 embeddings")
        return value, int(value.shape[0])
    if isinstance(value, str):
        try:  # OpenSearch returns doc values' base64 without its padding; strict mode
            # is what b64decode(validate=True) runs, without its copy of the text to bytes
            value = binascii.a2b_base64(value + "=" * (-len(value) % 4), strict_mode=True)
        except (binascii.Error, ValueError) as error:
            raise CodecError(f"stored value is not base64 ({error})") from error
    if not isinstance(value, bytes | bytearray):
        raise CodecError(f"stored value is {type(value).__name__}, not bytes or base64 text")
    count = codec.check(bytes(value))
    if count == 0:
        raise CodecError("stored embeddings have no tokens")
    return bytes(value), count


def reranked_hits(
    records: Sequence[Mapping[str, Any]],
    first: Mapping[str, float],
    colbert: Mapping[str, float],
    final: Mapping[str, float],
) -> list[dict[str, Any]]:
    """The reranked hits, best final score first, as new dicts.

    Args:
        records: normalised hits, each with a score in all three mappings.
        first / colbert / final: first-stage, MaxSim and fused score by hit id.

    Returns:
        Copies whose ``_score`` is the final score, with ``_first_stage_score`` and
        ``_colbert_score`` added. Ties keep the given order.

    Example:
        >>> reranked_hits([{"_id": "a"}], {"a": 1.0}, {"a": 9.0}, {"a": 9.0})[0]["_score"]
        9.0
    """
    out = []
    for record in sorted(records, key=lambda r: -final[r["_id"]]):
        hit = dict(record)
        hit["_first_stage_score"] = first[record["_id"]]
        hit["_colbert_score"] = colbert[record["_id"]]
        hit["_score"] = final[record["_id"]]
        out.append(hit)
    return out


def unreranked_hits(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Hits left in first-stage order, as new dicts with ``_colbert_score`` ``None``.

    Example:
        >>> unreranked_hits([{"_id": "a", "_score": 2.0}])[0]["_first_stage_score"]
        2.0
    """
    out = []
    for record in records:
        hit = dict(record)
        hit["_first_stage_score"] = record.get("_score")
        hit["_colbert_score"] = None
        out.append(hit)
    return out


def _checked_score(score: Any, position: int) -> float:
    """A first-stage score as a finite float (``None`` is allowed in hit dicts: sorted hits)."""
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        raise TypeError(
            f"Hit {position} has score {score!r:.60} ({type(score).__name__}): expected a number."
        )
    value = float(score)
    if not math.isfinite(value):
        raise ValueError(f"Hit {position} has score {value}: expected a finite number.")
    return value
