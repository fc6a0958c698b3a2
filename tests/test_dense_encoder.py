"""The dense (single-vector) encoder on the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from colbert_rerank.encoder import resolve_model_path
from splade_es.encoding.dense import DenseConfig, DenseEncoder
from splade_es.encoding.encoder import resolve_model_path as splade_model_path

DOCS = [
    "Aspirin taken soon after a myocardial infarction lowers the risk of death; cardiologists "
    "prescribe it to patients with coronary heart disease.",
    "Volcanoes erupt when magma rises through the crust and lava flows down the mountain.",
    "The recipe calls for flour, butter, sugar and two eggs.",
]


@pytest.fixture(scope="module")
def encoder() -> DenseEncoder:
    return DenseEncoder(DenseConfig(device="cpu"))


@pytest.fixture(scope="module")
def reference():
    """An independently loaded SentenceTransformer of the same shipped folder."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")


def test_vectors_equal_sentence_transformers_normalised_output(encoder, reference):
    expected = reference.encode(DOCS, normalize_embeddings=True)
    documents = encoder.encode_documents(DOCS)
    assert documents.dtype == np.float32 and documents.shape == (3, 384) and encoder.dim == 384
    np.testing.assert_allclose(documents, expected, atol=1e-5)
    queries = ["heart attack", "what is lava made of?"]
    expected = reference.encode(queries, normalize_embeddings=True)
    np.testing.assert_allclose(encoder.encode_queries(queries), expected, atol=1e-5)


def test_a_query_ranks_the_related_document_first(encoder):
    documents = encoder.encode_documents(DOCS)
    for query, best in [("heart attack", 0), ("eruption of a volcano", 1), ("baking a cake", 2)]:
        scores = documents @ encoder.encode_queries([query])[0]
        assert int(np.argmax(scores)) == best, (query, scores)
        assert scores[best] - np.sort(scores)[-2] > 0.05, (query, scores)


def test_shapes_of_no_text_and_one_text(encoder):
    assert encoder.encode_documents([]).shape == (0, 384)
    assert encoder.encode_queries([]).shape == (0, 384)
    assert encoder.encode_documents([]).dtype == np.float32
    assert encoder.encode_documents(["one"]).shape == (1, 384)
    assert encoder.encode_queries(("one",)).shape == (1, 384)
    assert encoder.encode_documents([""]).shape == (1, 384)  # an empty document is allowed


def test_vectors_are_unit_length(encoder):
    vectors = np.vstack([encoder.encode_documents(DOCS), encoder.encode_queries(["heart"])])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_text_gets_the_same_vector_alone_and_in_a_batch(encoder):
    alone = encoder.encode_documents([DOCS[1]])[0]
    batched = encoder.encode_documents(["x " * 80, DOCS[1]])[1]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_non_ascii_and_very_long_texts_are_encoded(encoder):
    texts = ["Café crème à Zürich, naïve façade", "心脏病发作的治疗", "🫀 ❤️‍🩹", "word " * 5000]
    vectors = encoder.encode_documents(texts)
    assert vectors.shape == (4, 384) and np.isfinite(vectors).all()
    assert encoder.encode_queries(["心脏病"]).shape == (1, 384)
    assert encoder.max_length == 256  # the model's own max_seq_length
    assert encoder.truncated(texts) == 1
    assert encoder.truncated([]) == 0
    # Truncated, not an error: the long text's vector is that of its first 256 tokens.
    prefix = encoder.encode_documents(["word " * 254])[0]
    np.testing.assert_allclose(vectors[3], prefix, atol=1e-5)


def test_max_length_truncates_and_counts():
    short = DenseEncoder(DenseConfig(device="cpu", max_length=8))
    assert short.max_length == 8 and short.model.max_seq_length == 8
    texts = ["short", "one two three four five six seven eight nine ten"]
    assert short.truncated(texts) == 1
    first = short.encode_documents([texts[1]])[0]
    prefix = short.encode_documents(["one two three four five six"])[0]  # 6 + [CLS] + [SEP]
    np.testing.assert_allclose(first, prefix, atol=1e-5)


def test_fingerprint_is_stable_and_names_the_weights(encoder):
    printed = encoder.fingerprint()
    assert printed == encoder.fingerprint()
    assert set(printed) == {"model", "weights_sha256", "dim", "normalize", "pooling"}
    assert printed["model"] == "all-MiniLM-L6-v2"
    assert len(printed["weights_sha256"]) == 16 and int(printed["weights_sha256"], 16) >= 0
    assert printed["dim"] == "384" and printed["normalize"] == "true"
    assert printed["pooling"] == "mean > Normalize"
    assert json.loads(json.dumps(printed)) == printed
    printed["dim"] = "1"  # a copy: the encoder's own record is unchanged
    assert encoder.fingerprint()["dim"] == "384"


