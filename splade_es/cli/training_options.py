"""The options of the ``splade-es train`` commands: training data and schedule, as objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from colbert_rerank.training_support import Precision, Schedule
from splade_es.cli.options import NON_NEGATIVE_INT, POSITIVE_INT, device_option, option_group
from splade_es.training.data import (
    Judgements,
    TrainingExample,
    build_examples,
    dev_corpus,
    load_judgements,
    read_triples,
    split_dev,
)
from splade_es.training.negatives import load_negatives

POSITIVE_FLOAT = click.FloatRange(min=0.0, min_open=True)


@dataclass(frozen=True)
class TrainingData:
    """Examples, the dev judgements (or ``None``), the dev corpus, and every document text
    (the corpus, or the triples' own documents: a doc-only model's IDF starts there)."""

    examples: list[TrainingExample]
    dev: Judgements | None
    dev_corpus: dict[str, str]
    documents: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataOptions:
    """Where the training examples come from (``--corpus`` or ``--triples``) and the dev split.

    Attributes:
        dataset: BEIR folder; exactly one of it and ``triples``.
        split: the qrels split of ``dataset`` to train on.
        triples: JSONL of ``{query, positive, negatives}``.
        negatives_file: mined hard negatives (``splade-es train negatives``).
        negatives_per_example: hard negatives per example (0: in-batch negatives only).
        dev_fraction: judged queries held out for the logged dev nDCG@10.
        dev_docs: dev corpus size.
        teacher: ``colbert:<model>`` or ``cross-encoder:<model>`` for ``margin-mse``.
    """

    dataset: Path | None
    split: str
    triples: Path | None
    negatives_file: Path | None
    negatives_per_example: int
    dev_fraction: float
    dev_docs: int
    teacher: str | None

    def load(self, seed: int) -> TrainingData:
        """Read and check the examples (and dev split) before any training starts."""
        dataset, triples = self.dataset, self.triples
        if triples is not None and dataset is None:
            examples = read_triples(triples)
            texts = sorted({t for e in examples for t in (e.positive, *e.negatives)})
            return TrainingData(examples, None, {}, tuple(texts))
        if dataset is None or triples is not None:
            raise click.UsageError(
                "Pass exactly one of --corpus (BEIR folder) or --triples (JSONL)."
            )
        judgements = load_judgements(dataset, self.split)
        negatives = load_negatives(self.negatives_file) if self.negatives_file else {}
        if self.negatives_per_example and not negatives:
            raise click.UsageError(
                "--negatives-per-example > 0 needs --negatives-file (mine with `splade-es train "
                "negatives`), or pass --negatives-per-example 0 for in-batch negatives only."
            )
        train_part, dev = split_dev(judgements, self.dev_fraction, seed)
        examples = build_examples(train_part, negatives, self.negatives_per_example)
        corpus = dev_corpus(dev, negatives, self.dev_docs, seed) if dev else {}
        return TrainingData(examples, dev, corpus, tuple(judgements.corpus.values()))


data_options = option_group(
    "data",
    DataOptions,
    click.option(
        "--corpus",
        "dataset",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/).",
    ),
    click.option("--split", default="train", show_default=True),
    click.option(
        "--triples",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="JSONL {query, positive, negatives} instead of --corpus.",
    ),
    click.option(
        "--negatives-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="From `splade-es train negatives` (none: in-batch negatives only).",
    ),
    click.option("--negatives-per-example", type=NON_NEGATIVE_INT, default=1, show_default=True),
    click.option(
        "--dev-fraction",
        type=float,
        default=0.1,
        show_default=True,
        help="Judged queries held out for the logged dev nDCG@10.",
    ),
    click.option(
        "--dev-docs",
        type=POSITIVE_INT,
        default=1000,
        show_default=True,
        help="Dev corpus size (judged + mined + random).",
    ),
    click.option(
        "--teacher", help="For --loss margin-mse: colbert:<model> or cross-encoder:<model>."
    ),
)
"""The training data options; the command gets ``data``, a :class:`DataOptions`."""


@dataclass(frozen=True)
class ScheduleOptions:
    """How long and where to train: the :class:`Schedule` and the device."""

    schedule: Schedule
    device: str | None

    @classmethod
    def from_options(
        cls,
        out: Path,
        epochs: float,
        max_steps: int | None,
        batch_size: int,
        lr: float,
        seed: int,
        precision: Precision,
        eval_steps: int,
        save_steps: int,
        resume: bool,
        device: str | None,
        no_progress: bool,
    ) -> ScheduleOptions:
        schedule = Schedule(
            output_dir=out,
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            learning_rate=lr,
            seed=seed,
            precision=precision,
            eval_steps=eval_steps,
            save_steps=save_steps,
            resume=resume,
            progress=not no_progress,
        )
        return cls(schedule, device)


schedule_options = option_group(
    "training",
    ScheduleOptions.from_options,
    click.option(
        "--out",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Checkpoints, training_log.jsonl, final/.",
    ),
    click.option("--epochs", type=POSITIVE_FLOAT, default=1.0, show_default=True),
    click.option("--max-steps", type=POSITIVE_INT),
    click.option("--batch-size", type=POSITIVE_INT, default=16, show_default=True),
    click.option("--lr", type=float, default=2e-5, show_default=True),
    click.option("--seed", type=int, default=42, show_default=True),
    click.option(
        "--precision",
        type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
        default="auto",
        show_default=True,
    ),
    click.option("--eval-steps", type=POSITIVE_INT, default=50, show_default=True),
    click.option("--save-steps", type=POSITIVE_INT, default=100, show_default=True),
    click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out."),
    click.option(
        "--device",
        callback=device_option,
        help="cpu, cuda, cuda:1, mps (default: the best available).",
    ),
    click.option("--no-progress", is_flag=True),
)
"""The schedule options; the command gets ``training``, a :class:`ScheduleOptions`."""
