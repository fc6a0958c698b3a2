"""The writing side of the bulk pipeline: chunks, retries, back-pressure, outcomes.

:class:`Writer` takes the producer's results one by one. Encoded documents are cut into
bulk requests by count and bytes and sent through :meth:`Cluster.bulk`; the cluster decides
what is worth retrying (:meth:`Cluster.transient_status` for a failed request,
:data:`RETRY_STATUSES` and index blocks for single documents). Acknowledged documents go to
the checkpoint file, refused ones to the dead-letter file; skipped ones are only counted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import tenacity

from splade_es.cluster.connection import RETRY_STATUSES, BulkOutcome, Cluster, redact_url
from splade_es.indexing.queue import Encoded, Failure, Produced, Skipped
from splade_es.indexing.report import BulkConfig

__all__ = ["WriteStopped", "Writer"]

logger = logging.getLogger(__name__)


class _Transient(Exception):
    """A chunk (or some of its documents) should be tried again."""


class WriteStopped(Exception):
    """Retries ran out on a transient failure: the run must stop (it can be resumed).

    Attributes:
        message: what failed and how to continue.
        reason: the last transient error.
        unsent: documents of the chunk being sent that did not land.
    """

    def __init__(self, message: str, reason: str, unsent: int) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.unsent = unsent


class Writer:
    """Cuts chunks, sends them with retries, records outcomes.

    Attributes:
        indexed: documents the cluster acknowledged.
        skipped: documents skipped because the checkpoint showed them indexed.
        failures: documents not indexed, with reasons.
        requests: bulk calls made, retries included.
        retried: document sends beyond the first.
        throttled: bulk calls answered 429, in whole or for some documents.
        limit: the current request size (back-pressure moves it within
            ``[min_chunk_docs, chunk_docs]``).
        smallest: the smallest request size back-pressure went down to.
    """

    def __init__(
        self, cluster: Cluster, config: BulkConfig, sleep: Callable[[float], None]
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.sleep = sleep
        self.pending: list[Encoded] = []
        self.pending_bytes = 0
        self.indexed = 0
        self.skipped = 0
        self.failures: list[Failure] = []
        self.requests = 0
        self.retried = 0
        self._sent: set[int] = set()  # id() of the items of the current chunk sent so far
        self.throttled = 0
        self.limit = config.chunk_docs
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

    def take(self, item: Produced) -> None:
        """Queue an encoded document, count a skipped one, or record a failure."""
        if isinstance(item, Encoded):
            self.add(item)
        elif isinstance(item, Skipped):
            self.skipped += 1
        else:
            self.fail(item)

    def add(self, item: Encoded) -> None:
        """Queue ``item``; send the pending chunk when it is full (documents or bytes)."""
        if item.size + self.pending_bytes > self.config.chunk_bytes and self.pending:
            self.flush()
        self.pending.append(item)
        self.pending_bytes += item.size
        if len(self.pending) >= self.config.chunk_docs:
            self.flush()

    def fail(self, failure: Failure) -> None:
        """Record a document that was not indexed (and write it to the dead-letter file)."""
        self.failures.append(failure)
        if self.config.dead_letter is not None:
            if self._dead is None:  # created on the first failure only
                self.config.dead_letter.parent.mkdir(parents=True, exist_ok=True)
                self._dead = self.config.dead_letter.open("w", encoding="utf-8")
            self._dead.write(failure.to_json() + "\n")
            self._dead.flush()

    def flush(self) -> None:
        """Send the pending chunk, retrying transient failures with backoff.

        Raises:
            WriteStopped: ``max_attempts`` tries failed on transient errors.
        """
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
        if remaining:
            raise self._stopped(len(remaining), last_error)

    def close(self) -> None:
        """Close the dead-letter and checkpoint files."""
        for handle in (self._dead, self._checkpoint):
            if handle is not None:
                handle.close()

    def _stopped(self, unsent: int, last_error: str) -> WriteStopped:
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
        return WriteStopped(
            f"Stopped after {self.config.max_attempts} tries: {cause}. {unsent} "
            f"documents of the current request and the rest of the corpus were not sent; "
            f"{fix}, then re-run with the same --checkpoint to continue.",
            last_error,
            unsent,
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
            outcomes = self.cluster.bulk([item.action for item in items])
        except Exception as error:
            status = self.cluster.transient_status(error)
            if status is None:
                raise
            if status == 0:
                return items, f"transport: {type(error).__name__} {error}", False
            return items, f"{status} {type(error).__name__}: {error}", status == 429
        return self._record(items, outcomes)

    def _record(
        self, items: list[Encoded], outcomes: list[BulkOutcome]
    ) -> tuple[list[Encoded], str, bool]:
        """Acknowledge applied items and fail refused ones; return those to retry, as _send."""
        retry: list[Encoded] = []
        reason = ""
        throttled = False
        acknowledged: list[Encoded] = []
        for item, (ok, outcome) in zip(items, outcomes, strict=True):
            if ok:
                acknowledged.append(item)
                continue
            detail = next(iter(outcome.values())) if outcome else {}
            status = detail.get("status")
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


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"
