"""The two entry points on real nodes: build_index (create, reuse, resume, alias) and
search_then_rerank (first stage, reranked head, first-stage tail)."""

from __future__ import annotations

import re

import pytest
from corpus_fixture import DOCS

from colbert_rerank.rerank import RerankConfig
from splade_es.cluster.admin import IndexMismatchError, index_uuid
from splade_es.cluster.companion import codebook_index_name
from splade_es.cluster.connection import ClusterError
from splade_es.data.corpus import FieldNames, from_records
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig, BulkFailedError
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.search.pipeline import Retrieval, search_then_rerank
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher

QUERY = "does aspirin prevent heart attacks"


def config(index: str, **options) -> BuildConfig:
    return BuildConfig(BulkConfig(index=index, progress=False), **options)


def test_a_new_build_moves_the_alias_and_leaves_the_old_index(cluster, splade_encoder, index_names):
    first, second, alias = (index_names(cluster, s) for s in ("v1", "v2", "live"))
    built = build_index(cluster, from_records(DOCS), splade_encoder, config(first, alias=alias))
    assert (built.report.indexed, built.documents, built.alias_left) == (len(DOCS), len(DOCS), [])
    assert built.prepared.state == "created"
    again = build_index(cluster, from_records(DOCS), splade_encoder, config(second, alias=alias))
    assert again.alias_left == [first]
    assert set(cluster.request("GET", f"/_alias/{alias}")) == {second}
    assert cluster.request("GET", f"/{first}/_count")["count"] == len(DOCS)  # not deleted


def test_a_complete_index_is_reused_without_writing(cluster, splade_encoder, index_names):
    index = index_names(cluster)
    options = config(index, expected_documents=len(DOCS))
    first = build_index(cluster, from_records(DOCS), splade_encoder, options)
    assert first.report is not None and first.report.indexed == len(DOCS)
    again = build_index(cluster, from_records(DOCS), splade_encoder, options)
    assert again.reused and again.prepared.state == "exists" and again.documents == len(DOCS)
    partial = build_index(cluster, from_records(DOCS), splade_encoder, config(index))
    assert partial.report is not None  # without expected_documents every document is sent


def test_the_checkpoint_is_named_after_the_index_uuid_and_resumes(
    cluster, splade_encoder, index_names, tmp_path
):
    index = index_names(cluster)
    options = config(index, checkpoint_dir=tmp_path)
    built = build_index(cluster, from_records(DOCS), splade_encoder, options)
    expected = tmp_path / f"{index}-{index_uuid(cluster, index)}.tsv"
    assert built.prepared.checkpoint == expected
    assert len(expected.read_text().splitlines()) == len(DOCS)
    resumed = build_index(cluster, from_records(DOCS), splade_encoder, options)
    assert (resumed.report.skipped, resumed.report.encoded) == (len(DOCS), 0)


def test_failed_documents_raise_and_the_alias_stays_put(cluster, splade_encoder, index_names):
    index, alias = index_names(cluster), index_names(cluster, "live")
    records = [dict(d, year=2020) for d in DOCS] + [{"_id": "bad", "text": "x", "year": "soon"}]
    documents = from_records(records, FieldNames(keep=("year",)))
    with pytest.raises(BulkFailedError, match="bad") as failed:
        build_index(cluster, documents, splade_encoder, config(index, alias=alias))
    assert [f.id for f in failed.value.report.failures] == ["bad"]
    with pytest.raises(ClusterError) as missing:
        cluster.request("GET", f"/_alias/{alias}")
    assert missing.value.status == 404


def test_embeddings_are_not_added_in_place_and_nothing_is_left_behind(
    cluster, splade_encoder, colbert_encoder, index_names
):
    index = index_names(cluster)
    build_index(cluster, from_records(DOCS), splade_encoder, config(index))
    colbert = ColbertIndexing(colbert_encoder, ColbertStorage(codec="residual", centroids=8))
    with pytest.raises(IndexMismatchError, match=r"without ColBERT token embeddings.*--alias"):
        build_index(cluster, from_records(DOCS), splade_encoder, config(index), colbert)
    with pytest.raises(ClusterError) as missing:  # no orphan codebook companion index
        cluster.request("GET", f"/{codebook_index_name(index)}")
    assert missing.value.status == 404


