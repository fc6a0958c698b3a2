"""``splade-es quickstart``: the whole product on an embedded default, in a few minutes.

Starts (or reuses) a local node, indexes the Python standard library's documentation with the
shipped models (splade-tiny for SPLADE, all-MiniLM-L6-v2 token embeddings for ColBERT),
runs example queries, and prints the hits before and after reranking with the SPLADE term
contributions and the query-token -> document-token alignments. A second run reuses the index.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from colbert_rerank.encoder import ColbertConfig
from colbert_rerank.rerank import Reranker, RerankResult
from splade_es.cli.colbert import build_colbert
from splade_es.cli.models import build_encoder
from splade_es.cli.options import cluster_options, open_cluster
from splade_es.cluster.admin import get_index, index_stats
from splade_es.data.corpus import from_records
from splade_es.data.stdlib_corpus import stdlib_corpus
from splade_es.encoding.encoder import EncoderConfig
from splade_es.indexing.bulk import BulkConfig, index_documents
from splade_es.indexing.colbert_fields import (
    ColbertStorage,
    open_reranker,
    peek,
    prepare_embeddings,
)
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
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
    "--max-docs", type=int, default=2000, show_default=True, help="Size of the corpus to index."
)
@click.option("--query", "queries", multiple=True, help="Your own query (repeatable).")
@click.option("-k", "k", type=int, default=3, show_default=True, help="Hits shown per query.")
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
    **params: Any,
) -> None:
    """Index the Python docs with the shipped models and show search + rerank, explained."""
    started = time.perf_counter()
    cluster = open_cluster(params)
    corpus = stdlib_corpus(max_docs)
    splade = build_encoder(EncoderConfig(model="splade-tiny"))
    colbert = build_colbert(ColbertConfig())
    info = get_index(cluster, index_name)
    existing = index_stats(cluster, index_name)[0] if info is not None else 0
    if existing == len(corpus) and info is not None and info.meta:
        click.echo(f"Reusing index {index_name} ({existing} documents).", err=True)
    else:
        click.echo(
            f"Indexing {len(corpus)} Python standard-library docstrings into {index_name} "
            f"on {cluster.engine} {cluster.version} ...",
            err=True,
        )
        sample, documents = peek(from_records(corpus), 256)
        fields, properties, meta = prepare_embeddings(
            cluster, index_name, colbert, ColbertStorage(), sample
        )
        prepare_index(cluster, splade, index_name, extra_properties=properties, extra_meta=meta)
        report = index_documents(
            cluster,
            documents,
            [SpladeFields(splade), fields],
            BulkConfig(index=index_name, progress=not no_progress),
            total=len(corpus),
        )
        click.echo(
            f"Indexed {report.indexed} documents in {report.seconds:.0f}s "
            f"({report.docs_per_second:.1f} docs/s), {report.failed} failed.",
            err=True,
        )
    searcher = Searcher(cluster, splade, SearchConfig(index=index_name, include_embeddings=True))
    reranker = open_reranker(cluster, index_name, colbert)
    results = [_run(searcher, reranker, query, k) for query in (queries or QUERIES)]
    if as_json:
        click.echo(json.dumps(results, ensure_ascii=False, indent=1))
    else:
        for result in results:
            _print(result)
        _print_next_steps(index_name, time.perf_counter() - started)
    cluster.close()


def _run(searcher: Searcher, reranker: Reranker, query: str, k: int) -> dict[str, Any]:
    first = searcher.search(query, 50)
    reranked: RerankResult = reranker.rerank(query, [h.as_dict() for h in first])
    before = [_hit_summary(searcher, query, hit) for hit in first[:k]]
    ranks = {hit.id: hit.rank for hit in first}
    after = []
    for rank, hit in enumerate(reranked.hits[:k], start=1):
        source = hit["_source"]
        text = f"{source.get('title', '')} {source.get('text', '')}".strip()
        matches = reranker.explain(query, text, source[searcher.embeddings_field or "colbert"])
        after.append(
            {
                "rank": rank,
                "id": hit["_id"],
                "colbert_score": hit["_colbert_score"],
                "first_stage_rank": ranks[hit["_id"]],
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
