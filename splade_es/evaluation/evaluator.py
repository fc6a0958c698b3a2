"""``splade-es eval``: index (or reuse) a BEIR corpus in a real node, run stages, score them.

Stages: ``bm25`` (the engine's BM25 over title and text), ``splade`` (exact dot product on
the SPLADE field) and ``splade-idf`` (the same, with inference-free queries: the query's own
tokens weighted by IDF, see :mod:`splade_es.search.static_queries`), each optionally reranked
by ColBERT (``+colbert``). With ``check_exact`` the same model also ranks the corpus in memory
in float32 (and at the engine's 9-bit storage precision) to show what the engine returns is
the exact dot product.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.codecs import CodecError
from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.fusion import Fusion
from colbert_rerank.progress import progress_bar
from colbert_rerank.rerank import RerankConfig, Reranker, RerankError
from splade_es import __version__
from splade_es.cluster.admin import resolve_mapping_type
from splade_es.cluster.connection import Cluster
from splade_es.cluster.names import check_index_name
from splade_es.cluster.vectors import QUANTIZATIONS, Quantization
from splade_es.encoding.dense import DenseEncoder
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.evaluation.metrics import percentiles_ms, retrieval_metrics, without_hits
from splade_es.evaluation.parity import exact_parity
from splade_es.evaluation.selection import Selection, default_index, id_sample, select
from splade_es.evaluation.stage_plan import (
    StageNeeds,
    check_models,
    check_stages,
    first_stage_of,
    model_tag,
    vector_queries,
    vectors_tag,
)
from splade_es.evaluation.timings import record, summarise
from splade_es.indexing.build import BuildConfig, BuildResult, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.indexing.vector_fields import DenseIndexing, MuveraIndexing
from splade_es.search.pipeline import NO_VECTORS, Retrieval, search_then_rerank
from splade_es.search.pruning import QueryPruning
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import Hit, SearchConfig, Searcher
from splade_es.search.stages import VectorQueries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Attributes:
        dataset: BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
        split: qrels split.
        stages: stage names, in report order (``bm25``, ``splade``, ``splade+colbert``,
            ``splade-idf``, ``dense``, ``muvera``, ``splade|dense|muvera+colbert``, ...:
            :mod:`~splade_es.evaluation.stage_plan`).
        depth: hits retrieved per query (Recall@100 needs 100).
        rerank_k: first-stage hits rescored by ColBERT in the ``+colbert`` stages.
        max_queries: evaluate only the first N judged queries (CI-sized runs).
        max_docs: index only the documents judged for those queries plus others up to N.
        index: index name (default: derived from dataset, subset, mapping type and models).
        mapping_type: ``auto``, ``rank_features`` or ``sparse_vector``.
        check_exact: add the in-memory exact ranking parity block.
        storage: how ColBERT embeddings are stored (when a ``+colbert`` stage is asked for).
        progress: progress bars.
        quantization: how the kNN graph stores the dense and MUVERA vectors.
        knn_candidates: the kNN search beam of the ``dense`` and ``muvera`` stages.
        rerank_fusion: how the ``+colbert`` stages combine MaxSim with the first-stage score
            (``replace``: MaxSim alone).
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
    quantization: Quantization = "int8"
    knn_candidates: int = 200
    rerank_fusion: Fusion = field(default_factory=Fusion)

    def __post_init__(self) -> None:
        check_stages(self.stages)
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(
                f"quantization={self.quantization!r}: expected one of {', '.join(QUANTIZATIONS)}."
            )
        check_positive_ints(self, "rerank_k", "depth", "knn_candidates")
        check_positive_ints(self, "max_queries", "max_docs", optional=True)

    @property
    def needs(self) -> StageNeeds:
        """What the stages need: ColBERT reranking, the dense and MUVERA fields."""
        return check_stages(self.stages)

    @property
    def reranks(self) -> bool:
        """Whether the ColBERT model runs (a ``+colbert`` or ``muvera`` stage)."""
        return self.needs.colbert


def evaluate(
    cluster: Cluster,
    encoder: SpladeEncoder,
    config: EvalConfig,
    colbert: ColbertEncoder | None = None,
    dense: DenseEncoder | None = None,
) -> dict[str, Any]:
    """Run the evaluation and return the ``report.json`` content.

    The index is built with :func:`~splade_es.indexing.build.build_index` (a complete one is
    reused); every stage runs through :func:`~splade_es.search.pipeline.search_then_rerank`.
    ``colbert`` is needed by the ``+colbert`` and ``muvera`` stages, ``dense`` by ``dense``."""
    check_models(config.needs, colbert, dense)
    dense = dense if config.needs.dense else None
    chosen = select(config.dataset, config.split, config.max_queries, config.max_docs)
    mapping_type = resolve_mapping_type(cluster, config.mapping_type)  # type: ignore[arg-type]
    tag = model_tag(encoder, colbert, config.storage, config.reranks)
    tag += vectors_tag(config.needs, dense, config.quantization)
    index = config.index or default_index(
        config.dataset,
        mapping_type,
        tag,
        config.max_docs,
        (document.id for document in chosen.documents),
        config.storage.pool_factor if config.reranks else 1,
    )
    built = _build(
        cluster, encoder, config, (colbert if config.reranks else None, dense), index, chosen
    )
    searcher = Searcher(cluster, encoder, SearchConfig(index, [], pruning=QueryPruning()))
    result = _header(cluster, encoder, config, built, mapping_type)
    result["data"] = chosen.facts(config.max_queries)
    # Counted on what the index stores, so a reused index reports it too.
    result["indexing"]["avg_terms_per_doc"] = round(searcher.average_stored_terms(), 1)
    reranker, embedded = _reranking(cluster, encoder, colbert, config, index, result)
    vectors = vector_queries(
        searcher, config.needs, (colbert, dense), config.knn_candidates, result
    )
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for stage in config.stages:
        timings: dict[str, Any] = {}
        first = _first_stage(stage, searcher, embedded if reranker else None, result)
        search = _stage_search(stage, first, reranker, config, timings, vectors)
        stage_run = _run_stage(stage, search, chosen.queries, config.progress)
        runs[stage] = stage_run.run
        result["stages"][stage] = _stage_report(stage, stage_run, chosen.qrels, timings)
    if config.check_exact:
        engine_run = (
            runs.get("splade")
            or _run_stage(
                "splade",
                _stage_search("splade", searcher, None, config, {}),
                chosen.queries,
                config.progress,
            ).run
        )
        result["parity"] = exact_parity(
            encoder, chosen.documents, chosen.queries, chosen.qrels, engine_run
        )
    return result


def _reranking(
    cluster: Cluster,
    encoder: SpladeEncoder,
    colbert: ColbertEncoder | None,
    config: EvalConfig,
    index: str,
    result: dict[str, Any],
) -> tuple[Reranker | None, Searcher | None]:
    """The reranker of the ``+colbert`` stages and the searcher they start from, which
    returns the stored embeddings with the hits (no second round trip); notes the model."""
    if not config.reranks or colbert is None:
        return None, None
    field = config.storage.field
    embedded = Searcher(cluster, encoder, SearchConfig(index, [field], pruning=QueryPruning()))
    result["colbert_model"] = colbert.config.model
    result["colbert_codec"] = config.storage.codec
    result["rerank_fusion"] = {"method": config.rerank_fusion.method}
    if config.rerank_fusion.method == "weighted":
        result["rerank_fusion"]["maxsim_weight"] = config.rerank_fusion.weight
    rerank = RerankConfig(field=field, fusion=config.rerank_fusion)
    return open_reranker(cluster, index, colbert, rerank), embedded


def _first_stage(
    stage: str, searcher: Searcher, embedded: Searcher | None, result: dict[str, Any]
) -> Searcher:
    """The searcher a stage starts from: the one returning stored embeddings for a reranking
    stage; for the ``splade-idf`` stages, its IDF-query twin, whose table is loaded (or
    computed) here, before the stage's clock starts, and described in ``result``."""
    chosen = (embedded or searcher) if stage.endswith("+colbert") else searcher
    if not stage.startswith("splade-idf"):
        return chosen
    idf = Searcher(chosen.cluster, chosen.encoder, replace(chosen.config, query_encoder="idf"))
    started = time.perf_counter()
    table = idf.idf_table()
    result.setdefault(
        "idf_table",
        {
            "documents": table.documents,
            "terms": len(table),
            "load_seconds": round(time.perf_counter() - started, 2),
        },
    )
    return idf


