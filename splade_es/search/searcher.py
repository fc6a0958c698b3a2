"""The search client: SPLADE, BM25 and hybrid search, and term-level explanations.

The only module that reads search results. A :class:`Searcher` checks once that the index
was built with the same model (weights, tokenizer, pooling, key encoding) as its encoder and
refuses otherwise, unless told to allow a mismatch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from colbert_rerank.fusion import Fusion, fuse
from splade_es.cluster.admin import require_index
from splade_es.cluster.connection import Cluster, ClusterError
from splade_es.cluster.mapping import IndexLayout, MappingType, encoder_meta, meta_differences
from splade_es.encoding.content import content_words
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.encoding.features import SparseVector, decode_key, lucene_stored
from splade_es.search.query import bm25_query, search_body, splade_query, with_filters

logger = logging.getLogger(__name__)
RRF = Fusion(method="rrf")


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: document ``_id``.
        score: the engine's score (or the fused score for hybrid search).
        rank: 1-based position.
        source: the stored fields returned (the SPLADE field is left out by default).
        index: the concrete index it came from.
        first_stage_score / first_stage_rank: the first stage's score and rank, set once
            the hit went through :func:`~splade_es.search.pipeline.search_then_rerank` with
            a reranker.
        colbert_score: its MaxSim score (``None``: not reranked).
    """

    id: str
    score: float
    rank: int
    source: Mapping[str, Any]
    index: str
    first_stage_score: float | None = None
    first_stage_rank: int | None = None
    colbert_score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The hit in the shape the official clients return (``_id``, ``_score``...), with
        ``_first_stage_score`` and ``_colbert_score`` once it was reranked."""
        out = {"_index": self.index, "_id": self.id, "_score": self.score, "_source": self.source}
        if self.first_stage_rank is not None:
            out["_first_stage_score"] = self.first_stage_score
            out["_colbert_score"] = self.colbert_score
        return out


@dataclass(frozen=True)
class TermImpact:
    """One shared term: its contribution to the score is ``query_weight * doc_weight``."""

    token: str
    query_weight: float
    doc_weight: float

    @property
    def contribution(self) -> float:
        return self.query_weight * self.doc_weight


@dataclass(frozen=True)
class Explanation:
    """Why a document scored what it did.

    Attributes:
        id: the document.
        score: sum of the contributions (what the engine computes, up to float rounding).
        impacts: shared terms, largest contribution first.
        query_expansion: query terms that are not tokens of the query text itself.
        query_terms: the number of query terms.
        foreign_terms: stored entries of the document's SPLADE field that this model did not
            write (``{raw key: raw value}``: another model or tool, a non-canonical escape,
            a value that is not a positive number). They match no query key of this model,
            so they add nothing to ``score``; they are listed, never dropped silently.
    """

    id: str
    score: float
    impacts: list[TermImpact]
    query_expansion: list[str]
    query_terms: int
    foreign_terms: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchConfig:
    """How a Searcher reads an index.

    Attributes:
        index: index or alias to search.
        source_includes: stored fields to return (``None``: all but the SPLADE field).
        allow_model_mismatch: search even if the index was built with another model
            (experts only: scores are then meaningless unless the vocabularies agree).
        include_embeddings: return the stored ColBERT token embeddings in ``_source`` (for
            reranking); left out otherwise.
    """

    index: str
    source_includes: Sequence[str] | None = None
    allow_model_mismatch: bool = False
    include_embeddings: bool = False


class Searcher:
    """SPLADE (and BM25, hybrid) search over an index built by splade-es.

    Safe to share across threads: it keeps no per-call state, the official clients pool their
    connections (10 per node by default, so more concurrent callers wait for one), and the
    encoder serialises only tokenisation (see :class:`~splade_es.encoding.encoder.SpladeEncoder`).
    ``benchmarks/load.py`` runs 8 threads on one Searcher and one Reranker.

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
        colbert = info.all_meta.get("colbert_rerank", {})
        self.embeddings_field: str | None = colbert.get("field")
        self.colbert_model: str | None = colbert.get("model")

    # -- searching ----------------------------------------------------------------------------

    def encode_query(self, query: str) -> SparseVector:
        """The query's term weights (raises if it has none; warns, through logging, when the
        query has no content word)."""
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
        vector = self.encoder.encode_queries([query]).vectors[0]
        if len(vector) == 0:
            raise ValueError(
                f"Query {query!r} encodes to no terms after pruning "
                f"({self.encoder.config.query_pruning.name}): relax the query pruning."
            )
        return vector

    def search(
        self, query: str, k: int = 10, filters: Sequence[Mapping[str, Any]] = ()
    ) -> list[Hit]:
        """Top ``k`` documents by the exact SPLADE dot product."""
        return self.search_vector(self.encode_query(query), k, filters)

    def search_vector(
        self, vector: SparseVector, k: int = 10, filters: Sequence[Mapping[str, Any]] = ()
    ) -> list[Hit]:
        """Top ``k`` documents for already-encoded query weights."""
        features = self.encoder.vocabulary.to_features(vector)
        query = with_filters(splade_query(self.field, features, self.mapping_type), filters)
        return self._run(query, k)

    def bm25(self, query: str, k: int = 10, filters: Sequence[Mapping[str, Any]] = ()) -> list[Hit]:
        """Top ``k`` documents by BM25 over the text fields.

        Raises:
            ValueError: the query is not text, is empty, holds a lone surrogate, or has more
                terms than the engine's ``maxClauseCount`` (a very long text).
        """
        return self._run(with_filters(bm25_query(query, self.text_fields), filters), k)

    def hybrid(
        self,
        query: str,
        k: int = 10,
        fusion: Fusion = RRF,
        depth: int = 100,
        filters: Sequence[Mapping[str, Any]] = (),
    ) -> list[Hit]:
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
        return [
            Hit(doc_id, fused[doc_id], rank, sources[doc_id].source, sources[doc_id].index)
            for rank, doc_id in enumerate(ordered, start=1)
        ]

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
        body = {"query": {"ids": {"values": [doc_id]}}, "size": 1, "_source": list(fields)}
        result = self.cluster.request("POST", f"/{self.config.index}/_search", body=body)
        hits = result["hits"]["hits"]
        if not hits:
            raise ValueError(f"Document {doc_id!r} is not in {self.config.index!r}.")
        source: dict[str, Any] = hits[0].get("_source", {})
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
        """The document's SPLADE weights as stored, and the entries this model cannot read.

        Returns:
            The vector of this model's keys (9-bit precision) and ``{raw key: raw value}``
            of the others (see :meth:`FeatureVocabulary.split_features`), empty for a
            document indexed by splade-es.
        """
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
        source = self.cluster.source_filter([self.field])  # vectors included (ES 9)
        body = {"size": page, "sort": ["_doc"], "_source": source}
        result = self.cluster.request(
            "POST", f"/{self.config.index}/_search", body=body, params={"scroll": "1m"}
        )
        documents = terms = 0
        try:
            while hits := result["hits"]["hits"]:
                for hit in hits:
                    features = hit.get("_source", {}).get(self.field)
                    documents += 1
                    terms += len(features) if isinstance(features, Mapping) else 0
                result = self.cluster.request(
                    "POST",
                    "/_search/scroll",
                    body={"scroll": "1m", "scroll_id": result["_scroll_id"]},
                )
        finally:
            self.cluster.request(
                "DELETE", "/_search/scroll", body={"scroll_id": [result["_scroll_id"]]}
            )
        return terms / documents if documents else 0.0

    def _run(self, query: Mapping[str, Any], k: int) -> list[Hit]:
        excludes = [self.field]
        if self.embeddings_field and not self.config.include_embeddings:
            excludes.append(self.embeddings_field)
        source: Any = (
            list(self.config.source_includes)
            if self.config.source_includes is not None
            else {"excludes": excludes}
        )
        body = search_body(query, k, source)
        try:
            result = self.cluster.request("POST", f"/{self.config.index}/_search", body=body)
        except ClusterError as error:
            if error.status == 400 and "maxClauseCount" in str(error):
                raise ValueError(
                    "The query has more terms than the engine's maxClauseCount allows "
                    f"({error}): shorten the query text."
                ) from error
            raise
        return [
            Hit(h["_id"], float(h["_score"]), rank, h.get("_source", {}), h["_index"])
            for rank, h in enumerate(result["hits"]["hits"], start=1)
        ]
