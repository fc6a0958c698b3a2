"""Dense and MUVERA first stages on real nodes: the kNN fields written in the bulk pass, kNN
results against brute-force dot products, fused stages and the rerank after them, and the
mismatches refused (both engines; OpenSearch through the k-NN plugin the launcher adds)."""

from __future__ import annotations

import numpy as np
import pytest
from cli_runner import cli
from corpus_fixture import DOCS

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder, resolve_model_path
from colbert_rerank.fusion import Fusion, fuse_lists
from colbert_rerank.muvera import DEFAULT_MUVERA, MuveraConfig, MuveraEncoder
from splade_es.cluster.admin import IndexMismatchError, field_sizes, get_index
from splade_es.cluster.companion import codebook_index_name
from splade_es.cluster.mapping import VECTORS_META_KEY
from splade_es.data.corpus import from_records
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.indexing.distributed import RayConfig
from splade_es.indexing.vector_fields import DenseIndexing, MuveraIndexing
from splade_es.search.pipeline import Retrieval, search_then_rerank
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher
from splade_es.search.stages import fused_hits, open_vector_queries

QUERY = "does aspirin prevent heart attacks"
STORAGE = ColbertStorage(codec="int8", pool_factor=1)


@pytest.fixture(scope="session")
def dense_encoder():
    """The shipped all-MiniLM-L6-v2 as a sentence-embedding model, on CPU."""
    from splade_es.encoding.dense import DenseConfig, DenseEncoder

    return DenseEncoder(DenseConfig(device="cpu"))


def _build(cluster, splade, colbert, dense, index, quantization="none", **kwargs):
    config = BuildConfig(BulkConfig(index=index, progress=False))
    muvera = MuveraIndexing(quantization=quantization)
    return build_index(
        cluster,
        from_records(DOCS),
        splade,
        config,
        ColbertIndexing(colbert, STORAGE, muvera),
        dense=DenseIndexing(dense, quantization=quantization),
        **kwargs,
    )


@pytest.fixture
def vector_index(cluster, splade_encoder, colbert_encoder, dense_encoder, index_names):
    index = index_names(cluster)
    result = _build(cluster, splade_encoder, colbert_encoder, dense_encoder, index)
    return index, result


def _brute_force(doc_vectors: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    scores = doc_vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [DOCS[i]["_id"] for i in order]


def test_knn_fields_match_brute_force_dot_products(
    cluster, splade_encoder, colbert_encoder, dense_encoder, vector_index
):
    index, result = vector_index
    counters = result.report.counters
    assert counters["dense_vectors"] == counters["muvera_vectors"] == len(DOCS)
    assert counters["muvera_empty"] == 0 and counters["colbert_tokens"] > 0
    texts = [d.encoded_text for d in from_records(DOCS)]
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index))

    dense_docs = dense_encoder.encode_documents(texts)
    dense_query = dense_encoder.encode_queries([QUERY])[0]
    hits = searcher.knn("dense", dense_query, k=5, candidates=len(DOCS))
    assert [h.id for h in hits] == _brute_force(dense_docs, dense_query, 5)
    assert hits[0].id == "med-1"

    muvera = MuveraEncoder(DEFAULT_MUVERA, colbert_encoder.dim)
    fde_docs = muvera.encode_documents(colbert_encoder.encode_documents(texts).embeddings)
    fde_query = muvera.encode_queries(colbert_encoder.encode_queries([QUERY]))[0]
    hits = searcher.knn("muvera", fde_query, k=5, candidates=len(DOCS))
    assert [h.id for h in hits] == _brute_force(fde_docs, fde_query, 5)

    filtered = searcher.knn(
        "dense", dense_query, k=3, candidates=len(DOCS), filters=[{"ids": {"values": ["cook-1"]}}]
    )
    assert [h.id for h in filtered] == ["cook-1"]  # the filter applies during the graph search


