"""``splade-es search`` and ``splade-es explain``."""

from __future__ import annotations

import json
from typing import Any

import click

from colbert_rerank.fusion import Fusion, FusionMethod
from colbert_rerank.rerank import RerankConfig, Reranker, TokenMatch
from splade_es.cli.colbert import build_colbert, colbert_config, fusion_of, rerank_options
from splade_es.cli.models import build_encoder, encoder_config, encoder_options
from splade_es.cli.options import cluster_options, open_cluster
from splade_es.cluster.admin import get_index
from splade_es.cluster.connection import Cluster
from splade_es.data.corpus import encoded_text
from splade_es.indexing.colbert_fields import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher


def _searcher(params: dict[str, Any], embeddings: bool = False) -> tuple[Cluster, Searcher]:
    index = params.pop("index")
    cluster = open_cluster(params)
    info = get_index(cluster, index)
    recorded = info.meta.get("model") if info else None
    encoder = build_encoder(encoder_config(params, recorded))
    config = SearchConfig(
        index=index,
        allow_model_mismatch=params.pop("allow_model_mismatch"),
        include_embeddings=embeddings,
    )
    return cluster, Searcher(cluster, encoder, config)


def _reranker(cluster: Cluster, searcher: Searcher, params: dict[str, Any]) -> Reranker:
    colbert = build_colbert(colbert_config(params, searcher.colbert_model))
    config = RerankConfig(field=searcher.embeddings_field or "colbert", fusion=fusion_of(params))
    return open_reranker(cluster, searcher.config.index, colbert, config)


def _filters(raw: tuple[str, ...]) -> list[dict[str, Any]]:
    filters = []
    for text in raw:
        try:
            clause = json.loads(text)
        except json.JSONDecodeError as error:
            example = '{"term": {"year": 2020}}'
            raise click.BadParameter(
                f"{text!r} is not JSON ({error.msg}); e.g. --filter '{example}'",
                param_hint="--filter",
            ) from error
        filters.append(clause)
    return filters


def _snippet_of(source: Any, width: int = 80) -> str:
    text = str(source.get("title") or source.get("text") or "")
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


common = [
    click.option("--index", required=True, help="Index or alias to search."),
    click.option(
        "--allow-model-mismatch",
        is_flag=True,
        help="Search even if the index was built with another model (experts only).",
    ),
    click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
]


def _common(func: Any) -> Any:
    for option in reversed(common):
        func = option(func)
    return func


