"""The bulk pipeline: documents -> encoded fields -> bulk requests -> report.

The only module that writes documents to the cluster.

* Encoding runs in a background thread, a few batches ahead of the writer (a bounded
  queue), so the cluster never waits for the model and the model never waits for the cluster.
* Chunks are cut by document count and by bytes. Each chunk is sent with the engine's
  ``helpers.streaming_bulk``; transient failures (429, 502/503/504, connection errors,
  timeouts, index blocks) are retried with exponential backoff and jitter (tenacity), and a
  retry re-sends only the documents that failed. ``_id`` is the document id, so a retry or a
  re-run overwrites instead of duplicating.
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
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import tenacity

from splade_es.cluster.connection import Cluster, ClusterError, redact_url
from splade_es.cluster.names import check_index_name
from splade_es.data.corpus import Document, Rejected
from splade_es.indexing.queue import (
    SKIPPED,
    DocumentEncoder,
    Encoded,
    EncodedFields,
    Failure,
    FieldBatch,
    Producer,
)

__all__ = [
    "BulkConfig",
    "BulkFailedError",
    "BulkStoppedError",
    "DocumentEncoder",
    "EncodedFields",
    "Failure",
    "FieldBatch",
    "IndexReport",
    "index_documents",
]

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class BulkConfig:
    """How to write.

    Attributes:
        index: target index (or alias with one write index).
        chunk_docs / chunk_bytes: a bulk request holds at most this many documents / bytes.
        encode_batch: documents encoded together.
        queue_batches: encoded batches buffered ahead of the writer (bounds memory).
        max_attempts: tries per chunk, the first included, before the run stops on
            transient errors (:class:`BulkStoppedError`).
        min_chunk_docs: the smallest bulk request back-pressure shrinks to.
        initial_backoff_s / max_backoff_s: exponential backoff with jitter between tries.
        dead_letter: JSONL file for documents that were not indexed (replaced at start,
            created only when a document fails).
        checkpoint: file of acknowledged documents; a re-run skips them. Tie it to the
            index (e.g. name it after the index UUID) so that a re-created index is filled
            again.
        raise_on_failure: raise :class:`BulkFailedError` at the end if any document failed.
        refresh: refresh the index at the end so the documents are searchable.
        progress: show a progress bar on stderr.
    """

    index: str
    chunk_docs: int = 500
    chunk_bytes: int = 8 * 1024 * 1024
    encode_batch: int = 64
    queue_batches: int = 4
    max_attempts: int = 8
    min_chunk_docs: int = 1
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    dead_letter: Path | None = None
    checkpoint: Path | None = None
    raise_on_failure: bool = True
    refresh: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check_index_name(self.index)
        for name in (
            "chunk_docs",
            "chunk_bytes",
            "encode_batch",
            "queue_batches",
            "max_attempts",
            "min_chunk_docs",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: expected a positive integer.")
        if self.min_chunk_docs > self.chunk_docs:
            raise ValueError(
                f"min_chunk_docs={self.min_chunk_docs} is above chunk_docs={self.chunk_docs}: "
                "back-pressure can only shrink requests; lower it."
            )
        if self.initial_backoff_s < 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError(
                f"backoff {self.initial_backoff_s}..{self.max_backoff_s}s: expected "
                "0 <= initial <= max."
            )


@dataclass(frozen=True)
class IndexReport:
    """What a run did.

    Attributes:
        indexed: documents acknowledged by the cluster in this run.
        skipped: documents skipped because the checkpoint showed them already indexed.
        failures: documents not indexed, with reasons (also in the dead-letter file).
        counters: summed encoder counters (``terms``, ``truncated``, ``pruned_terms``...).
        encoded: documents encoded in this run.
        seconds: wall time.
        bulk_requests: bulk calls made, retries included.
        retried_documents: document sends beyond the first (retries of failed items).
        throttled_requests: bulk calls answered 429, in whole or for some documents.
        smallest_chunk_docs: the smallest request size back-pressure went down to.
    """

    index: str
    indexed: int
    skipped: int
    failures: list[Failure]
    counters: dict[str, int]
    encoded: int
    seconds: float
    bulk_requests: int
    retried_documents: int
    throttled_requests: int = 0
    smallest_chunk_docs: int = 0

    @property
    def failed(self) -> int:
        """Documents not indexed (rejected input and failed writes)."""
        return len(self.failures)

    @property
    def docs_per_second(self) -> float:
        """Indexed documents per second of wall time."""
        return self.indexed / self.seconds if self.seconds > 0 else 0.0


class BulkFailedError(RuntimeError):
    """Some documents were not indexed; ``report`` lists them."""

    def __init__(self, report: IndexReport, dead_letter: Path | None) -> None:
        where = f" (details in {dead_letter})" if dead_letter else ""
        sample = "; ".join(f"{f.id}: {f.reason}" for f in report.failures[:3])
        super().__init__(
            f"{report.failed} document(s) were not indexed into {report.index}{where}: {sample}"
        )
        self.report = report


class BulkStoppedError(ClusterError):
    """The cluster kept failing (no answer, sustained 429, a blocked index); the run stopped.

    The documents not sent are not failures of their own: a re-run with the same checkpoint
    sends them. ``report`` is the run so far; ``unsent`` counts the documents of the chunk
    that was being sent.
    """

    def __init__(self, message: str, reason: str, report: IndexReport, unsent: int) -> None:
        super().__init__(message, None, "stopped", reason)
        self.report = report
        self.unsent = unsent


class _Transient(Exception):
    """A chunk (or some of its documents) should be tried again."""


class _Stop(Exception):
    """Retries ran out on a transient failure."""

    def __init__(self, message: str, reason: str, unsent: int) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.unsent = unsent


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
    """
    writer = _Writer(cluster, config, sleep)
    started = time.perf_counter()
    producer = Producer(
        documents,
        encoders,
        config.index,
        config.encode_batch,
        config.queue_batches,
        config.checkpoint,
    )
    producer.start()
    stopped: _Stop | None = None
    try:
        with _progress(config.progress, total) as bar:
            for item in producer.results():
                if isinstance(item, Failure):
                    writer.fail(item)
                else:
                    writer.add(item)
                bar.n = producer.consumed
                bar.set_postfix(indexed=writer.indexed, failed=len(writer.failures), refresh=False)
                bar.refresh()
            writer.flush()
            bar.n = producer.consumed
            bar.refresh()
    except _Stop as stop:
        stopped = stop
    finally:
        producer.stop()
        writer.close()
    if config.refresh and stopped is None:
        cluster.request("POST", f"/{config.index}/_refresh")
    report = IndexReport(
        index=config.index,
        indexed=writer.indexed,
        skipped=producer.skipped,
        failures=writer.failures,
        counters=dict(producer.counters),
        encoded=producer.encoded,
        seconds=time.perf_counter() - started,
        bulk_requests=writer.requests,
        retried_documents=writer.retried,
        throttled_requests=writer.throttled,
        smallest_chunk_docs=writer.smallest,
    )
    if stopped is not None:
        raise BulkStoppedError(stopped.message, stopped.reason, report, stopped.unsent)
    if report.failures and config.raise_on_failure:
        raise BulkFailedError(report, config.dead_letter)
    return report


