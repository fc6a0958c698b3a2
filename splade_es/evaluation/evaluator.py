"""``splade-es eval``: index (or reuse) a BEIR corpus in a real node, run stages, score them.

Stages: ``bm25`` (the engine's BM25 over title and text) and ``splade`` (exact dot product on
the SPLADE field). With ``check_exact`` the same model also ranks the corpus in memory in
float32 (and at the engine's 9-bit storage precision) to show what the engine returns is the
exact dot product.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.rerank import RerankConfig, Reranker
from splade_es import __version__
from splade_es.cluster.admin import (
    check_index_name,
    index_stats,
    resolve_mapping_type,
)
from splade_es.cluster.connection import Cluster
from splade_es.data.beir import load_qrels, load_queries
from splade_es.data.corpus import Document, Limits, Rejected, read_beir
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.encoding.features import SparseVector, lucene_stored
from splade_es.evaluation.metrics import (
    percentiles_ms,
    retrieval_metrics,
    same_top_k,
    subset_queries,
)
from splade_es.indexing.bulk import BulkConfig, index_documents
from splade_es.indexing.colbert_fields import ColbertStorage, open_reranker, prepare_embeddings
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
from splade_es.search.searcher import Hit, SearchConfig, Searcher

logger = logging.getLogger(__name__)

STAGES = ("bm25", "splade", "splade+colbert", "bm25+colbert")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Attributes:
        dataset: BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
        split: qrels split.
        stages: stage names, in report order (``bm25``, ``splade``, ``splade+colbert``,
            ``bm25+colbert``).
        depth: hits retrieved per query (Recall@100 needs 100).
        rerank_k: first-stage hits rescored by ColBERT in the ``+colbert`` stages.
        max_queries: evaluate only the first N judged queries (CI-sized runs).
        max_docs: index only the documents judged for those queries plus others up to N.
        index: index name (default: derived from dataset, subset, mapping type and models).
        mapping_type: ``auto``, ``rank_features`` or ``sparse_vector``.
        check_exact: add the in-memory exact ranking parity block.
        storage: how ColBERT embeddings are stored (when a ``+colbert`` stage is asked for).
        progress: progress bars.
    """

    dataset: Path
    split: str = "test"
    stages: tuple[str, ...] = ("bm25", "splade")
    depth: int = 100
    rerank_k: int = 100
    max_queries: int | None = None
    max_docs: int | None = None
    index: str | None = None
    mapping_type: str = "auto"
    check_exact: bool = False
    storage: ColbertStorage = field(default_factory=ColbertStorage)
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise ValueError(
                f"Unknown stages {unknown or '(none given)'}: choose from {', '.join(STAGES)}."
            )
        for name in ("max_queries", "max_docs", "rerank_k", "depth"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}={value!r}: expected a positive integer.")

    @property
    def reranks(self) -> bool:
        """Whether a stage needs ColBERT (a ``+colbert`` stage)."""
        return any(stage.endswith("+colbert") for stage in self.stages)