def test_a_template_index_is_accepted_again_without_its_template(
    cluster, splade_encoder, index_names
):
    index = index_names(cluster)
    template = {"mappings": {"_meta": {"owner": "search-team"}, "properties": {}}}
    build_index(cluster, from_records(DOCS), splade_encoder, config(index, template=template))
    again = build_index(cluster, from_records(DOCS), splade_encoder, config(index))
    assert again.prepared.state == "exists"
    meta = cluster.request("GET", f"/{index}/_mapping")[index]["mappings"]["_meta"]
    assert meta["owner"] == "search-team"


def test_build_config_refuses_bad_values():
    with pytest.raises(ValueError, match="Index name 'Bad' is not allowed"):
        config("ok", alias="Bad")
    with pytest.raises(ValueError, match="expected_documents=0"):
        config("ok", expected_documents=0)
    with pytest.raises(ValueError, match="replicas=-1"):
        config("ok", replicas=-1)


@pytest.fixture
def reranked_index(cluster, splade_encoder, colbert_encoder, index_names):
    index = index_names(cluster)
    storage = ColbertStorage(codec="float16")
    colbert = ColbertIndexing(colbert_encoder, storage)
    build_index(cluster, from_records(DOCS), splade_encoder, config(index), colbert)
    return cluster, index


def test_search_then_rerank_reranks_the_head_and_keeps_the_tail(
    reranked_index, splade_encoder, colbert_encoder
):
    cluster, index = reranked_index
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    reranker = open_reranker(cluster, index, colbert_encoder)
    first = searcher.search(QUERY, len(DOCS))
    expected = reranker.rerank(QUERY, [hit.as_dict() for hit in first[:5]]).hits

    ranking = search_then_rerank(searcher, QUERY, Retrieval(k=8, rerank_k=5), reranker)
    assert ranking.rerank is not None and ranking.rerank.reranked == 5
    head, tail = ranking.hits[:5], ranking.hits[5:]
    assert [h.id for h in head] == [h["_id"] for h in expected]
    assert [h.colbert_score for h in head] == [h["_colbert_score"] for h in expected]
    assert [h.id for h in tail] == [h.id for h in first[5:8]]
    assert all(h.colbert_score is None for h in tail)
    assert [h.first_stage_rank for h in tail] == [6, 7, 8]
    assert [h.first_stage_score for h in tail] == [h.score for h in first[5:8]]
    assert [h.rank for h in ranking.hits] == list(range(1, 9))
    ranks = {h.id: h.rank for h in first}
    assert all(h.first_stage_rank == ranks[h.id] for h in head)


def test_search_then_rerank_fetches_embeddings_the_hits_lack(
    reranked_index, splade_encoder, colbert_encoder
):
    cluster, index = reranked_index
    with_embeddings = Searcher(
        cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True)
    )
    without = Searcher(cluster, splade_encoder, SearchConfig(index=index))
    reranker = open_reranker(cluster, index, colbert_encoder, RerankConfig(field="colbert"))
    retrieval = Retrieval(k=5, rerank_k=5)
    stored = search_then_rerank(with_embeddings, QUERY, retrieval, reranker)
    fetched = search_then_rerank(without, QUERY, retrieval, reranker)
    assert fetched.rerank.fetched == 5 and stored.rerank.fetched == 0
    assert [h.id for h in fetched.hits] == [h.id for h in stored.hits]


@pytest.mark.parametrize("mode", ["splade", "bm25", "hybrid"])
def test_without_a_reranker_it_is_the_first_stage(reranked_index, splade_encoder, mode):
    cluster, index = reranked_index
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index))
    ranking = search_then_rerank(searcher, QUERY, Retrieval(k=4, mode=mode))
    direct = {"splade": searcher.search, "bm25": searcher.bm25, "hybrid": searcher.hybrid}[mode]
    assert [h.id for h in ranking.hits] == [h.id for h in direct(QUERY, 4)]
    assert ranking.rerank is None and all(h.first_stage_rank is None for h in ranking.hits)


def test_retrieval_refuses_bad_values():
    with pytest.raises(ValueError, match="k=0: expected a positive integer"):
        Retrieval(k=0)
    with pytest.raises(ValueError, match="rerank_k=-3"):
        Retrieval(rerank_k=-3)
    with pytest.raises(ValueError, match="Stage 'sparse': expected one of splade, bm25"):
        Retrieval(mode="sparse")
    with pytest.raises(ValueError, match=re.escape("Stage 'splade|splade'")):
        Retrieval(mode="splade|splade")
    assert Retrieval(mode="splade|dense|muvera").mode == "splade|dense|muvera"
