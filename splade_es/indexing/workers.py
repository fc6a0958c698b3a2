"""The worker side of a distributed build: a batch of documents in, written, its outcome out.

A :class:`BatchWriter` is the callable class Ray Data runs in each actor of the pool. It loads
the field encoders once (from the picklable :class:`WorkerSpec`), then for each batch:

1. asks the index which of the batch's documents it already holds unchanged (one ``_mget``
   of their text, title and kept fields) and skips them, so a re-run, or a batch retried
   after its worker died, only encodes what is missing;
2. encodes the rest and builds their bulk actions with the single-process path's
   :class:`~splade_es.indexing.queue.Producer`;
3. sends them through the actor's :class:`~splade_es.indexing.writer.Writer` (retries with
   backoff, back-pressure on 429), which outlives the batch;
4. returns a :class:`BatchOutcome` (counts, encoder counters, failures) that the driver
   merges into one report and one dead-letter file.

``_id`` is the document id, so a batch written twice overwrites instead of duplicating.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from colbert_rerank.codecs import Codec
from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from colbert_rerank.storage import EmbeddingFields
from splade_es.cluster.connection import Cluster, ClusterConfig, ClusterError, connect
from splade_es.data.corpus import Document
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.indexing.queue import DocumentEncoder, Failure, Producer
from splade_es.indexing.report import BulkConfig
from splade_es.indexing.splade_fields import SpladeFields
from splade_es.indexing.writer import Writer, WriteStopped

__all__ = ["BatchOutcome", "BatchWriter", "ColbertSpec", "WorkerSpec", "held_unchanged"]

logger = logging.getLogger(__name__)

BLOCK_COLUMN = "block"
"""The input column: one block number per row (its documents are in the object store)."""
OUTCOME_COLUMN = "outcome"
"""The output column: one :class:`BatchOutcome` per batch, as JSON."""


@dataclass(frozen=True)
class ColbertSpec:
    """What a worker needs to store ColBERT token embeddings as the driver fitted them.

    Attributes:
        config: the late-interaction model.
        codec: the codec with its fitted codebook / projection.
        field: the binary field.
        pool_factor: token pooling before encoding.
    """

    config: ColbertConfig
    codec: Codec
    field: str
    pool_factor: int

    @classmethod
    def of(cls, fields: EmbeddingFields) -> ColbertSpec:
        """The spec of the driver's field encoder (the model is loaded again by each worker)."""
        return cls(fields.encoder.config, fields.codec, fields.field, fields.pool_factor)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker builds its encoders and writer from (picklable: no model, no client).

    Attributes:
        cluster: how the workers connect to the cluster.
        splade: the SPLADE model config.
        bulk: how to write (built by :meth:`of`: no file, no refresh, no raise).
        colbert: ColBERT embeddings to store too (``None``: SPLADE only).
    """

    cluster: ClusterConfig
    splade: EncoderConfig
    bulk: BulkConfig
    colbert: ColbertSpec | None = None

    @classmethod
    def of(
        cls,
        cluster: ClusterConfig,
        splade: EncoderConfig,
        bulk: BulkConfig,
        colbert: EmbeddingFields | None = None,
    ) -> WorkerSpec:
        """The spec for the driver's settings: ``bulk`` without its files, refresh, progress
        bar or raise (the driver does those once for the whole run)."""
        quiet = replace(
            bulk,
            dead_letter=None,
            checkpoint=None,
            refresh=False,
            progress=False,
            raise_on_failure=False,
        )
        return cls(cluster, splade, quiet, None if colbert is None else ColbertSpec.of(colbert))

    def encoders(self) -> list[DocumentEncoder]:
        """Load the models (once per worker) into the field encoders of the bulk pipeline."""
        encoders: list[DocumentEncoder] = [SpladeFields(SpladeEncoder(self.splade))]
        if self.colbert is not None:
            spec = self.colbert
            model = ColbertEncoder(spec.config)
            encoders.append(EmbeddingFields(model, spec.codec, spec.field, spec.pool_factor))
        return encoders


@dataclass(frozen=True)
class BatchOutcome:
    """What one worker did with one batch.

    Attributes:
        documents: documents in the batch.
        indexed / skipped / encoded: acknowledged, already held unchanged, encoded.
        bulk_requests / retried_documents / throttled_requests: as in
            :class:`~splade_es.indexing.report.IndexReport`, for this batch.
        smallest_chunk_docs: the smallest request size the worker's back-pressure reached.
        counters: encoder counters of the batch.
        failures: documents not indexed.
        stopped: ``(message, reason, unsent)`` when the cluster kept failing.
    """

    documents: int
    indexed: int = 0
    skipped: int = 0
    encoded: int = 0
    bulk_requests: int = 0
    retried_documents: int = 0
    throttled_requests: int = 0
    smallest_chunk_docs: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    stopped: tuple[str, str, int] | None = None

    def to_json(self) -> str:
        """The outcome as JSON (what a worker hands back: data, never pickled code)."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> BatchOutcome:
        data = json.loads(text)
        data["failures"] = [Failure(**failure) for failure in data["failures"]]
        if data["stopped"] is not None:
            message, reason, unsent = data["stopped"]
            data["stopped"] = (str(message), str(reason), int(unsent))
        return cls(**data)


