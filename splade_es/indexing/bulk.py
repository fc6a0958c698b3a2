"""The bulk pipeline: documents -> encoded fields -> bulk requests -> report.

The one way documents are written to the cluster.

* Encoding runs in a background thread, a few batches ahead of the writer (a bounded
  queue), so the cluster never waits for the model and the model never waits for the cluster.
* Chunks are cut by document count and by bytes. Each chunk is sent with
  :meth:`Cluster.bulk` (the engine's bulk helper); transient failures (429, 502/503/504,
  connection errors, timeouts, index blocks) are retried with exponential backoff and jitter
  (tenacity), and a retry re-sends only the documents that failed. ``_id`` is the document
  id, so a retry or a re-run overwrites instead of duplicating.
* Back-pressure: every 429 (whole request or some of its documents) halves the size of the
  bulk requests, down to ``min_chunk_docs``; each request that goes through without one
  grows it again by an eighth of ``chunk_docs``. One request is in flight at a time.
* Documents the cluster refuses for good (mapping errors, bad input) are reported with id,
  status and reason, in the report and in a dead-letter JSONL file, and the run raises
  :class:`BulkFailedError` at the end unless the caller opts out.
* When the cluster keeps failing for ``max_attempts`` tries (no answer, sustained 429, a
  read-only index) the documents are not to blame: the run stops with
  :class:`BulkStoppedError` (its partial report attached) instead of writing them to the
  dead-letter file, and a re-run with the same checkpoint continues.
* A checkpoint file records the documents the cluster acknowledged; a re-run with the same
  checkpoint skips them without encoding them again.

The stages live apart: :mod:`~splade_es.indexing.queue` encodes (in a thread),
:mod:`~splade_es.indexing.writer` sends, :mod:`~splade_es.indexing.report` holds the
configuration, the report and the errors; this module wires them into one call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from colbert_rerank.progress import ProgressBar, progress_bar
from splade_es.cluster.connection import Cluster
from splade_es.data.corpus import Document, Rejected
from splade_es.indexing.queue import (
    DocumentEncoder,
    EncodedFields,
    Failure,
    FieldBatch,
    Producer,
)
from splade_es.indexing.report import (
    BulkConfig,
    BulkFailedError,
    BulkInterrupted,
    BulkStoppedError,
    IndexReport,
)
from splade_es.indexing.writer import Writer, WriteStopped

__all__ = [
    "BulkConfig",
    "BulkFailedError",
    "BulkInterrupted",
    "BulkStoppedError",
    "DocumentEncoder",
    "EncodedFields",
    "Failure",
    "FieldBatch",
    "IndexReport",
    "index_documents",
]


def index_documents(
    cluster: Cluster,
    documents: Iterable[Document | Rejected],
    encoders: Sequence[DocumentEncoder],
    config: BulkConfig,
    *,
    total: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> IndexReport:
    """Encode and index ``documents``; return the report (raise on failures unless opted out).

    Args:
        cluster: where to write.
        documents: validated documents and rejected inputs, streamed.
        encoders: representations to compute per document (their fields are merged).
        config: chunking, retries, files.
        total: number of inputs, for the progress bar (optional).
        sleep: how to wait between retries (tests pass a no-op).

    Raises:
        BulkFailedError: documents failed and ``config.raise_on_failure`` is set.
        BulkStoppedError: the cluster failed ``max_attempts`` tries in a row (no answer,
            sustained 429, a read-only index); the checkpoint lets a re-run continue.
        BulkInterrupted: Ctrl-C; its report says what landed, and a re-run with the same
            checkpoint continues.

    Example:
        >>> config = BulkConfig(index="docs", dead_letter=Path("dead.jsonl"))
        >>> report = index_documents(cluster, documents, [SpladeFields(encoder)], config)
        >>> report.indexed, report.failed
        (1000, 0)
    """
    writer = Writer(cluster, config, sleep)
    started = time.perf_counter()
    producer = _producer(documents, encoders, config)
    producer.start()
    interrupted = False
    try:
        stopped = _write(producer, writer, config.progress, total)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        producer.stop()
        writer.close()
    if interrupted:  # counted once the encoder thread has stopped
        raise BulkInterrupted(_report(config, producer, writer, time.perf_counter() - started))
    if config.refresh and stopped is None:
        cluster.request("POST", f"/{config.index}/_refresh")
    report = _report(config, producer, writer, time.perf_counter() - started)
    if stopped is not None:
        raise BulkStoppedError(stopped.message, stopped.reason, report, stopped.unsent)
    if report.failures and config.raise_on_failure:
        raise BulkFailedError(report, config.dead_letter)
    return report


def _producer(
    documents: Iterable[Document | Rejected],
    encoders: Sequence[DocumentEncoder],
    config: BulkConfig,
) -> Producer:
    return Producer(
        documents,
        encoders,
        config.index,
        config.encode_batch,
        config.queue_batches,
        config.checkpoint,
        routing_field=config.routing_field,
    )


def _write(
    producer: Producer, writer: Writer, progress: bool, total: int | None
) -> WriteStopped | None:
    """Hand every result of ``producer`` to ``writer``, then send what is pending; the reason
    the cluster stopped the run, if it did."""
    with _progress(progress, total) as bar:
        try:
            for item in producer.results():
                writer.take(item)
                _show(bar, producer, writer)
            writer.flush()
        except WriteStopped as stop:
            return stop
        _show(bar, producer, writer)
    return None


def _show(bar: ProgressBar[Any], producer: Producer, writer: Writer) -> None:
    """Move the bar to the documents read so far, with how many were encoded and how many
    the cluster acknowledged (requests go out a chunk at a time, so that one lags). On a
    terminal the bar redraws a few times a second; in a file or pipe it writes a line every
    few seconds, never once per document."""
    bar.set_postfix(
        encoded=producer.encoded,
        acknowledged=writer.indexed,
        failed=len(writer.failures),
        refresh=False,
    )
    bar.update(producer.consumed - bar.n)


def _report(config: BulkConfig, producer: Producer, writer: Writer, seconds: float) -> IndexReport:
    return IndexReport(
        index=config.index,
        indexed=writer.indexed,
        skipped=writer.skipped,
        failures=writer.failures,
        counters=dict(producer.counters),
        encoded=producer.encoded,
        seconds=seconds,
        bulk_requests=writer.requests,
        retried_documents=writer.retried,
        throttled_requests=writer.throttled,
        smallest_chunk_docs=writer.smallest,
    )


def _progress(enabled: bool, total: int | None) -> ProgressBar[Any]:
    return progress_bar(total=total, desc="indexing", unit="doc", enabled=enabled)
