"""Build or refresh an index from a corpus: the one entry point every caller uses.

Indexing: documents -> (ColBERT codebook fitted on a sample) -> index created or checked ->
SPLADE terms and token embeddings encoded in one pass -> bulk writes -> report -> alias.
The CLI's ``index`` command, evaluation, the quickstart and the benchmarks all call
:func:`build_index` instead of wiring the stages by hand (only the bulk writer's own tests
drive :func:`~splade_es.indexing.bulk.index_documents` directly, to inject faults).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.storage import META_KEY as COLBERT_META_KEY
from colbert_rerank.storage import EmbeddingFields
from splade_es.cluster.admin import (
    IndexMismatchError,
    await_copies,
    field_types,
    get_index,
    index_stats,
    index_uuid,
    replicas,
    swap_alias,
)
from splade_es.cluster.capabilities import require_knn
from splade_es.cluster.connection import Cluster
from splade_es.cluster.mapping import IndexLayout
from splade_es.cluster.names import check_index_name
from splade_es.cluster.vectors import needs_knn_setting
from splade_es.data.corpus import Document, Rejected
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.indexing.bulk import BulkConfig, DocumentEncoder, IndexReport, index_documents
from splade_es.indexing.colbert_fields import (
    ColbertStorage,
    adopt_existing,
    peek,
    prepare_embeddings,
)
from splade_es.indexing.distributed import RayConfig, check_ray_run, index_on_ray
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
from splade_es.indexing.vector_fields import (
    DenseIndexing,
    MuveraIndexing,
    add_vector_fields,
    check_vector_fields,
)

MappingChoice = Literal["auto", "rank_features", "sparse_vector"]


@dataclass(frozen=True)
class ColbertIndexing:
    """Store ColBERT token embeddings with each document (for reranking).

    Attributes:
        encoder: the late-interaction model.
        storage: codec, bits, codebook sample, reduced dimension, field.
        muvera: also store the MUVERA encoding of the token embeddings in a kNN field (the
            ``muvera`` first stage), computed from the same run of the model.
    """

    encoder: ColbertEncoder
    storage: ColbertStorage = field(default_factory=ColbertStorage)
    muvera: MuveraIndexing | None = None


@dataclass(frozen=True)
class BuildConfig:
    """How to build the index.

    Attributes:
        bulk: the target index and how to write (chunks, retries, dead letter, checkpoint).
        mapping_type: ``auto`` picks ``rank_features`` where the cluster has it.
        shards / replicas: index settings (``None``: the template's, then the cluster's).
        template: a mapping template (``settings`` and ``mappings``) whose analyzers, fields
            and settings are kept; ``None`` uses the packaged ``mappings/index.json``.
        alias: after a run that raised nothing, point this alias at the index (atomic).
        checkpoint_dir: when ``bulk.checkpoint`` is unset, keep the checkpoint here, named
            after the index and its UUID (a re-created index is filled again).
        expected_documents: when the index already holds exactly this many documents, reuse
            it without writing (evaluation and the quickstart re-run this way).
        fields: mappings of kept source fields, e.g. ``{"year": {"type": "long"}}`` (from
            ``KeptField.mapping``); a field left out gets the engine's dynamic mapping.
    """

    bulk: BulkConfig
    mapping_type: MappingChoice = "auto"
    shards: int | None = None
    replicas: int | None = None
    template: Mapping[str, Any] | None = None
    alias: str | None = None
    checkpoint_dir: Path | None = None
    expected_documents: int | None = None
    fields: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.alias is not None:
            check_index_name(self.alias)
        check_positive_ints(self, "shards", "expected_documents", optional=True)
        if self.replicas is not None and (not isinstance(self.replicas, int) or self.replicas < 0):
            raise ValueError(f"replicas={self.replicas!r}: expected an integer >= 0 or None.")

    @property
    def index(self) -> str:
        """The index written."""
        return self.bulk.index


@dataclass(frozen=True)
class PreparedIndex:
    """The index, ready for documents.

    Attributes:
        index: its name.
        state: ``created`` now, or ``exists`` (built before with the same model and layout).
        layout: its SPLADE field and mapping type.
        embeddings: the ColBERT field encoder (``None`` without ColBERT).
        checkpoint: the checkpoint file of this run, if any.
        replicas: how the index replicates, in words (``0`` on a cluster of one data node
            unless asked otherwise: a replica could never be assigned there).
    """

    index: str
    state: Literal["created", "exists"]
    layout: IndexLayout
    embeddings: EmbeddingFields | None
    checkpoint: Path | None
    replicas: str = "?"


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_index` did.

    Attributes:
        prepared: the index as prepared.
        report: the bulk run (``None`` when a complete index was reused).
        documents / size_bytes: the index after the run (refreshed).
        alias_left: indices the alias moved away from (not deleted); ``None`` without alias.
    """

    prepared: PreparedIndex
    report: IndexReport | None
    documents: int
    size_bytes: int
    alias_left: list[str] | None = None

    @property
    def reused(self) -> bool:
        """Whether a complete index was reused without writing."""
        return self.report is None


