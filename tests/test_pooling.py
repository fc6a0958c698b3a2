"""Token pooling at index time: the clustering against a brute-force reference, the storage
option and its ``_meta`` record, and a pooled index on real nodes that still reranks."""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus_fixture import DOCS

from colbert_rerank.codecs import Codec
from colbert_rerank.maxsim import maxsim_reference
from colbert_rerank.pooling import check_pool_factor, pool_tokens, pooled_count, pooled_labels
from colbert_rerank.storage import EmbeddingFields, index_meta, stored_pool_factor
from splade_es.cluster.admin import IndexMismatchError, get_index
from splade_es.data.corpus import from_records
from splade_es.evaluation.selection import default_index
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher


def unit_rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def reference_groups(vectors: np.ndarray, clusters: int) -> set[frozenset[int]]:
    """Ward by brute force: merge the pair whose union raises the within-cluster sum of
    squares least, until ``clusters`` remain."""
    groups = [[i] for i in range(vectors.shape[0])]

    def cost(a: list[int], b: list[int]) -> float:
        gap = vectors[a].mean(axis=0) - vectors[b].mean(axis=0)
        return len(a) * len(b) / (len(a) + len(b)) * float(gap @ gap)

    while len(groups) > clusters:
        i, j = min(
            itertools.combinations(range(len(groups)), 2),
            key=lambda p: cost(groups[p[0]], groups[p[1]]),
        )
        groups[i] = groups[i] + groups.pop(j)
    return {frozenset(g) for g in groups}


def as_sets(groups: list[np.ndarray]) -> set[frozenset[int]]:
    return {frozenset(int(i) for i in g) for g in groups}


@pytest.mark.parametrize(("n", "factor"), [(2, 2), (5, 2), (9, 3), (12, 2), (12, 4), (7, 7)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooling_matches_a_brute_force_ward_reference(n, factor, seed):
    vectors = unit_rows(n, seed=seed).astype(np.float64)
    pooled, groups = pool_tokens(vectors, factor)
    assert as_sets(groups) == reference_groups(vectors, math.ceil(n / factor))
    for row, group in zip(pooled, groups, strict=True):
        mean = vectors[group].mean(axis=0)
        assert np.allclose(row, mean / np.linalg.norm(mean), atol=1e-6)


def test_pooling_agrees_with_scipy_fcluster_where_heights_do_not_tie():
    from scipy.cluster.hierarchy import fcluster, linkage

    vectors = unit_rows(40, dim=16, seed=3)
    _, groups = pool_tokens(vectors, 3)
    labels = fcluster(linkage(vectors.astype(np.float64), "ward"), t=14, criterion="maxclust")
    expected = {frozenset(np.flatnonzero(labels == c).tolist()) for c in set(labels)}
    assert as_sets(groups) == expected


def test_identical_tokens_merge_first_and_keep_their_vector():
    distinct = unit_rows(4, seed=5)
    order = [2, 0, 3, 1, 0, 2, 1, 3]  # each vector twice, interleaved
    pooled, groups = pool_tokens(distinct[order], 2)
    assert [g.tolist() for g in groups] == [[0, 5], [1, 4], [2, 7], [3, 6]]
    assert np.allclose(pooled, distinct[[2, 0, 3, 1]], atol=1e-6)


def test_tied_heights_still_give_exactly_ceil_n_over_factor_rows():
    same = np.tile(unit_rows(1), (7, 1))  # fcluster(maxclust) would give one cluster here
    pooled, groups = pool_tokens(same, 2)
    assert pooled.shape == (4, 8) and len(groups) == 4
    assert np.allclose(pooled, same[:4], atol=1e-6)


def test_factor_one_and_single_tokens_return_the_input():
    vectors = unit_rows(5)
    pooled, groups = pool_tokens(vectors, 1)
    assert pooled is vectors
    assert [g.tolist() for g in groups] == [[0], [1], [2], [3], [4]]
    single, groups = pool_tokens(vectors[:1], 4)
    assert np.array_equal(single, vectors[:1]) and [g.tolist() for g in groups] == [[0]]
    empty, groups = pool_tokens(np.zeros((0, 8), np.float32), 2)
    assert empty.shape == (0, 8) and groups == []


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 33, 250])
@pytest.mark.parametrize("factor", [1, 2, 3, 4, 300])
def test_shape_norms_partition_order_and_determinism(n, factor):
    vectors = unit_rows(n, dim=16, seed=n)
    pooled, groups = pool_tokens(vectors, factor)
    m = max(1, math.ceil(n / factor))
    assert pooled.shape == (m, 16) and pooled.dtype == np.float32
    assert m == pooled_count(n, factor)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    assert sorted(int(i) for g in groups for i in g) == list(range(n))
    assert all(list(g) == sorted(g) and g.dtype == np.int64 for g in groups)
    firsts = [int(g[0]) for g in groups]
    assert firsts == sorted(firsts) and firsts[0] == 0
    again, regrouped = pool_tokens(vectors.copy(), factor)
    assert np.array_equal(pooled, again)
    assert [g.tolist() for g in groups] == [g.tolist() for g in regrouped]