def evaluate(
    cluster: Cluster,
    encoder: SpladeEncoder,
    config: EvalConfig,
    colbert: ColbertEncoder | None = None,
) -> dict[str, Any]:
    """Run the evaluation and return the ``report.json`` content.

    ``colbert`` is required for the ``+colbert`` stages.
    """
    if config.reranks and colbert is None:
        raise ValueError("The +colbert stages need a ColBERT encoder (--colbert-model).")
    qrels_all = load_qrels(config.dataset, config.split)
    query_ids = subset_queries(
        {q: d for q, d in qrels_all.items() if any(v > 0 for v in d.values())}, config.max_queries
    )
    queries = load_queries(config.dataset, set(query_ids))
    missing = [q for q in query_ids if q not in queries]
    if missing:
        raise ValueError(
            f"{len(missing)} judged queries are not in queries.jsonl (e.g. {missing[:3]}): "
            "the qrels and queries files do not belong together."
        )
    qrels = {q: qrels_all[q] for q in query_ids}
    documents = _select_documents(config, qrels)

    mapping_type = resolve_mapping_type(cluster, config.mapping_type)  # type: ignore[arg-type]
    tag = encoder.fingerprint()["weights_sha256"][:8]
    if config.reranks and colbert is not None:
        tag += f"-{colbert.fingerprint()['weights_sha256'][:6]}-{config.storage.codec}"
        if config.storage.codec == "residual":
            tag += f"{config.storage.bits}"
        if config.storage.dim is not None:
            tag += f"-d{config.storage.dim}"
    index = config.index or _default_index(config, mapping_type, tag)
    check_index_name(index)
    representations: list[Any] = [SpladeFields(encoder)]
    extra_properties: dict[str, Any] = {}
    extra_meta: dict[str, Any] = {}
    if config.reranks and colbert is not None:
        fields, extra_properties, extra_meta = prepare_embeddings(
            cluster, index, colbert, config.storage, documents[: config.storage.sample_documents]
        )
        representations.append(fields)
    prepare_index(
        cluster,
        encoder,
        index,
        mapping_type,
        extra_properties=extra_properties,
        extra_meta=extra_meta,
    )
    count, _ = index_stats(cluster, index)
    indexing: dict[str, Any] = {"reused": count == len(documents)}
    if count != len(documents):
        report = index_documents(
            cluster,
            documents,
            representations,
            BulkConfig(index=index, progress=config.progress),
            total=len(documents),
        )
        indexing.update(
            {
                "seconds": round(report.seconds, 2),
                "docs_per_second": round(report.docs_per_second, 2),
            }
        )
        if report.counters.get("colbert_tokens"):
            indexing["colbert_bytes_per_token"] = round(
                report.counters["colbert_bytes"] / report.counters["colbert_tokens"], 2
            )
    docs, size = index_stats(cluster, index)
    searcher = Searcher(cluster, encoder, SearchConfig(index=index, source_includes=[]))
    # Counted on what the index stores, so a reused index reports it too.
    indexing["avg_terms_per_doc"] = round(searcher.average_stored_terms(), 1)
    result: dict[str, Any] = {
        "dataset": config.dataset.name,
        "split": config.split,
        "engine": cluster.engine,
        "engine_version": cluster.version,
        "mapping_type": mapping_type,
        "index": index,
        "index_docs": docs,
        "index_size_bytes": size,
        "model": encoder.config.model,
        "package_version": __version__,
        "indexing": indexing,
        "stages": {},
    }
    reranker = None
    if config.reranks and colbert is not None:
        result["colbert_model"] = colbert.config.model
        result["colbert_codec"] = config.storage.codec
        field_name = config.storage.field
        embedded = Searcher(
            cluster, encoder, SearchConfig(index=index, source_includes=[field_name])
        )
        reranker = open_reranker(cluster, index, colbert, RerankConfig(field=field_name))
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for stage in config.stages:
        extra: dict[str, Any] = {}
        if stage.endswith("+colbert") and reranker is not None:
            first = embedded.search if stage.startswith("splade") else embedded.bm25
            search = _reranked(first, reranker, config.rerank_k, extra)
        elif stage == "bm25":
            search = _plain(searcher.bm25, config.depth)
        else:
            search = _plain(searcher.search, config.depth)
        run, latencies = _run_stage(stage, search, queries, config.progress)
        runs[stage] = run
        result["stages"][stage] = {
            **retrieval_metrics(qrels, run),
            **percentiles_ms(latencies),
            "num_queries": len(run),
            **_summarise(extra),
        }
    if config.check_exact:
        engine_run = (
            runs.get("splade")
            or _run_stage(
                "splade", _plain(searcher.search, config.depth), queries, config.progress
            )[0]
        )
        result["parity"] = exact_parity(encoder, documents, queries, qrels, engine_run)
    return result


def _plain(search: Callable[[str, int], list[Hit]], depth: int) -> Callable[[str], list[Hit]]:
    return lambda text: search(text, depth)


