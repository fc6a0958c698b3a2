"""ColBERT embeddings stored by the bulk pipeline in real nodes, read back by the rerank hook."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch
from corpus_fixture import DOCS

from colbert_rerank.maxsim import maxsim_reference
from colbert_rerank.rerank import RerankConfig, RerankError
from splade_es.cluster.admin import IndexMismatchError
from splade_es.cluster.companion import codebook_index_name
from splade_es.data.corpus import from_records
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.indexing.splade_fields import prepare_index
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher


def build(cluster, splade, colbert, name, storage):
    config = BuildConfig(BulkConfig(index=name, progress=False))
    result = build_index(
        cluster, from_records(DOCS), splade, config, ColbertIndexing(colbert, storage)
    )
    return result.report, result.prepared.embeddings.codec


@pytest.mark.parametrize(
    ("codec", "dim"), [("residual", None), ("int8", None), ("float16", None), ("residual", 64)]
)
def test_rerank_through_the_node_matches_the_in_memory_reference(
    cluster, splade_encoder, colbert_encoder, index_names, codec, dim
):
    index = index_names(cluster)
    # Every token stored (no pooling): the reference encodes the same rows.
    storage = ColbertStorage(codec=codec, bits=2, centroids=32, dim=dim, pool_factor=1)
    report, stored_codec = build(cluster, splade_encoder, colbert_encoder, index, storage)
    assert report.indexed == len(DOCS)
    assert report.counters["colbert_tokens"] > 0
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    query = "does aspirin prevent heart attacks"
    hits = searcher.search(query, k=len(DOCS))
    assert all("colbert" in h.source for h in hits)
    reranker = open_reranker(cluster, index, colbert_encoder)
    result = reranker.rerank(query, [h.as_dict() for h in hits])
    assert result.hits[0]["_id"] == "med-1"

    # Reference: same documents encoded in memory, through the same codec, scored one by one.
    texts = {d["_id"]: f"{d['title']} {d['text']}" for d in DOCS}
    ids = [h["_id"] for h in result.hits]
    embedded = colbert_encoder.encode_documents([texts[i] for i in ids]).embeddings
    decoded = [torch.from_numpy(stored_codec.decode(stored_codec.encode(e))) for e in embedded]
    q = torch.from_numpy(stored_codec.prepare_query(colbert_encoder.encode_queries([query])[0]))
    expected = maxsim_reference(q, decoded).numpy()
    got = np.array([h["_colbert_score"] for h in result.hits])
    assert np.allclose(got, expected, atol=1e-4)
    assert list(got) == sorted(got, reverse=True)


def test_hits_without_embeddings_are_fetched_with_mget(
    cluster, splade_encoder, colbert_encoder, index_names
):
    index = index_names(cluster)
    build(cluster, splade_encoder, colbert_encoder, index, ColbertStorage(codec="int8"))
    plain = Searcher(cluster, splade_encoder, SearchConfig(index=index))
    hits = plain.search("espresso coffee", k=5)
    assert all("colbert" not in h.source for h in hits)  # left out unless asked for
    result = open_reranker(cluster, index, colbert_encoder).rerank(
        "espresso coffee", [h.as_dict() for h in hits]
    )
    assert result.stats.fetched == 5 and result.stats.reranked == 5
    assert result.hits[0]["_id"] == "cook-2"


def test_codebook_is_stored_once_and_reused(cluster, splade_encoder, colbert_encoder, index_names):
    index = index_names(cluster)
    storage = ColbertStorage(codec="residual", centroids=16)
    build(cluster, splade_encoder, colbert_encoder, index, storage)
    book = cluster.request("GET", f"/{codebook_index_name(index)}/_doc/codebook")
    assert book["found"] and book["_source"]["centroids"] == 16
    # A second run over the same index reuses the stored codebook (same blobs, no refit).
    report, _ = build(cluster, splade_encoder, colbert_encoder, index, storage)
    assert report.indexed == len(DOCS)
    # Tampering with the stored codebook is detected.
    source = dict(book["_source"], codebook=book["_source"]["codebook"][:-40] + "A" * 40)
    cluster.request(
        "PUT",
        f"/{codebook_index_name(index)}/_doc/codebook",
        body=source,
        params={"refresh": "true"},
    )
    with pytest.raises(ValueError, match=r"(?i)codebook"):
        open_reranker(cluster, index, colbert_encoder)


def test_wrong_model_and_missing_embeddings(cluster, splade_encoder, colbert_encoder, index_names):
    index = index_names(cluster)
    build(cluster, splade_encoder, colbert_encoder, index, ColbertStorage(codec="float16"))
    from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
    from splade_es.encoding.encoder import resolve_model_path

    other = ColbertEncoder(ColbertConfig(model=resolve_model_path("splade-tiny"), device="cpu"))
    with pytest.raises(ValueError, match="rerank with the model that built the index"):
        open_reranker(cluster, index, other)
    bare = index_names(cluster, "bare")
    prepare_index(cluster, splade_encoder, bare)
    with pytest.raises(ValueError, match=r"stores no ColBERT embeddings.*cannot be added in place"):
        open_reranker(cluster, bare, colbert_encoder)
    with pytest.raises(IndexMismatchError, match="exists without ColBERT token embeddings"):
        build(cluster, splade_encoder, colbert_encoder, bare, ColbertStorage(codec="float16"))
    # An index that has embeddings but another storage is still refused by its _meta.
    stored = index_names(cluster, "stored")
    build(cluster, splade_encoder, colbert_encoder, stored, ColbertStorage(codec="float16"))
    with pytest.raises(IndexMismatchError, match=r"_meta\.colbert_rerank differs"):
        build(cluster, splade_encoder, colbert_encoder, stored, ColbertStorage(codec="int8"))


def test_a_corrupt_stored_blob_is_reported_per_hit(
    cluster, splade_encoder, colbert_encoder, index_names
):
    index = index_names(cluster)
    build(cluster, splade_encoder, colbert_encoder, index, ColbertStorage(codec="float16"))
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    hits = [h.as_dict() for h in searcher.search("coffee", k=4)]
    hits[0]["_source"]["colbert"] = base64.b64encode(b"not a colbert blob at all").decode()
    with pytest.raises(RerankError, match="not a colbert_rerank blob"):
        open_reranker(cluster, index, colbert_encoder).rerank("coffee", hits)
    lenient = open_reranker(cluster, index, colbert_encoder, RerankConfig(on_missing="first_stage"))
    result = lenient.rerank("coffee", hits)
    assert list(result.stats.unusable) == [hits[0]["_id"]]
