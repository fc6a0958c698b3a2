"""The encoding side of the bulk pipeline: validate, de-duplicate, skip, encode, in a thread.

Documents flow in (validated ones and rejected inputs), and one result per input flows out
through a bounded queue: :class:`Encoded` (a ready bulk action), :class:`Skipped` (already
indexed, per the checkpoint) or :class:`Failure`. Memory stays bounded whatever the corpus
size, and the encoder runs while the writer waits on the cluster.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from splade_es.data.corpus import Document, Rejected, id_problem
from splade_es.indexing.ledger import IdLedger

logger = logging.getLogger(__name__)


class EncodedFields(Protocol):
    """What an encoder returns for a batch: one field dict per document, and counters."""

    @property
    def fields(self) -> list[dict[str, Any]]: ...

    @property
    def counters(self) -> Mapping[str, int]: ...


class DocumentEncoder(Protocol):
    """Turns documents into the fields one representation stores (SPLADE terms, embeddings)."""

    def encode(self, documents: Sequence[Document]) -> EncodedFields: ...


@dataclass(frozen=True)
class FieldBatch:
    """Fields for each document of a batch, plus counters for the report.

    Attributes:
        fields: one ``{field: value}`` per document, in order.
        counters: additive counts (e.g. ``truncated``, ``terms``) summed into the report.
    """

    fields: list[dict[str, Any]]
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A document that was not indexed."""

    id: str
    stage: str  # input, encode or index
    status: int | None
    error_type: str
    reason: str

    def to_json(self) -> str:
        """One JSON line; a lone surrogate (in a rejected id) is written as a ``\\u`` escape,
        so the line is valid UTF-8 and reads back as the same string."""
        line = json.dumps(self.__dict__, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(self.__dict__)
        # Characters some readers take for line ends (str.splitlines does): escaped, so that
        # one failure is one line for every reader.
        return line.translate(_LINE_BREAKS)


@dataclass(frozen=True)
class Skipped:
    """A document the checkpoint shows indexed with the same content: not encoded nor sent.

    Attributes:
        id: the document id.
    """

    id: str


@dataclass(frozen=True)
class Encoded:
    """A document ready to send.

    Attributes:
        document: the document.
        action: its bulk action (``_op_type``, ``_index``, ``_id``, ``_source``).
        size: estimated bytes of the action in a bulk request.
    """

    document: Document
    action: dict[str, Any]
    size: int


Produced = Encoded | Skipped | Failure
"""One result of the producer per input document."""


class Producer:
    """Validates, de-duplicates, skips checkpointed documents and encodes, in a thread."""

    def __init__(
        self,
        documents: Iterable[Document | Rejected],
        encoders: Sequence[DocumentEncoder],
        index: str,
        encode_batch: int,
        queue_batches: int,
        checkpoint: Path | None = None,
        routing_field: str | None = None,
    ) -> None:
        self.documents = documents
        self.encoders = encoders
        self.index = index
        self.routing_field = routing_field
        self.encode_batch = encode_batch
        self.ledger = IdLedger()  # on disk: memory stays flat whatever the corpus size
        self.ledger.load_checkpoint(checkpoint)
        self.queue: queue.Queue[list[Produced] | BaseException | None] = queue.Queue(
            maxsize=queue_batches
        )
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="splade-es-encoder", daemon=True)
        self.counters: Counter[str] = Counter()
        self.encoded = 0
        self.consumed = 0

    def start(self) -> None:
        """Start encoding in the background thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop the thread (draining the queue so it can exit) and close the id ledger."""
        self.stopping.set()
        while self.thread.is_alive():
            try:
                self.queue.get_nowait()
            except queue.Empty:
                self.thread.join(timeout=0.1)
        self.ledger.close()

    def results(self) -> Iterator[Produced]:
        """One result per input document; re-raises what the encoding thread raised."""
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            for entry in item:
                self.consumed += 1
                yield entry

    def _put(self, item: list[Produced] | BaseException | None) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            batch: list[Document] = []
            ready: list[Produced] = []
            for position, item in enumerate(self.documents):
                if self.stopping.is_set():
                    return
                if isinstance(item, Rejected):
                    ready.append(Failure(item.id, "input", None, "invalid_document", item.reason))
                elif (problem := id_problem(item.id)) is not None:  # a Document built by hand
                    ready.append(Failure(str(item.id), "input", None, "invalid_document", problem))
                elif (first := self.ledger.first_seen(item.id, position)) is not None:
                    ready.append(
                        Failure(
                            item.id,
                            "input",
                            None,
                            "duplicate_id",
                            f"id also used by the document at position {first}; ids must be "
                            "unique (the later one would overwrite the earlier)",
                        )
                    )
                elif self.ledger.is_done(item.id, item.digest):
                    ready.append(Skipped(item.id))
                else:
                    batch.append(item)
                if len(batch) >= self.encode_batch:
                    ready.extend(self._encode(batch))
                    batch = []
                if len(ready) >= self.encode_batch:
                    if not self._put(ready):
                        return
                    ready = []
            ready.extend(self._encode(batch))
            if ready and not self._put(ready):
                return
            self._put(None)
        except BaseException as error:  # handed to the writer thread, which re-raises it
            self._put(error)

    def _encode(self, batch: list[Document]) -> list[Produced]:
        if not batch:
            return []
        try:
            merged = self._fields(batch)
        except Exception as error:
            if len(batch) == 1:
                return [Failure(batch[0].id, "encode", None, type(error).__name__, str(error))]
            logger.warning("Encoding a batch failed (%s); retrying its documents one by one", error)
            out: list[Produced] = []
            for document in batch:
                out.extend(self._encode([document]))
            return out
        self.encoded += len(batch)
        out = []
        for document, fields in zip(batch, merged, strict=True):
            try:
                action = index_action(document, fields, self.index, self.routing_field)
            except ValueError as error:
                out.append(Failure(document.id, "input", None, "ValueError", str(error)))
                continue
            size = _estimated_bytes(action["_source"]) + len(document.id) + 64
            out.append(Encoded(document, action, size))
        return out

    def _fields(self, batch: list[Document]) -> list[dict[str, Any]]:
        merged: list[dict[str, Any]] = [{} for _ in batch]
        counters: Counter[str] = Counter()
        for encoder in self.encoders:
            result = encoder.encode(batch)
            if len(result.fields) != len(batch):
                raise RuntimeError(
                    f"{type(encoder).__name__} returned {len(result.fields)} results for "
                    f"{len(batch)} documents"
                )
            for target, fields in zip(merged, result.fields, strict=True):
                target.update(fields)
            counters.update(result.counters)
        self.counters.update(counters)
        return merged


