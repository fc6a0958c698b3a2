"""SPLADE query weights in one ONNX Runtime call (CPU), checked against the torch path.

A query is a dozen tokens: torch spends most of its forward pass on per-operator overhead,
which ONNX Runtime's fused graph avoids. The exported graph is the whole query computation
(transformer, MLM head, masked max or sum pooling, ``log1p(relu(.))``), so one call gives the
``[batch, vocab]`` weights. Documents keep the torch path (long batches, chunked head).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from colbert_rerank.onnx_runtime import OnnxForward

__all__ = ["QueryWeights", "onnx_query_weights", "padded"]


class QueryWeights(torch.nn.Module):
    """``(input_ids, attention_mask) -> [batch, vocab]`` SPLADE weights."""

    def __init__(
        self,
        mlm: Any,
        head: Callable[[torch.Tensor], torch.Tensor],
        pooling: Literal["max", "sum"],
    ) -> None:
        super().__init__()
        self.mlm = mlm
        self.head = head
        self.pooling = pooling
        self.output_axes = {0: "batch"}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.mlm.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
        logits = self.head(hidden).float()
        keep = attention_mask.unsqueeze(-1).bool()
        if self.pooling == "max":
            pooled = logits.masked_fill(~keep, float("-inf")).amax(dim=1)
            return torch.log1p(torch.relu(pooled))
        return (torch.log1p(torch.relu(logits)) * keep).sum(dim=1)


def padded(batch_ids: list[list[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 arrays, right-padded to the longest sequence."""
    width = max(len(ids) for ids in batch_ids)
    input_ids = np.full((len(batch_ids), width), pad, dtype=np.int64)
    mask = np.zeros((len(batch_ids), width), dtype=np.int64)
    for row, ids in enumerate(batch_ids):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def onnx_query_weights(
    mlm: Any,
    head: Callable[[torch.Tensor], torch.Tensor],
    pooling: Literal["max", "sum"],
    weights_key: str,
    pad: int,
) -> Callable[[list[list[int]]], torch.Tensor]:
    """Tokenised queries -> ``[batch, vocab]`` float32 weights, on ONNX Runtime."""
    forward = OnnxForward(QueryWeights(mlm, head, pooling), f"splade-query-{pooling}-{weights_key}")

    def weights(batch_ids: list[list[int]]) -> torch.Tensor:
        return torch.from_numpy(forward(*padded(batch_ids, pad)))

    return weights
