"""Codecs: round trips within stated error bounds, sizes, and corrupted input."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from colbert_rerank.codebook import Codebook, default_centroids, fit_codebook
from colbert_rerank.codecs import HEADER_BYTES, Codec, CodecError, read_header


def unit(rows, dim, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def codebook():
    # Clustered data, as contextual token embeddings are.
    centres = unit(64, 128, seed=1)
    rng = np.random.default_rng(2)
    sample = centres[rng.integers(0, 64, 20_000)] + 0.15 * rng.standard_normal((20_000, 128))
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    return fit_codebook(sample.astype(np.float32), bits=2, centroids=256, seed=0)


def test_float16_round_trip():
    x = unit(50, 64)
    codec = Codec("float16", 64)
    blob = codec.encode(x)
    assert len(blob) == HEADER_BYTES + 50 * 64 * 2
    assert np.abs(codec.decode(blob) - x).max() < 1e-3


def test_int8_round_trip_error_bound():
    x = unit(50, 64) * 3.0
    codec = Codec("int8", 64)
    blob = codec.encode(x)
    assert len(blob) == HEADER_BYTES + 50 * (64 + 2)
    error = np.abs(codec.decode(blob) - x)
    scale = np.abs(x).max(axis=1, keepdims=True) / 127
    assert np.all(error <= scale * 0.51 + 1e-3)  # half a step, plus the fp16 scale rounding


def test_residual_two_bits_is_34_bytes_per_token_at_128_dims(codebook):
    codec = Codec("residual", 128, codebook)
    assert codec.bytes_per_token == 34  # 2-byte centroid id + 128 x 2 bits
    x = unit(300, 128, seed=5)
    blob = codec.encode(x)
    assert len(blob) == HEADER_BYTES + 300 * 34
    y = codec.decode(blob)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)


def test_residual_keeps_similarities_close(codebook):
    rng = np.random.default_rng(7)
    centres = unit(64, 128, seed=1)
    x = centres[rng.integers(0, 64, 400)] + 0.15 * rng.standard_normal((400, 128))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    codec = Codec("residual", 128, codebook)
    y = codec.decode(codec.encode(x))
    cosine = (x * y).sum(axis=1)
    assert cosine.mean() > 0.9
    one_bit = fit_codebook(x, bits=1, centroids=32)
    z = Codec("residual", 128, one_bit).decode(Codec("residual", 128, one_bit).encode(x))
    assert (x * z).sum(axis=1).mean() < cosine.mean()  # fewer bits, coarser


def test_codebook_serialises_without_pickle_and_is_identified(codebook):
    data = codebook.to_bytes()
    assert b"pickle" not in data and not data.startswith(b"\x80")
    again = Codebook.from_bytes(data)
    assert again.sha256 == codebook.sha256
    assert np.array_equal(again.centroids, codebook.centroids)
    with pytest.raises(ValueError, match="Not a safetensors codebook"):
        Codebook.from_bytes(b"garbage")


def test_default_centroids_rule():
    assert default_centroids(1_000_000) == 8192  # 2**floor(log2(16 * 1000))
    assert default_centroids(1_300_000) == 16384
    assert default_centroids(10) == 10
    with pytest.raises(ValueError):
        default_centroids(0)


def test_corrupted_blobs_are_detected(codebook):
    codec = Codec("int8", 16)
    blob = codec.encode(unit(4, 16))
    with pytest.raises(CodecError, match="truncated or corrupted"):
        codec.decode(blob[:-1])
    with pytest.raises(CodecError, match="shorter than the 14-byte header"):
        codec.decode(blob[:5])
    with pytest.raises(CodecError, match="not a colbert_rerank blob"):
        codec.decode(b"XX" + blob[2:])
    with pytest.raises(CodecError, match="blob is int8 at dim 16; this reranker reads float16"):
        Codec("float16", 16).decode(blob)
    other = fit_codebook(unit(500, 128, seed=9), bits=2, centroids=8)
    residual_blob = Codec("residual", 128, codebook).encode(unit(3, 128))
    with pytest.raises(CodecError, match="written with codebook"):
        Codec("residual", 128, other).decode(residual_blob)
    assert read_header(blob).count == 4


def test_codec_argument_errors(codebook):
    with pytest.raises(ValueError, match="codec='zstd'"):
        Codec("zstd", 8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a codebook"):
        Codec("residual", 128)
    with pytest.raises(ValueError, match="codebook dim 128 differs from dim 64"):
        Codec("residual", 64, codebook)
    codec = Codec("float16", 8)
    with pytest.raises(ValueError, match=r"shape \(2, 4\), expected \[tokens, 8\]"):
        codec.encode(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(np.full((1, 8), np.nan, np.float32))
    values = ((np.arange(8, dtype=np.float32) - 3.5) / 4)[None, :]  # exact in float16
    blob = codec.encode(values)
    assert len(blob) == HEADER_BYTES + 1 * 8 * 2  # one float16 token of 8 dims
    header = read_header(blob)
    assert (header.codec, header.dim, header.count, header.tag) == ("float16", 8, 1, 0)
    assert blob[HEADER_BYTES:] == values.astype("<f2").tobytes()  # little-endian, row-major
    carried = base64.b64decode(base64.b64encode(blob))  # how the binary field stores it
    assert carried == blob
    np.testing.assert_array_equal(codec.decode(carried), values)


def test_projection_keeps_inner_products_and_round_trips():
    from colbert_rerank.projection import Projection, fit_projection

    # Embeddings that live near a 16-dim subspace of 64 dims.
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.standard_normal((64, 16)))[0]
    x = rng.standard_normal((2000, 16)) @ basis.T + 0.01 * rng.standard_normal((2000, 64))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    projection = fit_projection(x, 16)
    y = projection.apply(x)
    assert y.shape == (2000, 16)
    assert np.abs((x[:50] @ x[50:100].T) - (y[:50] @ y[50:100].T)).max() < 0.05
    again = Projection.from_bytes(projection.to_bytes())
    assert again.sha256 == projection.sha256
    assert fit_projection(x, 16).sha256 == projection.sha256  # deterministic
    with pytest.raises(ValueError, match="output_dim=65"):
        fit_projection(x, 65)

    codec = Codec("int8", 16, projection=projection)
    assert codec.input_dim == 64
    blob = codec.encode(x[:10])  # takes model-dim vectors, stores 16 dims
    assert read_header(blob).dim == 16 and read_header(blob).tag != 0
    assert np.allclose(codec.decode(blob), y[:10], atol=0.02)
    assert codec.prepare_query(x[:2]).shape == (2, 16)
    with pytest.raises(CodecError, match="codebook/projection"):
        Codec("int8", 16).decode(blob)
    with pytest.raises(ValueError, match="projection output 16 differs from dim 8"):
        Codec("int8", 8, projection=projection)