def index_action(
    document: Document, fields: Mapping[str, Any], index: str, routing_field: str | None = None
) -> dict[str, Any]:
    """The bulk ``index`` action of one encoded document: its text, title, own fields and
    encoded ``fields`` under ``_id = document.id``, routed by its ``routing_field`` value.

    Raises:
        ValueError: the document has no usable value in ``routing_field`` (it would land on
            the shard its id picks, where routed lookups never find it).
    """
    source = {"text": document.text, **dict(document.fields), **fields}
    if document.title:
        source["title"] = document.title
    action = {"_op_type": "index", "_index": index, "_id": document.id, "_source": source}
    if routing_field is not None:
        value = document.fields.get(routing_field)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise ValueError(
                f"Document {document.id!r} has routing field {routing_field!r} = {value!r}: "
                "expected a non-empty string or an integer. Give every document a routing "
                "value, or index without --routing-field."
            )
        action["routing"] = str(value)
    return action


_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _estimated_bytes(value: Any) -> int:
    """Serialised JSON size, estimated without serialising (chunk_bytes is a soft limit).

    Strings count their UTF-8 length plus quotes; numbers 12 bytes; containers their parts.
    """
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 2
    if isinstance(value, dict):
        return 2 + sum(len(str(k)) + 4 + _estimated_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 2 + sum(_estimated_bytes(v) + 1 for v in value)
    return 12
