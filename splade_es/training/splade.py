"""SPLADE training: ranking loss + λ_q·reg(queries) + λ_d·reg(documents), λ warmed up.

Built on sentence-transformers' ``SparseEncoderTrainer`` and ``SpladeLoss``: the ranking loss is
its ``SparseMultipleNegativesRankingLoss`` (InfoNCE over the positive, in-batch and hard
negatives; the default) or ``SparseMarginMSELoss`` (distillation from teacher margins), or the
margin ranking loss below; the regulariser is its ``FlopsLoss`` (default) or the L1 norm below;
λ follows its quadratic ``SpladeRegularizerWeightSchedulerCallback`` over the first
``lambda_warmup_steps`` steps. Only the margin ranking loss and L1 are written here (the library
has neither for sparse encoders).

Logged at each evaluation (``training_log.jsonl`` in the output folder): ranking loss,
regulariser terms, λ_q and λ_d, average non-zero terms per query and per document, the FLOPS
estimate, and nDCG@10 on the dev split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.devices import check_device, pick_device
from colbert_rerank.loading import SAFETENSORS_ONLY, check_safe_weights
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
from splade_es.encoding.encoder import resolve_model_path
from splade_es.encoding.mlm_heads import mlm_head
from splade_es.training.data import Judgements, TrainingExample
from splade_es.training.doc_only import (
    TABLE_PARAMETER,
    doc_only_model,
    idf_weights,
    router_mapping,
    save_doc_only,
)

logger = logging.getLogger(__name__)

RankingLoss = Literal["infonce", "margin", "margin-mse"]
Regularizer = Literal["flops", "l1"]
QueryEncoder = Literal["model", "static"]


@dataclass(frozen=True)
class SpladeTrainConfig:
    """What to train and how.

    Attributes:
        model: the starting checkpoint (HF id, local folder, ``splade-tiny``): an MLM model
            with SPLADE pooling, or a bare MLM checkpoint (gets max pooling).
        loss: ``infonce`` (contrastive softmax), ``margin`` (hinge on positive minus negative
            score) or ``margin-mse`` (distillation: needs teacher margins).
        regularizer: ``flops`` (squared mean activation per term) or ``l1``.
        lambda_query / lambda_document: final regulariser weights (λ_q, λ_d).
        lambda_warmup_steps: steps over which λ grows quadratically from 0.
        margin: the hinge margin of the ``margin`` loss.
        scale: multiplies scores inside the InfoNCE softmax (1 for raw SPLADE dot products).
        document_max_length: tokens kept per text while training (queries are shorter).
        device: ``None`` picks CUDA, then MPS, then CPU.
        query_encoder: ``model`` trains the usual SPLADE (queries through the model);
            ``static`` a doc-only model (queries weighted by a learned per-token table that
            starts from IDF; no query regulariser; see :mod:`splade_es.training.doc_only`).
        table_learning_rate: the static table's learning rate (``static`` only).
        schedule: epochs, batch, learning rate, seed, precision, checkpoints.
    """

    schedule: Schedule
    model: str = "splade-tiny"
    loss: RankingLoss = "infonce"
    regularizer: Regularizer = "flops"
    lambda_query: float = 1e-3
    lambda_document: float = 1e-3
    lambda_warmup_steps: int = 100
    margin: float = 1.0
    scale: float = 1.0
    document_max_length: int = 256
    device: str | None = None
    dev_batch_size: int = 32
    query_encoder: QueryEncoder = "model"
    table_learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.loss not in ("infonce", "margin", "margin-mse"):
            raise ValueError(f"loss={self.loss!r}: expected infonce, margin or margin-mse.")
        if self.regularizer not in ("flops", "l1"):
            raise ValueError(f"regularizer={self.regularizer!r}: expected flops or l1.")
        for name in ("lambda_query", "lambda_document"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(
                    f"{name}={value!r}: λ must be >= 0 (0 turns the regulariser off; papers "
                    "use 1e-4..1e-1)."
                )
        if self.query_encoder not in ("model", "static"):
            raise ValueError(
                f"query_encoder={self.query_encoder!r}: expected model (full SPLADE) or static "
                "(doc-only: a learned per-token query table)."
            )
        if not self.table_learning_rate > 0:
            raise ValueError(f"table_learning_rate={self.table_learning_rate!r}: expected > 0.")
        if self.lambda_warmup_steps < 0:
            raise ValueError(f"lambda_warmup_steps={self.lambda_warmup_steps!r}: expected >= 0.")
        check_positive_ints(self, "document_max_length")


class MarginRankingLoss(nn.Module):
    """``mean(relu(margin - s(q, d+) + s(q, d-)))`` over every hard negative (dot product)."""

    def __init__(self, model: Any, margin: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.margin = margin

    def compute_loss_from_embeddings(
        self, embeddings: list[torch.Tensor], labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        query, positive, *negatives = embeddings
        if not negatives:
            raise ValueError("The margin loss needs hard negatives: mine them first.")
        positive_scores = (query * positive).sum(dim=-1)
        hinges = [
            torch.relu(self.margin - positive_scores + (query * n).sum(dim=-1)) for n in negatives
        ]
        return torch.stack(hinges).mean()

    def forward(self, sentence_features: Any, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError("Use MarginRankingLoss inside SpladeLoss.")


class L1Regularizer(nn.Module):
    """Mean L1 norm of the vectors: pushes every weight down, unlike FLOPS, which pushes
    hardest on the terms many documents share."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def compute_loss_from_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings.abs().sum(dim=1).mean()