def test_fused_stages_fuse_each_list_and_rerank_the_top(
    cluster, splade_encoder, colbert_encoder, dense_encoder, vector_index
):
    index, _ = vector_index
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    vectors = open_vector_queries(searcher, dense_encoder, colbert_encoder)
    rrf = Fusion("rrf")
    names = ("splade", "dense", "muvera")
    lists = [fused_hits(searcher, vectors, QUERY, (n,), 10, 10, rrf) for n in names]
    fused = fused_hits(searcher, vectors, QUERY, names, 10, 10, rrf)
    expected = fuse_lists([{h.id: h.score for h in hits} for hits in lists], rrf)
    assert [h.id for h in fused] == sorted(expected, key=lambda i: -expected[i])[:10]
    assert [h.score for h in fused] == pytest.approx(sorted(expected.values(), reverse=True)[:10])
    assert fused[0].id == "med-1" and not fused.shards.partial
    assert all("dense" not in h.source and "muvera" not in h.source for h in fused)

    reranker = open_reranker(cluster, index, colbert_encoder)
    for mode in ("dense", "muvera", "splade|dense|muvera", "splade|muvera"):
        retrieval = Retrieval(k=5, mode=mode, rerank_k=8, hybrid_depth=10)
        ranking = search_then_rerank(searcher, QUERY, retrieval, reranker, vectors)
        assert ranking.hits[0].id == "med-1", mode
        assert ranking.rerank is not None and ranking.rerank.reranked == 8, mode
        assert all(h.colbert_score is not None for h in ranking.hits), mode


def test_vector_fields_are_described_and_measured(cluster, vector_index):
    index, result = vector_index
    info = get_index(cluster, index)
    fields = info.all_meta[VECTORS_META_KEY]
    assert fields["dense"]["dims"] == 384 and fields["dense"]["model"]["model"]
    assert fields["muvera"]["dims"] == DEFAULT_MUVERA.dimension(384) <= 4096
    assert fields["muvera"]["model"]["colbert_model"] == ColbertConfig().model
    sizes = field_sizes(cluster, index, result.documents)
    if cluster.engine == "elasticsearch":
        assert sizes["dense"]["bytes"] > 0 and sizes["muvera"]["bytes_per_doc"] > 0
    else:
        assert "_disk_usage" in sizes["unavailable"]


def test_mismatched_models_and_dimensions_are_refused(
    cluster, splade_encoder, colbert_encoder, dense_encoder, vector_index, index_names
):
    index, _ = vector_index
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index))

    class OtherDense:  # another model's fingerprint: only the check reads it
        def fingerprint(self):
            return {**dense_encoder.fingerprint(), "weights_sha256": "0" * 64}

    with pytest.raises(ValueError, match=r"was built with dense model .* query with the model"):
        open_vector_queries(searcher, OtherDense())
    folder = resolve_model_path(colbert_encoder.config.model)  # the same weights, another name
    renamed = ColbertEncoder(ColbertConfig(model=folder, device="cpu"))
    assert open_vector_queries(searcher, None, renamed).muvera is not None

    class OtherColbert:  # another model's hashes: only the check reads them
        config = ColbertConfig(model="other/colbert")

        def fingerprint(self):
            return {**colbert_encoder.fingerprint(), "weights_sha256": "0" * 64}

    with pytest.raises(ValueError, match=r"MUVERA encodings of .* query it with the model"):
        open_vector_queries(searcher, None, OtherColbert())

    plain = index_names(cluster, "plain")
    build_index(cluster, from_records(DOCS), splade_encoder, BuildConfig(BulkConfig(plain)))
    bare = Searcher(cluster, splade_encoder, SearchConfig(index=plain))
    with pytest.raises(ValueError, match="has no dense vector field: build it with"):
        open_vector_queries(bare, dense_encoder)
    with pytest.raises(IndexMismatchError, match=r"_meta\.splade_es_vectors differs"):
        build_index(
            cluster,
            from_records(DOCS),
            splade_encoder,
            BuildConfig(BulkConfig(plain, progress=False)),
            dense=DenseIndexing(dense_encoder),
        )

    huge = index_names(cluster, "huge")  # 64 partitions x 384 dims: over both engines' limits
    too_big = MuveraIndexing(MuveraConfig(simhash_bits=6, projection_dim=None, repetitions=1))
    config = BuildConfig(BulkConfig(index=huge, progress=False))
    with pytest.raises(ValueError, match="indexes at most"):
        build_index(  # the residual codec: a codebook would be fitted and stored first
            cluster,
            from_records(DOCS),
            splade_encoder,
            config,
            ColbertIndexing(colbert_encoder, ColbertStorage(sample_documents=8), too_big),
        )
    assert get_index(cluster, huge) is None  # refused before anything was created
    assert get_index(cluster, codebook_index_name(huge)) is None
    with pytest.raises(ValueError, match="not written by Ray workers"):
        _build(cluster, splade_encoder, colbert_encoder, dense_encoder, huge, ray=RayConfig())


