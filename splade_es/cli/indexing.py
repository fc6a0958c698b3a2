"""``splade-es index``: the bulk pipeline from a corpus file into an index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from splade_es.cli.colbert import build_colbert, colbert_config, colbert_options, storage_config
from splade_es.cli.models import build_encoder, encoder_config, encoder_options
from splade_es.cli.options import cluster_options, open_cluster
from splade_es.cluster.admin import check_index_name, index_stats, index_uuid, swap_alias
from splade_es.data.corpus import FieldNames, Limits, read_corpus
from splade_es.indexing.bulk import (
    BulkConfig,
    BulkFailedError,
    BulkStoppedError,
    IndexReport,
    index_documents,
)
from splade_es.indexing.colbert_fields import peek, prepare_embeddings
from splade_es.indexing.splade_fields import SpladeFields, prepare_index


@click.command("index")
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@click.option("--index", "index_name", required=True, help="Index to write (created if absent).")
@click.option("--format", "corpus_format", type=click.Choice(["jsonl", "csv", "beir"]))
@click.option("--id-field", help="Field with the document id (default: _id; CSV: id).")
@click.option("--text-field", default="text", show_default=True)
@click.option("--title-field", default="title", show_default=True, help="'' for none.")
@click.option("--keep-field", multiple=True, help="Extra source field to store (repeatable).")
@click.option("--max-text-bytes", type=int, default=1_000_000, show_default=True)
@click.option(
    "--mapping-type",
    type=click.Choice(["auto", "rank_features", "sparse_vector"]),
    default="auto",
    show_default=True,
    help="auto: rank_features where the cluster has it, else sparse_vector.",
)
@click.option("--alias", help="After a clean run, point this alias at the index (atomic swap).")
@click.option("--shards", type=int)
@click.option("--replicas", type=int)
@click.option("--chunk-docs", type=int, default=500, show_default=True)
@click.option("--chunk-bytes", type=int, default=8 * 1024 * 1024, show_default=True)
@click.option(
    "--max-attempts",
    type=int,
    default=8,
    show_default=True,
    help="Tries per bulk request on transient errors before the run stops (resumable).",
)
@click.option(
    "--max-backoff",
    type=float,
    default=30.0,
    show_default=True,
    help="Longest wait between tries, in seconds (exponential backoff with jitter).",
)
@click.option(
    "--dead-letter",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL of documents not indexed (default: dead-letter-<index>.jsonl, on failure only).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Acknowledged documents; a re-run skips them (default: in the cache, per index UUID).",
)
@click.option(
    "--allow-failures", is_flag=True, help="Exit 0 even if some documents were not indexed."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@colbert_options
@encoder_options()
@cluster_options
def index_command(corpus: Path, index_name: str, **params: Any) -> None:
    """Encode a corpus (JSONL, CSV or BEIR folder) with SPLADE and bulk-index it.

    Exit status: 0 when every document was indexed (or --allow-failures), 1 when some were
    not (they are in the dead-letter file, with reasons), 3 when the cluster kept failing
    and the run stopped (nothing dead-lettered for it; re-run to continue from the checkpoint).
    """
    check_index_name(index_name)
    if params["alias"] is not None:
        check_index_name(params["alias"])  # refused before anything is written
    cache_dir: Path = params["cache_dir"]
    cluster = open_cluster(params)
    encoder = build_encoder(encoder_config(params))
    names = FieldNames(
        id=params["id_field"]
        or ("id" if (params["corpus_format"] == "csv" or corpus.suffix == ".csv") else "_id"),
        text=params["text_field"],
        title=params["title_field"] or None,
        keep=tuple(params["keep_field"]),
    )
    documents = read_corpus(
        corpus, params["corpus_format"], names, Limits(params["max_text_bytes"])
    )
    representations: list[Any] = [SpladeFields(encoder)]
    extra_properties: dict[str, Any] = {}
    extra_meta: dict[str, Any] = {}
    if params["colbert"]:
        colbert = build_colbert(colbert_config(params))
        storage = storage_config(params)
        sample, documents = peek(documents, storage.sample_documents)
        fields, extra_properties, extra_meta = prepare_embeddings(
            cluster, index_name, colbert, storage, sample
        )
        representations.append(fields)
        click.echo(
            f"ColBERT: {colbert.config.model} ({colbert.dim} dims), {storage.codec} codec, "
            f"{fields.codec.bytes_per_token:.0f} bytes/token",
            err=True,
        )
    layout, state = prepare_index(
        cluster,
        encoder,
        index_name,
        params["mapping_type"],
        shards=params["shards"],
        replicas=params["replicas"],
        extra_properties=extra_properties,
        extra_meta=extra_meta,
    )
    click.echo(
        f"Index {index_name} {state}: field {layout.field} as {layout.mapping_type} on "
        f"{cluster.engine} {cluster.version}",
        err=True,
    )
    uuid = index_uuid(cluster, index_name)
    config = BulkConfig(
        index=index_name,
        chunk_docs=params["chunk_docs"],
        chunk_bytes=params["chunk_bytes"],
        max_attempts=params["max_attempts"],
        initial_backoff_s=min(0.5, params["max_backoff"]),
        max_backoff_s=params["max_backoff"],
        dead_letter=params["dead_letter"] or Path(f"dead-letter-{index_name}.jsonl"),
        checkpoint=params["checkpoint"] or cache_dir / "checkpoints" / f"{index_name}-{uuid}.tsv",
        raise_on_failure=False,
        progress=not params["no_progress"],
    )
    try:
        report = index_documents(cluster, documents, representations, config)
    except BulkStoppedError as stopped:
        click.echo(_summary(stopped.report, encoder.config.document_max_length))
        click.echo(f"Error: {stopped}", err=True)
        if stopped.report.failures:
            click.echo(f"Warning: {BulkFailedError(stopped.report, config.dead_letter)}", err=True)
        cluster.close()
        raise SystemExit(3) from None
    docs, size = index_stats(cluster, index_name)
    click.echo(_summary(report, encoder.config.document_max_length))
    click.echo(f"index          {index_name}: {docs} docs, {size / 1e6:.1f} MB")
    if report.failures:
        message = str(BulkFailedError(report, config.dead_letter))
        if not params["allow_failures"]:
            raise click.ClickException(message)
        click.echo(f"Warning: {message}", err=True)
    if params["alias"]:
        left = swap_alias(cluster, params["alias"], index_name)
        moved = f" (moved from {', '.join(left)}; not deleted)" if left else ""
        click.echo(f"alias          {params['alias']} -> {index_name}{moved}")
    cluster.close()


def _summary(report: IndexReport, max_length: int) -> str:
    counters = report.counters
    throttled = (
        f" ({report.throttled_requests} answered 429; requests went down to "
        f"{report.smallest_chunk_docs} documents)"
        if report.throttled_requests
        else ""
    )
    return "\n".join(
        [
            f"indexed        {report.indexed}",
            f"failed         {report.failed}",
            f"skipped        {report.skipped} (already indexed, from the checkpoint)",
            f"truncated      {counters.get('truncated', 0)} (longer than {max_length} tokens)",
            f"avg terms/doc  {counters.get('terms', 0) / max(report.encoded, 1):.1f}",
            f"empty vectors  {counters.get('empty_vectors', 0)}",
            f"throughput     {report.docs_per_second:.1f} docs/s "
            f"({report.seconds:.1f}s, {report.bulk_requests} bulk requests{throttled})",
            *_colbert_lines(counters, report.encoded),
        ]
    )


def _colbert_lines(counters: dict[str, int], encoded: int) -> list[str]:
    tokens = counters.get("colbert_tokens")
    if not tokens:
        return []
    return [
        f"colbert tokens {tokens} ({tokens / max(encoded, 1):.0f}/doc, "
        f"{counters.get('colbert_bytes', 0) / tokens:.1f} bytes/token incl. headers)",
        f"colbert capped {counters.get('colbert_capped_docs', 0)} docs, "
        f"{counters.get('colbert_capped_tokens', 0)} tokens dropped by --max-stored-tokens",
    ]
