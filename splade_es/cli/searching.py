"""``splade-es search`` and ``splade-es explain``."""

from __future__ import annotations

import json
from typing import Any, Literal

import click

from colbert_rerank.fusion import Fusion, FusionMethod
from colbert_rerank.rerank import RerankConfig, Reranker, TokenMatch
from colbert_rerank.storage import META_KEY as COLBERT_META_KEY
from splade_es.cli.colbert import (
    RerankOptions,
    build_colbert,
    colbert_model_option,
    rerank_options,
)
from splade_es.cli.models import ModelOptions, build_encoder, query_encoder_options
from splade_es.cli.options import (
    POSITIVE_INT,
    UNIT_FLOAT,
    ClusterOptions,
    cluster_options,
    open_cluster,
    stack,
)
from splade_es.cli.stages import STAGE, STAGE_HELP, open_stage_vectors, split_stage
from splade_es.cluster.admin import require_index
from splade_es.cluster.connection import Cluster
from splade_es.data.corpus import encoded_text
from splade_es.search.config import SEARCH_TYPES, SearchType
from splade_es.search.pipeline import Ranking, Retrieval, search_then_rerank
from splade_es.search.pruning import QueryPruning, parse_pruning
from splade_es.search.rerank import missing_embeddings, open_reranker
from splade_es.search.searcher import (
    QUERY_ENCODERS,
    Explanation,
    Hit,
    QueryEncoder,
    SearchConfig,
    Searcher,
)