class BatchWriter:
    """Ray Data's callable class: encodes and writes each batch it is given.

    Args:
        spec: models, cluster and bulk settings.
        blocks: object-store references to the lists of documents, by block number.
    """

    def __init__(self, spec: WorkerSpec, blocks: Sequence[Any]) -> None:
        self.spec = spec
        self.blocks = blocks
        self.cluster = connect(spec.cluster)
        self.encoders = spec.encoders()
        self.writer = Writer(self.cluster, spec.bulk, time.sleep)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One batch (block numbers, as a numpy array) in, one outcome row out."""
        import numpy as np
        import ray

        refs = [self.blocks[int(number)] for number in batch[BLOCK_COLUMN]]
        documents = [d for block in ray.get(refs) for d in block]
        outcome = self.write(documents)
        return {OUTCOME_COLUMN: np.array([outcome.to_json()], dtype=object)}

    def write(self, documents: Sequence[Document]) -> BatchOutcome:
        """Skip what the index holds, encode and send the rest; the batch's outcome."""
        bulk = self.spec.bulk
        held = held_unchanged(self.cluster, bulk.index, documents, bulk.routing_field)
        todo = [d for d in documents if d.id not in held]
        writer = self.writer
        before = (writer.indexed, writer.requests, writer.retried, writer.throttled)
        failed_before = len(writer.failures)
        producer = Producer(
            todo,
            self.encoders,
            bulk.index,
            bulk.encode_batch,
            bulk.queue_batches,
            routing_field=bulk.routing_field,
        )
        stopped: tuple[str, str, int] | None = None
        producer.start()
        try:
            for item in producer.results():
                writer.take(item)
            writer.flush()
        except WriteStopped as stop:
            stopped = (stop.message, stop.reason, stop.unsent)
        finally:
            producer.stop()
        return BatchOutcome(
            documents=len(documents),
            indexed=writer.indexed - before[0],
            skipped=len(held),
            encoded=producer.encoded,
            bulk_requests=writer.requests - before[1],
            retried_documents=writer.retried - before[2],
            throttled_requests=writer.throttled - before[3],
            smallest_chunk_docs=writer.smallest,
            counters=dict(producer.counters),
            failures=writer.failures[failed_before:],
            stopped=stopped,
        )


def held_unchanged(
    cluster: Cluster, index: str, documents: Sequence[Document], routing_field: str | None = None
) -> set[str]:
    """Ids of ``documents`` that ``index`` already holds with the same content (each looked
    up under its ``routing_field`` value when the index is routed).

    Text, title and kept fields are read back with one ``_mget`` and compared through
    :attr:`Document.digest`, as the checkpoint of the single-process path compares them: a
    document changed since it was indexed is encoded again. When the cluster cannot answer,
    nothing is skipped (everything is encoded and overwritten: slower, never wrong).

    Example:
        >>> held_unchanged(cluster, "docs", [Document("d1", "some text")])  # doctest: +SKIP
        {'d1'}
    """
    if not documents:
        return set()
    names = sorted({"text", "title", *(name for d in documents for name in d.fields)})
    docs = []
    for d in documents:  # a routed document is found on its routing value's shard only
        entry: dict[str, Any] = {"_id": d.id, "_source": names}
        routing = d.fields.get(routing_field) if routing_field is not None else None
        if isinstance(routing, str | int) and not isinstance(routing, bool) and routing != "":
            entry["routing"] = str(routing)
        docs.append(entry)
    body = {"docs": docs}
    try:
        answer = cluster.request("POST", f"/{index}/_mget", body=body)
    except ClusterError as error:
        logger.warning("Could not ask %s which documents it holds (%s): encoding all", index, error)
        return set()
    wanted = {d.id: d for d in documents}
    held = set()
    for stored in answer["docs"]:
        document = wanted.get(stored.get("_id"))
        if document is not None and stored.get("found") and _same(document, stored["_source"]):
            held.add(document.id)
    return held


def _same(document: Document, source: dict[str, Any]) -> bool:
    """Whether ``source`` (as stored) holds ``document``'s text, title and kept fields."""
    fields = {name: source[name] for name in document.fields if name in source}
    stored = Document(document.id, source.get("text", ""), source.get("title", ""), fields)
    return stored.digest == document.digest
