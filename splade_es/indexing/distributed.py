"""Distributed encoding: the document loop of :func:`~splade_es.indexing.build.build_index`
run on a Ray cluster with Ray Data.

The driver (this module) validates the documents with the single-process path's checks
(input errors, bad and repeated ids), hands the valid ones to the object store in blocks of
``batch_size``, and runs ``map_batches`` over an actor pool: one
:class:`~splade_es.indexing.workers.BatchWriter` per worker, each loading the models once
(on a GPU when the cluster has them) and writing its batches through the package's bulk
writer (retries, back-pressure). The driver merges the outcomes into one
:class:`~splade_es.indexing.report.IndexReport` and one dead-letter file, and raises as the
single-process path does.

Resuming needs no checkpoint file: each worker asks the index which documents of its batch
it already holds unchanged and skips them. Ray restarts an actor that dies and gives its
batch to a live one; the retried batch skips what the dead one had written, and ``_id`` is
the document id, so nothing is lost or duplicated.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.progress import ProgressBar, progress_bar
from colbert_rerank.storage import EmbeddingFields
from splade_es.cluster.connection import Cluster, ClusterConfig
from splade_es.data.corpus import Document, Rejected
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.indexing.queue import Encoded, Failure, Producer
from splade_es.indexing.report import (
    BulkConfig,
    BulkFailedError,
    BulkInterrupted,
    BulkStoppedError,
    IndexReport,
)
from splade_es.indexing.workers import (
    BLOCK_COLUMN,
    OUTCOME_COLUMN,
    BatchOutcome,
    BatchWriter,
    WorkerSpec,
)
from splade_es.indexing.writer import Writer

__all__ = ["RayConfig", "check_ray_run", "index_on_ray", "merge_outcomes", "pool_shape"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run the encoders with Ray.

    Attributes:
        address: the Ray cluster (``ray://head:10001``, ``head:6379``, ``auto`` for the one
            running on this machine); ``None`` attaches to a Ray instance this process (or
            ``ray start`` on this machine) already runs, else starts a local one, shut down
            at the end.
        workers: actors in the pool, each with its own copy of the models; ``None``: one
            per GPU of the cluster when it has GPUs (and the encoder is not pinned to the
            CPU), else one per ``cpus_per_worker`` CPUs.
        batch_size: documents per batch handed to a worker (and per ``_mget`` that checks
            what the index already holds).
        cpus_per_worker: CPUs reserved by each actor (also its torch threads).
        gpus_per_worker: GPUs reserved by each actor; ``None``: 1 when the cluster has GPUs
            and the encoder is not pinned to the CPU, else 0.
        cluster: how the workers connect to the search cluster; ``None``: the driver's URL
            and engine without credentials (a local node). Pass the full config (API key,
            CA file) for a secured cluster.
    """

    address: str | None = None
    workers: int | None = None
    batch_size: int = 256
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    cluster: ClusterConfig | None = None

    def __post_init__(self) -> None:
        check_positive_ints(self, "batch_size")
        check_positive_ints(self, "workers", optional=True)
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise ValueError(
                f"address={self.address!r}: expected a Ray address such as 'ray://head:10001' "
                "or 'auto', or None for a local Ray instance."
            )
        if not isinstance(self.cpus_per_worker, int | float) or self.cpus_per_worker <= 0:
            raise ValueError(
                f"cpus_per_worker={self.cpus_per_worker!r}: expected a number above 0, e.g. 1."
            )
        gpus = self.gpus_per_worker
        if gpus is not None and (not isinstance(gpus, int | float) or gpus < 0):
            raise ValueError(
                f"gpus_per_worker={gpus!r}: expected a number >= 0 (0.5 shares a GPU between "
                "two workers), or None to use one GPU per worker when the cluster has them."
            )