@pytest.mark.parametrize("factor", [0, -2, True, 2.0, "2", None])
def test_a_bad_factor_is_refused_with_its_value(factor):
    with pytest.raises(ValueError, match=rf"pool_factor={factor!r}: expected a positive integer"):
        pool_tokens(unit_rows(4), factor)
    with pytest.raises(ValueError, match=r"pool_factor=.*expected a positive integer"):
        check_pool_factor(factor)


def test_other_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"shape \(8,\): expected one document's"):
        pool_tokens(unit_rows(1)[0], 2)
    with pytest.raises(ValueError, match="tokens=-1: expected a non-negative integer"):
        pooled_count(-1, 2)
    with pytest.raises(ValueError, match="refers to position 3 but there are 3 labels"):
        pooled_labels(["a", "b", "c"], [np.array([0, 3])])


def test_pooled_labels_join_the_merged_tokens():
    vectors = unit_rows(2)[[0, 0, 1, 1]]
    _, groups = pool_tokens(vectors, 2)
    labels = ["heart", "attack", "risk", "factor"]
    assert pooled_labels(labels, groups) == ["heart+attack", "risk+factor"]
    assert pooled_labels(labels, pool_tokens(vectors, 1)[1]) == labels


def test_storage_option_is_validated():
    assert ColbertStorage().pool_factor == 2  # the default, chosen from SciFact data
    assert ColbertStorage(pool_factor=1).pool_factor == 1
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match=rf"pool_factor={bad!r}: expected a positive integer"):
            ColbertStorage(pool_factor=bad)  # type: ignore[arg-type]


def test_meta_records_the_factor_only_when_pooling(colbert_encoder):
    codec = Codec("float16", colbert_encoder.dim)
    assert "pool_factor" not in index_meta(colbert_encoder, codec)
    meta = index_meta(colbert_encoder, codec, pool_factor=3)
    assert meta["pool_factor"] == 3 and stored_pool_factor(meta) == 3
    assert stored_pool_factor(index_meta(colbert_encoder, codec)) == 1
    with pytest.raises(ValueError, match=r"pool_factor=0: expected a positive integer"):
        index_meta(colbert_encoder, codec, pool_factor=0)
    with pytest.raises(ValueError, match=r"_meta\.colbert_rerank\.pool_factor='2'"):
        stored_pool_factor({"pool_factor": "2"})
    with pytest.raises(ValueError, match=r"pool_factor=0: expected a positive integer"):
        EmbeddingFields(colbert_encoder, codec, pool_factor=0)


def test_eval_index_name_changes_only_when_pooling():
    dataset = Path("SciFact")
    plain = default_index(dataset, "rank_features", "ab12", 300, ["1"])
    assert default_index(dataset, "rank_features", "ab12", 300, ["1"], pool_factor=1) == plain
    pooled = default_index(dataset, "rank_features", "ab12", 300, ["1"], pool_factor=2)
    assert pooled == plain + "-pool2"
    with pytest.raises(ValueError, match="pool_factor=0"):
        default_index(dataset, "rank_features", "ab12", None, [], pool_factor=0)


