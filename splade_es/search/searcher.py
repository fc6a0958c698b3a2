"""The search client: SPLADE, BM25, kNN and hybrid search, and term-level explanations.

The only module that reads search results. A :class:`Searcher` checks once that the index
was built with the same model (weights, tokenizer, pooling, key encoding) as its encoder and
refuses otherwise, unless told to allow a mismatch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from colbert_rerank.fusion import Fusion, fuse
from colbert_rerank.hits import hit_value
from colbert_rerank.storage import fetch_clause, stored_form
from splade_es.cluster.admin import require_index
from splade_es.cluster.connection import Cluster, ClusterError
from splade_es.cluster.mapping import IndexLayout, MappingType, encoder_meta, meta_differences
from splade_es.cluster.vectors import knn_query
from splade_es.encoding.content import content_words
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.encoding.features import SparseVector, decode_key, lucene_stored
from splade_es.search.config import QUERY_ENCODERS as QUERY_ENCODERS
from splade_es.search.config import QueryEncoder as QueryEncoder
from splade_es.search.config import SearchConfig as SearchConfig
from splade_es.search.pruning import QueryPruning, auto_pruning, rescore_clause
from splade_es.search.query import bm25_query, search_body, splade_query, with_filters
from splade_es.search.results import Explanation as Explanation
from splade_es.search.results import Hit as Hit
from splade_es.search.results import Hits as Hits
from splade_es.search.results import ShardReport as ShardReport
from splade_es.search.results import TermImpact as TermImpact
from splade_es.search.static_queries import IdfTable, document_frequencies, load_or_compute

logger = logging.getLogger(__name__)
RRF = Fusion(method="rrf")


class Searcher:
    """SPLADE (and BM25, hybrid) search over an index built by splade-es.

    Safe to share across threads: no per-call state (the IDF table is loaded once, under a
    lock), the clients pool connections (10 per node), and the encoder serialises only
    tokenisation. ``benchmarks/load.py`` runs 8 threads on one Searcher and one Reranker.

    Example:
        >>> searcher = Searcher(cluster, encoder, SearchConfig(index="scifact"))  # doctest: +SKIP
        >>> [hit.id for hit in searcher.search("aspirin and heart attacks", k=3)]  # doctest: +SKIP
    """

    def __init__(self, cluster: Cluster, encoder: SpladeEncoder, config: SearchConfig) -> None:
        info = require_index(cluster, config.index)
        if not info.meta:
            raise ValueError(
                f"Index {config.index!r} has no _meta.splade_es: it was not built by splade-es, "
                "so its SPLADE field and model are unknown. Index with 'splade-es index'."
            )
        self.cluster = cluster
        self.encoder = encoder
        self.config = config
        self.concrete_index = info.name  # an alias's own index: it has its own IDF table
        self._idf: IdfTable | None = None
        self._idf_lock = threading.Lock()
        self.field: str = info.meta["field"]
        self.text_fields: list[str] = list(info.meta.get("text_fields", ["title", "text"]))
        mapping_type = info.mapping_type
        if mapping_type not in ("rank_features", "sparse_vector"):
            raise ValueError(
                f"Index {config.index!r} has no SPLADE field {self.field!r} of type "
                f"rank_features or sparse_vector (found {mapping_type!r}): re-create it with "
                "'splade-es index'."
            )
        self.mapping_type: MappingType = mapping_type  # type: ignore[assignment]
        current = encoder_meta(
            encoder, IndexLayout(mapping_type=self.mapping_type, field=self.field)
        )
        problems = meta_differences(info.meta, current)
        if problems:
            message = (
                f"Index {config.index!r} was built with model {info.meta.get('model')!r}, not "
                f"the encoder's {encoder.config.model!r} ({'; '.join(problems)}). Search with "
                "the model that built the index, or pass --allow-model-mismatch."
            )
            if not config.allow_model_mismatch:
                raise ValueError(message)
            logger.warning(message)
        self.index_model = info.meta.get("model")
        self.pruning = self._pruning()
        colbert = info.all_meta.get("colbert_rerank", {})
        self.embeddings_field: str | None = colbert.get("field")
        self.colbert_model: str | None = colbert.get("model")
        self.embeddings_form = stored_form(colbert)

    # -- searching ----------------------------------------------------------------------------

    def encode_query(self, query: str) -> SparseVector:
        """The query's term weights, by the model or by IDF (``SearchConfig.query_encoder``).

        Raises if it has none (with ``idf``: no token of the query occurs in the index); warns,
        through logging, when the query has no content word."""
        if not isinstance(query, str):
            raise ValueError(f"Query {query!r:.60} is {type(query).__name__}, not text.")
        if not query.strip():
            raise ValueError(f"Query {query!r:.60} is empty: pass some words to search for.")
        if not content_words(query):
            logger.warning(
                "Query %r has no content words (only stopwords or punctuation): SPLADE still "
                "finds hits through its expansion terms, but they are unlikely to mean anything.",
                query[:80],
            )
        if self.config.query_encoder == "idf":
            vector = self.idf_table().query_vector(self.encoder.token_ids(query))
            problem = f"has no token that occurs in {self.config.index!r}: use other words"
        else:
            vector = self.encoder.encode_queries([query]).vectors[0]
            pruning = self.encoder.config.query_pruning.name
            problem = f"encodes to no terms after pruning ({pruning}): relax the query pruning"
        if len(vector) == 0:
            raise ValueError(f"Query {query!r} {problem}.")
        return vector

    def idf_table(self) -> IdfTable:
        """The index's IDF table (``query_encoder="idf"``): loaded from, or computed into, the
        companion index ``<index>-splade-idf`` on first use, under a lock; read-only after."""
        if self._idf is None:
            with self._idf_lock:
                if self._idf is None:
                    fingerprint = dict(self.encoder.fingerprint())
                    # the stored vectors depend on the documents' encoder only
                    fingerprint.pop("query_weights_sha256", None)
                    self._idf = load_or_compute(
                        self.cluster, self.concrete_index, fingerprint, self._count_stored
                    )
        return self._idf

    def _count_stored(self) -> IdfTable:
        return document_frequencies(self.stored_features(), self.encoder.vocabulary)

    def search(self, query: str, k: int = 10, filters: Sequence[Mapping[str, Any]] = ()) -> Hits:
        """Top ``k`` documents by the SPLADE dot product (exact unless ``config.pruning``)."""
        return self.search_vector(self.encode_query(query), k, filters)

    def search_vector(
        self, vector: SparseVector, k: int = 10, filters: Sequence[Mapping[str, Any]] = ()
    ) -> Hits:
        """Top ``k`` documents for already-encoded query weights, pruned by
        ``config.pruning`` (two-phase: the dropped terms rescore each shard's top window)."""
        pruning = self.pruning
        share = self._document_share if pruning.needs_document_share else None
        split = pruning.split(vector, share)
        to_features = self.encoder.vocabulary.to_features
        query = splade_query(self.field, to_features(split.kept), self.mapping_type)
        extra: dict[str, Any] = {}
        if split.rescores and split.rescore_window is not None:
            dropped = splade_query(self.field, to_features(split.dropped), self.mapping_type)
            extra["rescore"] = rescore_clause(dropped, max(split.rescore_window, k))
        return self._run(with_filters(query, filters), k, extra, len(split.dropped))

    def _pruning(self) -> QueryPruning:
        """``config.pruning``, with ``auto`` resolved from the index's document count."""
        if isinstance(self.config.pruning, QueryPruning):
            return self.config.pruning
        documents = self.cluster.request("GET", f"/{self.config.index}/_count")["count"]
        return auto_pruning(int(documents))

    def _document_share(self, ids: np.ndarray) -> np.ndarray:
        """``df / N`` of each vocabulary id in this index (0 for ids no document holds)."""
        table = self.idf_table()
        at = np.clip(np.searchsorted(table.ids, ids), 0, max(len(table) - 1, 0))
        found = table.ids[at] == ids if len(table) else np.zeros(len(ids), dtype=bool)
        df = np.where(found, table.df[at] if len(table) else 0, 0)
        return np.asarray(df, dtype=np.float64) / max(table.documents, 1)

    def bm25(self, query: str, k: int = 10, filters: Sequence[Mapping[str, Any]] = ()) -> Hits:
        """Top ``k`` documents by BM25 over the text fields. Raises ValueError for a query
        that is not text, is empty, holds a lone surrogate, or exceeds ``maxClauseCount``."""
        return self._run(with_filters(bm25_query(query, self.text_fields), filters), k)

    def knn(
        self,
        field: str,
        vector: np.ndarray,
        k: int = 10,
        candidates: int = 100,
        filters: Sequence[Mapping[str, Any]] = (),
    ) -> Hits:
        """Top ``k`` documents of the kNN vector ``field`` (approximate, HNSW) by inner product
        with ``vector``; ``candidates`` is the graph search's beam; filters apply during it."""
        clause = knn_query(field, vector, k, candidates, self.cluster.engine, filters)
        return self._run(clause, k)

    def hybrid(
        self,
        query: str,
        k: int = 10,
        fusion: Fusion = RRF,
        depth: int = 100,
        filters: Sequence[Mapping[str, Any]] = (),
    ) -> Hits:
        """BM25 and SPLADE fused client-side (server-side RRF needs an Enterprise licence).

        Args:
            fusion: ``rrf`` or ``weighted`` (``weight`` is SPLADE's share); ``replace``
                returns SPLADE alone.
            depth: hits taken from each ranking before fusing.
        """
        lexical = self.bm25(query, depth, filters)
        learned = self.search(query, depth, filters)
        sources = {h.id: h for h in [*lexical, *learned]}
        fused = fuse({h.id: h.score for h in lexical}, {h.id: h.score for h in learned}, fusion)
        ordered = sorted(fused, key=lambda doc_id: -fused[doc_id])[:k]
        hits = (
            Hit(doc_id, fused[doc_id], rank, sources[doc_id].source, sources[doc_id].index)
            for rank, doc_id in enumerate(ordered, start=1)
        )
        return Hits(hits, lexical.shards.worst(learned.shards), learned.pruned_terms)

    def explain(self, query: str, doc_id: str) -> Explanation:
        """Shared terms of ``query`` and document ``doc_id`` with their contributions."""
        vector = self.encode_query(query)
        stored, foreign = self.stored_terms(doc_id)
        if foreign:
            logger.warning(
                "Document %r holds %d SPLADE entries this model did not write (e.g. %r); "
                "they are listed in Explanation.foreign_terms and score nothing.",
                doc_id,
                len(foreign),
                next(iter(foreign)),
            )
        common, q_at, d_at = np.intersect1d(vector.ids, stored.ids, return_indices=True)
        vocabulary = self.encoder.vocabulary
        impacts = [
            TermImpact(
                decode_key(vocabulary.keys[int(term)]),
                float(vector.weights[qi]),
                float(stored.weights[di]),
            )
            for term, qi, di in zip(common, q_at, d_at, strict=True)
        ]
        impacts.sort(key=lambda impact: -impact.contribution)
        own = set(self.encoder.token_ids(query))
        expansion = [decode_key(vocabulary.keys[int(i)]) for i in vector.ids if int(i) not in own]
        return Explanation(
            id=doc_id,
            score=float(sum(i.contribution for i in impacts)),
            impacts=impacts,
            query_expansion=expansion,
            query_terms=len(vector),
            foreign_terms=foreign,
        )

    def document(self, doc_id: str, fields: Sequence[str]) -> dict[str, Any]:
        """Stored ``fields`` of one document (raises if it is not in the index)."""
        field = self.embeddings_field
        apart = field in fields and self.embeddings_form != "source"
        listed = [f for f in fields if not (apart and f == field)]
        body = {"query": {"ids": {"values": [doc_id]}}, "size": 1, "_source": listed or False}
        if apart and field:
            body.update(fetch_clause(field, self.embeddings_form))
        result = self.cluster.request("POST", f"/{self.config.index}/_search", body=body)
        hits = result["hits"]["hits"]
        if not hits:
            raise ValueError(f"Document {doc_id!r} is not in {self.config.index!r}.")
        source: dict[str, Any] = dict(hits[0].get("_source") or {})
        if apart and field and hit_value(hits[0], field) is not None:
            source[field] = hit_value(hits[0], field)
        return source

    def stored_vector(self, doc_id: str) -> SparseVector:
        """The document's SPLADE weights as the engine stores them (9-bit precision).

        Raises:
            ValueError: the document is not in the index, has no SPLADE field, or holds
                entries this model did not write (named in the message;
                :meth:`stored_terms` returns them instead).
        """
        vector, foreign = self.stored_terms(doc_id)
        if foreign:
            shown = ", ".join(f"{key!r}: {value!r:.20}" for key, value in list(foreign.items())[:5])
            raise ValueError(
                f"Document {doc_id!r} holds {len(foreign)} {self.field!r} entries that this "
                f"model did not write ({shown}): written by another model or tool. Use "
                "stored_terms() to read them raw, or re-index the document."
            )
        return vector

    def stored_terms(self, doc_id: str) -> tuple[SparseVector, dict[str, Any]]:
        """The document's SPLADE weights as stored (9-bit precision), and ``{raw key: raw
        value}`` of the entries this model cannot read (:meth:`FeatureVocabulary.
        split_features`; empty for a document indexed by splade-es)."""
        source = self.cluster.source_filter([self.field])  # vectors included (ES 9)
        body = {"query": {"ids": {"values": [doc_id]}}, "size": 1, "_source": source}
        hits = self.cluster.request("POST", f"/{self.config.index}/_search", body=body)["hits"][
            "hits"
        ]
        if not hits:
            raise ValueError(f"Document {doc_id!r} is not in {self.config.index!r}.")
        features = hits[0].get("_source", {}).get(self.field)
        if not isinstance(features, Mapping):
            raise ValueError(
                f"Document {doc_id!r} has no {self.field!r} features in {self.config.index!r}."
            )
        vector, foreign = self.encoder.vocabulary.split_features(features)
        return SparseVector(vector.ids, lucene_stored(vector.weights)), foreign

    def average_stored_terms(self, page: int = 500) -> float:
        """Mean number of SPLADE terms per document as stored in the index (every document,
        read with the scroll API; ``0.0`` for an empty index)."""
        documents = terms = 0
        for features in self.stored_features(page):
            documents += 1
            terms += len(features) if isinstance(features, Mapping) else 0
        return terms / documents if documents else 0.0

    def stored_features(self, page: int = 500) -> Iterator[Any]:
        """Every document's raw SPLADE field (``None`` where it has none), read with the
        scroll API, ``page`` documents a request."""
        source = self.cluster.source_filter([self.field])  # vectors included (ES 9)
        body = {"size": page, "sort": ["_doc"], "_source": source}
        result = self.cluster.request(
            "POST", f"/{self.config.index}/_search", body=body, params={"scroll": "1m"}
        )
        try:
            while hits := result["hits"]["hits"]:
                yield from (hit.get("_source", {}).get(self.field) for hit in hits)
                result = self.cluster.request(
                    "POST",
                    "/_search/scroll",
                    body={"scroll": "1m", "scroll_id": result["_scroll_id"]},
                )
        finally:
            self.cluster.request(
                "DELETE", "/_search/scroll", body={"scroll_id": [result["_scroll_id"]]}
            )

    def _run(
        self, query: Mapping[str, Any], k: int, extra: Mapping[str, Any] = {}, pruned: int = 0
    ) -> Hits:
        body = {**search_body(query, k, self._source()), **extra}
        if self._wants_embeddings() and self.embeddings_field:
            body.update(fetch_clause(self.embeddings_field, self.embeddings_form))
        params: dict[str, str] = {"search_type": self.config.search_type}
        if not self.config.allow_partial:
            params["allow_partial_search_results"] = "false"
        try:
            result = self.cluster.request(
                "POST", f"/{self.config.index}/_search", body=body, params=params
            )
        except ClusterError as error:
            if error.status == 400 and "maxClauseCount" in str(error):
                raise ValueError(
                    "The query has more terms than the engine's maxClauseCount allows "
                    f"({error}): shorten the query text."
                ) from error
            raise
        shards = ShardReport.of(result)
        if shards.partial:
            logger.warning(
                "Partial answer from %r: %s; the hits are the best of the shards that "
                "answered, not of the whole index (allow_partial=False raises instead).",
                self.config.index,
                shards.summary,
            )
        hits = (
            Hit(h["_id"], float(h["_score"]), rank, self._hit_source(h), h["_index"])
            for rank, h in enumerate(result["hits"]["hits"], start=1)
        )
        return Hits(hits, shards, pruned)

    def _wants_embeddings(self) -> bool:
        field = self.embeddings_field
        listed = field in (self.config.source_includes or ())
        return bool(field) and (self.config.include_embeddings or listed)

    def _source(self) -> Any:
        """The ``_source`` filter: the listed fields, else all but the SPLADE field (and the
        embeddings, unless asked for and kept in ``_source``)."""
        field, wanted = self.embeddings_field, self._wants_embeddings()
        in_source = wanted and self.embeddings_form == "source"
        if self.config.source_includes is not None:
            listed = [f for f in self.config.source_includes if f != field or in_source]
            return listed + ([field] if in_source and field not in listed else [])
        return {"excludes": [self.field, *([field] if field and not in_source else [])]}

    def _hit_source(self, hit: Mapping[str, Any]) -> dict[str, Any]:
        """The hit's ``_source``, with the embeddings put under their field when they came
        as doc values or a stored field."""
        source = dict(hit.get("_source") or {})
        field = self.embeddings_field
        if field and self.embeddings_form != "source" and self._wants_embeddings():
            value = hit_value(hit, field)
            if value is not None:
                source[field] = value
        return source
