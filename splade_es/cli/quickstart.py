"""``splade-es quickstart``: the whole product on an embedded default, in a few minutes.

Starts (or reuses) a local node, indexes the Python standard library's documentation with the
shipped models (splade-tiny for SPLADE, all-MiniLM-L6-v2 token embeddings for ColBERT),
runs example queries, and prints the hits before and after reranking with the SPLADE term
contributions and the query-token -> document-token alignments. A second run reuses the index.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import click

from colbert_rerank.encoder import ColbertConfig
from colbert_rerank.rerank import Reranker
from splade_es.cli.colbert import build_colbert
from splade_es.cli.models import build_encoder
from splade_es.cli.options import (
    POSITIVE_INT,
    ClusterOptions,
    cluster_options,
    open_cluster,
)
from splade_es.cluster.connection import Cluster
from splade_es.data.corpus import from_records
from splade_es.data.stdlib_corpus import stdlib_corpus
from splade_es.encoding.encoder import EncoderConfig
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.search.pipeline import Retrieval, search_then_rerank
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import Hit, SearchConfig, Searcher

SPECIAL = {"[CLS]", "[SEP]", "[MASK]", "[PAD]", "<s>", "</s>"}
QUERIES = (
    "parse command line arguments",
    "read a compressed file",
    "current date and time in a time zone",
    "run a shell command and capture its output",
    "cryptographically secure random token",
)


@click.command()
@click.option("--index", "index_name", default="splade-es-quickstart", show_default=True)
@click.option(
    "--max-docs",
    type=POSITIVE_INT,
    default=2000,
    show_default=True,
    help="Size of the corpus to index.",
)
@click.option("--query", "queries", multiple=True, help="Your own query (repeatable).")
@click.option(
    "-k", "k", type=POSITIVE_INT, default=3, show_default=True, help="Hits shown per query."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-progress", is_flag=True)
@cluster_options
def quickstart(
    index_name: str,
    max_docs: int,
    queries: tuple[str, ...],
    k: int,
    as_json: bool,
    no_progress: bool,
    cluster: ClusterOptions,
) -> None:
    """Index the Python docs with the shipped models and show search + rerank, explained."""
    started = time.perf_counter()
    connection = open_cluster(cluster)  # a node it starts says what it does (launch_messages)
    try:
        searcher, reranker = _prepare(connection, index_name, max_docs, not no_progress)
        results = [_run(searcher, reranker, query, k) for query in (queries or QUERIES)]
    finally:
        connection.close()
    if as_json:
        click.echo(json.dumps(results, ensure_ascii=False, indent=1))
        return
    for result in results:
        _print(result)
    _print_next_steps(index_name, time.perf_counter() - started)


def _prepare(
    cluster: Cluster, index_name: str, max_docs: int, progress: bool
) -> tuple[Searcher, Reranker]:
    """Build the demo index (or reuse a complete one); its searcher and reranker."""
    corpus = stdlib_corpus(max_docs)
    splade = build_encoder(EncoderConfig(model="splade-tiny"))
    colbert = build_colbert(ColbertConfig())
    click.echo(
        f"Indexing {len(corpus)} Python standard-library docstrings into {index_name} "
        f"on {cluster.engine} {cluster.version} (an index already complete is reused) ...",
        err=True,
    )
    config = BuildConfig(
        BulkConfig(index=index_name, progress=progress), expected_documents=len(corpus)
    )
    result = build_index(
        cluster, from_records(corpus), splade, config, ColbertIndexing(colbert), total=len(corpus)
    )
    if result.report is None:
        click.echo(f"Reusing index {index_name} ({result.documents} documents).", err=True)
    else:
        report = result.report
        click.echo(
            f"Indexed {report.indexed} documents in {report.seconds:.0f}s "
            f"({report.docs_per_second:.1f} docs/s), {report.failed} failed.",
            err=True,
        )
    searcher = Searcher(cluster, splade, SearchConfig(index=index_name, include_embeddings=True))
    return searcher, open_reranker(cluster, index_name, colbert)


def _run(searcher: Searcher, reranker: Reranker, query: str, k: int) -> dict[str, Any]:
    ranking = search_then_rerank(searcher, query, Retrieval(k=50, rerank_k=50), reranker)
    first = sorted(
        (
            replace(hit, rank=hit.first_stage_rank or hit.rank, score=hit.first_stage_score or 0.0)
            for hit in ranking.hits
        ),
        key=lambda hit: hit.rank,
    )
    before = [_hit_summary(searcher, query, hit) for hit in first[:k]]
    after = []
    for hit in ranking.hits[:k]:
        source = hit.source
        text = f"{source.get('title', '')} {source.get('text', '')}".strip()
        matches = reranker.explain(query, text, source[searcher.embeddings_field or "colbert"])
        after.append(
            {
                "rank": hit.rank,
                "id": hit.id,
                "colbert_score": hit.colbert_score,
                "first_stage_rank": hit.first_stage_rank,
                "alignments": [
                    {
                        "query_token": m.query_token,
                        "document_token": m.document_token,
                        "similarity": round(m.contribution, 3),
                    }
                    for m in matches
                ],
            }
        )
    return {"query": query, "splade": before, "reranked": after}


def _hit_summary(searcher: Searcher, query: str, hit: Hit) -> dict[str, Any]:
    explanation = searcher.explain(query, hit.id)
    return {
        "rank": hit.rank,
        "id": hit.id,
        "score": hit.score,
        "terms": [
            {"token": i.token, "contribution": round(i.contribution, 3)}
            for i in explanation.impacts[:4]
        ],
        "query_expansion": explanation.query_expansion[:6],
    }


def _print(result: dict[str, Any]) -> None:
    click.echo()
    click.secho(f"Query: {result['query']}", bold=True)
    click.secho("  SPLADE first stage (exact dot product in the engine):", fg="cyan")
    for hit in result["splade"]:
        terms = ", ".join(f"{t['token']} {t['contribution']:.2f}" for t in hit["terms"])
        click.echo(f"  {hit['rank']}. {hit['id']:<44} {hit['score']:7.2f}  [{terms}]")
    if result["splade"]:
        expansion = ", ".join(result["splade"][0]["query_expansion"]) or "(none)"
        click.echo(f"     query expansion terms: {expansion}")
    click.secho("  After ColBERT MaxSim reranking of the top 50:", fg="green")
    for hit in result["reranked"]:
        moved = f"(was #{hit['first_stage_rank']})"
        click.echo(f"  {hit['rank']}. {hit['id']:<44} {hit['colbert_score']:7.2f}  {moved}")
    if result["reranked"]:
        words = [a for a in result["reranked"][0]["alignments"] if a["query_token"] not in SPECIAL]
        best = sorted(words, key=lambda a: -a["similarity"])[:5]
        pairs = ", ".join(
            f"{a['query_token']}->{a['document_token']} {a['similarity']:.2f}" for a in best
        )
        click.echo(f"     why #1: {pairs}")


def _print_next_steps(index: str, seconds: float) -> None:
    click.echo()
    click.secho(f"Done in {seconds:.0f}s. Now with your own cluster and data:", bold=True)
    click.echo(
        "\n".join(
            [
                "  export ES_URL=https://your-cluster:9200 ES_API_KEY=...",
                "  splade-es index corpus.jsonl --index docs --colbert",
                "  splade-es search 'your query' --index docs --rerank",
                "  splade-es explain 'your query' --index docs --id <doc id> --colbert",
                "  splade-es eval --corpus <beir folder> --stages bm25,splade,splade+colbert "
                "--out report",
                f"  (this demo's index: {index}; stop the local node with 'splade-es node stop')",
            ]
        )
    )
