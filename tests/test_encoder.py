"""The SPLADE encoder on the real splade-tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colbert_rerank.devices import pick_device
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder, resolve_model_path
from splade_es.encoding.features import Pruning

TEXTS = [
    "Low-dose aspirin lowers the risk of a second heart attack.",
    "Espresso forces hot water through finely ground coffee.",
    "À Paris, le café crème se boit en terrasse; naïve tourists.",
    "東京の地下鉄は毎日多くの人を運ぶ。",
    "short",
]


def dense(vector, size):
    out = torch.zeros(size)
    out[torch.from_numpy(vector.ids)] = torch.from_numpy(vector.weights)
    return out


def test_fast_path_equals_sentence_transformers(splade_encoder):
    reference = splade_encoder.model.encode_document(TEXTS, convert_to_tensor=True).to_dense()
    batch = splade_encoder.encode_documents(TEXTS)
    size = len(splade_encoder.vocabulary)
    for row, vector in enumerate(batch.vectors):
        assert torch.allclose(dense(vector, size), reference[row], atol=1e-5)
        assert np.all(np.diff(vector.weights) <= 0)  # highest weight first


def test_sum_pooling_matches_the_naive_definition(splade_encoder):
    encoder = SpladeEncoder(EncoderConfig(device="cpu", pooling="sum", head_chunk_tokens=7))
    batch = encoder.encode_documents(TEXTS[:2])
    tokenizer = encoder.model.tokenizer
    with torch.inference_mode():
        features = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
        logits = encoder.model[0].auto_model(**features).logits
        naive = (torch.log1p(torch.relu(logits)) * features["attention_mask"][..., None]).sum(1)
    for row, vector in enumerate(batch.vectors):
        assert torch.allclose(dense(vector, naive.shape[1]), naive[row], atol=1e-4)


def test_small_head_chunks_give_the_same_result(splade_encoder):
    chunked = SpladeEncoder(EncoderConfig(device="cpu", head_chunk_tokens=3))
    a = splade_encoder.encode_documents(TEXTS).vectors
    b = chunked.encode_documents(TEXTS).vectors
    size = len(splade_encoder.vocabulary)
    for left, right in zip(a, b, strict=True):
        assert torch.allclose(dense(left, size), dense(right, size), atol=1e-5)


def test_truncation_is_counted(splade_encoder):
    batch = splade_encoder.encode_documents(["word " * 400, "short text"])
    assert batch.truncated == [True, False]
    queries = splade_encoder.encode_queries(["word " * 100])
    assert queries.truncated == [True]


def test_pruning_is_applied_and_counted():
    encoder = SpladeEncoder(
        EncoderConfig(
            device="cpu", document_pruning=Pruning(top_k=5), query_pruning=Pruning(min_weight=1.0)
        )
    )
    docs = encoder.encode_documents(TEXTS[:1])
    assert len(docs.vectors[0]) == 5 and docs.pruned[0] > 0
    queries = encoder.encode_queries(["aspirin heart attack"])
    assert np.all(queries.vectors[0].weights > 1.0)


def test_edge_inputs(splade_encoder):
    assert splade_encoder.encode_documents([]).vectors == []
    empty = splade_encoder.encode_documents([""])
    assert len(empty.vectors) == 1  # an empty text still yields the special tokens' weights
    with pytest.raises(TypeError, match=r"got one string: wrap it as \[text\]"):
        splade_encoder.encode_documents("a string")
    with pytest.raises(TypeError, match=r"document 1 is int 42, not str"):
        splade_encoder.encode_documents(["ok", 42])
    with pytest.raises(TypeError, match=r"query 0 is NoneType"):
        splade_encoder.encode_queries([None])


def test_queries_and_documents_use_their_own_lengths():
    encoder = SpladeEncoder(EncoderConfig(device="cpu", query_max_length=8, document_max_length=16))
    text = " ".join(f"w{i}" for i in range(30))
    assert encoder.encode_queries([text]).truncated == [True]
    assert encoder.encode_documents(["a b c"]).truncated == [False]


def test_config_errors():
    with pytest.raises(ValueError, match="batch_size=0"):
        EncoderConfig(batch_size=0)
    with pytest.raises(ValueError, match="dtype='int8'"):
        EncoderConfig(dtype="int8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pooling='mean'"):
        EncoderConfig(pooling="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float16' needs a GPU"):
        SpladeEncoder(EncoderConfig(device="cpu", dtype="float16"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="Cannot load SPLADE model"):
        SpladeEncoder(EncoderConfig(model=str(tmp_path / "nothing-here"), device="cpu"))


def test_alias_and_local_directory_load_the_same_model(splade_encoder):
    local = SpladeEncoder(EncoderConfig(model=resolve_model_path("splade-tiny"), device="cpu"))
    assert local.fingerprint() == splade_encoder.fingerprint()


def test_saved_sparse_encoder_loads_and_encodes_identically(splade_encoder, tmp_path):
    splade_encoder.model.save(str(tmp_path / "saved"), create_model_card=False)
    reloaded = SpladeEncoder(EncoderConfig(model=str(tmp_path / "saved"), device="cpu"))
    a = splade_encoder.encode_documents(TEXTS).vectors
    b = reloaded.encode_documents(TEXTS).vectors
    for left, right in zip(a, b, strict=True):
        assert np.array_equal(left.ids, right.ids)
        assert np.allclose(left.weights, right.weights, atol=1e-6)


def test_fingerprint_changes_with_the_weights(splade_encoder):
    other = SpladeEncoder(EncoderConfig(device="cpu"))
    with torch.no_grad():
        next(other.model.parameters()).add_(1.0)
    other._fingerprint = None
    assert other.fingerprint()["weights_sha256"] != splade_encoder.fingerprint()["weights_sha256"]
    assert (
        other.fingerprint()["tokenizer_sha256"] == splade_encoder.fingerprint()["tokenizer_sha256"]
    )


@pytest.mark.gpu
def test_cpu_and_gpu_agree(splade_encoder):
    gpu = SpladeEncoder(EncoderConfig(device="cuda"))
    size = len(splade_encoder.vocabulary)
    for cpu_v, gpu_v in zip(
        splade_encoder.encode_documents(TEXTS).vectors,
        gpu.encode_documents(TEXTS).vectors,
        strict=True,
    ):
        assert torch.allclose(dense(cpu_v, size), dense(gpu_v, size), atol=1e-4)
