"""The rerank hook on plain hits, without any cluster."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from colbert_rerank.codecs import Codec
from colbert_rerank.fusion import Fusion
from colbert_rerank.maxsim import maxsim_reference
from colbert_rerank.rerank import RerankConfig, Reranker, RerankError

TEXTS = {
    "a": "Low-dose aspirin lowers the risk of a second heart attack.",
    "b": "Espresso forces hot water through finely ground coffee.",
    "c": "Vaccines train the immune system to recognise a virus.",
}


@pytest.fixture(scope="module")
def stored(colbert_encoder):
    codec = Codec("float16", colbert_encoder.dim)
    embedded = colbert_encoder.encode_documents(list(TEXTS.values())).embeddings
    blobs = {
        doc_id: base64.b64encode(codec.encode(e)).decode()
        for doc_id, e in zip(TEXTS, embedded, strict=True)
    }
    return codec, blobs, dict(zip(TEXTS, embedded, strict=True))


def hits_of(blobs, order=("b", "c", "a")):
    return [
        {
            "_index": "i",
            "_id": doc_id,
            "_score": 10.0 - rank,
            "_source": {"text": TEXTS[doc_id], "colbert": blobs[doc_id]},
        }
        for rank, doc_id in enumerate(order)
    ]


def test_rerank_reorders_and_keeps_first_stage_scores(colbert_encoder, stored):
    codec, blobs, embedded = stored
    reranker = Reranker(colbert_encoder, codec)
    result = reranker.rerank("does aspirin prevent heart attacks", hits_of(blobs))
    assert next(h["_id"] for h in result.hits) == "a"
    top = result.hits[0]
    assert top["_first_stage_score"] == 8.0 and top["_score"] == top["_colbert_score"]
    query = torch.from_numpy(
        colbert_encoder.encode_queries(["does aspirin prevent heart attacks"])[0]
    )
    docs = [torch.from_numpy(codec.decode(codec.encode(embedded[i]))) for i in ("a",)]
    assert top["_colbert_score"] == pytest.approx(maxsim_reference(query, docs)[0].item(), abs=1e-4)
    assert result.stats.reranked == 3 and result.stats.unusable == {}


def test_pairs_with_embeddings_and_fusions(colbert_encoder, stored):
    codec, blobs, embedded = stored
    pairs = [("b", 3.0), ("c", 2.0), ("a", 1.0)]
    replace = Reranker(colbert_encoder, codec).rerank("heart attack", pairs, embeddings=embedded)
    assert replace.hits[0]["_id"] == "a"
    rrf = Reranker(colbert_encoder, codec, RerankConfig(fusion=Fusion("rrf"))).rerank(
        "heart attack", pairs, embeddings=blobs
    )
    assert {h["_id"] for h in rrf.hits} == {"a", "b", "c"}
    assert all(0 < h["_score"] < 1 for h in rrf.hits)


def test_top_k_reranks_a_prefix_and_k_beyond_the_hits_is_fine(colbert_encoder, stored):
    codec, blobs, _ = stored
    only_two = Reranker(colbert_encoder, codec, RerankConfig(top_k=2))
    result = only_two.rerank("heart attack", hits_of(blobs, ("b", "c", "a")))
    assert result.hits[-1]["_id"] == "a" and result.hits[-1]["_colbert_score"] is None
    many = Reranker(colbert_encoder, codec, RerankConfig(top_k=1000))
    assert many.rerank("heart attack", hits_of(blobs)).stats.reranked == 3


def test_missing_and_corrupt_embeddings(colbert_encoder, stored):
    codec, blobs, _ = stored
    hits = hits_of(blobs)
    del hits[0]["_source"]["colbert"]
    hits[1]["_source"]["colbert"] = blobs["c"][:-8]  # truncated
    strict = Reranker(colbert_encoder, codec)
    with pytest.raises(
        RerankError,
        match=r"2 hit\(s\) cannot be reranked.*b: no 'colbert'.*c: stored embeddings unreadable",
    ):
        strict.rerank("heart attack", hits)
    lenient = Reranker(colbert_encoder, codec, RerankConfig(on_missing="first_stage"))
    result = lenient.rerank("heart attack", hits)
    assert [h["_id"] for h in result.hits] == ["a", "b", "c"]
    assert set(result.stats.unusable) == {"b", "c"}
    fetched = Reranker(colbert_encoder, codec, fetch=lambda ids: {i: blobs[i] for i in ids})
    assert fetched.rerank("heart attack", [*hits_of(blobs, ("a",)), hits[0]]).stats.fetched == 1


def test_bad_calls(colbert_encoder, stored):
    codec, blobs, _ = stored
    reranker = Reranker(colbert_encoder, codec)
    with pytest.raises(ValueError, match="is empty"):
        reranker.rerank("  ", hits_of(blobs))
    with pytest.raises(ValueError, match="repeat ids"):
        reranker.rerank("q", hits_of(blobs, ("a", "a")))
    with pytest.raises(ValueError, match="without '_id'"):
        reranker.rerank("q", [{"score": 1}])
    with pytest.raises(ValueError, match="embeddings of a 128-dim model but the encoder makes 384"):
        Reranker(colbert_encoder, Codec("float16", 128))
    with pytest.raises(ValueError, match="top_k=0"):
        RerankConfig(top_k=0)
    assert reranker.rerank("q", []).hits == []


def test_explain_aligns_query_tokens_with_stored_tokens(colbert_encoder, stored):
    codec, blobs, _ = stored
    reranker = Reranker(colbert_encoder, codec)
    matches = reranker.explain("heart attack risk", TEXTS["a"], blobs["a"])
    by_query = {m.query_token: m for m in matches}
    assert by_query["heart"].document_token == "heart"
    assert by_query["attack"].document_token == "attack"
    total = sum(m.contribution for m in matches)
    score = reranker.rerank("heart attack risk", hits_of(blobs)).hits
    assert total == pytest.approx(
        next(h for h in score if h["_id"] == "a")["_colbert_score"], abs=1e-4
    )
    with pytest.raises(RerankError, match="pass the exact text that was indexed"):
        reranker.explain("heart", "a different text entirely here", blobs["a"])
    assert np.isfinite(total)


def test_embeddings_in_fields_as_doc_values_return_them(colbert_encoder, stored):
    """Hits of a search with docvalue_fields/stored_fields carry the blob in ``fields``
    (OpenSearch's doc values without base64 padding); garbage there is named per hit."""
    codec, blobs, _ = stored
    lenient = Reranker(colbert_encoder, codec, RerankConfig(on_missing="first_stage"))
    in_source = lenient.rerank("heart attack", hits_of(blobs))
    hits = [
        {"_id": h["_id"], "_score": h["_score"], "fields": {"colbert": [h["_source"]["colbert"]]}}
        for h in hits_of(blobs)
    ]
    hits[1]["fields"]["colbert"] = [hits[1]["fields"]["colbert"][0].rstrip("=")]
    in_fields = lenient.rerank("heart attack", hits)
    assert [h["_colbert_score"] for h in in_fields.hits] == [
        h["_colbert_score"] for h in in_source.hits
    ]
    hits[0]["fields"]["colbert"] = ["%%% not base64 %%%"]
    hits[2]["fields"] = {"colbert": []}
    result = lenient.rerank("heart attack", hits)
    assert "not base64" in result.stats.unusable[hits[0]["_id"]]
    assert "no 'colbert' embeddings" in result.stats.unusable[hits[2]["_id"]]
    assert result.stats.reranked == 1
