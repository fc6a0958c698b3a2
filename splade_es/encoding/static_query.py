"""A doc-only SPLADE model's query side: one learned weight per vocabulary token, no model.

``splade-es train splade --query-encoder static`` trains the document encoder together with a
per-token query weight table (OpenSearch's "inference-free" or "doc-only" mode). The result is
saved as an ordinary SPLADE folder (MLM + SPLADE pooling: the document encoder) plus
:data:`FILE`, the table: float32 ``[vocab]`` under the key :data:`KEY`. The
:class:`~splade_es.encoding.encoder.SpladeEncoder` loads such a folder like any other and, seeing
the file, encodes queries with the table: every distinct token of the query gets its weight.

Two policies, both counted at load: special tokens ([CLS], [SEP], padding) get weight 0, as
in training, where queries are tokenised without them; tokens whose learned weight is ``<= 0``
are dropped from queries (``rank_features`` holds positive weights only, and such a token can
only lower a document's score).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["FILE", "KEY", "StaticQueryWeights", "load_static_weights", "save_static_weights"]

logger = logging.getLogger(__name__)

FILE = "query_weights.safetensors"
KEY = "query_weights"


@dataclass(frozen=True, eq=False)
class StaticQueryWeights:
    """The query weight of every vocabulary token.

    Attributes:
        weights: float32 ``[vocab]``; special tokens are 0.
        sha256: hash of the file's weights (part of the encoder's fingerprint).
        dropped: vocabulary tokens (special ones excluded) whose weight is ``<= 0``.
    """

    weights: torch.Tensor
    sha256: str
    dropped: int

    def pooled(self, batch_ids: list[list[int]]) -> torch.Tensor:
        """Query weights ``[batch, vocab]`` of tokenised texts: each present token's weight.

        Example:
            >>> table = StaticQueryWeights(torch.tensor([0.0, 2.0, -1.0, 0.5]), "x", 1)
            >>> table.pooled([[1, 1, 2], [3]]).tolist()
            [[0.0, 2.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.5]]
        """
        out = torch.zeros(len(batch_ids), self.weights.shape[0], dtype=torch.float32)
        for row, ids in enumerate(batch_ids):
            index = torch.tensor(ids, dtype=torch.long)
            out[row, index] = self.weights[index]
        return out


def save_static_weights(folder: str | Path, weights: torch.Tensor) -> Path:
    """Write ``weights`` (``[vocab]``) as :data:`FILE` in ``folder``; return the file's path."""
    from safetensors.torch import save_file

    if weights.ndim != 1 or not bool(torch.isfinite(weights).all()):
        raise ValueError(
            f"Static query weights must be one finite float per token, got shape "
            f"{tuple(weights.shape)}: pass the table's weight vector."
        )
    path = Path(folder) / FILE
    save_file({KEY: weights.detach().float().cpu().contiguous()}, str(path))
    return path


def load_static_weights(
    folder: str, vocab_size: int, special_ids: Iterable[int]
) -> StaticQueryWeights | None:
    """The table in ``folder``, or ``None`` when the folder has none (a full SPLADE model).

    Raises:
        ValueError: the file does not hold one finite weight per vocabulary token.
    """
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        weights = load_file(str(path)).get(KEY)
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"Cannot read {path}: {error}. Retrain or remove the file.") from error
    if weights is None or weights.shape != (vocab_size,) or not torch.isfinite(weights).all():
        shape = None if weights is None else tuple(weights.shape)
        raise ValueError(
            f"{path} must hold {KEY!r}, one finite float per token ({vocab_size}), got {shape}: "
            "it was saved for another tokenizer; retrain with this model's tokenizer."
        )
    weights = weights.float().clone()
    digest = hashlib.sha256(weights.numpy().tobytes()).hexdigest()[:16]
    special = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
    weights[special] = 0.0
    dropped = int((weights <= 0).sum()) - int(special.numel())
    if dropped:
        logger.info("%s: %d tokens have a weight <= 0; queries drop them.", path, dropped)
    return StaticQueryWeights(weights, digest, dropped)
