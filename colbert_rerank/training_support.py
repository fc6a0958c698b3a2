"""What the SPLADE and ColBERT trainers share: the schedule, trainer arguments, the log file.

Both trainers are sentence-transformers' (``SparseEncoderTrainer``, ``MultiVectorEncoderTrainer``,
on Hugging Face's ``Trainer``): this module only turns a frozen :class:`Schedule` into their
arguments and records every log line (losses, λ, sparsity, dev metrics) to ``training_log.jsonl``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from colbert_rerank.checks import check_positive_ints

__all__ = [
    "LOG_FILE",
    "Precision",
    "Schedule",
    "as_dataset",
    "dev_metrics",
    "example_rows",
    "latest_checkpoint",
    "log_callback",
    "mixed_precision",
    "read_log",
    "run_trainer",
    "training_arguments",
]

Precision = Literal["auto", "fp32", "fp16", "bf16"]
LOG_FILE = "training_log.jsonl"


@dataclass(frozen=True)
class Schedule:
    """How long and how to train.

    Attributes:
        output_dir: checkpoints, the log and the final model (under ``final/``).
        epochs: passes over the examples (``max_steps`` wins when set).
        max_steps: stop after this many optimiser steps.
        batch_size: examples per step (each brings its positive and negatives; the other
            examples' documents are in-batch negatives).
        learning_rate: peak learning rate (linear warm-up over ``lr_warmup_ratio``, then decay).
        seed: seeds data order, initialisation and dropout (same seed, same model on CPU).
        precision: ``auto`` (bf16 on a GPU that has it, else fp16 on GPU, fp32 on CPU).
        eval_steps: evaluate on the dev split every N steps (and at the end).
        save_steps: write a resumable checkpoint every N steps.
        logging_steps: log losses every N steps.
        resume: continue from the newest checkpoint in ``output_dir`` if there is one. The
            model weights come back from its ``model.safetensors``, but the Hugging Face
            Trainer reads the optimiser, scheduler and RNG state (``optimizer.pt``,
            ``scheduler.pt``, ``rng_state.pth``) with ``torch.load(weights_only=True)``, a
            restricted unpickler: resume only from an ``output_dir`` your own runs wrote.
        progress: progress bars.
    """

    output_dir: Path
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 16
    learning_rate: float = 2e-5
    lr_warmup_ratio: float = 0.1
    seed: int = 42
    precision: Precision = "auto"
    eval_steps: int = 50
    save_steps: int = 100
    logging_steps: int = 10
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_positive_ints(self, "batch_size", "eval_steps", "save_steps", "logging_steps")
        check_positive_ints(self, "max_steps", optional=True)
        if not self.epochs > 0:
            raise ValueError(f"epochs={self.epochs!r}: expected > 0.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate!r}: expected > 0.")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"precision={self.precision!r}: expected auto, fp32, fp16 or bf16.")

    def total_steps(self, examples: int) -> int:
        """Optimiser steps the run will take over ``examples`` rows."""
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(examples / self.batch_size) * math.ceil(self.epochs))


def mixed_precision(precision: Precision, device: str) -> tuple[bool, bool]:
    """``(fp16, bf16)`` flags for the trainer, or ValueError for a precision the device lacks."""
    import torch

    on_gpu = device.startswith("cuda")
    if precision == "auto":
        if not on_gpu:
            return False, False
        return (False, True) if torch.cuda.is_bf16_supported() else (True, False)
    if precision == "fp16" and not on_gpu:
        raise ValueError("precision fp16 needs a CUDA GPU: use fp32 (or bf16) on CPU.")
    return precision == "fp16", precision == "bf16"


def training_arguments(
    args_class: Any, schedule: Schedule, device: str, has_dev: bool, batch_sampler: Any = None
) -> Any:
    """The sentence-transformers training arguments for ``schedule``."""
    fp16, bf16 = mixed_precision(schedule.precision, device)
    extra: dict[str, Any] = {}
    if batch_sampler is not None:
        extra["batch_sampler"] = batch_sampler
    return args_class(
        output_dir=str(schedule.output_dir),
        num_train_epochs=schedule.epochs,
        max_steps=schedule.max_steps if schedule.max_steps is not None else -1,
        per_device_train_batch_size=schedule.batch_size,
        per_device_eval_batch_size=schedule.batch_size,
        learning_rate=schedule.learning_rate,
        warmup_steps=schedule.lr_warmup_ratio,  # a float below 1 is a ratio of the run
        seed=schedule.seed,
        data_seed=schedule.seed,
        fp16=fp16,
        bf16=bf16,
        eval_strategy="steps" if has_dev else "no",
        eval_steps=schedule.eval_steps if has_dev else None,
        save_strategy="steps",
        save_steps=schedule.save_steps,
        save_total_limit=2,
        logging_steps=schedule.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=not schedule.progress,
        use_cpu=not device.startswith("cuda") and not device.startswith("mps"),
        dataloader_drop_last=False,
        **extra,
    )


def as_dataset(rows: Sequence[Mapping[str, Any]]) -> Any:
    """A ``datasets.Dataset`` with one column per key (the trainers' input)."""
    try:
        from datasets import Dataset
    except ImportError as error:
        raise ImportError(
            "Training needs the 'datasets' and 'accelerate' packages: "
            "pip install 'splade-es[train]'."
        ) from error
    if not rows:
        raise ValueError("No training example: check the qrels split and the triples file.")
    columns = list(rows[0])
    return Dataset.from_dict({c: [row[c] for row in rows] for c in columns})


def latest_checkpoint(output_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` folder in ``output_dir`` (to resume from), if any."""
    found = [p for p in output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    if not found:
        return None
    return str(max(found, key=lambda p: int(p.name.split("-")[-1])))


def log_callback(path: Path) -> Any:
    """A trainer callback appending every log entry (with its step) to ``path`` as JSONL."""
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if state.is_world_process_zero and logs:
                record = {"step": state.global_step, "epoch": state.epoch, **logs}
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, default=float) + "\n")

    path.parent.mkdir(parents=True, exist_ok=True)
    return JsonlLog()


def read_log(path: Path) -> list[dict[str, Any]]:
    """The entries written by :func:`log_callback`."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def run_trainer(trainer: Any, schedule: Schedule) -> Any:
    """Train (resuming from the newest checkpoint when asked); return the train output.

    Resuming trusts the checkpoint folder: the Trainer restores optimiser, scheduler and RNG
    state from its pickle-format ``.pt``/``.pth`` files (``torch.load(weights_only=True)``).
    Only resume from checkpoints your own run wrote into ``schedule.output_dir``.
    """
    checkpoint = latest_checkpoint(schedule.output_dir) if schedule.resume else None
    return trainer.train(resume_from_checkpoint=checkpoint)


def example_rows(
    examples: Sequence[Any], margins: Sequence[Sequence[float]] | None = None
) -> list[dict[str, Any]]:
    """Trainer rows ``query, positive, negative_1..n`` (and ``label``: teacher margins) from
    objects with ``query``, ``positive`` and ``negatives``."""
    widths = {len(e.negatives) for e in examples}
    if len(widths) > 1:
        raise ValueError(f"examples have different numbers of negatives: {sorted(widths)}.")
    if margins is not None and len(margins) != len(examples):
        raise ValueError(f"{len(margins)} teacher margins for {len(examples)} examples.")
    rows = []
    for position, example in enumerate(examples):
        row: dict[str, Any] = {"query": example.query, "positive": example.positive}
        for number, negative in enumerate(example.negatives, start=1):
            row[f"negative_{number}"] = negative
        if margins is not None:
            row["label"] = [float(m) for m in margins[position]]
        rows.append(row)
    return rows


def dev_metrics() -> dict[str, Any]:
    """The cut-offs both trainers' dev evaluators report (keyword arguments of
    sentence-transformers' IR evaluators): MRR/nDCG/MAP@10, accuracy@1, P/R@10 and @100."""
    return {
        "mrr_at_k": [10],
        "ndcg_at_k": [10],
        "accuracy_at_k": [1],
        "precision_recall_at_k": [10, 100],
        "map_at_k": [10],
    }