def _build(
    cluster: Cluster,
    encoder: SpladeEncoder,
    config: EvalConfig,
    models: tuple[ColbertEncoder | None, DenseEncoder | None],
    index: str,
    chosen: Selection,
) -> BuildResult:
    """The evaluation index, built (or reused when it already holds every document)."""
    documents = chosen.documents
    build = BuildConfig(
        BulkConfig(index=check_index_name(index), progress=config.progress),
        mapping_type=config.mapping_type,  # type: ignore[arg-type]
        expected_documents=len(documents),
    )
    colbert, dense = models
    muvera = MuveraIndexing(quantization=config.quantization) if config.needs.muvera else None
    storage = ColbertIndexing(colbert, config.storage, muvera) if colbert is not None else None
    vectors = DenseIndexing(dense, quantization=config.quantization) if dense else None
    return build_index(
        cluster, documents, encoder, build, storage, total=len(documents), dense=vectors
    )


def _header(
    cluster: Cluster,
    encoder: SpladeEncoder,
    config: EvalConfig,
    built: BuildResult,
    mapping_type: str,
) -> dict[str, Any]:
    """The report's facts about the run and the index; ``stages`` still empty."""
    indexing: dict[str, Any] = {"reused": built.reused}
    report = built.report
    if report is not None:
        indexing["seconds"] = round(report.seconds, 2)
        indexing["docs_per_second"] = round(report.docs_per_second, 2)
        if report.counters.get("colbert_tokens"):
            indexing["colbert_bytes_per_token"] = round(
                report.counters["colbert_bytes"] / report.counters["colbert_tokens"], 2
            )
    return {
        "dataset": config.dataset.name,
        "split": config.split,
        "engine": cluster.engine,
        "engine_version": cluster.version,
        "mapping_type": mapping_type,
        "index": built.prepared.index,
        "index_docs": built.documents,
        "index_size_bytes": built.size_bytes,
        "model": encoder.config.model,
        "package_version": __version__,
        "indexing": indexing,
        "stages": {},
    }


