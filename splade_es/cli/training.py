"""``splade-es train``: mine hard negatives, train SPLADE, train ColBERT, sweep λ_d."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from colbert_rerank.encoder import DEFAULT_MODEL
from colbert_rerank.training_support import Schedule
from splade_es.cli.models import build_encoder, encoder_config, encoder_options
from splade_es.cli.options import cluster_options, open_cluster
from splade_es.cluster.admin import get_index
from splade_es.search.searcher import SearchConfig, Searcher
from splade_es.training.data import (
    Judgements,
    TrainingExample,
    build_examples,
    dev_corpus,
    load_judgements,
    read_triples,
    split_dev,
)
from splade_es.training.negatives import (
    MiningConfig,
    load_negatives,
    mine_negatives,
    save_negatives,
)

F = TypeVar("F", bound=Callable[..., Any])


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
@click.option("--rank-start", type=int, default=1, show_default=True)
@click.option("--rank-end", type=int, default=50, show_default=True)
@click.option("--count", type=int, default=10, show_default=True, help="Negatives per query.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True)
@encoder_options(default_model=None)
@cluster_options
def negatives_command(dataset: Path, out: Path, **params: Any) -> None:
    """Mine hard negatives: top hits of BM25/SPLADE on the real index minus judged positives."""
    judgements = load_judgements(dataset, params.pop("split"))
    config = MiningConfig(
        index=params.pop("index"),
        sources=tuple(s.strip() for s in params.pop("sources").split(",") if s.strip()),
        rank_start=params.pop("rank_start"),
        rank_end=params.pop("rank_end"),
        count=params.pop("count"),
    )
    progress = not params.pop("no_progress")
    cluster = open_cluster(params)
    info = get_index(cluster, config.index)
    if info is None:
        raise click.UsageError(
            f"No index {config.index!r}: index the corpus first (splade-es index {dataset} "
            f"--format beir --index {config.index})."
        )
    encoder = build_encoder(encoder_config(params, info.meta.get("model")))
    searcher = Searcher(cluster, encoder, SearchConfig(index=config.index, source_includes=[]))
    mined = mine_negatives(searcher, judgements.queries, judgements.qrels, config, progress)
    save_negatives(out, config, mined)
    counts = [len(v) for v in mined.values()]
    click.echo(
        f"{len(mined)} queries, {sum(counts)} negatives ({min(counts)}..{max(counts)} per query) "
        f"-> {out}"
    )
    cluster.close()


def data_options(func: F) -> F:
    options = [
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
        click.option("--negatives-per-example", type=int, default=1, show_default=True),
        click.option(
            "--dev-fraction",
            type=float,
            default=0.1,
            show_default=True,
            help="Judged queries held out for the logged dev nDCG@10.",
        ),
        click.option(
            "--dev-docs",
            type=int,
            default=1000,
            show_default=True,
            help="Dev corpus size (judged + mined + random).",
        ),
        click.option(
            "--teacher", help="For --loss margin-mse: colbert:<model> or cross-encoder:<model>."
        ),
    ]
    return functools.reduce(lambda f, o: o(f), reversed(options), func)


def schedule_options(func: F) -> F:
    options = [
        click.option(
            "--out",
            required=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Checkpoints, training_log.jsonl, final/.",
        ),
        click.option("--epochs", type=float, default=1.0, show_default=True),
        click.option("--max-steps", type=int),
        click.option("--batch-size", type=int, default=16, show_default=True),
        click.option("--lr", type=float, default=2e-5, show_default=True),
        click.option("--seed", type=int, default=42, show_default=True),
        click.option(
            "--precision",
            type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
            default="auto",
            show_default=True,
        ),
        click.option("--eval-steps", type=int, default=50, show_default=True),
        click.option("--save-steps", type=int, default=100, show_default=True),
        click.option(
            "--resume", is_flag=True, help="Continue from the newest checkpoint in --out."
        ),
        click.option("--device", help="cpu, cuda, cuda:1 (default: best available)."),
        click.option("--no-progress", is_flag=True),
    ]
    return functools.reduce(lambda f, o: o(f), reversed(options), func)


def schedule_of(params: dict[str, Any], out: Path) -> Schedule:
    return Schedule(
        output_dir=out,
        epochs=params.pop("epochs"),
        max_steps=params.pop("max_steps"),
        batch_size=params.pop("batch_size"),
        learning_rate=params.pop("lr"),
        seed=params.pop("seed"),
        precision=params.pop("precision"),
        eval_steps=params.pop("eval_steps"),
        save_steps=params.pop("save_steps"),
        resume=params.pop("resume"),
        progress=not params["no_progress"],
    )


def training_data(
    params: dict[str, Any], seed: int
) -> tuple[list[TrainingExample], Judgements | None, dict[str, str]]:
    """Examples, the dev judgements (or None) and the dev corpus, checked before training."""
    dataset, triples = params.pop("dataset"), params.pop("triples")
    per_example = params.pop("negatives_per_example")
    negatives_file = params.pop("negatives_file")
    split, fraction, dev_docs = (
        params.pop("split"),
        params.pop("dev_fraction"),
        params.pop("dev_docs"),
    )
    if (dataset is None) == (triples is None):
        raise click.UsageError("Pass exactly one of --corpus (BEIR folder) or --triples (JSONL).")
    if triples is not None:
        return read_triples(triples), None, {}
    judgements = load_judgements(dataset, split)
    negatives = load_negatives(negatives_file) if negatives_file else {}
    if per_example and not negatives:
        raise click.UsageError(
            "--negatives-per-example > 0 needs --negatives-file (mine with `splade-es train "
            "negatives`), or pass --negatives-per-example 0 for in-batch negatives only."
        )
    train_part, dev = split_dev(judgements, fraction, seed)
    examples = build_examples(train_part, negatives, per_example)
    corpus = dev_corpus(dev, negatives, dev_docs, seed) if dev else {}
    return examples, dev, corpus


def _margins(params: dict[str, Any], examples: list[TrainingExample], loss: str) -> Any:
    from splade_es.training.teacher import TeacherConfig, teacher_margins

    spec = params.pop("teacher")
    if loss != "margin-mse":
        if spec:
            raise click.UsageError("--teacher is for --loss margin-mse.")
        return None
    if not spec:
        raise click.UsageError(
            "--loss margin-mse needs --teacher colbert:<model>|cross-encoder:<model>."
        )
    return teacher_margins(
        TeacherConfig.parse(spec, params.get("device")), examples, not params["no_progress"]
    )


def prepared_data(
    params: dict[str, Any], seed: int, loss: str
) -> tuple[list[TrainingExample], Judgements | None, dict[str, str], Any]:
    """:func:`training_data` plus the teacher margins the loss needs, announced on stderr."""
    examples, dev, corpus = training_data(params, seed)
    margins = _margins(params, examples, loss)
    click.echo(f"{len(examples)} examples, {len(dev.qrels) if dev else 0} dev queries", err=True)
    return examples, dev, corpus, margins


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
    type=int,
    default=100,
    show_default=True,
    help="Quadratic λ ramp length.",
)
@click.option("--doc-max-length", type=int, default=256, show_default=True)
@data_options
@schedule_options
def train_splade_command(out: Path, **params: Any) -> None:
    """Train a SPLADE model: ranking loss + λ_q·FLOPS(q) + λ_d·FLOPS(d), λ warmed up."""
    from splade_es.training.splade import SpladeTrainConfig, train_splade

    schedule = schedule_of(params, out)
    config = SpladeTrainConfig(
        schedule=schedule,
        model=params.pop("model"),
        loss=params.pop("loss"),
        regularizer=params.pop("regularizer"),
        lambda_query=params.pop("lambda_q"),
        lambda_document=params.pop("lambda_d"),
        lambda_warmup_steps=params.pop("lambda_warmup_steps"),
        document_max_length=params.pop("doc_max_length"),
        device=params.pop("device"),
    )
    examples, dev, corpus, margins = prepared_data(params, schedule.seed, config.loss)
    started = time.perf_counter()
    final = train_splade(config, examples, margins, (dev, corpus) if dev else None)
    click.echo(f"trained in {time.perf_counter() - started:.0f} s -> {final}")


@train.command("colbert")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Start checkpoint.")
@click.option("--dim", type=int, help="Output dims through a trained projection (e.g. 128).")
@click.option(
    "--loss",
    type=click.Choice(["contrastive", "margin-mse"]),
    default="contrastive",
    show_default=True,
)
@data_options
@schedule_options
def train_colbert_command(out: Path, **params: Any) -> None:
    """Train a ColBERT model: contrastive loss over positive, in-batch and hard negatives."""
    from colbert_rerank.training import ColbertTrainConfig, train_colbert

    schedule = schedule_of(params, out)
    config = ColbertTrainConfig(
        schedule=schedule,
        model=params.pop("model"),
        dim=params.pop("dim"),
        loss=params.pop("loss"),
        device=params.pop("device"),
    )
    examples, dev, corpus, margins = prepared_data(params, schedule.seed, config.loss)
    dev_triple = None
    if dev is not None:
        relevant = {q: {d for d, r in dev.qrels[q].items() if r > 0} for q in dev.qrels}
        dev_triple = (dev.queries, corpus, relevant)
    started = time.perf_counter()
    final = train_colbert(config, examples, margins, dev_triple)
    click.echo(f"trained in {time.perf_counter() - started:.0f} s -> {final}")


@train.command("lambda-sweep")
@click.option("--lambdas", default="1e-4,1e-3,1e-2", show_default=True, help="λ_d values.")
@click.option("--lambda-q", type=float, default=1e-3, show_default=True)
@click.option("--lambda-warmup-steps", type=int, default=100, show_default=True)
@click.option("--model", default="splade-tiny", show_default=True)
@click.option("--eval-split", default="test", show_default=True)
@click.option("--max-queries", type=int, help="Evaluate the first N judged queries only.")
@click.option("--max-docs", type=int, help="Index judged documents plus others up to N.")
@click.option(
    "--with-start/--without-start",
    default=True,
    show_default=True,
    help="Add the start model as a reference row.",
)
@data_options
@schedule_options
@cluster_options
def lambda_sweep_command(out: Path, **params: Any) -> None:
    """Train one SPLADE model per λ_d, index and evaluate each on the real node, and write the
    trade-off table and plot (sweep.json/.md/.png): terms/doc, index size, latency, nDCG@10."""
    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
    from splade_es.evaluation.evaluator import EvalConfig, evaluate
    from splade_es.training import sweep
    from splade_es.training.splade import SpladeTrainConfig, train_splade

    try:
        lambdas = [float(v) for v in params.pop("lambdas").split(",") if v.strip()]
    except ValueError as error:
        raise click.BadParameter(
            f"{error}: e.g. --lambdas 1e-4,1e-3,1e-2", param_hint="--lambdas"
        ) from error
    dataset: Path | None = params["dataset"]
    if dataset is None:
        raise click.UsageError("The sweep evaluates on the node: pass --corpus (a BEIR folder).")
    base = schedule_of(params, out)
    model, device = params.pop("model"), params.pop("device")
    lambda_q, warmup = params.pop("lambda_q"), params.pop("lambda_warmup_steps")
    eval_config = EvalConfig(
        dataset=dataset,
        split=params.pop("eval_split"),
        stages=("splade",),
        max_queries=params.pop("max_queries"),
        max_docs=params.pop("max_docs"),
        progress=base.progress,
    )
    with_start = params.pop("with_start")
    if params.pop("teacher"):
        raise click.UsageError(
            "lambda-sweep trains with the InfoNCE loss: --teacher (for margin-mse) does not apply."
        )
    examples, dev, corpus = training_data(params, base.seed)
    cluster = open_cluster(params)
    rows = []
    if with_start:
        report = evaluate(
            cluster, SpladeEncoder(EncoderConfig(model=model, device=device)), eval_config
        )
        rows.append(sweep.sweep_row(f"{model} (start)", None, report, None))
    for value in lambdas:
        config = SpladeTrainConfig(
            schedule=Schedule(**{**base.__dict__, "output_dir": out / f"lambda-{value:g}"}),
            model=model,
            lambda_query=lambda_q,
            lambda_document=value,
            lambda_warmup_steps=warmup,
            device=device,
        )
        started = time.perf_counter()
        final = train_splade(config, examples, None, (dev, corpus) if dev else None)
        seconds = time.perf_counter() - started
        encoder = SpladeEncoder(EncoderConfig(model=str(final), device=device))
        report = evaluate(cluster, encoder, eval_config)
        rows.append(sweep.sweep_row(f"λ_d={value:g}", value, report, seconds))
        click.echo(sweep.markdown(rows[-1:], f"λ_d={value:g}"), err=True)
    caption = (
        f"{dataset.name}: trained on {len(examples)} {'examples'}, evaluated on the "
        f"{eval_config.split} split through {cluster.engine} {cluster.version} (λ_q={lambda_q:g})"
    )
    paths = sweep.write(rows, out, caption)
    click.echo(sweep.markdown(rows, caption))
    click.echo("wrote " + ", ".join(str(p) for p in paths))
    cluster.close()