class _Writer:
    """Cuts chunks, sends them with retries, records outcomes."""

    def __init__(self, cluster: Cluster, config: BulkConfig, sleep: Callable[[float], None]):
        self.cluster = cluster
        self.config = config
        self.sleep = sleep
        self.pending: list[Encoded] = []
        self.pending_bytes = 0
        self.indexed = 0
        self.failures: list[Failure] = []
        self.requests = 0
        self.retried = 0
        self._sent: set[int] = set()  # id() of the items of the current chunk sent so far
        self.throttled = 0
        self.limit = config.chunk_docs  # back-pressure moves it within [min_chunk_docs, chunk_docs]
        self.smallest = config.chunk_docs
        self._dead: IO[str] | None = None
        self._checkpoint: IO[str] | None = None
        if config.dead_letter is not None and config.dead_letter.exists():
            config.dead_letter.unlink()  # it describes this run only
        if config.checkpoint is not None:
            config.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            self._checkpoint = config.checkpoint.open("a", encoding="utf-8")
            if _ends_mid_line(config.checkpoint):  # a run killed while writing its last line
                self._checkpoint.write("\n")
        if cluster.engine == "opensearch":
            from opensearchpy import helpers
        else:
            from elasticsearch import helpers  # type: ignore[no-redef]
        self.helpers = helpers

    def add(self, item: Encoded) -> None:
        if item.size + self.pending_bytes > self.config.chunk_bytes and self.pending:
            self.flush()
        self.pending.append(item)
        self.pending_bytes += item.size
        if len(self.pending) >= self.config.chunk_docs:
            self.flush()

    def fail(self, failure: Failure) -> None:
        if failure is SKIPPED:
            return
        self.failures.append(failure)
        if self.config.dead_letter is not None:
            if self._dead is None:  # created on the first failure only
                self.config.dead_letter.parent.mkdir(parents=True, exist_ok=True)
                self._dead = self.config.dead_letter.open("w", encoding="utf-8")
            self._dead.write(failure.to_json() + "\n")
            self._dead.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        chunk, self.pending, self.pending_bytes = self.pending, [], 0
        self._sent.clear()
        remaining = chunk
        last_error = ""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.config.max_attempts),
            wait=tenacity.wait_exponential(
                multiplier=self.config.initial_backoff_s, max=self.config.max_backoff_s
            )
            + tenacity.wait_random(0, self.config.initial_backoff_s),
            retry=tenacity.retry_if_exception_type(_Transient),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    remaining, last_error = self._send_all(remaining)
                    if remaining:
                        raise _Transient(last_error)
        except _Transient:
            pass
        if not remaining:
            return
        where = redact_url(self.cluster.url)
        if last_error.startswith("transport:"):
            cause = f"no answer from {where}: {last_error[len('transport:') :].strip()}"
            fix = "check that the cluster runs"
        elif "cluster_block_exception" in last_error:
            cause = f"{self.config.index} refuses writes: {last_error}"
            fix = "free disk space or remove the index block (index.blocks.*)"
        else:
            cause = f"the cluster kept rejecting documents: {last_error}"
            fix = "give the cluster more capacity or lower --chunk-docs"
        raise _Stop(
            f"Stopped after {self.config.max_attempts} tries: {cause}. {len(remaining)} "
            f"documents of the current request and the rest of the corpus were not sent; "
            f"{fix}, then re-run with the same --checkpoint to continue.",
            last_error,
            len(remaining),
        )

    def _send_all(self, items: list[Encoded]) -> tuple[list[Encoded], str]:
        """Send ``items`` in requests of the current size; the items to retry, and why.

        The first request with a transient failure ends the try: its failed items and the
        items not sent yet wait for the backoff. A 429 also halves the request size.
        """
        start = 0
        while start < len(items):
            end = self._slice_end(items, start)
            failed, reason, throttled = self._send(items[start:end])
            if throttled:
                self.throttled += 1
                self._slow_down()
            elif not failed:
                self._speed_up()
            if failed:
                return failed + items[end:], reason
            start = end
        return [], ""

    def _slice_end(self, items: list[Encoded], start: int) -> int:
        byte_limit = max(1, self.config.chunk_bytes * self.limit // self.config.chunk_docs)
        end, size = start, 0
        while end < len(items) and end - start < self.limit:
            if end > start and size + items[end].size > byte_limit:
                break
            size += items[end].size
            end += 1
        return end

    def _slow_down(self) -> None:
        smaller = max(self.config.min_chunk_docs, self.limit // 2)
        if smaller < self.limit:
            logger.info("The cluster answered 429: bulk requests now %d documents", smaller)
        self.limit = smaller
        self.smallest = min(self.smallest, smaller)

    def _speed_up(self) -> None:
        step = max(1, self.config.chunk_docs // 8)
        self.limit = min(self.config.chunk_docs, self.limit + step)

    def _send(self, items: list[Encoded]) -> tuple[list[Encoded], str, bool]:
        """One bulk call: the items to retry, the last transient reason, and whether a 429 came."""
        self.requests += 1
        self.retried += sum(1 for item in items if id(item) in self._sent)
        self._sent.update(id(item) for item in items)
        try:
            results = list(
                self.helpers.streaming_bulk(
                    self.cluster.client,
                    (item.action for item in items),
                    chunk_size=len(items),
                    max_chunk_bytes=2**31 - 1,
                    raise_on_error=False,
                    raise_on_exception=True,
                    max_retries=0,
                    yield_ok=True,
                )
            )
        except Exception as error:
            status = _transient_status(error)
            if status is None:
                raise
            if status == 0:
                return items, f"transport: {type(error).__name__} {error}", False
            return items, f"{status} {type(error).__name__}: {error}", status == 429
        if len(results) != len(items):
            raise RuntimeError(f"bulk answered {len(results)} items for {len(items)} sent")
        retry: list[Encoded] = []
        reason = ""
        throttled = False
        acknowledged: list[Encoded] = []
        for item, (ok, outcome) in zip(items, results, strict=True):
            detail = next(iter(outcome.values())) if outcome else {}
            status = detail.get("status")
            if ok:
                acknowledged.append(item)
                continue
            body = detail.get("error") or {}
            error_type = body.get("type", "unknown") if isinstance(body, dict) else "unknown"
            message = body.get("reason", str(body)) if isinstance(body, dict) else str(body)
            if status in RETRY_STATUSES or error_type == "cluster_block_exception":
                retry.append(item)
                reason = f"{status} {error_type}: {message}"
                throttled = throttled or status == 429
            else:
                self.fail(Failure(item.document.id, "index", status, error_type, message))
        self._acknowledge(acknowledged)
        return retry, reason, throttled

    def _acknowledge(self, items: list[Encoded]) -> None:
        self.indexed += len(items)
        if self._checkpoint is not None and items:
            self._checkpoint.writelines(
                f"{json.dumps(i.document.id)}\t{i.document.digest}\n" for i in items
            )
            self._checkpoint.flush()
            os.fsync(self._checkpoint.fileno())

    def close(self) -> None:
        for handle in (self._dead, self._checkpoint):
            if handle is not None:
                handle.close()


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def _transient_status(error: Exception) -> int | None:
    """0 for a connection-level failure, the HTTP status for a retryable one, else None."""
    import elastic_transport

    if isinstance(error, elastic_transport.TransportError) and not isinstance(
        error, elastic_transport.ApiError
    ):
        return 0
    status = getattr(error, "status_code", None)
    meta = getattr(error, "meta", None)
    if status is None and meta is not None:
        status = getattr(meta, "status", None)
    try:
        import opensearchpy

        if isinstance(error, opensearchpy.ConnectionError):
            return 0
    except ImportError:
        pass
    if isinstance(status, int) and status in RETRY_STATUSES:
        return status
    return None


class _NoBar:
    n = 0

    def set_postfix(self, **_: Any) -> None: ...

    def refresh(self) -> None: ...

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *_: object) -> None: ...


def _progress(enabled: bool, total: int | None) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="doc", desc="indexing", dynamic_ncols=True)
