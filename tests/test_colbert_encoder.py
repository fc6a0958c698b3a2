"""The token encoder on the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

import numpy as np
import pytest

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder, resolve_model_path


def test_zero_shot_default_is_normalised_contextual_token_embeddings(colbert_encoder):
    assert colbert_encoder.zero_shot and colbert_encoder.dim == 384
    query = colbert_encoder.encode_queries(["does aspirin prevent heart attacks?"])[0]
    assert query.shape[1] == 384
    assert np.allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)
    docs = colbert_encoder.encode_documents(["Aspirin, taken daily, lowers risk!", "Espresso."])
    tokens = colbert_encoder.tokens(docs.token_ids[0])
    assert "," not in tokens and "!" not in tokens  # punctuation removed from documents
    assert docs.embeddings[0].shape[0] == len(tokens)
    assert docs.truncated == [False, False] and docs.capped == [0, 0]


def test_same_text_gives_the_same_embeddings_in_any_batch(colbert_encoder):
    alone = colbert_encoder.encode_documents(["The quick brown fox."]).embeddings[0]
    batched = colbert_encoder.encode_documents(["x " * 50, "The quick brown fox."]).embeddings[1]
    assert np.allclose(alone, batched, atol=1e-5)


def test_stored_token_cap_is_counted():
    encoder = ColbertEncoder(ColbertConfig(device="cpu", max_stored_tokens=4))
    docs = encoder.encode_documents(["one two three four five six seven", "short"])
    assert docs.embeddings[0].shape[0] == 4 and docs.capped[0] > 0
    assert docs.capped[1] == 0


def test_long_documents_are_truncated_and_counted():
    encoder = ColbertEncoder(ColbertConfig(device="cpu", document_length=16))
    docs = encoder.encode_documents(["word " * 100])
    assert docs.truncated == [True]
    assert docs.embeddings[0].shape[0] <= 16


def test_saved_model_reloads_from_a_folder(colbert_encoder):
    again = ColbertEncoder(
        ColbertConfig(model=resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    )
    assert again.fingerprint() == colbert_encoder.fingerprint()


def test_bad_input(colbert_encoder, tmp_path):
    with pytest.raises(TypeError, match=r"wrap it as \[text\]"):
        colbert_encoder.encode_documents("text")
    with pytest.raises(TypeError, match="query 0 is int"):
        colbert_encoder.encode_queries([3])
    with pytest.raises(ValueError, match="Cannot load ColBERT model"):
        ColbertEncoder(ColbertConfig(model=str(tmp_path / "missing"), device="cpu"))
    with pytest.raises(ValueError, match="max_stored_tokens=0"):
        ColbertConfig(max_stored_tokens=0)
    assert colbert_encoder.encode_documents([]).embeddings == []
