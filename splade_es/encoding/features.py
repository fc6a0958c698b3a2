"""Sparse vectors and the feature keys they are stored under. Pure functions only.

``rank_features`` (and ``sparse_vector``) fields refuse feature names containing a dot, and
keep values as positive normal floats truncated to 9 significant bits. Keys here are made
one-to-one with vocabulary tokens and reversible: ``%`` is written ``%25`` and ``.`` is written
``%2E``; the empty token (some vocabularies have one) is ``%``. Any other text is unchanged,
so ``##ing`` stays ``##ing`` and keys stay readable in the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from colbert_rerank.checks import check_positive_ints

# Lucene's FeatureField keeps the top 16 bits of a float32 (sign, exponent, 7+1 mantissa bits).
_LUCENE_SHIFT = 15
MIN_FEATURE_VALUE = float(np.finfo(np.float32).tiny)  # smallest positive normal float32


def encode_key(token: str) -> str:
    """Feature key for a vocabulary token (reversible, dot-free, never empty).

    >>> encode_key("u.s."), encode_key("100%"), encode_key("##ing")
    ('u%2Es%2E', '100%25', '##ing')
    """
    if token == "":
        return "%"
    return token.replace("%", "%25").replace(".", "%2E")


def decode_key(key: str) -> str:
    """The token a feature key stands for (inverse of :func:`encode_key`).

    Raises:
        ValueError: the key was not made by :func:`encode_key` (e.g. written by another tool).
    """
    if key == "%":
        return ""
    out: list[str] = []
    i = 0
    while i < len(key):
        if key[i] == "%":
            code = key[i + 1 : i + 3]
            if code == "25":
                out.append("%")
            elif code.upper() == "2E":
                out.append(".")
            else:
                raise ValueError(
                    f"Feature key {key!r} has a bad escape at position {i}: only %25 and %2E "
                    "are used. Was this field written by splade-es?"
                )
            i += 3
        else:
            out.append(key[i])
            i += 1
    return "".join(out)


def lucene_stored(weights: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The values a ``rank_features``/``sparse_vector`` field returns for ``weights``.

    Lucene stores ``floatToIntBits(w) >>> 15``: the mantissa is truncated to 8 explicit bits
    (relative error below 2**-8 = 0.39%, always downwards).
    """
    values = np.ascontiguousarray(weights, dtype=np.float32)
    bits = values.view(np.uint32) >> np.uint32(_LUCENE_SHIFT) << np.uint32(_LUCENE_SHIFT)
    return bits.view(np.float32)


@dataclass(frozen=True, eq=False)
class SparseVector:
    """Token weights of one text.

    Attributes:
        ids: vocabulary ids, int64, shape ``[n]``, ordered by weight, highest first.
        weights: float32 weights, shape ``[n]``, all strictly positive.
    """

    ids: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        if self.ids.shape != self.weights.shape or self.ids.ndim != 1:
            raise ValueError(
                f"ids {self.ids.shape} and weights {self.weights.shape} must be equal 1-d shapes"
            )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def dot(self, other: SparseVector) -> float:
        """Exact dot product with another vector (float64 accumulation)."""
        common, mine, theirs = np.intersect1d(self.ids, other.ids, return_indices=True)
        if common.size == 0:
            return 0.0
        return float(
            np.dot(self.weights[mine].astype(np.float64), other.weights[theirs].astype(np.float64))
        )


@dataclass(frozen=True)
class Pruning:
    """A named pruning policy: keep at most ``top_k`` terms, each above ``min_weight``.

    Attributes:
        top_k: maximum number of terms kept (highest weights), ``None`` for no cap.
        min_weight: terms with weight ``<= min_weight`` are dropped (0 keeps every positive).
    """

    top_k: int | None = None
    min_weight: float = 0.0

    def __post_init__(self) -> None:
        check_positive_ints(self, "top_k", optional=True)
        if not (isinstance(self.min_weight, int | float) and self.min_weight >= 0):
            raise ValueError(f"min_weight={self.min_weight!r}: expected a number >= 0.")

    @property
    def name(self) -> str:
        """The policy as a short label for reports (e.g. ``top_k=128``)."""
        parts = []
        if self.top_k is not None:
            parts.append(f"top_k={self.top_k}")
        if self.min_weight > 0:
            parts.append(f"min_weight={self.min_weight:g}")
        return ",".join(parts) or "none"