def index_on_ray(
    cluster: Cluster,
    documents: Iterable[Document | Rejected],
    splade: SpladeEncoder,
    embeddings: EmbeddingFields | None,
    config: BulkConfig,
    ray_config: RayConfig,
    *,
    total: int | None = None,
) -> IndexReport:
    """Encode and index ``documents`` on Ray workers; the merged report.

    Called by :func:`~splade_es.indexing.build.build_index` (``ray=RayConfig(...)``) once
    the index is prepared; it raises as :func:`~splade_es.indexing.bulk.index_documents`.

    Args:
        cluster: the driver's connection (dead letters, refresh).
        documents: validated documents and rejected inputs.
        splade: the SPLADE encoder; the workers load its config again.
        embeddings: the fitted ColBERT field encoder, if any (its codec travels as is).
        config: bulk settings; ``checkpoint`` must be unset (the index is the checkpoint).
        ray_config: the Ray cluster and pool.
        total: number of inputs, for the progress bar.

    Raises:
        ImportError: Ray Data is not installed (``pip install 'splade-es[ray]'``).
        ValueError: ``config.checkpoint`` is set.
        BulkFailedError / BulkStoppedError / BulkInterrupted: as the single-process path.

    Example:
        >>> report = index_on_ray(cluster, docs, encoder, None, BulkConfig("docs"),
        ...                       RayConfig(workers=4))  # doctest: +SKIP
    """
    ray = check_ray_run(config)
    target = ray_config.cluster or ClusterConfig(url=cluster.url, engine=cluster.engine)
    spec = WorkerSpec.of(target, splade.config, config, embeddings)
    started = time.perf_counter()
    writer = Writer(cluster, config, time.sleep)  # the driver's: the dead-letter file only
    outcomes: list[BatchOutcome] = []
    try:
        with (
            _ray_session(ray, ray_config.address),
            progress_bar(
                total=total, desc="indexing on ray", unit="doc", enabled=config.progress
            ) as bar,
        ):
            blocks = _blocks(ray, documents, config, writer, ray_config.batch_size)
            bar.update(len(writer.failures))
            _collect(_run(ray, blocks, spec, ray_config), writer, bar, outcomes)
    except KeyboardInterrupt:
        raise BulkInterrupted(_merged(config, writer, outcomes, started)) from None
    finally:
        writer.close()
    return _finish(cluster, config, _merged(config, writer, outcomes, started), outcomes)


def _collect(
    results: Generator[BatchOutcome, None, None],
    writer: Writer,
    bar: ProgressBar[Any],
    outcomes: list[BatchOutcome],
) -> None:
    """Append each outcome to ``outcomes``, its failures to the dead-letter file, until the
    end or a stop (closing ``results`` then ends the dataset)."""
    with closing(results):
        for outcome in results:
            outcomes.append(outcome)
            for failure in outcome.failures:
                writer.fail(failure)
            bar.update(outcome.documents)
            if outcome.stopped is not None:
                return


def check_ray_run(config: BulkConfig) -> Any:
    """The ``ray`` module (Ray Data loaded), once ``config`` suits a Ray run.

    Raises:
        ImportError: Ray Data is not installed (names the extra to install).
        ValueError: ``config.checkpoint`` is set.
    """
    if config.checkpoint is not None:
        raise ValueError(
            f"checkpoint={config.checkpoint}: a Ray run resumes from the index itself (the "
            "documents it already holds are skipped); leave the checkpoint unset."
        )
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise ImportError(
            "Indexing on Ray needs Ray Data: pip install 'splade-es[ray]'."
        ) from error
    return ray


def merge_outcomes(
    index: str,
    failures: Sequence[Failure],
    outcomes: Sequence[BatchOutcome],
    seconds: float,
    chunk_docs: int,
) -> IndexReport:
    """One report from the workers' batch outcomes.

    Args:
        index: the index written.
        failures: every document not indexed, in the order the dead-letter file has them
            (rejected inputs found by the driver, then the workers' failures).
        outcomes: one per batch.
        seconds: the run's wall time.
        chunk_docs: the configured request size (the smallest one when no request was sent).

    Example:
        >>> merge_outcomes("docs", [], [BatchOutcome(2, indexed=2)], 1.0, 500).indexed
        2
    """
    counters: Counter[str] = Counter()
    for outcome in outcomes:
        counters.update(outcome.counters)
    sent = [o.smallest_chunk_docs for o in outcomes if o.bulk_requests]
    return IndexReport(
        index=index,
        indexed=sum(o.indexed for o in outcomes),
        skipped=sum(o.skipped for o in outcomes),
        failures=list(failures),
        counters=dict(counters),
        encoded=sum(o.encoded for o in outcomes),
        seconds=seconds,
        bulk_requests=sum(o.bulk_requests for o in outcomes),
        retried_documents=sum(o.retried_documents for o in outcomes),
        throttled_requests=sum(o.throttled_requests for o in outcomes),
        smallest_chunk_docs=min(sent, default=chunk_docs),
    )


def _merged(
    config: BulkConfig, writer: Writer, outcomes: Sequence[BatchOutcome], started: float
) -> IndexReport:
    seconds = time.perf_counter() - started
    return merge_outcomes(config.index, writer.failures, outcomes, seconds, config.chunk_docs)


