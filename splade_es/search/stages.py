"""First stages by name, and the fused ones: ``splade``, ``bm25``, ``dense``, ``muvera`` and any
``|``-joined list of them (``splade|dense|muvera``), each list fused client-side.

Query: text -> each source's own query (SPLADE weights, BM25 text, a sentence embedding, the
MUVERA encoding of the ColBERT query tokens) -> its top ``depth`` hits from the engine ->
RRF (or weighted) fusion of the lists -> hits. The engines' own RRF needs a paid licence, so
the fusion runs here. The ColBERT query tokens, when a reranker follows, are encoded once and
serve both the MUVERA query and MaxSim.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.fusion import Fusion, fuse_lists
from colbert_rerank.muvera import MuveraEncoder
from colbert_rerank.storage import META_KEY as COLBERT_META_KEY
from splade_es.cluster.admin import require_index
from splade_es.cluster.mapping import VECTORS_META_KEY
from splade_es.encoding.dense import DenseEncoder
from splade_es.search.results import Hit, Hits
from splade_es.search.searcher import Searcher

__all__ = [
    "SOURCES",
    "QueryTokens",
    "Source",
    "VectorQueries",
    "fused_hits",
    "open_vector_queries",
    "sources",
]

Source = Literal["splade", "bm25", "dense", "muvera"]
SOURCES: tuple[Source, ...] = ("splade", "bm25", "dense", "muvera")


def sources(mode: str) -> tuple[Source, ...]:
    """The first stages a mode name joins: ``splade|dense`` -> ``("splade", "dense")``;
    ``hybrid`` is ``bm25|splade``.

    Raises:
        ValueError: an unknown or repeated name, naming the valid ones.
    """
    if not isinstance(mode, str):
        raise ValueError(f"mode={mode!r}: expected a stage name such as 'splade|dense'.")
    names = ["bm25", "splade"] if mode == "hybrid" else mode.split("|")
    unknown = [name for name in names if name not in SOURCES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"Stage {mode!r}: expected one of {', '.join(SOURCES)} or several joined by '|' "
            "(each once), e.g. 'splade|dense|muvera'."
        )
    return tuple(names)  # type: ignore[arg-type]


@dataclass(frozen=True)
class VectorQueries:
    """How to query an index's kNN fields (from its ``_meta.splade_es_vectors``).

    Attributes:
        dense / dense_field: the sentence-embedding model and its field (``None``: no
            ``dense`` stage).
        muvera / muvera_field / colbert: the MUVERA encoding, its field and the ColBERT model
            whose query tokens it encodes (``None``: no ``muvera`` stage).
        candidates: the kNN search beam (``num_candidates`` / ``ef_search``), at least the
            hits asked for.
    """

    dense: DenseEncoder | None = None
    dense_field: str | None = None
    muvera: MuveraEncoder | None = None
    muvera_field: str | None = None
    colbert: ColbertEncoder | None = None
    candidates: int = 200


def open_vector_queries(
    searcher: Searcher,
    dense: DenseEncoder | None = None,
    colbert: ColbertEncoder | None = None,
    candidates: int = 200,
) -> VectorQueries:
    """The query side of the index's kNN fields, checked against the models given: ``dense``
    for the ``dense`` stage, ``colbert`` (the index's ColBERT model) for ``muvera``.

    Raises:
        ValueError: a model is given for a field the index lacks, or differs from the one
            that wrote it (another model, another MUVERA encoding), with how to fix it.
    """
    all_meta = require_index(searcher.cluster, searcher.config.index).all_meta
    fields: Mapping[str, Any] = all_meta.get(VECTORS_META_KEY) or {}
    index = searcher.config.index
    out = VectorQueries(candidates=candidates)
    if dense is not None:
        stored = _field(fields, "dense", index, "--dense")
        _same_model(stored["model"], dense.fingerprint(), "dense", index)
        out = _with(out, dense=dense, dense_field=stored["field"])
    if colbert is not None:
        stored = _field(fields, "muvera", index, "--colbert --muvera")
        model = dict(stored["model"])
        wrote = model.pop("colbert_model", None)
        tokens = all_meta.get(COLBERT_META_KEY) or {}  # the ColBERT model's hashes
        if any(tokens.get(k) != v for k, v in _hashes(colbert.fingerprint()).items()):
            raise ValueError(
                f"Index {index!r} holds MUVERA encodings of {wrote!r} token embeddings, not of "
                f"{colbert.config.model!r}'s (other weights or tokenizer): query it with the "
                "model that built the index."
            )
        muvera = MuveraEncoder.from_fingerprint(model)
        out = _with(out, muvera=muvera, muvera_field=stored["field"], colbert=colbert)
    return out


def _with(queries: VectorQueries, **changes: Any) -> VectorQueries:
    return VectorQueries(**{**queries.__dict__, **changes})


def _field(fields: Mapping[str, Any], kind: str, index: str, option: str) -> Mapping[str, Any]:
    if kind not in fields:
        raise ValueError(
            f"Index {index!r} has no {kind} vector field: build it with 'splade-es index "
            f"{option}' (a new index, then move an alias to it)."
        )
    stored: Mapping[str, Any] = fields[kind]
    return stored


def _hashes(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fingerprint.items() if k.endswith("sha256")}


def _same_model(
    stored: Mapping[str, Any], current: Mapping[str, Any], kind: str, index: str
) -> None:
    """Refuse another model: the weights and the vectors' form, not the name it was loaded by
    (the same weights from a local folder are the same model)."""
    keys = {**stored, **current}.keys() - {"model"}
    differ = sorted(k for k in keys if stored.get(k) != current.get(k))
    if differ:
        raise ValueError(
            f"Index {index!r} was built with {kind} model {stored.get('model')!r}, not "
            f"{current.get('model')!r} (differs in {', '.join(differ)}): query with the model "
            "that built the index."
        )


class QueryTokens:
    """A query's ColBERT token embeddings, encoded once by whichever caller asks first (the
    ``muvera`` list's thread, or the reranker after it), with the milliseconds it took.

    Thread-safe: concurrent callers wait for the one encoding."""

    def __init__(self, encoder: ColbertEncoder, query: str) -> None:
        self.encoder = encoder
        self.query = query
        self.encode_ms = 0.0
        self._value: np.ndarray | None = None
        self._lock = threading.Lock()

    def __call__(self) -> np.ndarray:
        with self._lock:
            if self._value is None:
                started = time.perf_counter()
                self._value = self.encoder.encode_queries([self.query])[0]
                self.encode_ms = (time.perf_counter() - started) * 1000
            return self._value


def fused_hits(
    searcher: Searcher,
    vectors: VectorQueries,
    query: str,
    names: Sequence[Source],
    depth: int,
    k: int,
    fusion: Fusion,
    filters: Sequence[Mapping[str, Any]] = (),
    colbert_query: QueryTokens | None = None,
) -> Hits:
    """The top ``k`` of the ``names`` first stages' top ``depth`` lists, fused; the lists are
    retrieved concurrently (one thread each: query encoding and the engine's answer overlap).

    Args:
        colbert_query: the query's ColBERT token embeddings, shared with a reranker that
            follows (encoded in the ``muvera`` list's thread, overlapping the other lists);
            ``None`` encodes them here for ``muvera``.
    """
    if len(names) == 1:
        lists = [_source_hits(searcher, vectors, query, names[0], depth, filters, colbert_query)]
    else:  # concurrently: the encoders and the engine release the GIL while they work
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="stage") as pool:
            futures = [
                pool.submit(
                    _source_hits, searcher, vectors, query, name, depth, filters, colbert_query
                )
                for name in names
            ]
            lists = [future.result() for future in futures]
    if len(lists) == 1:
        return Hits(lists[0][:k], lists[0].shards, lists[0].pruned_terms)
    fused = fuse_lists([{h.id: h.score for h in hits} for hits in lists], fusion)
    seen = {h.id: h for hits in reversed(lists) for h in hits}
    ordered = sorted(fused, key=lambda doc_id: -fused[doc_id])[:k]
    out = (
        Hit(doc_id, fused[doc_id], rank, seen[doc_id].source, seen[doc_id].index)
        for rank, doc_id in enumerate(ordered, start=1)
    )
    shards = lists[0].shards
    for hits in lists[1:]:
        shards = shards.worst(hits.shards)
    return Hits(out, shards, sum(hits.pruned_terms for hits in lists))


def _source_hits(
    searcher: Searcher,
    vectors: VectorQueries,
    query: str,
    name: Source,
    depth: int,
    filters: Sequence[Mapping[str, Any]],
    colbert_query: QueryTokens | None,
) -> Hits:
    if name == "splade":
        return searcher.search(query, depth, filters)
    if name == "bm25":
        return searcher.bm25(query, depth, filters)
    beam = max(vectors.candidates, depth)
    if name == "dense":
        if vectors.dense is None or vectors.dense_field is None:
            raise ValueError("The dense stage needs the index's dense model (--dense).")
        vector = vectors.dense.encode_queries([query])[0]
        return searcher.knn(vectors.dense_field, vector, depth, beam, filters)
    if vectors.muvera is None or vectors.muvera_field is None or vectors.colbert is None:
        raise ValueError(
            "The muvera stage needs an index built with --muvera and its ColBERT model."
        )
    tokens = (colbert_query or QueryTokens(vectors.colbert, query))()
    vector = vectors.muvera.encode_queries([tokens])[0]
    return searcher.knn(vectors.muvera_field, vector, depth, beam, filters)