def _stage_search(
    stage: str,
    searcher: Searcher,
    reranker: Reranker | None,
    config: EvalConfig,
    timings: dict[str, Any],
    vectors: VectorQueries = NO_VECTORS,
) -> Callable[[str], list[Hit]]:
    """One stage as a function of the query text (reranking stages record their timings)."""
    mode = first_stage_of(stage)
    reranks = stage.endswith("+colbert") and reranker is not None
    depth = config.rerank_k if reranks else config.depth
    retrieval = Retrieval(k=depth, mode=mode, rerank_k=config.rerank_k, hybrid_depth=config.depth)
    if reranks:
        timings["rerank_k"] = config.rerank_k
    parts: dict[str, list[float]] = timings.setdefault("parts", {})

    def run(text: str) -> list[Hit]:
        ranking = search_then_rerank(
            searcher, text, retrieval, reranker if reranks else None, vectors
        )
        record(parts, ranking, mode)
        return ranking.hits

    return run


@dataclass(frozen=True)
class StageRun:
    """One stage over the queries.

    Attributes:
        run: ``{query id: {document id: score}}`` for every query (empty when it failed).
        latencies_ms: per answered query, client side.
        failed: ``{query id: reason}`` for the queries whose search raised ``ValueError``.
    """

    run: dict[str, dict[str, float]]
    latencies_ms: list[float]
    failed: dict[str, str]


def _run_stage(
    name: str, search: Callable[[str], list[Hit]], queries: Mapping[str, str], progress: bool
) -> StageRun:
    """Every query through ``search``. A query refused on its own (``ValueError``: empty text,
    no terms after pruning, over maxClauseCount) is logged and scores 0; when every query is
    refused the stage itself is wrong and the first error is raised. Missing or corrupt stored
    embeddings (``RerankError``, ``CodecError``) are an index fault and always raise."""
    result = StageRun({}, [], {})
    first: ValueError | None = None
    for query_id, text in progress_bar(
        queries.items(), total=len(queries), desc=name, unit="q", enabled=progress
    ):
        started = time.perf_counter()
        try:
            hits = search(text)
        except (RerankError, CodecError):
            raise
        except ValueError as error:
            first = first or error
            result.failed[query_id] = str(error)
            result.run[query_id] = {}
            continue
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        result.run[query_id] = {hit.id: hit.score for hit in hits}
    if first is not None and len(result.failed) == len(queries):
        raise ValueError(f"Every query of stage {name} failed: {first}") from first
    if result.failed:
        logger.warning(
            "%s: %d of %d queries failed and score 0: %s",
            name,
            len(result.failed),
            len(queries),
            id_sample([f"{q} ({reason})" for q, reason in result.failed.items()], limit=5),
        )
    return result


def _stage_report(
    name: str, stage_run: StageRun, qrels: Mapping[str, Mapping[str, int]], timings: dict[str, Any]
) -> dict[str, Any]:
    """A stage's report entry: metrics (a judged query without hits scores 0), latency, and
    how many queries found nothing (failed ones included)."""
    missing = without_hits(qrels, stage_run.run)
    if missing:
        logger.warning(
            "%s: %d of %d judged queries have no hits and score 0: %s",
            name,
            len(missing),
            len(qrels),
            id_sample(missing),
        )
    return {
        **retrieval_metrics(qrels, stage_run.run),
        **percentiles_ms(stage_run.latencies_ms),
        "num_queries": len(qrels),
        "queries_without_hits": len(missing),
        "queries_failed": len(stage_run.failed),
        **summarise(timings),
    }
