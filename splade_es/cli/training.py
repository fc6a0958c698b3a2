"""``splade-es train``: mine hard negatives, train SPLADE, train ColBERT, sweep λ_d."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from colbert_rerank.encoder import DEFAULT_MODEL
from splade_es.cli.models import ModelOptions, build_encoder, query_encoder_options
from splade_es.cli.options import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    ClusterOptions,
    cluster_options,
    open_cluster,
)
from splade_es.cli.training_options import (
    POSITIVE_FLOAT,
    DataOptions,
    ScheduleOptions,
    TrainingData,
    data_options,
    schedule_options,
)
from splade_es.cluster.admin import get_index
from splade_es.search.pruning import QueryPruning
from splade_es.search.searcher import SearchConfig, Searcher
from splade_es.training import sweep
from splade_es.training.data import load_judgements
from splade_es.training.negatives import MiningConfig, mine_negatives, save_negatives

if TYPE_CHECKING:  # the training modules load torch: imported when a command runs
    from colbert_rerank.training import Loss
    from splade_es.training.splade import QueryEncoder, RankingLoss, Regularizer


@click.group("train")
def train() -> None:
    """Train SPLADE and ColBERT on your judged queries, with hard negatives from your index."""


@train.command("negatives")
@click.option(
    "--corpus",
    "dataset",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="BEIR folder whose qrels to mine for.",
)
@click.option("--split", default="train", show_default=True)
@click.option("--index", required=True, help="Index holding that corpus (splade-es index/eval).")
@click.option("--sources", default="bm25,splade", show_default=True, help="bm25 and/or splade.")
@click.option("--rank-start", type=POSITIVE_INT, default=1, show_default=True)
@click.option("--rank-end", type=POSITIVE_INT, default=50, show_default=True)
@click.option(
    "--count", type=POSITIVE_INT, default=10, show_default=True, help="Negatives per query."
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True)
@query_encoder_options()
@cluster_options
def negatives_command(
    dataset: Path,
    split: str,
    index: str,
    sources: str,
    rank_start: int,
    rank_end: int,
    count: int,
    out: Path,
    no_progress: bool,
    model: ModelOptions,
    cluster: ClusterOptions,
) -> None:
    """Mine hard negatives: top hits of BM25/SPLADE on the real index minus judged positives."""
    judgements = load_judgements(dataset, split)
    config = MiningConfig(
        index=index,
        sources=tuple(s.strip() for s in sources.split(",") if s.strip()),
        rank_start=rank_start,
        rank_end=rank_end,
        count=count,
    )
    connection = open_cluster(cluster)
    try:
        info = get_index(connection, config.index)
        if info is None:
            raise click.UsageError(
                f"No index {config.index!r}: index the corpus first (splade-es index {dataset} "
                f"--format beir --index {config.index})."
            )
        encoder = build_encoder(model.encoder_config(info.meta.get("model")))
        search = SearchConfig(index=config.index, source_includes=[], pruning=QueryPruning())
        searcher = Searcher(connection, encoder, search)
        mined = mine_negatives(
            searcher, judgements.queries, judgements.qrels, config, not no_progress
        )
    finally:
        connection.close()
    save_negatives(out, config, mined)
    counts = [len(v) for v in mined.values()]
    click.echo(
        f"{len(mined)} queries, {sum(counts)} negatives ({min(counts)}..{max(counts)} per query) "
        f"-> {out}"
    )


def _margins(
    data: DataOptions, training: ScheduleOptions, prepared: TrainingData, loss: str
) -> Any:
    """The teacher margins ``margin-mse`` needs (``None`` for the other losses)."""
    from splade_es.training.teacher import TeacherConfig, teacher_margins

    if loss != "margin-mse":
        if data.teacher:
            raise click.UsageError("--teacher is for --loss margin-mse.")
        return None
    if not data.teacher:
        raise click.UsageError(
            "--loss margin-mse needs --teacher colbert:<model>|cross-encoder:<model>."
        )
    return teacher_margins(
        TeacherConfig.parse(data.teacher, training.device),
        prepared.examples,
        training.schedule.progress,
    )


def prepared_data(
    data: DataOptions, training: ScheduleOptions, loss: str
) -> tuple[TrainingData, Any]:
    """The training data plus the teacher margins the loss needs, announced on stderr."""
    prepared = data.load(training.schedule.seed)
    margins = _margins(data, training, prepared, loss)
    dev = prepared.dev
    click.echo(
        f"{len(prepared.examples)} examples, {len(dev.qrels) if dev else 0} dev queries", err=True
    )
    return prepared, margins


@train.command("splade")
@click.option(
    "--model", default="splade-tiny", show_default=True, help="Start checkpoint (SPLADE or MLM)."
)
@click.option(
    "--loss",
    type=click.Choice(["infonce", "margin", "margin-mse"]),
    default="infonce",
    show_default=True,
)
@click.option(
    "--regularizer", type=click.Choice(["flops", "l1"]), default="flops", show_default=True
)
@click.option(
    "--lambda-q",
    type=float,
    default=1e-3,
    show_default=True,
    help="Final query regulariser weight λ_q.",
)
@click.option(
    "--lambda-d",
    type=float,
    default=1e-3,
    show_default=True,
    help="Final document regulariser weight λ_d.",
)
@click.option(
    "--lambda-warmup-steps",
    type=NON_NEGATIVE_INT,
    default=100,
    show_default=True,
    help="Quadratic λ ramp length.",
)
@click.option("--doc-max-length", type=POSITIVE_INT, default=256, show_default=True)
@click.option(
    "--query-encoder",
    type=click.Choice(["model", "static"]),
    default="model",
    show_default=True,
    help="static: a doc-only model (queries weighted by a learned per-token table, no model "
    "at query time; the table starts from IDF over the corpus, --lambda-q is unused).",
)
@click.option(
    "--table-lr",
    type=POSITIVE_FLOAT,
    default=1e-3,
    show_default=True,
    help="Learning rate of the static query table (--query-encoder static).",
)
@data_options
@schedule_options
def train_splade_command(
    model: str,
    loss: RankingLoss,
    regularizer: Regularizer,
    lambda_q: float,
    lambda_d: float,
    lambda_warmup_steps: int,
    doc_max_length: int,
    query_encoder: QueryEncoder,
    table_lr: float,
    data: DataOptions,
    training: ScheduleOptions,
) -> None:
    """Train a SPLADE model: ranking loss + λ_q·FLOPS(q) + λ_d·FLOPS(d), λ warmed up.

    With --query-encoder static, a doc-only model: the query side is a learned table."""
    from splade_es.training.splade import SpladeTrainConfig, train_splade

    config = SpladeTrainConfig(
        schedule=training.schedule,
        model=model,
        loss=loss,
        regularizer=regularizer,
        lambda_query=lambda_q,
        lambda_document=lambda_d,
        lambda_warmup_steps=lambda_warmup_steps,
        document_max_length=doc_max_length,
        device=training.device,
        query_encoder=query_encoder,
        table_learning_rate=table_lr,
    )
    prepared, margins = prepared_data(data, training, config.loss)
    dev = (prepared.dev, prepared.dev_corpus) if prepared.dev else None
    started = time.perf_counter()
    final = train_splade(config, prepared.examples, margins, dev, prepared.documents)
    click.echo(f"trained in {time.perf_counter() - started:.0f} s -> {final}")


@train.command("colbert")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Start checkpoint.")
@click.option(
    "--dim", type=POSITIVE_INT, help="Output dims through a trained projection (e.g. 128)."
)
@click.option(
    "--loss",
    type=click.Choice(["contrastive", "margin-mse"]),
    default="contrastive",
    show_default=True,
)
@data_options
@schedule_options
def train_colbert_command(
    model: str,
    dim: int | None,
    loss: Loss,
    data: DataOptions,
    training: ScheduleOptions,
) -> None:
    """Train a ColBERT model: contrastive loss over positive, in-batch and hard negatives."""
    from colbert_rerank.training import ColbertTrainConfig, train_colbert

    config = ColbertTrainConfig(
        schedule=training.schedule, model=model, dim=dim, loss=loss, device=training.device
    )
    prepared, margins = prepared_data(data, training, config.loss)
    dev_triple = None
    if prepared.dev is not None:
        qrels = prepared.dev.qrels
        relevant = {q: {d for d, r in qrels[q].items() if r > 0} for q in qrels}
        dev_triple = (prepared.dev.queries, prepared.dev_corpus, relevant)
    started = time.perf_counter()
    final = train_colbert(config, prepared.examples, margins, dev_triple)
    click.echo(f"trained in {time.perf_counter() - started:.0f} s -> {final}")


@train.command("lambda-sweep")
@click.option("--lambdas", default="1e-4,1e-3,1e-2", show_default=True, help="λ_d values.")
@click.option("--lambda-q", type=float, default=1e-3, show_default=True)
@click.option("--lambda-warmup-steps", type=NON_NEGATIVE_INT, default=100, show_default=True)
@click.option("--model", default="splade-tiny", show_default=True)
@click.option("--eval-split", default="test", show_default=True)
@click.option("--max-queries", type=POSITIVE_INT, help="Evaluate the first N judged queries only.")
@click.option("--max-docs", type=POSITIVE_INT, help="Index judged documents plus others up to N.")
@click.option(
    "--with-start/--without-start",
    default=True,
    show_default=True,
    help="Add the start model as a reference row.",
)
@data_options
@schedule_options
@cluster_options
def lambda_sweep_command(
    lambdas: str,
    lambda_q: float,
    lambda_warmup_steps: int,
    model: str,
    eval_split: str,
    max_queries: int | None,
    max_docs: int | None,
    with_start: bool,
    data: DataOptions,
    training: ScheduleOptions,
    cluster: ClusterOptions,
) -> None:
    """Train one SPLADE model per λ_d, index and evaluate each on the real node, and write the
    trade-off table and plot (sweep.json/.md/.png): terms/doc, index size, latency, nDCG@10."""
    from splade_es.evaluation.evaluator import EvalConfig

    values = _lambdas(lambdas)
    if data.dataset is None:
        raise click.UsageError("The sweep evaluates on the node: pass --corpus (a BEIR folder).")
    config = sweep.SweepConfig(
        lambdas=values,
        schedule=training.schedule,
        model=model,
        lambda_query=lambda_q,
        lambda_warmup_steps=lambda_warmup_steps,
        device=training.device,
        with_start=with_start,
    )
    eval_config = EvalConfig(
        dataset=data.dataset,
        split=eval_split,
        stages=("splade",),
        max_queries=max_queries,
        max_docs=max_docs,
        progress=training.schedule.progress,
    )
    if data.teacher:
        raise click.UsageError(
            "lambda-sweep trains with the InfoNCE loss: --teacher (for margin-mse) does not apply."
        )
    prepared = data.load(training.schedule.seed)
    dev = (prepared.dev, prepared.dev_corpus) if prepared.dev else None
    connection = open_cluster(cluster)
    try:
        rows = sweep.run_sweep(connection, config, prepared.examples, dev, eval_config, _progress)
        caption = (
            f"{data.dataset.name}: trained on {len(prepared.examples)} examples, evaluated on "
            f"the {eval_split} split through {connection.engine} {connection.version} "
            f"(λ_q={lambda_q:g})"
        )
    finally:
        connection.close()
    paths = sweep.write(rows, training.schedule.output_dir, caption)
    click.echo(sweep.markdown(rows, caption))
    click.echo("wrote " + ", ".join(str(p) for p in paths))


def _lambdas(text: str) -> tuple[float, ...]:
    """``--lambdas``: comma-separated λ_d values."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as error:
        raise click.BadParameter(
            f"{error}: e.g. --lambdas 1e-4,1e-3,1e-2", param_hint="--lambdas"
        ) from error


def _progress(row: dict[str, Any]) -> None:
    """Each trained model's row on stderr as soon as it is evaluated."""
    value = row["lambda_document"]
    if value is not None:
        click.echo(sweep.markdown([row], f"λ_d={value:g}"), err=True)