def test_the_same_folder_by_path_has_the_same_weights(encoder):
    again = DenseEncoder(DenseConfig(model=resolve_model_path("all-MiniLM-L6-v2"), device="cpu"))
    assert again.fingerprint()["weights_sha256"] == encoder.fingerprint()["weights_sha256"]
    np.testing.assert_allclose(again.encode_documents(DOCS), encoder.encode_documents(DOCS))


def test_threads_sharing_one_encoder_get_the_sequential_results(encoder):
    batches = [[DOCS[i % 3], "word " * (10 + 40 * i)] for i in range(8)]
    expected = [encoder.encode_documents(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(encoder.encode_documents, batches))
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have, want, atol=1e-6)


def test_bad_texts_are_refused_with_the_value_and_the_fix(encoder):
    with pytest.raises(TypeError, match=r"one string: wrap it as \[text\]"):
        encoder.encode_documents("text")
    with pytest.raises(TypeError, match=r"one string: wrap it as \[text\]"):
        encoder.encode_queries("text")
    with pytest.raises(TypeError, match="query 1 is int 3, not str: convert or drop it"):
        encoder.encode_queries(["ok", 3])
    with pytest.raises(TypeError, match="document 0 is NoneType None, not str"):
        encoder.encode_documents([None])
    with pytest.raises(ValueError, match=r"query 0 is '', empty or whitespace only.*Drop it"):
        encoder.encode_queries([""])
    with pytest.raises(ValueError, match=r"query 1 is ' \\t\\n', empty or whitespace only"):
        encoder.encode_queries(["heart", " \t\n"])
    with pytest.raises(ValueError, match=r"document 0 has a lone surrogate.*errors='replace'"):
        encoder.encode_documents(["bad \udc80 text"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, r"batch_size=0: expected a positive integer\."),
        ({"batch_size": -3}, ValueError, r"batch_size=-3: expected a positive integer\."),
        ({"batch_size": True}, ValueError, r"batch_size=True: expected a positive integer\."),
        ({"max_length": 0}, ValueError, r"max_length=0: expected a positive integer or None"),
        ({"device": "gpu"}, ValueError, r"device='gpu' is not a device: pass cpu, cuda"),
        ({"model": ""}, ValueError, r"model='' is empty: pass a Hugging Face id"),
        ({"model": None}, TypeError, r"model=None is NoneType, not str: pass a Hugging Face"),
        ({"normalize": "yes"}, TypeError, r"normalize='yes': expected True or False"),
    ],
)
def test_bad_configs_are_refused_before_loading(kwargs, error, message):
    with pytest.raises(error, match=message):
        DenseConfig(**kwargs)


def test_max_length_beyond_the_model_positions_is_refused():
    with pytest.raises(ValueError, match=r"max_length=1000 exceeds the 512 positions.*at most 512"):
        DenseEncoder(DenseConfig(device="cpu", max_length=1000))


def test_a_missing_folder_is_refused(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match=f"Cannot load dense model '{missing}'.*local folder"):
        DenseEncoder(DenseConfig(model=str(missing), device="cpu"))


def test_a_checkpoint_without_sentence_pooling_is_refused():
    """A plain MLM checkpoint (splade-tiny) would get an untrained mean pooling."""
    with pytest.raises(ValueError, match=r"has no modules\.json.*needs a sentence-embedding"):
        DenseEncoder(DenseConfig(model=splade_model_path("splade-tiny"), device="cpu"))


def _minilm_copy(tmp_path: Path) -> Path:
    """The shipped MiniLM folder, copied except its weights (linked)."""
    source = Path(resolve_model_path("all-MiniLM-L6-v2"))
    target = tmp_path / "minilm"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
    (target / "model.safetensors").symlink_to(source / "model.safetensors")
    return target


def test_a_sentence_transformers_folder_without_a_pooling_module_is_refused(tmp_path):
    folder = _minilm_copy(tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps(modules[:1]))  # the Transformer only
    with pytest.raises(ValueError, match=r"has no Pooling module \(its modules: Transformer\)"):
        DenseEncoder(DenseConfig(model=str(folder), device="cpu"))


def test_a_sparse_checkpoint_is_refused(tmp_path):
    folder = _minilm_copy(tmp_path)
    config = folder / "config_sentence_transformers.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "SparseEncoder"}))
    with pytest.raises(ValueError, match="is a SparseEncoder checkpoint, not a sentence-embedding"):
        DenseEncoder(DenseConfig(model=str(folder), device="cpu"))


def test_pickle_only_weights_are_refused(tmp_path):
    folder = _minilm_copy(tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match=r"pickle-format weights \(pytorch_model\.bin\)"):
        DenseEncoder(DenseConfig(model=str(folder), device="cpu"))
