"""The direct dense query path: tokenise, one forward pass (ONNX Runtime or torch), mean-pool
over the real tokens, L2-normalise.

sentence-transformers' ``encode`` costs tens of milliseconds per call on a 2-core CPU around
a forward pass of a few (its tail is worse); a first stage encodes one query per call. For the
plain layout (Transformer, mean Pooling, optional Normalize, no prompts) this path does the
same work directly, as the ColBERT query path does (:mod:`colbert_rerank.fast_queries`), and
is used only after it matched the reference on probe texts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from colbert_rerank.fast_queries import PROBES, Forward, tokenize, torch_forward
from colbert_rerank.onnx_runtime import TOLERANCE, HiddenStates, OnnxForward, available

__all__ = ["DenseQueryPath", "direct_query_path"]

logger = logging.getLogger(__name__)

Reference = Callable[[list[str]], npt.NDArray[np.float32]]


class DenseQueryPath:
    """Queries -> ``[n, dim]`` mean-pooled (and, with ``normalize``, unit) float32 rows.

    Args:
        tokenizer: the model's fast tokenizer; calls hold ``lock`` (its padding and truncation
            settings live on the shared Rust object).
        lock: the encoder's lock.
        max_length: the token limit.
        forward: ``(input_ids, attention_mask) -> [batch, tokens, dim]`` hidden states.
        normalize: L2-normalise the pooled rows.
        backend: ``onnx`` or ``torch``.
    """

    def __init__(
        self,
        tokenizer: Any,
        lock: threading.Lock,
        max_length: int,
        forward: Forward,
        normalize: bool,
        backend: Literal["onnx", "torch"],
    ) -> None:
        self.tokenizer = tokenizer
        self.lock = lock
        self.max_length = max_length
        self.forward = forward
        self.normalize = normalize
        self.backend = backend

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        ids, mask = tokenize(self.tokenizer, self.lock, texts, self.max_length)
        hidden = self.forward(ids, mask).astype(np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(pooled, dtype=np.float32)


def direct_query_path(
    model: Any,
    lock: threading.Lock,
    max_length: int,
    normalize: bool,
    weights_sha256: str,
    reference: Reference,
) -> DenseQueryPath | None:
    """The direct path for a sentence-transformers ``model`` on CPU when its layout is the
    plain one and the path matches ``reference`` on :data:`~colbert_rerank.fast_queries.PROBES`
    (ONNX Runtime when installed, else torch); ``None`` otherwise (the caller keeps
    ``encode``)."""
    if not _plain_mean_pooling(model) or model.device.type != "cpu":
        return None
    backbone = model[0].auto_model
    forward: Forward = torch_forward(backbone, model.device)
    backend: Literal["onnx", "torch"] = "torch"
    if available():
        try:
            hidden = HiddenStates(backbone)
            forward = OnnxForward(hidden, f"colbert-hidden-{weights_sha256[:16]}")
            backend = "onnx"
        except Exception as error:  # export or session: any failure means "not this way"
            logger.warning("ONNX Runtime dense query path unavailable (%s): using torch.", error)
    path = DenseQueryPath(model.tokenizer, lock, max_length, forward, normalize, backend)
    tolerance = TOLERANCE if backend == "onnx" else 1e-5
    gap = float(np.abs(path(list(PROBES)) - reference(list(PROBES))).max())
    if gap > tolerance:
        logger.warning("Direct dense query path differs by %.1e: using encode.", gap)
        return None
    return path


def _plain_mean_pooling(model: Any) -> bool:
    """Transformer, then mean-only Pooling, then at most a Normalize; no prompts."""
    names = [type(module).__name__ for module in model]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return False
    if any((getattr(model, "prompts", None) or {}).values()):
        return False
    pooling = model[1]
    mode = getattr(pooling, "pooling_mode", None)  # sentence-transformers >= 5: one name
    if isinstance(mode, str):
        return mode == "mean"
    return bool(getattr(pooling, "pooling_mode_mean_tokens", False)) and not any(
        getattr(pooling, f"pooling_mode_{name}", False)
        for name in ("cls_token", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens")
    )