def build(cluster, splade, colbert, name, storage):
    config = BuildConfig(BulkConfig(index=name, progress=False))
    result = build_index(
        cluster, from_records(DOCS), splade, config, ColbertIndexing(colbert, storage)
    )
    return result.report, result.prepared.embeddings.codec


def test_a_pooled_index_stores_half_the_tokens_and_reranks(
    cluster, splade_encoder, colbert_encoder, index_names, caplog
):
    texts = {d["_id"]: f"{d['title']} {d['text']}" for d in DOCS}
    embedded = dict(
        zip(texts, colbert_encoder.encode_documents(list(texts.values())).embeddings, strict=True)
    )
    full = sum(e.shape[0] for e in embedded.values())
    halved = sum(math.ceil(e.shape[0] / 2) for e in embedded.values())
    index = index_names(cluster)
    storage = ColbertStorage(codec="residual", centroids=16, pool_factor=2)
    with caplog.at_level(logging.INFO, logger="splade_es.indexing.colbert_fields"):
        report, codec = build(cluster, splade_encoder, colbert_encoder, index, storage)
    assert report.counters["colbert_tokens"] == halved < 0.6 * full
    assert report.counters["colbert_tokens_before_pooling"] == full
    assert f"on {halved} token embeddings" in caplog.text  # the codebook saw what is stored
    assert get_index(cluster, index).all_meta["colbert_rerank"]["pool_factor"] == 2

    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    query = "does aspirin prevent heart attacks"
    hits = [h.as_dict() for h in searcher.search(query, k=len(DOCS))]
    result = open_reranker(cluster, index, colbert_encoder).rerank(query, hits)
    assert result.hits[0]["_id"] == "med-1"
    ids = [h["_id"] for h in result.hits]
    decoded = [
        torch.from_numpy(codec.decode(codec.encode(pool_tokens(embedded[i], 2)[0]))) for i in ids
    ]
    q = torch.from_numpy(codec.prepare_query(colbert_encoder.encode_queries([query])[0]))
    expected = maxsim_reference(q, decoded).numpy()
    assert np.allclose([h["_colbert_score"] for h in result.hits], expected, atol=1e-4)

    with pytest.raises(IndexMismatchError, match=r"_meta\.colbert_rerank differs"):
        build(
            cluster,
            splade_encoder,
            colbert_encoder,
            index,
            ColbertStorage(codec="residual", pool_factor=1),
        )


def test_an_index_built_before_the_defaults_changed_is_continued(
    cluster, splade_encoder, colbert_encoder, index_names
):
    """An index written in _source with every token (0.1's layout) is re-run with today's
    defaults as it was built; an explicit other value is still refused."""
    index = index_names(cluster)
    old = ColbertStorage(codec="float16", pool_factor=1, form="source")
    build(cluster, splade_encoder, colbert_encoder, index, old)
    meta = get_index(cluster, index).all_meta["colbert_rerank"]
    assert "form" not in meta and "pool_factor" not in meta
    build(cluster, splade_encoder, colbert_encoder, index, ColbertStorage(codec="float16"))
    assert get_index(cluster, index).all_meta["colbert_rerank"] == meta
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    hits = [h.as_dict() for h in searcher.search("heart attack", k=5)]
    assert all(isinstance(h["_source"]["colbert"], str) for h in hits)
    with pytest.raises(IndexMismatchError, match=r"_meta\.colbert_rerank differs"):
        build(
            cluster,
            splade_encoder,
            colbert_encoder,
            index,
            ColbertStorage(codec="float16", pool_factor=3),
        )


def test_a_stored_form_that_does_not_exist_is_refused():
    with pytest.raises(
        ValueError, match=r"form='json': expected one of source, doc_values, stored"
    ):
        ColbertStorage(form="json")  # type: ignore[arg-type]
    assert ColbertStorage().form == "doc_values"
