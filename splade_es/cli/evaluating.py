"""``splade-es eval``: quality and latency by stage on a BEIR dataset, through a real node."""

from __future__ import annotations

from pathlib import Path

import click

from colbert_rerank.encoder import DEFAULT_MODEL, ColbertConfig, ColbertEncoder
from colbert_rerank.fusion import Fusion, FusionMethod
from splade_es.cli.colbert import build_colbert, storage_options
from splade_es.cli.models import ModelOptions, build_encoder, encoder_options
from splade_es.cli.options import (
    POSITIVE_INT,
    UNIT_FLOAT,
    ClusterOptions,
    cluster_options,
    open_cluster,
)
from splade_es.cli.vector_options import quantization_option
from splade_es.cluster.vectors import Quantization
from splade_es.encoding.dense import DEFAULT_MODEL as DENSE_DEFAULT
from splade_es.encoding.dense import DenseConfig, DenseEncoder
from splade_es.evaluation import report as reports
from splade_es.evaluation.evaluator import EvalConfig, evaluate
from splade_es.evaluation.stage_plan import STAGES_HELP
from splade_es.indexing.build import MappingChoice
from splade_es.indexing.colbert_fields import ColbertStorage


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
    "--stages", default="bm25,splade", show_default=True, help=f"Comma list of {STAGES_HELP}."
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--check-exact", is_flag=True, help="Add parity with the exact in-memory ranking.")
@click.option("--max-queries", type=POSITIVE_INT, help="Evaluate the first N judged queries only.")
@click.option(
    "--max-docs",
    type=POSITIVE_INT,
    help="Index the judged documents plus others up to N (scores come out higher than over "
    "the full corpus; the report says so).",
)
@click.option(
    "--index",
    help="Index name (default: derived from dataset, model and, with --max-docs, the queries "
    "the corpus was cut for).",
)
@click.option(
    "--mapping-type",
    type=click.Choice(["auto", "rank_features", "sparse_vector"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--rerank-k",
    type=POSITIVE_INT,
    default=100,
    show_default=True,
    help="Hits rescored by ColBERT.",
)
@click.option(
    "--colbert-model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Late-interaction model for the +colbert stages.",
)
@click.option(
    "--dense-model",
    default=DENSE_DEFAULT,
    show_default=True,
    help="Sentence-embedding model of the dense stages.",
)
@quantization_option
@click.option(
    "--knn-candidates",
    type=POSITIVE_INT,
    default=200,
    show_default=True,
    help="kNN search beam (num_candidates / ef_search) of the dense and muvera stages.",
)
@click.option(
    "--rerank-fusion",
    type=click.Choice(["replace", "weighted", "rrf"]),
    default="replace",
    show_default=True,
    help="How the +colbert stages combine MaxSim with the first-stage score.",
)
@click.option(
    "--rerank-weight",
    type=UNIT_FLOAT,
    default=0.5,
    show_default=True,
    help="MaxSim share for --rerank-fusion weighted.",
)
@storage_options
@click.option("--no-progress", is_flag=True)
@encoder_options()
@cluster_options
def eval_command(
    dataset: Path,
    split: str,
    stages: str,
    out: Path,
    check_exact: bool,
    max_queries: int | None,
    max_docs: int | None,
    index: str | None,
    mapping_type: MappingChoice,
    rerank_k: int,
    colbert_model: str,
    dense_model: str,
    quantization: Quantization,
    knn_candidates: int,
    rerank_fusion: FusionMethod,
    rerank_weight: float,
    storage: ColbertStorage,
    no_progress: bool,
    model: ModelOptions,
    cluster: ClusterOptions,
) -> None:
    """Index (or reuse) a BEIR corpus, run the stages, write report.json/.md/.png.

    Stages: bm25, splade, splade+colbert, bm25+colbert, splade-idf, splade-idf+colbert,
    dense, muvera, and first stages joined by '|' (splade|dense|muvera), fused client-side
    with RRF, each with or without +colbert (splade-idf runs no model on the query: its own
    tokens weighted by IDF in the index; the +colbert stages rerank the first --rerank-k hits
    with ColBERT MaxSim over embeddings stored in the index; dense and muvera search kNN
    fields the index then also gets).
    """
    config = EvalConfig(
        dataset=dataset,
        split=split,
        stages=tuple(s.strip() for s in stages.split(",") if s.strip()),
        max_queries=max_queries,
        max_docs=max_docs,
        index=index,
        mapping_type=mapping_type,
        check_exact=check_exact,
        rerank_k=rerank_k,
        storage=storage,
        progress=not no_progress,
        quantization=quantization,
        knn_candidates=knn_candidates,
        rerank_fusion=Fusion(method=rerank_fusion, weight=rerank_weight),
    )
    connection = open_cluster(cluster)
    try:
        encoder = build_encoder(model.encoder_config())
        colbert, dense = _stage_models(config, colbert_model, dense_model, encoder.config.device)
        result = evaluate(connection, encoder, config, colbert, dense)
    finally:
        connection.close()
    paths = reports.write(result, out)
    click.echo(reports.markdown(result))
    click.echo("wrote " + ", ".join(str(p) for p in paths))


def _stage_models(
    config: EvalConfig, colbert_model: str, dense_model: str, device: str | None
) -> tuple[ColbertEncoder | None, DenseEncoder | None]:
    """The ColBERT model (for +colbert and muvera stages) and the dense one (dense stages)."""
    colbert = None
    if config.reranks:
        colbert = build_colbert(ColbertConfig(model=colbert_model, device=device))
    dense = None
    if config.needs.dense:
        click.echo(f"Loading dense model {dense_model} ...", err=True)
        dense = DenseEncoder(DenseConfig(model=dense_model, device=device))
    return colbert, dense
