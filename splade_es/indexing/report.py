"""How a bulk run is configured and what it reports: :class:`BulkConfig`, :class:`IndexReport`,
and the errors that end a run (:class:`BulkFailedError`, :class:`BulkStoppedError`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colbert_rerank.checks import check_positive_ints
from splade_es.cluster.connection import ClusterError
from splade_es.cluster.names import check_index_name
from splade_es.indexing.queue import Failure

__all__ = ["BulkConfig", "BulkFailedError", "BulkStoppedError", "IndexReport"]


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
        routing_field: a document field whose value routes the document to its shard
            (custom routing); ``None``: the engines route by ``_id``. A document without
            it is reported as failed, never indexed on the wrong shard.
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
    routing_field: str | None = None

    def __post_init__(self) -> None:
        check_index_name(self.index)
        check_positive_ints(
            self,
            "chunk_docs",
            "chunk_bytes",
            "encode_batch",
            "queue_batches",
            "max_attempts",
            "min_chunk_docs",
        )
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


class BulkInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the run; ``report`` is what landed so far.

    Every acknowledged document is in the checkpoint (when there is one): a re-run with the
    same checkpoint skips them without encoding them again and sends the rest. It is a
    ``KeyboardInterrupt``, so code that does not know it still stops as on any Ctrl-C.
    """

    def __init__(self, report: IndexReport) -> None:
        super().__init__(f"interrupted after {report.indexed} acknowledged documents")
        self.report = report