def prepare(
    cluster: Cluster,
    documents: Iterable[Document | Rejected],
    splade: SpladeEncoder,
    config: BuildConfig,
    colbert: ColbertIndexing | None = None,
    dense: DenseIndexing | None = None,
) -> tuple[PreparedIndex, list[DocumentEncoder], Iterator[Document | Rejected]]:
    """Fit the ColBERT codebook (on the first valid documents), create or check the index.

    Returns:
        The prepared index, the field encoders to run, and the documents (all of them: the
        sample taken for the codebook is still in the stream).

    Raises:
        IndexMismatchError: the index exists but was built differently.
        ValueError: no valid document to fit the codebook on, a bad template.
    """
    index = check_index_name(config.index)
    muvera = colbert.muvera if colbert is not None else None
    _check_vectors(cluster, config, colbert, dense)  # before a model runs or a codebook is stored
    encoders: list[DocumentEncoder] = [SpladeFields(splade)]
    stream: Iterator[Document | Rejected] = iter(documents)
    embeddings: EmbeddingFields | None = None
    properties: dict[str, Any] = {name: dict(spec) for name, spec in config.fields.items()}
    meta: dict[str, Any] = {}
    if colbert is not None:
        colbert = replace(colbert, storage=adopt_existing(cluster, index, colbert.storage))
        _refuse_before_fitting(cluster, index, colbert, properties)
        sample, stream = peek(stream, colbert.storage.sample_documents)
        embeddings, stored, meta = prepare_embeddings(
            cluster, index, colbert.encoder, colbert.storage, sample, config.bulk.progress
        )
        properties.update(stored)
        encoders.append(embeddings)
    encoders, vector_properties = add_vector_fields(
        cluster.engine, (muvera, dense), embeddings, encoders, (properties, meta)
    )
    layout, state = prepare_index(
        cluster,
        splade,
        index,
        config.mapping_type,
        shards=config.shards,
        replicas=_replicas(cluster, config),
        extra_properties=properties,
        extra_meta=meta,
        template=config.template,
        source_excludes=(*_excluded(colbert), *vector_properties),
        knn=bool(vector_properties) and needs_knn_setting(cluster.engine),
    )
    if state == "exists":
        _refuse_other_field_types(cluster, index, config.fields)
    await_copies(cluster, index)  # replicas in sync before writing, where they can be placed
    checkpoint = config.bulk.checkpoint
    if checkpoint is None and config.checkpoint_dir is not None:
        checkpoint = config.checkpoint_dir / f"{index}-{index_uuid(cluster, index)}.tsv"
    copies = replicas(cluster, index)
    return PreparedIndex(index, state, layout, embeddings, checkpoint, copies), encoders, stream


def _check_vectors(
    cluster: Cluster,
    config: BuildConfig,
    colbert: ColbertIndexing | None,
    dense: DenseIndexing | None,
) -> None:
    """Refuse vector fields the cluster or the index could not take (see
    :func:`~splade_es.indexing.vector_fields.check_vector_fields`, and kNN search itself)."""
    muvera = colbert.muvera if colbert is not None else None
    if dense is None and muvera is None:
        return
    taken = [*config.fields, *([colbert.storage.field] if colbert is not None else [])]
    token_dim = colbert.encoder.dim if colbert is not None else None
    check_vector_fields(cluster.engine, (muvera, dense), token_dim, taken)
    require_knn(cluster)


def _excluded(colbert: ColbertIndexing | None) -> tuple[str, ...]:
    """The embeddings field when it is kept outside ``_source`` (doc values, stored field)."""
    if colbert is None or colbert.storage.form == "source":
        return ()
    return (colbert.storage.field,)


def _refuse_before_fitting(
    cluster: Cluster, index: str, colbert: ColbertIndexing, properties: Mapping[str, Any]
) -> None:
    """What would make the index refuse the run, checked before a codebook is stored."""
    if colbert.storage.field in properties:
        raise ValueError(
            f"Kept field {colbert.storage.field!r} has the name of the ColBERT field: rename it "
            "in the input, or store the embeddings in another field (ColbertStorage.field)."
        )
    refuse_embeddings_in_place(cluster, index)


def _replicas(cluster: Cluster, config: BuildConfig) -> int | None:
    """``config.replicas``; else 0 on a cluster of one data node, where a replica could never
    be assigned (the index would stay yellow), unless the template sets replicas; else
    ``None`` (the template's, or the cluster's default and its index templates)."""
    if config.replicas is not None:
        return config.replicas
    settings = (config.template or {}).get("settings", {})
    flat = {**settings, **settings.get("index", {})}
    if any(k.endswith(("number_of_replicas", "auto_expand_replicas")) for k in flat):
        return None
    nodes = cluster.request("GET", "/_cluster/health")["number_of_data_nodes"]
    return 0 if nodes == 1 else None