def _finish(
    cluster: Cluster, config: BulkConfig, report: IndexReport, outcomes: Sequence[BatchOutcome]
) -> IndexReport:
    """Refresh, then raise as the single-process path would."""
    stopped = next((o.stopped for o in outcomes if o.stopped is not None), None)
    if stopped is not None:
        message, reason, unsent = stopped
        raise BulkStoppedError(message, reason, report, unsent)
    if config.refresh:
        cluster.request("POST", f"/{config.index}/_refresh")
    if report.failures and config.raise_on_failure:
        raise BulkFailedError(report, config.dead_letter)
    return report


@contextmanager
def _ray_session(ray: Any, address: str | None) -> Iterator[None]:
    """Ray, initialised: the instance this process already has, else ``address`` (or a local
    instance, shut down on leaving). Ray Data's own progress bars are off (ours counts)."""
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars
    context.enable_progress_bars = False
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, logging_level=logging.WARNING)
    elif address is not None:
        logger.info("Ray is already initialised in this process: using it, not %s", address)
    try:
        yield
    finally:
        context.enable_progress_bars = saved
        if started_here:
            ray.shutdown()


def _blocks(
    ray: Any,
    documents: Iterable[Document | Rejected],
    config: BulkConfig,
    writer: Writer,
    batch_size: int,
) -> list[Any]:
    """The valid documents, put in the object store in blocks of ``batch_size`` (the driver
    keeps only the references); the others go to ``writer`` as failures. Validation is the
    single-process path's own: a :class:`Producer` without field encoders (no model runs)."""
    checks = Producer(documents, [], config.index, batch_size, config.queue_batches)
    refs: list[Any] = []
    block: list[Document] = []
    checks.start()
    try:
        for item in checks.results():
            if isinstance(item, Encoded):
                block.append(item.document)
            elif isinstance(item, Failure):
                writer.fail(item)
            if len(block) >= batch_size:
                refs.append(ray.put(block))
                block = []
    finally:
        checks.stop()
    if block:
        refs.append(ray.put(block))
    return refs


def _run(
    ray: Any, blocks: list[Any], spec: WorkerSpec, config: RayConfig
) -> Generator[BatchOutcome, None, None]:
    """Run the pool over ``blocks``; the batch outcomes as they come.

    The dataset's rows are block numbers (``from_items`` builds its metadata here, where
    ``from_arrow_refs`` would start a task per block); each worker holds the references to
    the blocks and each call gets one. Ray Data
    restarts a dead actor and retries its batch on the pool (``max_restarts`` and
    ``max_task_retries`` are -1 for actor pools).
    """
    if not blocks:
        return
    gpus, workers = pool_shape(ray.cluster_resources(), spec.splade.device, config)
    workers = min(workers, len(blocks))  # an actor without a batch would only load models
    logger.info("Encoding %d batches on %d Ray workers (%s GPU each)", len(blocks), workers, gpus)
    rows = [{BLOCK_COLUMN: number} for number in range(len(blocks))]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        BatchWriter,
        fn_constructor_args=(spec, blocks),
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=config.cpus_per_worker,
        num_gpus=gpus,
    )
    for row in dataset.iter_rows():
        yield BatchOutcome.from_json(str(row[OUTCOME_COLUMN]))


def pool_shape(
    resources: Mapping[str, float], device: str | None, config: RayConfig
) -> tuple[float, int]:
    """GPUs per worker and the number of workers on a Ray cluster with ``resources``.

    Args:
        resources: ``ray.cluster_resources()``, e.g. ``{"CPU": 16.0, "GPU": 2.0}``.
        device: the encoder's device (``cpu`` keeps the workers off the GPUs).
        config: the settings, whose ``None`` values are filled in here.

    Example:
        >>> pool_shape({"CPU": 16.0, "GPU": 2.0}, None, RayConfig())
        (1.0, 2)
        >>> pool_shape({"CPU": 16.0, "GPU": 2.0}, "cpu", RayConfig(cpus_per_worker=4))
        (0.0, 4)
    """
    cluster_gpus = float(resources.get("GPU", 0))
    cluster_cpus = float(resources.get("CPU", 1))
    gpus = config.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if cluster_gpus >= 1 and device != "cpu" else 0.0
    workers = config.workers
    if workers is None:
        by_gpu = int(cluster_gpus // gpus) if gpus > 0 else 0
        workers = max(1, by_gpu or int(cluster_cpus // config.cpus_per_worker))
    return float(gpus), workers
