"""The direct query path: tokenise, one forward pass, keep the real tokens, L2-normalise.

sentence-transformers' ``encode_query`` adds a few milliseconds of per-call bookkeeping to a
forward pass that itself takes a few; for the zero-shot layout (a plain transformer, no query
markers, no ``[MASK]`` expansion) this path does the same work directly, on torch or on ONNX
Runtime (:mod:`colbert_rerank.onnx_runtime`). It is only ever used after :func:`check_against`
has found it equal to the reference path on probe texts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "PROBES",
    "Forward",
    "QueryBackend",
    "QueryPath",
    "check_against",
    "tokenize",
    "torch_forward",
]

QueryBackend = Literal["auto", "torch", "onnx"]
Rows = list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]
Forward = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.float32]]

# Short, long (past the length limit), punctuation, accents, digits: what queries look like.
PROBES = (
    "dimension probe",
    "Does aspirin lower the risk of a second heart attack?",
    "ß-catenin, TGF-β & IL-6 (n=12): 0.5% vs. 3%; naïve T-cells.",
    " ".join(["long query"] * 200),
)


def torch_forward(model: Any, device: torch.device) -> Forward:
    """The model's last hidden state through torch, in inference mode."""

    def forward(
        input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            ids = torch.from_numpy(input_ids).to(device)
            mask = torch.from_numpy(attention_mask).to(device)
            hidden = model(input_ids=ids, attention_mask=mask)[0]
            return hidden.float().cpu().numpy()  # type: ignore[no-any-return]

    return forward


def tokenize(
    tokenizer: Any, lock: Any, texts: Sequence[str], max_length: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(input_ids, attention_mask)``, ``[texts, longest]`` int64, padded and truncated to
    ``max_length`` as sentence-transformers does; under ``lock`` (a fast tokenizer keeps its
    padding and truncation settings on the shared Rust object)."""
    with lock:
        batch = tokenizer(
            list(texts),
            padding=True,
            truncation="longest_first",
            max_length=max_length,
            return_tensors="np",
        )
    ids = np.asarray(batch["input_ids"], dtype=np.int64)
    return ids, np.asarray(batch["attention_mask"], dtype=np.int64)


class QueryPath:
    """Queries -> per query ``([tokens, dim]`` unit rows, token ids``).

    Args:
        tokenizer: the model's fast tokenizer (shared: calls hold ``lock``, since padding and
            truncation settings live on the shared Rust object).
        lock: the encoder's tokenisation lock.
        max_length: the query token limit.
        forward: ``(input_ids, attention_mask) -> [batch, tokens, dim]`` hidden states.
        backend: ``torch`` or ``onnx`` (what ``forward`` runs on).
    """

    def __init__(
        self,
        tokenizer: Any,
        lock: threading.RLock,
        max_length: int,
        forward: Forward,
        backend: Literal["torch", "onnx"],
    ) -> None:
        self.tokenizer = tokenizer
        self.lock = lock
        self.max_length = max_length
        self.forward = forward
        self.backend = backend

    def __call__(self, texts: Sequence[str]) -> Rows:
        ids, mask = tokenize(self.tokenizer, self.lock, texts, self.max_length)
        hidden = self.forward(ids, mask)
        rows: Rows = []
        for row in range(len(texts)):
            keep = mask[row].astype(bool)
            vectors = hidden[row][keep].astype(np.float32)
            norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            rows.append((np.ascontiguousarray(vectors / norms), ids[row][keep]))
        return rows


def check_against(path: QueryPath, reference: Callable[[list[str]], Rows], tolerance: float) -> str:
    """Why ``path`` differs from ``reference`` on :data:`PROBES` (``""``: it does not)."""
    expected = reference(list(PROBES))
    got = path(list(PROBES))
    for text, (want, want_ids), (have, have_ids) in zip(PROBES, expected, got, strict=True):
        if want.shape != have.shape or not np.array_equal(want_ids, have_ids):
            return f"probe {text[:30]!r}: tokens {have.shape} vs the reference's {want.shape}"
        gap = float(np.abs(want - have).max())
        if gap > tolerance:
            return f"probe {text[:30]!r}: outputs differ by {gap:.2e} (> {tolerance:.0e})"
    return ""