def test_colbert_and_dense_without_muvera_keep_the_colbert_field(
    cluster, splade_encoder, colbert_encoder, dense_encoder, index_names
):
    index = index_names(cluster)
    result = build_index(
        cluster,
        from_records(DOCS),
        splade_encoder,
        BuildConfig(BulkConfig(index=index, progress=False)),
        ColbertIndexing(colbert_encoder, STORAGE),
        dense=DenseIndexing(dense_encoder),
    )
    assert result.report.counters["colbert_tokens"] > 0
    assert result.report.counters["dense_vectors"] == len(DOCS)
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    vectors = open_vector_queries(searcher, dense_encoder)
    reranker = open_reranker(cluster, index, colbert_encoder)
    retrieval = Retrieval(k=3, mode="splade|dense", rerank_k=6)
    ranking = search_then_rerank(searcher, QUERY, retrieval, reranker, vectors)
    assert ranking.rerank.reranked == 6 and not ranking.rerank.unusable
    assert ranking.hits[0].id == "med-1"


@pytest.mark.es
def test_cli_stage_names(es_cluster, es_node, index_names, vector_index_cli):
    vector_index_cli, corpus = vector_index_cli
    url = ["--es-url", es_node.config.url]
    bad = cli("search", QUERY, "--index", vector_index_cli, "--mode", "splade|nope", *url)
    assert bad.returncode == 2 and "expected one of splade, bm25, dense, muvera" in bad.stderr
    fused = cli("search", QUERY, "--index", vector_index_cli, "--mode", "splade|dense", *url)
    assert fused.returncode == 0, fused.stderr
    assert fused.stdout.splitlines()[0].split()[2] == "med-1"
    weighted = ["--fusion", "weighted", "--splade-weight", "0.8"]
    refused = cli(
        "search", QUERY, "--index", vector_index_cli, "--mode", "splade|dense", *weighted, *url
    )
    assert (
        refused.returncode == 2 and "--splade-weight 0.8 applies to --mode hybrid" in refused.stderr
    )
    missing = cli("search", QUERY, "--index", vector_index_cli, "--mode", "muvera", *url)
    assert missing.returncode == 2 and "has no muvera vector field" in missing.stderr
    alone = cli("index", str(corpus), "--index", "x", "--muvera", *url)
    assert alone.returncode == 2 and "--muvera encodes the ColBERT token embeddings" in alone.stderr


@pytest.fixture
def vector_index_cli(es_cluster, es_node, index_names, tmp_path):
    """An index built by the CLI with --dense (no ColBERT, so no muvera field)."""
    from corpus_fixture import write_jsonl

    corpus = write_jsonl(tmp_path / "corpus.jsonl")
    index = index_names(es_cluster, "cli")
    built = cli("index", str(corpus), "--index", index, "--dense", "--es-url", es_node.config.url)
    assert built.returncode == 0, built.stderr
    return index, corpus