@click.command()
@click.argument("query")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Hits to return.")
@click.option(
    "--mode",
    type=click.Choice(["splade", "bm25", "hybrid"]),
    default="splade",
    show_default=True,
)
@click.option("--fusion", type=click.Choice(["rrf", "weighted"]), default="rrf", show_default=True)
@click.option("--splade-weight", type=float, default=0.5, show_default=True, help="For weighted.")
@click.option("--filter", "filters", multiple=True, help="Filter clause as JSON (repeatable).")
@click.option("--rerank", is_flag=True, help="Rescore the first --rerank-k hits with ColBERT.")
@rerank_options
@_common
@encoder_options(default_model=None)
@cluster_options
def search(
    query: str,
    k: int,
    mode: str,
    fusion: str,
    splade_weight: float,
    filters: tuple[str, ...],
    rerank: bool,
    as_json: bool,
    **params: Any,
) -> None:
    """Search an index with SPLADE (exact dot product), BM25, or both fused; optionally
    rerank with ColBERT MaxSim over the stored token embeddings."""
    parsed = _filters(filters)
    cluster, searcher = _searcher(params, embeddings=rerank)
    depth = max(k, params["rerank_k"]) if rerank else k
    if mode == "splade":
        hits = searcher.search(query, depth, parsed)
    elif mode == "bm25":
        hits = searcher.bm25(query, depth, parsed)
    else:
        method: FusionMethod = "weighted" if fusion == "weighted" else "rrf"
        hits = searcher.hybrid(
            query, depth, Fusion(method=method, weight=splade_weight), filters=parsed
        )
    rows = [h.as_dict() | {"rank": h.rank} for h in hits]
    if rerank:
        field = searcher.embeddings_field or "colbert"
        result = _reranker(cluster, searcher, params).rerank(query, rows)
        rows = [
            {key: value for key, value in hit.items() if key != "_source"}
            | {"_source": {n: v for n, v in hit["_source"].items() if n != field}}
            | {"rank": rank}
            for rank, hit in enumerate(result.hits[:k], start=1)
        ]
        timing = result.stats
        click.echo(
            f"reranked {timing.reranked} hits: query {timing.encode_ms:.1f} ms, decode "
            f"{timing.decode_ms:.1f} ms, MaxSim {timing.maxsim_ms:.1f} ms",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
    else:
        for row in rows:
            first = row.get("_first_stage_score")
            extra = f" (first stage {first:.3f})" if isinstance(first, float) else ""
            text = _snippet_of(row.get("_source", {}))
            click.echo(f"{row['rank']:>3}  {row['_score']:9.4f}  {row['_id']:<20} {text}{extra}")
    cluster.close()


@click.command()
@click.argument("query")
@click.option("--id", "doc_id", required=True, help="Document id to explain.")
@click.option("--top", type=int, default=20, show_default=True, help="Terms to show.")
@click.option("--colbert", is_flag=True, help="Also align query tokens with document tokens.")
@rerank_options
@_common
@encoder_options(default_model=None)
@cluster_options
def explain(query: str, doc_id: str, top: int, colbert: bool, as_json: bool, **params: Any) -> None:
    """Show which terms made a document match: query weight x document weight, per term
    (and with --colbert, which document token each query token matched)."""
    cluster, searcher = _searcher(params)
    result = searcher.explain(query, doc_id)
    matches = _alignments(cluster, searcher, query, doc_id, params) if colbert else []
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": result.id,
                    "score": result.score,
                    "impacts": [
                        {
                            "token": i.token,
                            "query_weight": i.query_weight,
                            "doc_weight": i.doc_weight,
                            "contribution": i.contribution,
                        }
                        for i in result.impacts
                    ],
                    "query_expansion": result.query_expansion,
                    "foreign_terms": result.foreign_terms,
                    "colbert": [
                        {
                            "query_token": m.query_token,
                            "document_token": m.document_token,
                            "document_position": m.document_position,
                            "contribution": m.contribution,
                        }
                        for m in matches
                    ],
                },
                ensure_ascii=False,
            )
        )
    else:
        click.echo(f"{doc_id}: score {result.score:.4f} from {len(result.impacts)} shared terms")
        click.echo(f"{'term':<20} {'query':>8} {'doc':>8} {'q x d':>8}")
        for impact in result.impacts[:top]:
            click.echo(
                f"{impact.token:<20} {impact.query_weight:8.3f} {impact.doc_weight:8.3f} "
                f"{impact.contribution:8.3f}"
            )
        click.echo(f"query expansion terms: {', '.join(result.query_expansion[:top]) or '(none)'}")
        if result.foreign_terms:
            foreign = list(result.foreign_terms.items())[:top]
            shown = ", ".join(f"{k!r}={v!r:.20}" for k, v in foreign)
            click.echo(
                f"warning: {len(result.foreign_terms)} stored term(s) were not written by this "
                f"model (shown raw, they score nothing): {shown}"
            )
        if matches:
            total = sum(m.contribution for m in matches)
            click.echo(f"\nColBERT MaxSim {total:.4f}: query token -> best document token")
            for m in matches:
                click.echo(
                    f"{m.query_token:<16} -> {m.document_token:<16} #{m.document_position:<4} "
                    f"{m.contribution:7.3f}"
                )
    cluster.close()


def _alignments(
    cluster: Cluster, searcher: Searcher, query: str, doc_id: str, params: dict[str, Any]
) -> list[TokenMatch]:
    field = searcher.embeddings_field
    if field is None:
        raise click.UsageError(f"Index {searcher.config.index!r} stores no ColBERT embeddings.")
    source = searcher.document(doc_id, [field, "title", "text"])
    reranker = _reranker(cluster, searcher, params)
    text = encoded_text(str(source.get("title") or ""), str(source.get("text") or ""))
    return reranker.explain(query, text, source[field])
