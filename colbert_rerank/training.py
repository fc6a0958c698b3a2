"""ColBERT training: contrastive loss over positive, in-batch and hard negatives, or MarginMSE
distillation, on sentence-transformers' ``MultiVectorEncoderTrainer``.

Starts from the shipped zero-shot MiniLM (a sentence-embedding checkpoint, turned into a
late-interaction model the same way :class:`~colbert_rerank.encoder.ColbertEncoder` does) or
from any ColBERT checkpoint (Stanford, PyLate, sentence-transformers). With ``dim`` the token
embeddings go through a trained linear projection to ``dim`` dims, initialised with the
principal directions of the start model's document token embeddings (so step 0 already ranks
like the zero-shot model at that size). The saved model loads with ``ColbertEncoder``.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.devices import check_device, pick_device
from colbert_rerank.encoder import (
    DEFAULT_MODEL,
    ColbertConfig,
    ColbertEncoder,
    is_sentence_embedding_model,
    resolve_model_path,
    sentence_length,
)
from colbert_rerank.loading import SAFETENSORS_ONLY, check_safe_weights
from colbert_rerank.projection import fit_projection
from colbert_rerank.training_support import (
    LOG_FILE,
    Schedule,
    as_dataset,
    dev_metrics,
    example_rows,
    log_callback,
    run_trainer,
    training_arguments,
)

__all__ = [
    "ColbertTrainConfig",
    "ExampleLike",
    "Loss",
    "build_loss",
    "dev_evaluator",
    "load_trainable",
    "train_colbert",
]

Loss = Literal["contrastive", "margin-mse"]


class ExampleLike(Protocol):
    """A training row: a query, a judged positive, hard negatives."""

    @property
    def query(self) -> str: ...

    @property
    def positive(self) -> str: ...

    @property
    def negatives(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class ColbertTrainConfig:
    """What to train and how.

    Attributes:
        schedule: epochs, batch, learning rate, seed, precision, checkpoints.
        model: start checkpoint (the zero-shot ``all-MiniLM-L6-v2`` default, or a ColBERT one).
        dim: output dims through a trained projection (zero-shot start only; ``None`` keeps
            the backbone's).
        loss: ``contrastive`` (softmax over positive, in-batch and hard negatives) or
            ``margin-mse`` (needs teacher margins).
        scale: multiplies MaxSim scores inside the softmax.
        device: ``None`` picks CUDA, else CPU.
        projection_sample: documents whose token embeddings initialise the projection.
    """

    schedule: Schedule
    model: str = DEFAULT_MODEL
    dim: int | None = None
    loss: Loss = "contrastive"
    scale: float = 1.0
    device: str | None = None
    projection_sample: int = 256

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.loss not in ("contrastive", "margin-mse"):
            raise ValueError(f"loss={self.loss!r}: expected contrastive or margin-mse.")
        check_positive_ints(self, "dim", optional=True)
        if not self.scale > 0:
            raise ValueError(f"scale={self.scale!r}: expected > 0.")


def _model_type(path: str) -> str | None:
    from sentence_transformers.util import load_file_path

    try:
        config_file = load_file_path(path, "config_sentence_transformers.json")
    except Exception:  # no such file locally or on the hub
        return None
    if config_file is None:
        return None
    value = json.loads(Path(config_file).read_text()).get("model_type")
    return str(value) if value else None


def load_trainable(config: ColbertTrainConfig, device: str, sample: Sequence[str]) -> Any:
    """The MultiVectorEncoder to train, or ValueError for a checkpoint of another kind."""
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    path = check_safe_weights(resolve_model_path(config.model))
    kind = _model_type(path)
    if kind in ("SparseEncoder", "CrossEncoder"):
        raise ValueError(
            f"{config.model!r} is a {kind} checkpoint, not a token-embedding model: start ColBERT "
            f"training from {DEFAULT_MODEL!r}, a sentence-embedding model or a ColBERT checkpoint."
        )
    if not is_sentence_embedding_model(path):
        if config.dim is not None:
            raise ValueError(
                f"dim={config.dim} applies to a zero-shot start only: {config.model!r} already "
                "has its own projection (leave --dim out)."
            )
        return MultiVectorEncoder(path, device=device, model_kwargs=dict(SAFETENSORS_ONLY))
    transformer = Transformer(
        path, max_seq_length=sentence_length(path), model_kwargs=dict(SAFETENSORS_ONLY)
    )
    modules: list[Any] = [transformer]
    if config.dim is not None:
        hidden = transformer.get_embedding_dimension()
        if config.dim > hidden:
            raise ValueError(f"dim={config.dim} exceeds the backbone's {hidden} dims.")
        start = ColbertEncoder(ColbertConfig(model=config.model, device=device))
        tokens = np.concatenate(start.encode_documents(list(sample)).embeddings)
        projection = fit_projection(tokens, config.dim)
        modules.append(
            Dense(
                in_features=hidden,
                out_features=config.dim,
                bias=False,
                activation_function=torch.nn.Identity(),
                init_weight=torch.from_numpy(projection.matrix.T.copy()),
                module_input_name="token_embeddings",
            )
        )
    modules += [
        MultiVectorMask(skiplist_words=list(string.punctuation)),
        Normalize(module_input_name="token_embeddings"),
    ]
    return MultiVectorEncoder(modules=modules, device=device)


def train_colbert(
    config: ColbertTrainConfig,
    examples: Sequence[ExampleLike],
    margins: Sequence[Sequence[float]] | None = None,
    dev: tuple[Mapping[str, str], Mapping[str, str], Mapping[str, set[str]]] | None = None,
) -> Path:
    """Train and save; return ``<output_dir>/final`` (load it with ``ColbertEncoder``).

    Args:
        config: start model, projection, loss, schedule.
        examples: rows with the same number of hard negatives each.
        margins: teacher margins per example (``margin-mse``).
        dev: ``(queries, corpus, relevant ids)`` for nDCG@10 during training.
    """
    from sentence_transformers.multi_vector_encoder import (
        MultiVectorEncoderTrainer,
        MultiVectorEncoderTrainingArguments,
    )

    _check_inputs(config, examples, margins)
    schedule = config.schedule
    device = str(pick_device(config.device))
    torch.manual_seed(schedule.seed)
    sample = [e.positive for e in examples[: config.projection_sample]]
    model = load_trainable(config, device, sample)
    loss = build_loss(config, model)
    evaluator = dev_evaluator(*dev) if dev is not None else None
    args = training_arguments(
        MultiVectorEncoderTrainingArguments, schedule, device, has_dev=evaluator is not None
    )
    trainer = MultiVectorEncoderTrainer(
        model=model,
        args=args,
        train_dataset=as_dataset(
            example_rows(examples, margins if config.loss == "margin-mse" else None)
        ),
        loss=loss,
        evaluator=evaluator,
        callbacks=[log_callback(schedule.output_dir / LOG_FILE)],
    )
    run_trainer(trainer, schedule)
    final = schedule.output_dir / "final"
    model.save_pretrained(str(final))
    return final


def build_loss(config: ColbertTrainConfig, model: Any) -> Any:
    """The training loss for ``config.loss``: in-batch contrastive, or MarginMSE distillation.

    Args:
        config: the loss name and the contrastive softmax scale.
        model: the ``MultiVectorEncoder`` being trained.
    """
    from sentence_transformers.multi_vector_encoder.losses import (
        MultiVectorMarginMSELoss,
        MultiVectorMultipleNegativesRankingLoss,
    )

    if config.loss == "contrastive":
        return MultiVectorMultipleNegativesRankingLoss(model, scale=config.scale)
    return MultiVectorMarginMSELoss(model)


def dev_evaluator(
    queries: Mapping[str, str], corpus: Mapping[str, str], relevant: Mapping[str, set[str]]
) -> Any:
    """In-memory IR evaluation on the dev queries (nDCG@10, MRR@10, recall@100) while training.

    Args:
        queries: dev query text by id.
        corpus: document text by id, the collection the dev queries are ranked in.
        relevant: the relevant document ids of each dev query.
    """
    from sentence_transformers.multi_vector_encoder.evaluation import (
        MultiVectorInformationRetrievalEvaluator,
    )

    return MultiVectorInformationRetrievalEvaluator(
        queries=dict(queries),
        corpus=dict(corpus),
        relevant_docs={q: set(d) for q, d in relevant.items()},
        name="dev",
        write_csv=False,
        **dev_metrics(),
    )


def _check_inputs(
    config: ColbertTrainConfig,
    examples: Sequence[ExampleLike],
    margins: Sequence[Sequence[float]] | None,
) -> None:
    if not examples:
        raise ValueError("No training example.")
    if config.loss == "margin-mse" and margins is None:
        raise ValueError("loss margin-mse needs teacher margins: pass a --teacher.")
    if config.loss == "margin-mse" and not examples[0].negatives:
        raise ValueError("loss margin-mse needs hard negatives: mine them first.")
