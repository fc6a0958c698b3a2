"""What an evaluation runs on: the judged queries, the documents indexed, the index name.

Everything left out on the way (invalid corpus records, judged queries without a positive
judgement) is counted for the report and its ids logged. A corpus cut to the judged documents
plus a sample (``max_docs``) is named after the queries it was cut for, so that another subset
never reuses an index that lacks its judged documents.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colbert_rerank.pooling import check_pool_factor
from splade_es.data.beir import load_qrels, load_queries
from splade_es.data.corpus import Document, Limits, Rejected
from splade_es.data.readers import read_beir
from splade_es.evaluation.metrics import subset_queries, without_positive

logger = logging.getLogger(__name__)

SAMPLE_NOTE = (
    "The corpus is the judged documents plus a sample (--max-docs), not the full corpus: "
    "with fewer unjudged documents competing, every score is inflated compared with the full "
    "corpus. Compare such runs with each other, never with published full-corpus figures."
)


@dataclass(frozen=True)
class Selection:
    """The queries and documents of one evaluation.

    Attributes:
        queries: ``{query id: text}``, the judged queries evaluated.
        qrels: their judgements.
        documents: the documents to index, validated.
        dropped_records: corpus records validation left out (``Rejected``, later duplicates).
        without_positive: ids of the judged queries with no positive judgement (left out).
        max_docs: the corpus cut (``None``: the full corpus).
    """

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    documents: list[Document]
    dropped_records: int
    without_positive: list[str]
    max_docs: int | None = None

    def facts(self, max_queries: int | None) -> dict[str, Any]:
        """The report's ``data`` block: what was evaluated and what was left out."""
        facts: dict[str, Any] = {
            "queries_evaluated": len(self.queries),
            "max_queries": max_queries,
            "queries_without_positive": len(self.without_positive),
            "corpus_records_dropped": self.dropped_records,
            "max_docs": self.max_docs,
            "scores_inflated_by_sample": self.max_docs is not None,
        }
        if self.max_docs is not None:
            facts["corpus_note"] = SAMPLE_NOTE
        return facts


def select(dataset: Path, split: str, max_queries: int | None, max_docs: int | None) -> Selection:
    """The judged queries (at most ``max_queries``) and the documents to index (the corpus, or
    its judged documents plus others up to ``max_docs``)."""
    queries, qrels, unjudged = judged_queries(dataset, split, max_queries)
    documents, dropped = select_documents(dataset, qrels, max_docs)
    return Selection(queries, qrels, documents, dropped, unjudged, max_docs)


def judged_queries(
    dataset: Path, split: str, max_queries: int | None
) -> tuple[dict[str, str], dict[str, dict[str, int]], list[str]]:
    """The queries with a positive judgement (at most ``max_queries``), their judgements, and
    the ids of the judged queries without one (logged)."""
    qrels_all = load_qrels(dataset, split)
    unjudged = without_positive(qrels_all)
    if unjudged:
        logger.warning(
            "%d of the %d judged queries have no positive judgement and are left out of the "
            "metrics: %s",
            len(unjudged),
            len(qrels_all),
            id_sample(unjudged),
        )
    left_out = set(unjudged)
    positive = {q: d for q, d in qrels_all.items() if q not in left_out}
    if not positive:
        raise ValueError(
            f"{dataset}/qrels/{split}.tsv has no query with a positive judgement "
            "(relevance > 0): nothing to evaluate; check the split."
        )
    query_ids = subset_queries(positive, max_queries)
    queries = load_queries(dataset, set(query_ids))
    missing = [q for q in query_ids if q not in queries]
    if missing:
        raise ValueError(
            f"{len(missing)} judged queries are not in queries.jsonl (e.g. {missing[:3]}): "
            "the qrels and queries files do not belong together."
        )
    return queries, {q: qrels_all[q] for q in query_ids}, unjudged


def select_documents(
    dataset: Path, qrels: Mapping[str, Mapping[str, int]], max_docs: int | None
) -> tuple[list[Document], int]:
    """The valid documents (all, or the judged ones plus others up to ``max_docs``) and how
    many corpus records were dropped (invalid, or a later duplicate of an id; ids logged)."""
    judged = {d for q in qrels.values() for d in q}
    chosen: list[Document] = []
    others: list[Document] = []
    valid, dropped = _valid(read_beir(dataset, Limits()))
    for item in valid:
        if max_docs is None or item.id in judged:
            chosen.append(item)
        elif len(others) < max_docs:
            others.append(item)
    if dropped:
        logger.warning(
            "%d corpus records are invalid and left out: %s",
            len(dropped),
            id_sample([f"{r.id} ({r.reason})" for r in dropped], limit=5),
        )
    if max_docs is not None:
        chosen.extend(others[: max(max_docs - len(chosen), 0)])
    if not chosen:
        raise ValueError(f"{dataset}/corpus.jsonl has no valid document.")
    return chosen, len(dropped)


def _valid(items: Iterable[Document | Rejected]) -> tuple[list[Document], list[Rejected]]:
    """The documents, the first of each id kept, and the rejected records with duplicates."""
    documents: list[Document] = []
    dropped: list[Rejected] = []
    seen: set[str] = set()
    for position, item in enumerate(items):
        if isinstance(item, Rejected):
            dropped.append(item)
        elif item.id in seen:
            dropped.append(Rejected(item.id, position, "duplicate id, the first one is kept"))
        else:
            seen.add(item.id)
            documents.append(item)
    return documents, dropped


def default_index(
    dataset: Path,
    mapping_type: str,
    tag: str,
    max_docs: int | None,
    document_ids: Iterable[str],
    pool_factor: int = 1,
) -> str:
    """The evaluation index's name: dataset, corpus cut, mapping type, model ``tag``, pooling.

    A cut corpus (``max_docs``) holds the judged documents of the chosen queries plus a sample,
    so its name also carries a short hash of the ids it holds (``document_ids``): another query
    subset (``--max-queries``), split or qrels file gets another index. The full corpus serves
    any subset, so its name has no hash. Token pooling (``pool_factor`` above 1, for an index
    that stores ColBERT embeddings) adds ``-pool<N>``; without it the name is unchanged.

    Example:
        >>> default_index(Path("SciFact"), "rank_features", "ab12", None, ["1", "2"])
        'eval-scifact-rank-features-ab12'
        >>> default_index(Path("SciFact"), "rank_features", "ab12", None, [], pool_factor=2)
        'eval-scifact-rank-features-ab12-pool2'
    """
    name = re.sub(r"[^a-z0-9]+", "-", dataset.name.lower()).strip("-") or "corpus"
    subset = f"-{max_docs}docs-d{id_set_hash(document_ids)}" if max_docs else ""
    pooled = f"-pool{pool_factor}" if check_pool_factor(pool_factor) > 1 else ""
    return f"eval-{name}{subset}-{mapping_type.replace('_', '-')}-{tag}{pooled}"


def id_set_hash(ids: Iterable[str], length: int = 8) -> str:
    """A short hash of a set of ids (order and repeats do not matter)."""
    payload = "\n".join(sorted(set(ids))).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:length]


def id_sample(ids: Sequence[str], limit: int = 10) -> str:
    """``ids`` joined for a log line, at most ``limit`` of them, then how many more.

    Example:
        >>> id_sample(["a", "b", "c"], limit=2)
        'a, b (and 1 more)'
    """
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown} (and {len(ids) - limit} more)"
