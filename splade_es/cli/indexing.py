"""``splade-es index``: the bulk pipeline from a corpus file into an index."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import click

from splade_es.cli.colbert import ColbertOptions, build_colbert, colbert_options
from splade_es.cli.models import ModelOptions, build_encoder, encoder_options
from splade_es.cli.options import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    ClusterOptions,
    cluster_options,
    open_cluster,
    option_group,
)
from splade_es.cli.ray_options import RayOptions, ray_options
from splade_es.cli.vector_options import VectorOptions, vector_options
from splade_es.cluster.admin import field_types
from splade_es.cluster.connection import Cluster
from splade_es.cluster.mapping import load_template
from splade_es.cluster.names import check_index_name
from splade_es.data.corpus import Document, FieldNames, Limits, Rejected
from splade_es.data.fields import KeptField
from splade_es.data.readers import CorpusFormat, read_corpus
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.indexing.build import (
    BuildConfig,
    BuildResult,
    ColbertIndexing,
    MappingChoice,
    PreparedIndex,
    build_index,
    refuse_embeddings_in_place,
)
from splade_es.indexing.bulk import (
    BulkConfig,
    BulkFailedError,
    BulkInterrupted,
    BulkStoppedError,
    IndexReport,
)
from splade_es.indexing.distributed import RayConfig
from splade_es.indexing.vector_fields import DenseIndexing


@dataclass(frozen=True)
class CorpusOptions:
    """How the corpus file is read: its format, field names and size limit."""

    corpus_format: CorpusFormat | None
    id_field: str | None
    text_field: str
    title_field: str
    keep_field: tuple[str, ...]
    max_text_bytes: int

    @property
    def kept(self) -> list[KeptField]:
        """The ``--keep-field`` specs (``name`` or ``name:type``), parsed."""
        return [KeptField.parse(spec) for spec in self.keep_field]

    def is_csv(self, corpus: Path) -> bool:
        """Whether ``corpus`` is read as CSV."""
        return self.corpus_format == "csv" or corpus.suffix == ".csv"

    def read(self, corpus: Path) -> Iterator[Document | Rejected]:
        is_csv = self.is_csv(corpus)
        kept = self.kept
        names = FieldNames(
            id=self.id_field or ("id" if is_csv else "_id"),
            text=self.text_field,
            title=self.title_field or None,
            keep=tuple(k.name for k in kept),
            types={k.name: k.type for k in kept if k.type is not None},
        )
        return read_corpus(corpus, self.corpus_format, names, Limits(self.max_text_bytes))

    def mappings(self) -> dict[str, dict[str, str]]:
        """The index mapping of each typed kept field."""
        return {k.name: k.mapping for k in self.kept if k.mapping is not None}


def _checked_kept(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    for spec in value:
        try:
            KeptField.parse(spec)
        except ValueError as error:
            raise click.BadParameter(str(error), ctx=ctx, param=param) from None
    return value


corpus_options = option_group(
    "source",
    CorpusOptions,
    click.option("--format", "corpus_format", type=click.Choice(["jsonl", "csv", "beir"])),
    click.option("--id-field", help="Field with the document id (default: _id; CSV: id)."),
    click.option("--text-field", default="text", show_default=True),
    click.option("--title-field", default="title", show_default=True, help="'' for none."),
    click.option(
        "--keep-field",
        multiple=True,
        callback=_checked_kept,
        help="Extra source field to store (repeatable), optionally typed: year:int, price:float, "
        "open:bool, published:date, tag:keyword, note:text (CSV values are text otherwise).",
    ),
    click.option("--max-text-bytes", type=POSITIVE_INT, default=1_000_000, show_default=True),
)


@dataclass(frozen=True)
class WriteOptions:
    """How the index is built and written: mapping, settings, alias, bulk requests."""

    mapping_type: MappingChoice
    alias: str | None
    mapping_template: Path | None
    shards: int | None
    replicas: int | None
    chunk_docs: int
    chunk_bytes: int
    max_attempts: int
    max_backoff: float
    dead_letter: Path | None
    checkpoint: Path | None
    allow_failures: bool
    no_progress: bool
    routing_field: str | None

    def build_config(self, index_name: str, checkpoint_dir: Path) -> BuildConfig:
        """The build config (checks the alias name, before anything is written)."""
        bulk = BulkConfig(
            index=index_name,
            chunk_docs=self.chunk_docs,
            chunk_bytes=self.chunk_bytes,
            max_attempts=self.max_attempts,
            initial_backoff_s=min(0.5, self.max_backoff),
            max_backoff_s=self.max_backoff,
            dead_letter=self.dead_letter or Path(f"dead-letter-{index_name}.jsonl"),
            checkpoint=self.checkpoint,
            raise_on_failure=not self.allow_failures,
            progress=not self.no_progress,
            routing_field=self.routing_field,
        )
        return BuildConfig(
            bulk=bulk,
            mapping_type=self.mapping_type,
            shards=self.shards,
            replicas=self.replicas,
            template=load_template(self.mapping_template) if self.mapping_template else None,
            alias=self.alias,
            checkpoint_dir=checkpoint_dir,
        )


write_options = option_group(
    "write",
    WriteOptions,
    click.option(
        "--mapping-type",
        type=click.Choice(["auto", "rank_features", "sparse_vector"]),
        default="auto",
        show_default=True,
        help="auto: rank_features where the cluster has it, else sparse_vector.",
    ),
    click.option("--alias", help="After a clean run, point this alias at the index (atomic swap)."),
    click.option(
        "--mapping-template",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="JSON with settings/mappings (analyzers, fields) to build the index from; the SPLADE "
        "and ColBERT fields and _meta are added to it (default: mappings/index.json).",
    ),
    click.option("--shards", type=POSITIVE_INT),
    click.option("--replicas", type=NON_NEGATIVE_INT),
    click.option(
        "--routing-field",
        help="Route each document to its shard by this kept field's value (custom routing; "
        "give it with --keep-field too). A document without it is reported, not indexed.",
    ),
    click.option("--chunk-docs", type=POSITIVE_INT, default=500, show_default=True),
    click.option("--chunk-bytes", type=POSITIVE_INT, default=8 * 1024 * 1024, show_default=True),
    click.option(
        "--max-attempts",
        type=POSITIVE_INT,
        default=8,
        show_default=True,
        help="Tries per bulk request on transient errors before the run stops (resumable).",
    ),
    click.option(
        "--max-backoff",
        type=float,
        default=30.0,
        show_default=True,
        help="Longest wait between tries, in seconds (exponential backoff with jitter).",
    ),
    click.option(
        "--dead-letter",
        type=click.Path(dir_okay=False, path_type=Path),
        help="JSONL of documents not indexed "
        "(default: dead-letter-<index>.jsonl, on failure only).",
    ),
    click.option(
        "--checkpoint",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Acknowledged documents; a re-run skips them (default: in the cache, per index UUID).",
    ),
    click.option(
        "--allow-failures", is_flag=True, help="Exit 0 even if some documents were not indexed."
    ),
    click.option("--no-progress", is_flag=True, help="No progress bar."),
)


@click.command("index")
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@click.option("--index", "index_name", required=True, help="Index to write (created if absent).")
@corpus_options
@write_options
@colbert_options
@vector_options
@encoder_options()
@ray_options
@cluster_options
def index_command(
    corpus: Path,
    index_name: str,
    source: CorpusOptions,
    write: WriteOptions,
    colbert: ColbertOptions,
    vectors: VectorOptions,
    model: ModelOptions,
    ray: RayOptions,
    cluster: ClusterOptions,
) -> None:
    """Encode a corpus (JSONL, CSV or BEIR folder) with SPLADE and bulk-index it.

    Exit status: 0 when every document was indexed (or --allow-failures), 1 when some were
    not (they are in the dead-letter file, with reasons), 3 when the cluster kept failing
    and the run stopped (nothing dead-lettered for it; re-run to continue from the checkpoint).
    """
    check_index_name(index_name)
    names = [k.name for k in source.kept]
    if write.routing_field is not None and write.routing_field not in names:
        raise click.UsageError(
            f"--routing-field {write.routing_field!r} is not a kept field ({names or 'none'}): "
            f"add --keep-field {write.routing_field}."
        )
    config = write.build_config(index_name, cluster.cache_dir / "checkpoints")
    config = replace(config, fields=source.mappings())
    documents = source.read(corpus)
    ray.check(write.checkpoint)
    vectors.check(colbert.enabled)
    connection = open_cluster(cluster)
    try:
        distributed = ray.config(cluster, connection)
        if colbert.enabled:  # before any model is loaded
            refuse_embeddings_in_place(connection, index_name)
        encoder = build_encoder(model.encoder_config())
        fields = _other_fields(colbert, vectors, model.device)
        result = _run(connection, documents, encoder, config, fields, distributed)
        kept = field_types(connection, index_name, [k.name for k in source.kept])
    finally:
        connection.close()
    click.echo(_summary(result.report, encoder.config.document_max_length))
    if kept:
        click.echo(f"kept fields    {_kept_summary(kept, source, corpus)}")
    click.echo(
        f"index          {index_name}: {result.documents} docs, {result.size_bytes / 1e6:.1f} MB"
    )
    if result.report is not None and result.report.failures:
        click.echo(f"Warning: {BulkFailedError(result.report, config.bulk.dead_letter)}", err=True)
    if result.alias_left is not None:
        moved = (
            f" (moved from {', '.join(result.alias_left)}; not deleted)"
            if result.alias_left
            else ""
        )
        click.echo(f"alias          {config.alias} -> {index_name}{moved}")


def _other_fields(
    colbert: ColbertOptions, vectors: VectorOptions, device: str | None
) -> tuple[ColbertIndexing | None, DenseIndexing | None]:
    """The ColBERT (and MUVERA) fields and the dense one, their models loaded."""
    embeddings = None
    if colbert.enabled:
        model = build_colbert(colbert.encoder_config(device))
        embeddings = ColbertIndexing(model, colbert.storage, vectors.muvera_indexing())
    return embeddings, vectors.dense_indexing(device)


def _kept_summary(kept: dict[str, str], source: CorpusOptions, corpus: Path) -> str:
    """How each kept field was mapped; for an untyped CSV column mapped as text (CSV values
    are all text, numbers too), the option that types it."""
    typed = {k.name for k in source.kept if k.type is not None}
    parts = []
    for name, kind in kept.items():
        untyped_text = kind == "text" and name not in typed and source.is_csv(corpus)
        hint = f" (untyped: --keep-field {name}:int for numbers)" if untyped_text else ""
        parts.append(f"{name} as {kind}{hint}")
    return ", ".join(parts)


def _run(
    cluster: Cluster,
    documents: Iterable[Document | Rejected],
    encoder: SpladeEncoder,
    config: BuildConfig,
    fields: tuple[ColbertIndexing | None, DenseIndexing | None],
    ray: RayConfig | None,
) -> BuildResult:
    """build_index, with the CLI's messages and exit statuses (1: failures, 3: stopped)."""
    colbert, dense = fields
    max_length = encoder.config.document_max_length

    def announce(prepared: PreparedIndex) -> None:
        if prepared.embeddings is not None:
            codec = prepared.embeddings.codec
            model = prepared.embeddings.encoder
            click.echo(
                f"ColBERT: {model.config.model} ({model.dim} dims), {codec.name} codec, "
                f"{codec.bytes_per_token:.0f} bytes/token",
                err=True,
            )
        layout = prepared.layout
        click.echo(
            f"Index {prepared.index} {prepared.state}: field {layout.field} as "
            f"{layout.mapping_type} on {cluster.engine} {cluster.version}, replicas "
            f"{prepared.replicas} (--replicas N for a fixed count)",
            err=True,
        )

    try:
        return build_index(
            cluster, documents, encoder, config, colbert, on_prepared=announce, ray=ray, dense=dense
        )
    except BulkStoppedError as stopped:
        click.echo(_summary(stopped.report, max_length))
        click.echo(f"Error: {stopped}", err=True)
        if stopped.report.failures:
            click.echo(
                f"Warning: {BulkFailedError(stopped.report, config.bulk.dead_letter)}", err=True
            )
        raise SystemExit(3) from None
    except BulkInterrupted as interrupted:
        report = interrupted.report
        click.echo(_summary(report, max_length))
        click.echo(
            f"Interrupted: {report.indexed} documents landed in {config.index} in this run, "
            "recorded in the checkpoint (with --ray: held by the index). Run the same "
            "command again to go on: they are skipped, not encoded again.",
            err=True,
        )
        raise SystemExit(130) from None
    except BulkFailedError as failed:
        click.echo(_summary(failed.report, max_length))
        raise click.ClickException(str(failed)) from None


def _summary(report: IndexReport | None, max_length: int) -> str:
    if report is None:
        return "reused         the index already held every document"
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
            f"skipped        {report.skipped} (already indexed, per the checkpoint or index)",
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