def load_trainable(model: str, device: str, document_max_length: int) -> Any:
    """The SparseEncoder to train, or ValueError if the checkpoint is not a SPLADE/MLM model."""
    from sentence_transformers import SparseEncoder

    path = check_safe_weights(resolve_model_path(model))
    try:
        encoder = SparseEncoder(path, device=device, model_kwargs=dict(SAFETENSORS_ONLY))
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot load SPLADE model {model!r} to train: {error}") from error
    names = [type(m).__name__ for m in encoder]
    backbone = getattr(encoder[0], "auto_model", None)
    if len(names) != 2 or names[1] != "SpladePooling" or mlm_head(backbone) is None:
        raise ValueError(
            f"{model!r} has modules {names}, not an MLM model with SPLADE pooling: start SPLADE "
            "training from a SPLADE checkpoint (naver/splade-v3, splade-tiny) or an MLM "
            "checkpoint (bert-base-uncased), not a sentence-embedding or ColBERT model."
        )
    encoder.max_seq_length = document_max_length
    return encoder


def dev_evaluator(dev: Judgements, corpus: Mapping[str, str], batch_size: int) -> Any:
    """In-memory IR evaluation on the dev queries (nDCG@10, active dims, FLOPS)."""
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    relevant = {q: {d for d, r in dev.qrels[q].items() if r > 0 and d in corpus} for q in dev.qrels}
    return SparseInformationRetrievalEvaluator(
        queries=dict(dev.queries),
        corpus=dict(corpus),
        relevant_docs=relevant,
        name="dev",
        batch_size=batch_size,
        write_csv=False,
        **dev_metrics(),
    )


def build_loss(config: SpladeTrainConfig, encoder: Any) -> Any:
    from sentence_transformers.sparse_encoder.losses import (
        SparseMarginMSELoss,
        SparseMultipleNegativesRankingLoss,
        SpladeLoss,
    )

    ranking: nn.Module
    if config.loss == "infonce":
        ranking = SparseMultipleNegativesRankingLoss(encoder, scale=config.scale)
    elif config.loss == "margin":
        ranking = MarginRankingLoss(encoder, config.margin)
    else:
        ranking = SparseMarginMSELoss(encoder)
    regularizers: dict[str, Any] = {}
    if config.regularizer == "l1":
        regularizers = {
            "document_regularizer": L1Regularizer(encoder),
            "query_regularizer": L1Regularizer(encoder),
        }
    if config.query_encoder == "static":
        regularizers.pop("query_regularizer", None)  # the table has no regulariser
    return SpladeLoss(
        encoder,
        loss=ranking,
        document_regularizer_weight=config.lambda_document,
        query_regularizer_weight=config.lambda_query if config.query_encoder == "model" else None,
        **regularizers,
    )


