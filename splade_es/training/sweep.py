"""The effect of λ_d, measured: one SPLADE model trained per λ_d, each indexed in the real node
and evaluated there. Rows: avg terms per document, index size, query latency, nDCG@10.

:func:`run_sweep` trains and evaluates (the one entry point, called by ``splade-es train
lambda-sweep``); :func:`sweep_row` reads one evaluation report; rendering (``sweep.json``,
``sweep.md``, ``sweep.png``) is pure. Importing this module loads neither torch nor a model.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from colbert_rerank.training_support import Schedule
    from splade_es.cluster.connection import Cluster
    from splade_es.evaluation.evaluator import EvalConfig
    from splade_es.training.data import Judgements, TrainingExample

COLUMNS = (
    ("lambda_document", "λ_d"),
    ("avg_terms_per_doc", "avg terms/doc"),
    ("index_mb", "index MB"),
    ("latency_ms_p50", "p50 ms"),
    ("latency_ms_p95", "p95 ms"),
    ("ndcg@10", "nDCG@10"),
    ("recall@100", "R@100"),
    ("train_seconds", "train s"),
)


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep, and how each model trains.

    Attributes:
        lambdas: the λ_d values, one SPLADE model each, trained and evaluated in this order.
        schedule: epochs, batch, learning rate, seed...; its ``output_dir`` is the sweep's
            folder, and the model of each λ_d trains under ``<output_dir>/lambda-<λ_d>``.
        model: the start checkpoint of every model (and of the reference row).
        lambda_query: λ_q, the same for every model.
        lambda_warmup_steps: steps over which λ grows quadratically from 0.
        device: ``None`` picks CUDA, then MPS, then CPU.
        with_start: evaluate the start model first, as a reference row.
    """

    lambdas: tuple[float, ...]
    schedule: Schedule
    model: str = "splade-tiny"
    lambda_query: float = 1e-3
    lambda_warmup_steps: int = 100
    device: str | None = None
    with_start: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "lambdas", tuple(self.lambdas))
        bad = [v for v in self.lambdas if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad or any(v < 0 for v in self.lambdas):
            raise ValueError(
                f"lambdas={self.lambdas!r}: expected numbers >= 0, e.g. (1e-4, 1e-3, 1e-2)."
            )


def run_sweep(
    cluster: Cluster,
    config: SweepConfig,
    examples: Sequence[TrainingExample],
    dev: tuple[Judgements, Mapping[str, str]] | None,
    eval_config: EvalConfig,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train one SPLADE model per λ_d, evaluate each on ``cluster``, return the table rows.

    Args:
        cluster: the node every model is indexed and evaluated in.
        config: the λ_d values, the shared schedule, start model, λ_q and warm-up.
        examples: the training rows (the same for every model).
        dev: dev judgements and the corpus to rank them in, for the nDCG@10 logged while
            training, or ``None``.
        eval_config: the evaluation of each model; it must include the ``splade`` stage.
        on_row: called with each row as soon as it is finished (the start model's first),
            e.g. to print progress.

    Returns:
        One :func:`sweep_row` per model: the start model (``lambda_document`` ``None``) when
        ``config.with_start``, then one per λ_d, in order.

    Raises:
        ValueError: ``eval_config`` has no ``splade`` stage (checked before any training).

    Example:
        >>> config = SweepConfig((1e-4, 1e-2), Schedule(Path("sweep")))  # doctest: +SKIP
        >>> rows = run_sweep(cluster, config, examples, None, EvalConfig(Path("scifact")))
        >>> write(rows, Path("sweep"), "scifact")
    """
    if "splade" not in eval_config.stages:
        raise ValueError(
            f"stages={eval_config.stages!r}: the sweep reads the splade stage of each "
            "evaluation; add 'splade' to the EvalConfig stages."
        )
    rows: list[dict[str, Any]] = []

    def finished(row: dict[str, Any]) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    if config.with_start:
        label = f"{config.model} (start)"
        finished(evaluate_row(cluster, config.model, label, None, eval_config, None, config.device))
    for value in config.lambdas:
        final, seconds = _train(config, value, examples, dev)
        label = f"λ_d={value:g}"
        finished(
            evaluate_row(cluster, str(final), label, value, eval_config, seconds, config.device)
        )
    return rows


def evaluate_row(
    cluster: Cluster,
    model: str,
    label: str,
    lambda_document: float | None,
    eval_config: EvalConfig,
    train_seconds: float | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Evaluate one SPLADE model on ``cluster`` and return its table row (:func:`sweep_row`).

    Used by :func:`run_sweep` and by ``benchmarks/eval_sweep.py`` (models trained elsewhere).
    """
    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
    from splade_es.evaluation.evaluator import evaluate

    encoder = SpladeEncoder(EncoderConfig(model=model, device=device))
    report = evaluate(cluster, encoder, eval_config)
    return sweep_row(label, lambda_document, report, train_seconds)


def _train(
    config: SweepConfig,
    lambda_document: float,
    examples: Sequence[TrainingExample],
    dev: tuple[Judgements, Mapping[str, str]] | None,
) -> tuple[Path, float]:
    """Train the model of one λ_d; return its final folder and the training time in seconds."""
    from splade_es.training.splade import SpladeTrainConfig, train_splade

    schedule = config.schedule
    train_config = SpladeTrainConfig(
        schedule=dataclasses.replace(
            schedule, output_dir=schedule.output_dir / f"lambda-{lambda_document:g}"
        ),
        model=config.model,
        lambda_query=config.lambda_query,
        lambda_document=lambda_document,
        lambda_warmup_steps=config.lambda_warmup_steps,
        device=config.device,
    )
    started = time.perf_counter()
    final = train_splade(train_config, examples, None, dev)
    return final, time.perf_counter() - started


def sweep_row(
    label: str,
    lambda_document: float | None,
    report: Mapping[str, Any],
    train_seconds: float | None,
) -> dict[str, Any]:
    """One table row from an evaluation report of the ``splade`` stage."""
    stage = report["stages"]["splade"]
    return {
        "model": label,
        "lambda_document": lambda_document,
        "avg_terms_per_doc": report["indexing"].get("avg_terms_per_doc"),
        "index_mb": round(report["index_size_bytes"] / 1e6, 1),
        "latency_ms_p50": stage["latency_ms_p50"],
        "latency_ms_p95": stage["latency_ms_p95"],
        "ndcg@10": stage["ndcg@10"],
        "recall@100": stage["recall@100"],
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
    }


def markdown(rows: Sequence[Mapping[str, Any]], caption: str) -> str:
    """The rows as a Markdown table under ``caption`` (``-`` for a missing value)."""
    lines = [caption, "", "| model | " + " | ".join(h for _, h in COLUMNS) + " |"]
    lines.append("|---|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key)
            if value is None:
                cells.append("-")
            elif key == "lambda_document":
                cells.append(f"{value:g}")
            elif isinstance(value, float):
                cells.append(f"{value:.4f}" if key in ("ndcg@10", "recall@100") else f"{value:.1f}")
            else:
                cells.append(str(value))
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """nDCG@10 against avg terms per document (each point labelled with λ_d), and latency.

    Rows without a term count (their index was reused, so nothing was encoded) are left out
    of the plot; the table still lists them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (quality, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for row in rows:
        if row.get("avg_terms_per_doc") is None:
            continue
        trained = row.get("lambda_document") is not None
        label = f"λ_d={row['lambda_document']:g}" if trained else row["model"]
        marker, colour = ("o", "#2f6db5") if trained else ("s", "#888888")
        for axis, key in ((quality, "ndcg@10"), (latency, "latency_ms_p50")):
            point = (row["avg_terms_per_doc"], row[key])
            axis.scatter(*point, marker=marker, color=colour, s=50)
            axis.annotate(label, point, fontsize=8, xytext=(5, 4), textcoords="offset points")
    quality.set_xlabel("average non-zero terms per document")
    quality.set_ylabel("nDCG@10 (real node)")
    quality.set_title("Quality against document sparsity")
    latency.set_xlabel("average non-zero terms per document")
    latency.set_ylabel("p50 ms per query (query encoding included)")
    latency.set_title("Latency against document sparsity")
    for axis in (quality, latency):
        axis.grid(alpha=0.3)
        axis.margins(x=0.2, y=0.12)  # room for the point labels
    figure.suptitle(textwrap.fill(title, 110), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(rows: Sequence[Mapping[str, Any]], out: Path, caption: str) -> list[Path]:
    """Write ``sweep.json``, ``sweep.md`` and ``sweep.png`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "sweep.json", out / "sweep.md", out / "sweep.png"]
    paths[0].write_text(json.dumps({"caption": caption, "rows": list(rows)}, indent=2) + "\n")
    paths[1].write_text(markdown(rows, caption))
    plot(rows, paths[2], caption)
    return paths
