"""``splade-es eval``: quality and latency by stage on a BEIR dataset, through a real node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from colbert_rerank.encoder import DEFAULT_MODEL, ColbertConfig
from splade_es.cli.colbert import build_colbert, storage_config, storage_options
from splade_es.cli.models import build_encoder, encoder_config, encoder_options
from splade_es.cli.options import cluster_options, open_cluster
from splade_es.evaluation import report as reports
from splade_es.evaluation.evaluator import STAGES, EvalConfig, evaluate


@click.command("eval")
@click.option(
    "--corpus",
    "dataset",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/).",
)
@click.option("--split", default="test", show_default=True)
@click.option(
    "--stages", default="bm25,splade", show_default=True, help=f"Comma list of {', '.join(STAGES)}."
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--check-exact", is_flag=True, help="Add parity with the exact in-memory ranking.")
@click.option("--max-queries", type=int, help="Evaluate the first N judged queries only.")
@click.option("--max-docs", type=int, help="Index judged documents plus others up to N.")
@click.option("--index", help="Index name (default: derived from dataset, subset and model).")
@click.option(
    "--mapping-type",
    type=click.Choice(["auto", "rank_features", "sparse_vector"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--rerank-k", type=int, default=100, show_default=True, help="Hits rescored by ColBERT."
)
@click.option(
    "--colbert-model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Late-interaction model for the +colbert stages.",
)
@storage_options
@click.option("--no-progress", is_flag=True)
@encoder_options()
@cluster_options
def eval_command(dataset: Path, out: Path, **params: Any) -> None:
    """Index (or reuse) a BEIR corpus, run the stages, write report.json/.md/.png.

    Stages: bm25, splade, splade+colbert, bm25+colbert (the last two rerank the first
    --rerank-k hits with ColBERT MaxSim over embeddings stored in the index).
    """
    colbert_model = params.pop("colbert_model")
    config = EvalConfig(
        dataset=dataset,
        split=params.pop("split"),
        stages=tuple(s.strip() for s in params.pop("stages").split(",") if s.strip()),
        max_queries=params.pop("max_queries"),
        max_docs=params.pop("max_docs"),
        index=params.pop("index"),
        mapping_type=params.pop("mapping_type"),
        check_exact=params.pop("check_exact"),
        rerank_k=params.pop("rerank_k"),
        storage=storage_config(params),
        progress=not params.pop("no_progress"),
    )
    cluster = open_cluster(params)
    encoder = build_encoder(encoder_config(params))
    colbert = None
    if config.reranks:
        colbert = build_colbert(ColbertConfig(model=colbert_model, device=encoder.config.device))
    result = evaluate(cluster, encoder, config, colbert)
    paths = reports.write(result, out)
    click.echo(reports.markdown(result))
    click.echo("wrote " + ", ".join(str(p) for p in paths))
    cluster.close()