def prune(
    ids: npt.NDArray[np.int64], weights: npt.NDArray[np.float32], policy: Pruning
) -> tuple[SparseVector, int]:
    """Apply ``policy`` to the non-zero terms of one text.

    Returns:
        The pruned vector (weights descending) and how many positive terms were removed.
    """
    floor = max(policy.min_weight, 0.0)
    positive = weights > 0
    keep = weights > floor
    removed = int(positive.sum() - keep.sum())
    ids, weights = ids[keep], weights[keep]
    order = np.argsort(-weights, kind="stable")
    if policy.top_k is not None and order.size > policy.top_k:
        removed += int(order.size - policy.top_k)
        order = order[: policy.top_k]
    # Lucene refuses subnormal values: a weight that small carries no signal anyway.
    order = order[weights[order] >= MIN_FEATURE_VALUE]
    return SparseVector(ids[order].astype(np.int64), weights[order].astype(np.float32)), removed


class FeatureVocabulary:
    """Maps vocabulary ids to feature keys and back, checked one-to-one.

    Args:
        tokens: the vocabulary, ``tokens[i]`` being the token of id ``i``.

    Raises:
        ValueError: two ids would share a key (their tokens are equal strings).
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        self.keys: list[str] = [encode_key(t) for t in tokens]
        self.ids: dict[str, int] = {}
        for index, key in enumerate(self.keys):
            previous = self.ids.setdefault(key, index)
            if previous != index:
                raise ValueError(
                    f"Vocabulary ids {previous} and {index} are both {tokens[index]!r}: their "
                    "weights would merge into one feature. Fix the tokenizer's vocabulary."
                )

    def __len__(self) -> int:
        return len(self.keys)

    def to_features(self, vector: SparseVector) -> dict[str, float]:
        """``{key: weight}`` for a ``rank_features``/``sparse_vector`` field."""
        return {self.keys[i]: float(w) for i, w in zip(vector.ids, vector.weights, strict=True)}

    def from_features(self, features: Mapping[str, float]) -> SparseVector:
        """The vector stored in a field (ids of keys this vocabulary does not know raise)."""
        ids, weights = [], []
        for key, value in features.items():
            index = self.ids.get(key)
            if index is None:
                raise ValueError(
                    f"Feature key {key!r} is not in this model's vocabulary: the field was "
                    "written with another model or by another tool."
                )
            ids.append(index)
            weights.append(value)
        array_ids = np.asarray(ids, dtype=np.int64)
        array_weights = np.asarray(weights, dtype=np.float32)
        order = np.argsort(-array_weights, kind="stable")
        return SparseVector(array_ids[order], array_weights[order])

    def split_features(self, features: Mapping[str, Any]) -> tuple[SparseVector, dict[str, Any]]:
        """The stored vector, and the stored entries this vocabulary cannot read, kept raw.

        An entry is foreign when its key is not one :meth:`to_features` writes (another
        model, another tool, a non-canonical escape such as ``%2e``) or its value is not a
        positive finite number. Foreign entries never match this model's query keys, so they
        add nothing to a score; they are returned so that callers show them, not drop them.
        """
        known: dict[str, float] = {}
        foreign: dict[str, Any] = {}
        for key, value in features.items():
            weight = _positive_number(value)
            if key in self.ids and weight is not None:
                known[key] = weight
            else:
                foreign[key] = value
        return self.from_features(known), foreign

    def tokens(self, vector: SparseVector) -> list[str]:
        return [decode_key(self.keys[i]) for i in vector.ids]


def _positive_number(value: Any) -> float | None:
    """``value`` as a positive finite float (numbers and numeric strings), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0 < number < float("inf") else None