def train_splade(
    config: SpladeTrainConfig,
    examples: Sequence[TrainingExample],
    margins: Sequence[Sequence[float]] | None = None,
    dev: tuple[Judgements, Mapping[str, str]] | None = None,
    idf_texts: Sequence[str] = (),
) -> Path:
    """Train and save; return the folder of the final model (``<output_dir>/final``).

    Args:
        config: model, loss, λ and schedule.
        examples: the training rows (all with the same number of hard negatives).
        margins: teacher margins ``s(q, d+) - s(q, d-_i)`` per example (``margin-mse`` only).
        dev: dev judgements and the corpus to rank them in (for the logged nDCG@10).
        idf_texts: documents whose IDF starts the static query table (``static`` only; by
            default the examples' own documents).

    The saved folder loads with ``SpladeEncoder(EncoderConfig(model=<folder>))``; a doc-only
    model's folder also holds its query table, which the encoder then uses for queries.
    """
    _check_inputs(config, examples, margins)
    schedule = config.schedule
    device = str(pick_device(config.device))
    torch.manual_seed(schedule.seed)
    encoder = load_trainable(config.model, device, config.document_max_length)
    if config.query_encoder == "static":
        texts = list(idf_texts) or sorted({t for e in examples for t in (e.positive, *e.negatives)})
        size = encoder[0].auto_model.config.vocab_size  # the document side's output width
        idf = idf_weights(texts, encoder.tokenizer, config.document_max_length, size)
        encoder = doc_only_model(encoder, idf)
    dataset = as_dataset(example_rows(examples, margins))
    trainer = _trainer(config, encoder, dataset, dev, device)
    run_trainer(trainer, schedule)
    final = schedule.output_dir / "final"
    if config.query_encoder == "static":
        save_doc_only(encoder, final)
    else:
        encoder.save_pretrained(str(final))
    return final


def _check_inputs(
    config: SpladeTrainConfig,
    examples: Sequence[TrainingExample],
    margins: Sequence[Sequence[float]] | None,
) -> None:
    if config.loss == "margin-mse" and margins is None:
        raise ValueError("loss margin-mse needs teacher margins: pass a --teacher.")
    if config.loss != "margin-mse" and margins is not None:
        raise ValueError(f"Teacher margins are only used by margin-mse, not {config.loss}.")
    if config.loss in ("margin", "margin-mse") and not examples[0].negatives:
        raise ValueError(f"loss {config.loss} needs hard negatives: mine them first.")


def _trainer(
    config: SpladeTrainConfig,
    encoder: Any,
    dataset: Any,
    dev: tuple[Judgements, Mapping[str, str]] | None,
    device: str,
) -> Any:
    """sentence-transformers' trainer with the λ warm-up, the dev evaluator and the log."""
    from sentence_transformers.sparse_encoder import (
        SparseEncoderTrainer,
        SparseEncoderTrainingArguments,
    )
    from sentence_transformers.sparse_encoder.callbacks import (
        SpladeRegularizerWeightSchedulerCallback,
    )

    schedule = config.schedule
    loss = build_loss(config, encoder)
    total = schedule.total_steps(len(dataset))
    warmup = SpladeRegularizerWeightSchedulerCallback(
        loss,
        scheduler_type="quadratic",
        warmup_ratio=min(1.0, max(config.lambda_warmup_steps, 1) / total),
    )
    evaluator = dev_evaluator(dev[0], dev[1], config.dev_batch_size) if dev else None
    args = training_arguments(
        SparseEncoderTrainingArguments, schedule, device, has_dev=evaluator is not None
    )
    if config.query_encoder == "static":
        args.router_mapping = router_mapping(dataset.column_names)
        args.learning_rate_mapping = {TABLE_PARAMETER: config.table_learning_rate}
    return SparseEncoderTrainer(
        model=encoder,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[warmup, log_callback(schedule.output_dir / LOG_FILE)],
    )
