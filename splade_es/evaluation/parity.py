"""Parity: the engine's SPLADE ranking against the exact in-memory dot product (same model).

Pure apart from encoding: the documents and queries are encoded in memory, ranked by the
float32 dot product (and at the engine's 9-bit storage precision), and compared with the
engine's run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from splade_es.data.corpus import Document
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.encoding.features import SparseVector, lucene_stored
from splade_es.evaluation.metrics import retrieval_metrics, same_order_top_k, same_top_k


def exact_scores(queries: Sequence[SparseVector], documents: Sequence[SparseVector]) -> np.ndarray:
    """``[queries, documents]`` dot products in float64, through in-memory posting lists."""
    lengths = np.fromiter((len(v) for v in documents), dtype=np.int64, count=len(documents))
    terms = np.concatenate([v.ids for v in documents]) if documents else np.zeros(0, np.int64)
    weights = (
        np.concatenate([v.weights for v in documents]).astype(np.float64)
        if documents
        else np.zeros(0)
    )
    owners = np.repeat(np.arange(len(documents)), lengths)
    order = np.argsort(terms, kind="stable")
    terms, weights, owners = terms[order], weights[order], owners[order]
    scores = np.zeros((len(queries), len(documents)), dtype=np.float64)
    for row, query in enumerate(queries):
        starts = np.searchsorted(terms, query.ids, side="left")
        ends = np.searchsorted(terms, query.ids, side="right")
        for start, end, weight in zip(starts, ends, query.weights, strict=True):
            np.add.at(scores[row], owners[start:end], float(weight) * weights[start:end])
    return scores


def exact_parity(
    encoder: SpladeEncoder,
    documents: Sequence[Document],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    engine_run: Mapping[str, Mapping[str, float]],
    depth: int = 100,
) -> dict[str, Any]:
    """Compare the engine's SPLADE ranking with the exact in-memory one (same model).

    Per ranking (float32 ``exact`` and the engine's 9-bit ``stored_precision``): nDCG@10 and
    the fraction of queries whose engine top 10 holds the same documents
    (``top10_identical_fraction``) and the same documents in the same order
    (``top10_same_order_fraction``; documents tied in exact score may swap), both computed by
    :mod:`~splade_es.evaluation.metrics`.
    """
    doc_vectors: list[SparseVector] = []
    for start in range(0, len(documents), 256):
        batch = documents[start : start + 256]
        doc_vectors.extend(encoder.encode_documents([d.encoded_text for d in batch]).vectors)
    stored = [SparseVector(v.ids, lucene_stored(v.weights)) for v in doc_vectors]
    query_ids = list(queries)
    query_vectors = encoder.encode_queries([queries[q] for q in query_ids]).vectors
    ids = [d.id for d in documents]
    out: dict[str, Any] = {}
    for label, vectors in (("exact", doc_vectors), ("stored_precision", stored)):
        scores = exact_scores(query_vectors, vectors)
        run = {}
        for row, query_id in enumerate(query_ids):
            top = np.argsort(-scores[row], kind="stable")[:depth]
            run[query_id] = {ids[i]: float(scores[row, i]) for i in top if scores[row, i] > 0}
        out[label] = {
            "ndcg@10": retrieval_metrics(qrels, run)["ndcg@10"],
            **top10_agreement(engine_run, run, query_ids),
        }
    exact, stored = out["exact"], out["stored_precision"]
    return {
        "ndcg@10_engine": retrieval_metrics(qrels, engine_run)["ndcg@10"],
        "ndcg@10_exact": exact["ndcg@10"],
        "ndcg@10_stored_precision": stored["ndcg@10"],
        "top10_identical_fraction": exact["top10_identical_fraction"],
        "top10_same_order_fraction": exact["top10_same_order_fraction"],
        "top10_identical_fraction_stored_precision": stored["top10_identical_fraction"],
        "top10_same_order_fraction_stored_precision": stored["top10_same_order_fraction"],
        "num_queries": len(query_ids),
    }


def top10_agreement(
    engine_run: Mapping[str, Mapping[str, float]],
    exact_run: Mapping[str, Mapping[str, float]],
    query_ids: Sequence[str],
) -> dict[str, float]:
    """The fractions of ``query_ids`` whose engine top 10 is the exact top 10 as a set
    (``top10_identical_fraction``) and in the same order (``top10_same_order_fraction``).

    A query missing from ``engine_run`` counts as an empty ranking.

    Example:
        >>> exact = {"q": {"a": 2.0, "b": 1.0}}
        >>> top10_agreement({"q": {"b": 2.0, "a": 1.0}}, exact, ["q"])
        {'top10_identical_fraction': 1.0, 'top10_same_order_fraction': 0.0}
    """
    if not query_ids:
        raise ValueError("No query to compare: pass at least one query id.")
    same_set = sum(same_top_k(engine_run.get(q, {}), exact_run.get(q, {})) for q in query_ids)
    same_order = sum(
        same_order_top_k(engine_run.get(q, {}), exact_run.get(q, {})) for q in query_ids
    )
    return {
        "top10_identical_fraction": same_set / len(query_ids),
        "top10_same_order_fraction": same_order / len(query_ids),
    }