def _refuse_other_field_types(
    cluster: Cluster, index: str, fields: Mapping[str, Mapping[str, Any]]
) -> None:
    """Refuse typed kept fields that the existing index maps as another type."""
    mapped = field_types(cluster, index, list(fields))
    wrong = {n: mapped[n] for n in fields if n in mapped and mapped[n] != fields[n].get("type")}
    if wrong:
        shown = ", ".join(
            f"{n} as {kind}, not {fields[n].get('type')}" for n, kind in wrong.items()
        )
        raise IndexMismatchError(
            f"Index {index!r} already maps {shown}: build a new index with the types "
            "(--keep-field name:type) and move an alias to it (--alias)."
        )


def _check_ray(
    config: BuildConfig, colbert: ColbertIndexing | None, dense: DenseIndexing | None
) -> None:
    """Refuse a Ray run that could not keep its promises (a checkpoint, vector fields)."""
    check_ray_run(config.bulk)
    if dense is not None or (colbert is not None and colbert.muvera is not None):
        raise ValueError(
            "The dense and MUVERA fields are not written by Ray workers yet: index them "
            "without --ray (one process), or leave --dense/--muvera out on Ray."
        )


def refuse_embeddings_in_place(cluster: Cluster, index: str) -> None:
    """Refuse to add token embeddings to an existing index that has none (its documents would
    stay without them). :func:`build_index` checks this before it fits a codebook; the CLI
    calls it before loading any model.

    Raises:
        IndexMismatchError: says to build a new index with embeddings and move an alias.
    """
    info = get_index(cluster, index)
    if info is not None and not info.all_meta.get(COLBERT_META_KEY):
        raise IndexMismatchError(
            f"Index {index!r} exists without ColBERT token embeddings, and they cannot be added "
            "in place: build a new index with them (splade-es index --colbert, or "
            "ColbertIndexing) and move an alias to it (--alias / BuildConfig.alias)."
        )


def build_index(
    cluster: Cluster,
    documents: Iterable[Document | Rejected],
    splade: SpladeEncoder,
    config: BuildConfig,
    colbert: ColbertIndexing | None = None,
    *,
    total: int | None = None,
    on_prepared: Callable[[PreparedIndex], None] | None = None,
    ray: RayConfig | None = None,
    dense: DenseIndexing | None = None,
) -> BuildResult:
    """Build (or refresh, or resume) ``config.index`` from ``documents``.

    Args:
        cluster: where to write.
        documents: validated documents and rejected inputs (e.g. from
            :func:`~splade_es.data.readers.read_corpus`), streamed.
        splade: the SPLADE encoder (its ``_meta`` is recorded in the index).
        config: index, mapping, bulk settings, alias.
        colbert: also store ColBERT token embeddings (``None``: SPLADE only).
        total: number of inputs, for the progress bar.
        on_prepared: called once the index is ready, before any document is written.
        ray: encode and write on a Ray cluster (:class:`RayConfig`, the ``ray`` extra) once
            the index is prepared here; a re-run skips the documents the index already holds
            (no checkpoint file: ``config.bulk.checkpoint`` must be unset).
        dense: also store a sentence embedding per document in a kNN field (``dense`` stage).

    Returns:
        The prepared index, the bulk report, the index's size after the run, the alias move.

    Raises:
        BulkFailedError: some documents were not indexed (unless
            ``config.bulk.raise_on_failure`` is off); the alias is not moved.
        BulkStoppedError: the cluster kept failing; re-run with the same checkpoint.
        IndexMismatchError: the index exists but was built differently.

    Example:
        >>> config = BuildConfig(BulkConfig(index="docs"), alias="docs-live")  # doctest: +SKIP
        >>> result = build_index(cluster, read_corpus(path), encoder, config)  # doctest: +SKIP
        >>> result.report.indexed  # doctest: +SKIP
    """
    if ray is not None:
        _check_ray(config, colbert, dense)  # before anything is written
    prepared, encoders, stream = prepare(cluster, documents, splade, config, colbert, dense)
    if ray is not None:
        prepared = replace(prepared, checkpoint=None)
    if on_prepared is not None:
        on_prepared(prepared)
    report: IndexReport | None = None
    count = index_stats(cluster, prepared.index)[0] if config.expected_documents else -1
    if count != config.expected_documents and ray is not None:
        embeddings = prepared.embeddings
        report = index_on_ray(cluster, stream, splade, embeddings, config.bulk, ray, total=total)
    elif count != config.expected_documents:
        bulk = replace(config.bulk, checkpoint=prepared.checkpoint)
        report = index_documents(cluster, stream, encoders, bulk, total=total)
    documents_now, size = index_stats(cluster, prepared.index)
    left = swap_alias(cluster, config.alias, prepared.index) if config.alias else None
    return BuildResult(prepared, report, documents_now, size, left)
