"""Teacher margins for MarginMSE distillation: ``s(q, d+) - s(q, d-_i)`` from a stronger model.

Teachers: a ColBERT model (MaxSim over its token embeddings, via ``colbert_rerank``) or a
cross-encoder (sentence-transformers' ``CrossEncoder``), named as ``colbert:<model>`` or
``cross-encoder:<model>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from colbert_rerank.progress import progress_bar
from splade_es.training.data import TrainingExample

TeacherKind = Literal["colbert", "cross-encoder"]
Scorer = Callable[[str, list[str]], list[float]]


@dataclass(frozen=True)
class TeacherConfig:
    """``kind`` and ``model`` (HF id, local folder, or an alias the kind knows)."""

    kind: TeacherKind
    model: str
    device: str | None = None
    batch_size: int = 32

    @classmethod
    def parse(cls, spec: str, device: str | None = None) -> TeacherConfig:
        """``colbert:<model>`` or ``cross-encoder:<model>``."""
        kind, _, model = spec.partition(":")
        if kind not in ("colbert", "cross-encoder") or not model:
            raise ValueError(
                f"teacher {spec!r}: expected colbert:<model> (e.g. colbert:all-MiniLM-L6-v2) or "
                "cross-encoder:<model> (e.g. cross-encoder:cross-encoder/ms-marco-MiniLM-L6-v2)."
            )
        return cls(kind, model, device)  # type: ignore[arg-type]


def teacher_margins(
    config: TeacherConfig, examples: Sequence[TrainingExample], progress: bool = True
) -> list[list[float]]:
    """Per example, the teacher's positive score minus each negative's score."""
    if not examples or not examples[0].negatives:
        raise ValueError("Distillation needs examples with hard negatives: mine them first.")
    scorer = _colbert_scorer(config) if config.kind == "colbert" else _cross_encoder_scorer(config)
    margins = []
    bar = progress_bar(
        examples, total=len(examples), desc="teacher scores", unit="example", enabled=progress
    )
    for example in bar:
        scores = scorer(example.query, [example.positive, *example.negatives])
        margins.append([scores[0] - s for s in scores[1:]])
    return margins


def _colbert_scorer(config: TeacherConfig) -> Scorer:
    from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
    from colbert_rerank.maxsim import maxsim_reference

    encoder = ColbertEncoder(
        ColbertConfig(model=config.model, device=config.device, batch_size=config.batch_size)
    )

    def score(query: str, documents: list[str]) -> list[float]:
        q = torch.from_numpy(encoder.encode_queries([query])[0])
        docs = [torch.from_numpy(d) for d in encoder.encode_documents(documents).embeddings]
        return [float(s) for s in maxsim_reference(q, docs)]

    return score


def _cross_encoder_scorer(config: TeacherConfig) -> Scorer:
    from sentence_transformers import CrossEncoder

    try:
        model = CrossEncoder(config.model, device=config.device)
    except OSError as error:
        raise ValueError(f"Cannot load cross-encoder teacher {config.model!r}: {error}") from error

    def score(query: str, documents: list[str]) -> list[float]:
        values = model.predict([(query, d) for d in documents], batch_size=config.batch_size)
        return [float(v) for v in values]

    return score