def _reranked(
    first: Callable[[str, int], list[Hit]],
    reranker: Reranker,
    rerank_k: int,
    timings: dict[str, Any],
) -> Callable[[str], list[Hit]]:
    timings.update({"rerank_k": rerank_k, "encode_ms": [], "rerank_ms": []})

    def run(text: str) -> list[Hit]:
        hits = first(text, rerank_k)
        result = reranker.rerank(text, [h.as_dict() for h in hits])
        stats = result.stats
        timings["encode_ms"].append(stats.encode_ms)
        timings["rerank_ms"].append(stats.fetch_ms + stats.decode_ms + stats.maxsim_ms)
        return [
            Hit(h["_id"], float(h["_score"]), rank, {}, h["_index"])
            for rank, h in enumerate(result.hits, start=1)
        ]

    return run


def _summarise(extra: dict[str, Any]) -> dict[str, Any]:
    if not extra:
        return {}
    encode = percentiles_ms(extra["encode_ms"])
    rerank = percentiles_ms(extra["rerank_ms"])
    return {
        "rerank_k": extra["rerank_k"],
        "colbert_query_encode_ms_p50": encode["latency_ms_p50"],
        "rerank_ms_p50": rerank["latency_ms_p50"],
        "rerank_ms_p95": rerank["latency_ms_p95"],
    }


def _default_index(config: EvalConfig, mapping_type: str, tag: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", config.dataset.name.lower()).strip("-") or "corpus"
    subset = f"-{config.max_docs}docs" if config.max_docs else ""
    return f"eval-{name}{subset}-{mapping_type.replace('_', '-')}-{tag}"


def _select_documents(config: EvalConfig, qrels: Mapping[str, Mapping[str, int]]) -> list[Document]:
    """The corpus (or the judged documents plus others up to ``max_docs``), validated."""
    judged = {d for q in qrels.values() for d in q}
    chosen: list[Document] = []
    others: list[Document] = []
    rejected: list[Rejected] = []
    for item in read_beir(config.dataset, Limits()):
        if isinstance(item, Rejected):
            rejected.append(item)
        elif config.max_docs is None or item.id in judged:
            chosen.append(item)
        elif len(others) < config.max_docs:
            others.append(item)
    if rejected:
        logger.warning(
            "%d corpus records are invalid and left out, e.g. %s: %s",
            len(rejected),
            rejected[0].id,
            rejected[0].reason,
        )
    if config.max_docs is not None:
        chosen.extend(others[: max(config.max_docs - len(chosen), 0)])
    if not chosen:
        raise ValueError(f"{config.dataset}/corpus.jsonl has no valid document.")
    return chosen


def _run_stage(
    name: str, search: Callable[[str], list[Hit]], queries: Mapping[str, str], progress: bool
) -> tuple[dict[str, dict[str, float]], list[float]]:
    from tqdm.auto import tqdm

    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for query_id, text in tqdm(queries.items(), desc=name, unit="q", disable=not progress):
        started = time.perf_counter()
        hits = search(text)
        latencies.append((time.perf_counter() - started) * 1000)
        run[query_id] = {hit.id: hit.score for hit in hits}
    return run, latencies


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
    """Compare the engine's SPLADE ranking with the exact in-memory one (same model)."""
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
        identical = sum(same_top_k(engine_run.get(q, {}), run[q]) for q in query_ids)
        out[label] = {
            "ndcg@10": retrieval_metrics(qrels, run)["ndcg@10"],
            "top10_identical_fraction": identical / len(query_ids),
        }
    return {
        "top10_identical_fraction": out["exact"]["top10_identical_fraction"],
        "ndcg@10_engine": retrieval_metrics(qrels, engine_run)["ndcg@10"],
        "ndcg@10_exact": out["exact"]["ndcg@10"],
        "top10_identical_fraction_stored_precision": out["stored_precision"][
            "top10_identical_fraction"
        ],
        "ndcg@10_stored_precision": out["stored_precision"]["ndcg@10"],
        "num_queries": len(query_ids),
    }