class _PruningType(click.ParamType[QueryPruning | Literal["auto"]]):
    """``--prune``: a :func:`~splade_es.search.pruning.parse_pruning` spec."""

    name = "POLICY"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> QueryPruning | Literal["auto"]:
        if isinstance(value, QueryPruning):
            return value
        try:
            return parse_pruning(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


PRUNING = _PruningType()


def _searcher(
    connection: Cluster, model: ModelOptions, config: SearchConfig, colbert: bool = False
) -> Searcher:
    """A searcher of ``config.index`` with ``--model``, else the model the index records;
    with ``colbert``, the index must store ColBERT embeddings. Checked before any model loads.
    """
    info = require_index(connection, config.index)
    if colbert and not info.all_meta.get(COLBERT_META_KEY):
        raise click.UsageError(missing_embeddings(config.index))
    recorded = info.meta.get("model")
    encoder = build_encoder(model.encoder_config(recorded))
    return Searcher(connection, encoder, config)


def _reranker(
    connection: Cluster, searcher: Searcher, rerank: RerankOptions, device: str | None
) -> Reranker:
    colbert = build_colbert(rerank.encoder_config(searcher.colbert_model, device))
    config = RerankConfig(field=searcher.embeddings_field or "colbert", fusion=rerank.fusion)
    return open_reranker(connection, searcher.config.index, colbert, config)


def _check_weight(mode: str, splade_weight: float) -> None:
    """Refuse ``--splade-weight`` where it would be ignored ('|' lists: equal shares)."""
    if "|" in mode and splade_weight != 0.5:
        raise click.UsageError(
            f"--splade-weight {splade_weight} applies to --mode hybrid; '|' lists are fused "
            "with equal shares: leave it out."
        )


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


_common = stack(
    click.option("--index", required=True, help="Index or alias to search."),
    click.option(
        "--allow-model-mismatch",
        is_flag=True,
        help="Search even if the index was built with another model (experts only).",
    ),
    click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    click.option(
        "--query-encoder",
        type=click.Choice(QUERY_ENCODERS),
        default="model",
        show_default=True,
        help="model: run the SPLADE model on the query; idf: run none, weight the query's own "
        "tokens by their IDF in the index (computed once into <index>-splade-idf).",
    ),
)


@click.command()
@click.argument("query")
@click.option("-k", "k", type=POSITIVE_INT, default=10, show_default=True, help="Hits to return.")
@click.option("--mode", type=STAGE, default="splade", show_default=True, help=STAGE_HELP)
@click.option("--fusion", type=click.Choice(["rrf", "weighted"]), default="rrf", show_default=True)
@click.option(
    "--splade-weight", type=UNIT_FLOAT, default=0.5, show_default=True, help="For weighted."
)
@click.option("--filter", "filters", multiple=True, help="Filter clause as JSON (repeatable).")
@click.option(
    "--rerank", "with_rerank", is_flag=True, help="Rescore the first --rerank-k hits with ColBERT."
)
@click.option(
    "--prune",
    "pruning",
    type=PRUNING,
    default="auto",
    show_default=True,
    help="Search-time SPLADE query pruning. auto: exact under 100k documents, "
    "'weight=0.3,rescore=400' from there (measured: BENCHMARKS.md, Scale); none: always "
    "exact; or KEY=VALUE pairs of top_k (terms kept), "
    "weight (keep terms >= this share of the largest weight), df (drop terms in more than this "
    "share of documents), rescore (two-phase: dropped terms rescore each shard's top W), e.g. "
    "'weight=0.2,rescore=200'.",
)
@click.option(
    "--search-type",
    type=click.Choice(SEARCH_TYPES),
    default="query_then_fetch",
    show_default=True,
    help="dfs_query_then_fetch gathers BM25 term statistics from every shard first: BM25 and "
    "hybrid scores then match a 1-shard index (SPLADE scores never depend on it).",
)
@click.option(
    "--no-partial",
    is_flag=True,
    help="Fail when a shard has no copy that answers, instead of returning the other shards' "
    "hits with a warning.",
)
@rerank_options
@_common
@query_encoder_options()
@cluster_options
def search(
    query: str,
    k: int,
    mode: str,
    fusion: FusionMethod,
    splade_weight: float,
    filters: tuple[str, ...],
    with_rerank: bool,
    pruning: QueryPruning | Literal["auto"],
    search_type: SearchType,
    no_partial: bool,
    index: str,
    allow_model_mismatch: bool,
    as_json: bool,
    query_encoder: QueryEncoder,
    rerank: RerankOptions,
    model: ModelOptions,
    cluster: ClusterOptions,
) -> None:
    """Search an index with SPLADE (exact dot product), BM25, dense or MUVERA kNN, or several
    fused; optionally rerank with ColBERT MaxSim over the stored token embeddings."""
    mode, reranks = split_stage(mode)
    with_rerank = with_rerank or reranks
    _check_weight(mode, splade_weight)
    rerank_k = rerank.rerank_k
    if with_rerank and rerank_k < k:
        click.echo(f"--rerank-k {rerank_k} is below -k {k}: reranking the top {k}.", err=True)
        rerank_k = k
    retrieval = Retrieval(
        k=k,
        mode=mode,
        fusion=Fusion(method=fusion, weight=splade_weight),
        rerank_k=rerank_k,
        filters=tuple(_filters(filters)),
    )
    config = SearchConfig(
        index,
        allow_model_mismatch=allow_model_mismatch,
        include_embeddings=with_rerank,
        query_encoder=query_encoder,
        pruning=pruning,
        search_type=search_type,
        allow_partial=not no_partial,
    )
    connection = open_cluster(cluster)
    try:
        searcher = _searcher(connection, model, config, colbert=with_rerank)
        reranker = _reranker(connection, searcher, rerank, model.device) if with_rerank else None
        colbert = reranker.encoder if reranker is not None else None
        vectors = open_stage_vectors(connection, searcher, mode, colbert, model.device)
        ranking = search_then_rerank(searcher, query, retrieval, reranker, vectors)
    finally:
        connection.close()
    _echo_notes(ranking)
    rows = [_row(hit, searcher.embeddings_field) for hit in ranking.hits]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
    else:
        _echo_rows(rows, index, filtered=bool(filters))


def _echo_notes(ranking: Ranking) -> None:
    """On stderr: the reranker's timings, and a warning when shards did not answer."""
    if ranking.rerank is not None:
        stats = ranking.rerank
        click.echo(
            f"reranked {stats.reranked} hits: query {stats.encode_ms:.1f} ms, decode "
            f"{stats.decode_ms:.1f} ms, MaxSim {stats.maxsim_ms:.1f} ms",
            err=True,
        )
    if ranking.shards.partial:
        click.echo(
            f"warning: partial answer: {ranking.shards.summary}; these hits come from the "
            "shards that answered only (--no-partial fails instead).",
            err=True,
        )


def _echo_rows(rows: list[dict[str, Any]], index: str, filtered: bool) -> None:
    """The hits as a table (rank, score, id, snippet), or why there are none."""
    if not rows:
        where = " matching the filters" if filtered else ""
        click.echo(f"no hits: no document of {index!r}{where} shares a term with the query")
    for row in rows:
        first = row.get("_first_stage_score")
        extra = f" (first stage {first:.3f})" if isinstance(first, float) else ""
        text = _snippet_of(row.get("_source", {}))
        click.echo(f"{row['rank']:>3}  {row['_score']:9.4f}  {row['_id']:<20} {text}{extra}")


def _row(hit: Hit, embeddings_field: str | None) -> dict[str, Any]:
    """A hit as the client returns it, with its rank and without the stored embeddings."""
    row = hit.as_dict() | {"rank": hit.rank}
    row["_source"] = {n: v for n, v in hit.source.items() if n != embeddings_field}
    return row


@click.command()
@click.argument("query")
@click.option("--id", "doc_id", required=True, help="Document id to explain.")
@click.option("--top", type=POSITIVE_INT, default=20, show_default=True, help="Terms to show.")
@click.option("--colbert", is_flag=True, help="Also align query tokens with document tokens.")
@colbert_model_option
@_common
@query_encoder_options()
@cluster_options
def explain(
    query: str,
    doc_id: str,
    top: int,
    colbert: bool,
    index: str,
    allow_model_mismatch: bool,
    as_json: bool,
    query_encoder: QueryEncoder,
    rerank: RerankOptions,
    model: ModelOptions,
    cluster: ClusterOptions,
) -> None:
    """Show which terms made a document match: query weight x document weight, per term
    (and with --colbert, which document token each query token matched)."""
    connection = open_cluster(cluster)
    try:
        config = SearchConfig(
            index, allow_model_mismatch=allow_model_mismatch, query_encoder=query_encoder
        )
        searcher = _searcher(connection, model, config, colbert=colbert)
        result = searcher.explain(query, doc_id)
        matches = _alignments(connection, searcher, query, doc_id, rerank, model) if colbert else []
    finally:
        connection.close()
    if as_json:
        click.echo(json.dumps(_explanation_json(result, matches), ensure_ascii=False))
        return
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


def _explanation_json(result: Explanation, matches: list[TokenMatch]) -> dict[str, Any]:
    """``explain --json``: the term impacts, expansion, foreign terms and ColBERT matches."""
    return {
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
    }


def _alignments(
    connection: Cluster,
    searcher: Searcher,
    query: str,
    doc_id: str,
    rerank: RerankOptions,
    model: ModelOptions,
) -> list[TokenMatch]:
    field = searcher.embeddings_field
    if field is None:
        index = searcher.config.index
        raise click.UsageError(missing_embeddings(index))
    source = searcher.document(doc_id, [field, "title", "text"])
    reranker = _reranker(connection, searcher, rerank, model.device)
    text = encoded_text(str(source.get("title") or ""), str(source.get("text") or ""))
    return reranker.explain(query, text, source[field])
