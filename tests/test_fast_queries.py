"""The fast query paths (direct torch, ONNX Runtime) against the reference paths, and the
one-pass decode of many blobs against decoding them one at a time."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from colbert_rerank import onnx_runtime
from colbert_rerank.codebook import fit_codebook
from colbert_rerank.codecs import Codec
from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder

QUERIES = [
    "aspirin heart attack",
    "Does vitamin D supplementation reduce fractures in elderly women?",
    "TGF-β & IL-6: naïve T-cells (n=12), 0.5% vs. 3%",
    "x",
    " ".join(["very long query"] * 150),
]
needs_onnx = pytest.mark.skipif(not onnx_runtime.available(), reason="the fast extra is absent")


def reference_queries(encoder: ColbertEncoder, texts: list[str]) -> list[np.ndarray]:
    """sentence-transformers' own encode_query, normalised as the encoder does."""
    outputs = encoder.model.encode_query(texts, output_value=None, show_progress_bar=False)
    rows = []
    for output in outputs:
        vectors = output["token_embeddings"][output["attention_mask"].bool()].float().numpy()
        rows.append(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return rows


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnx", marks=needs_onnx)])
def test_colbert_query_path_equals_encode_query(backend: str) -> None:
    encoder = ColbertEncoder(ColbertConfig(device="cpu", query_backend=backend))  # type: ignore[arg-type]
    assert encoder.query_backend == backend
    expected = reference_queries(encoder, QUERIES)
    got = encoder.encode_queries(QUERIES)  # one padded batch
    one_by_one = [encoder.encode_queries([q])[0] for q in QUERIES]
    for want, have, alone in zip(expected, got, one_by_one, strict=True):
        assert have.shape == want.shape == alone.shape
        assert np.abs(have - want).max() < onnx_runtime.TOLERANCE
        assert np.abs(alone - want).max() < onnx_runtime.TOLERANCE


@needs_onnx
def test_default_colbert_encoder_runs_queries_on_onnx(colbert_encoder: ColbertEncoder) -> None:
    assert colbert_encoder.query_backend == "onnx"
    assert list(onnx_runtime.cache_folder().glob("colbert-hidden-*.onnx"))


@needs_onnx
def test_onnx_query_path_is_thread_safe(colbert_encoder: ColbertEncoder) -> None:
    expected = {q: colbert_encoder.encode_queries([q])[0] for q in QUERIES}
    failures: list[str] = []

    def work(offset: int) -> None:
        for step in range(20):
            query = QUERIES[(offset + step) % len(QUERIES)]
            if not np.array_equal(colbert_encoder.encode_queries([query])[0], expected[query]):
                failures.append(query)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@needs_onnx
def test_splade_onnx_query_weights_equal_torch(splade_encoder: SpladeEncoder) -> None:
    torch_encoder = SpladeEncoder(EncoderConfig(device="cpu", query_backend="torch"))
    assert splade_encoder.query_backend == "onnx"
    assert torch_encoder.query_backend == "torch"
    fast = splade_encoder.encode_queries(QUERIES)
    slow = torch_encoder.encode_queries(QUERIES)
    assert fast.truncated == slow.truncated == [False, False, False, False, True]
    for a, b in zip(fast.vectors, slow.vectors, strict=True):
        assert np.array_equal(a.ids, b.ids)
        assert np.abs(a.weights - b.weights).max() < onnx_runtime.TOLERANCE


def test_query_backend_values_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="query_backend='gpu'"):
        ColbertConfig(query_backend="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="query_backend='fast'"):
        EncoderConfig(query_backend="fast")  # type: ignore[arg-type]
    monkeypatch.setattr(onnx_runtime, "available", lambda: False)
    with pytest.raises(ValueError, match=r"splade-es\[fast\]"):
        ColbertEncoder(ColbertConfig(device="cpu", query_backend="onnx"))
    assert ColbertEncoder(ColbertConfig(device="cpu")).query_backend == "torch"


@pytest.mark.parametrize("name", ["float16", "int8", "residual"])
def test_decode_many_equals_one_at_a_time(name: str) -> None:
    generator = np.random.default_rng(3)
    documents = [generator.normal(size=(n, 16)).astype(np.float32) for n in (1, 7, 30, 2)]
    documents = [d / np.linalg.norm(d, axis=1, keepdims=True) for d in documents]
    codebook = (
        fit_codebook(np.concatenate(documents), bits=2, centroids=8) if name == "residual" else None
    )
    codec = Codec(name, 16, codebook)  # type: ignore[arg-type]
    blobs = [codec.encode(d) for d in documents]
    together = codec.decode_many(blobs, [d.shape[0] for d in documents])
    assert np.array_equal(together, np.concatenate([codec.decode(b) for b in blobs]))
    assert codec.decode_many([], []).shape == (0, 16)
