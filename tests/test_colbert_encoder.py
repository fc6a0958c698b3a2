"""The token encoder on the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

from pathlib import Path

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


def stanford_checkpoint(folder):
    """A checkpoint in the Stanford ColBERT layout (as colbert-ir/colbertv2.0 is published):
    BERT weights under ``bert.``, the projection as ``linear.weight`` beside them, an
    ``HF_ColBERT`` config and ``artifact.metadata``. The backbone is the shipped MiniLM and the
    projection a seeded random 384->128 matrix: the layout is what is under test."""
    import json
    import shutil

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel

    source = resolve_model_path("all-MiniLM-L6-v2")
    folder.mkdir()
    bert = AutoModel.from_pretrained(source)
    weights = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    weights["linear.weight"] = (
        torch.randn(128, 384, generator=torch.Generator().manual_seed(0)) / 20
    )
    save_file(weights, str(folder / "model.safetensors"))
    config = json.loads((Path(source) / "config.json").read_text())
    config["architectures"] = ["HF_ColBERT"]
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(Path(source) / name, folder / name)
    metadata = {
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "query_maxlen": 32,
        "doc_maxlen": 180,
        "dim": 128,
        "mask_punctuation": True,
        "attend_to_mask_tokens": False,
        "similarity": "cosine",
    }
    (folder / "artifact.metadata").write_text(json.dumps(metadata))
    return folder


def test_stanford_colbert_layout_loads_with_projection_markers_and_augmentation(tmp_path):
    folder = stanford_checkpoint(tmp_path / "colbertv2-layout")
    encoder = ColbertEncoder(ColbertConfig(model=str(folder), device="cpu"))
    assert not encoder.zero_shot and encoder.dim == 128
    query = encoder.encode_queries(["heart attack"])[0]
    assert query.shape == (32, 128)  # padded with [MASK] tokens up to query_maxlen
    docs = encoder.encode_documents(["Aspirin, daily, lowers the risk!"])
    tokens = encoder.tokens(docs.token_ids[0])
    assert "[unused1]" in tokens  # the document marker
    assert "," not in tokens and "!" not in tokens
    assert np.allclose(np.linalg.norm(docs.embeddings[0], axis=1), 1.0, atol=1e-5)


def test_multi_vector_encoder_saves_reload_identically(colbert_encoder, tmp_path):
    colbert_encoder.model.save(str(tmp_path / "saved"), create_model_card=False)
    again = ColbertEncoder(ColbertConfig(model=str(tmp_path / "saved"), device="cpu"))
    a = colbert_encoder.encode_documents(["The quick brown fox."]).embeddings[0]
    b = again.encode_documents(["The quick brown fox."]).embeddings[0]
    assert np.allclose(a, b, atol=1e-5)
