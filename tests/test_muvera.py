"""MUVERA fixed-dimensional encodings: the vectorised encoder against a loop-by-loop reference,
how well FDE dot products rank like exact Chamfer (MaxSim), seeds, fingerprints, and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colbert_rerank import muvera
from colbert_rerank.muvera import DEFAULT_MUVERA, MuveraConfig, MuveraEncoder, chamfer

# -- a direct reference, one repetition and one partition at a time --------------------------


def reference_fde(encoder: MuveraEncoder, tokens: np.ndarray, document: bool) -> np.ndarray:
    """The paper's definition, in float64, from the encoder's own random matrices."""
    config = encoder.config
    bits, parts = config.simhash_bits, 2**config.simhash_bits
    x = tokens.astype(np.float64)
    blocks = []
    for rep in range(config.repetitions):
        planes = encoder._simhash[:, rep * bits : (rep + 1) * bits].astype(np.float64)
        codes = [sum(1 << i for i in range(bits) if x[t] @ planes[:, i] > 0) for t in range(len(x))]
        for part in range(parts):
            members = [t for t, code in enumerate(codes) if code == part]
            if members:
                vector = np.sum([x[t] for t in members], axis=0)
                if document:
                    vector = vector / len(members)
            elif document and config.fill_empty and len(x) > 0:
                nearest = min(range(len(x)), key=lambda t: (bin(codes[t] ^ part).count("1"), t))
                vector = x[nearest]
            else:
                vector = np.zeros(encoder.token_dim)
            blocks.append(project(encoder, vector, rep))
    concatenated = np.concatenate(blocks)
    if config.final_dim is None:
        return concatenated
    sketch = np.zeros(config.final_dim)
    for i, value in enumerate(concatenated):
        sketch[encoder._buckets[i]] += encoder._signs[i] * value
    return sketch


def project(encoder: MuveraEncoder, vector: np.ndarray, rep: int) -> np.ndarray:
    width = encoder.config.projection_dim
    if width is None:
        return vector
    matrix = encoder._projection[:, rep * width : (rep + 1) * width].astype(np.float64)
    assert set(np.unique(np.abs(matrix) * np.sqrt(width)).round(6)) == {1.0}  # ±1/sqrt(d_proj)
    return vector @ matrix


def token_sets(rng: np.random.Generator, sizes: list[int], dim: int) -> list[np.ndarray]:
    return [rng.standard_normal((n, dim)).astype(np.float32) for n in sizes]


CONFIGS = [
    MuveraConfig(simhash_bits=3, projection_dim=4, repetitions=3),
    MuveraConfig(simhash_bits=2, projection_dim=None, repetitions=2, seed=5),
    MuveraConfig(simhash_bits=3, projection_dim=5, repetitions=2, final_dim=17, seed=1),
    MuveraConfig(simhash_bits=4, projection_dim=3, repetitions=2, fill_empty=False),
    MuveraConfig(simhash_bits=1, projection_dim=2, repetitions=1),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(c)[12:-1])
def test_encodings_equal_the_loop_by_loop_reference(config):
    """Sizes 0 (zero row), 1 (every partition filled by that token), 2 (most partitions
    empty), and larger ones; documents average and fill, queries sum."""
    encoder = MuveraEncoder(config, token_dim=6)
    texts = token_sets(np.random.default_rng(7), [0, 1, 2, 5, 0, 13, 40], 6)
    documents = encoder.encode_documents(texts)
    queries = encoder.encode_queries(texts)
    assert documents.shape == queries.shape == (len(texts), config.dimension(6))
    assert documents.dtype == queries.dtype == np.float32
    for i, tokens in enumerate(texts):
        expected_doc = reference_fde(encoder, tokens, document=True)
        np.testing.assert_allclose(documents[i], expected_doc, rtol=1e-5, atol=1e-5)
        expected_query = reference_fde(encoder, tokens, document=False)
        np.testing.assert_allclose(queries[i], expected_query, rtol=1e-5, atol=1e-5)
    assert not documents[0].any() and not queries[0].any()  # 0 tokens: zero rows


def test_a_one_token_document_fills_every_partition_with_that_token():
    encoder = MuveraEncoder(MuveraConfig(4, None, 2), token_dim=5)
    token = np.arange(1.0, 6.0, dtype=np.float32)[None, :]
    encoded = encoder.encode_documents([token])[0].reshape(2 * 16, 5)
    np.testing.assert_array_equal(encoded, np.repeat(token, 32, axis=0))
    query = encoder.encode_queries([token])[0].reshape(2 * 16, 5)
    assert (np.abs(query).sum(axis=1) > 0).sum() == 2  # one partition per repetition


def test_chunked_encoding_equals_one_pass(monkeypatch):
    encoder = MuveraEncoder(MuveraConfig(3, 4, 3, final_dim=50), token_dim=8)
    texts = token_sets(np.random.default_rng(3), [5, 0, 9, 1, 30, 2, 0, 7], 8)
    whole = encoder.encode_documents(texts)
    monkeypatch.setattr(muvera, "CHUNK_ENTRIES", 3 * 8 * 10)  # at most 10 tokens a chunk
    np.testing.assert_allclose(encoder.encode_documents(texts), whole, rtol=1e-6, atol=1e-6)
    assert encoder.encode_documents([]).shape == (0, 50)


def test_chamfer_is_the_sum_of_each_query_tokens_best_dot_product():
    rng = np.random.default_rng(0)
    query, document = rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    expected = sum(max(float(q @ d) for d in document) for q in query)
    assert chamfer(query, document) == pytest.approx(expected)
    assert chamfer(-np.abs(query), np.abs(document)) < 0  # negative similarities stay negative
    assert chamfer(query, document[:0]) == 0.0 == chamfer(query[:0], document)


# -- FDE dot products rank documents like exact Chamfer --------------------------------------


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (continuous scores: no ties to average)."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def clustered_sets(rng: np.random.Generator, dim: int) -> tuple[list, list]:
    """Documents of 20-60 unit tokens around 4 of 40 topic centres; queries of 8 tokens
    around the centres of a random document's topics (what contextual embeddings look like)."""
    centres = rng.standard_normal((40, dim))
    topics = [rng.choice(40, size=4, replace=False) for _ in range(150)]

    def sample(topic_ids: np.ndarray, n: int) -> np.ndarray:
        tokens = centres[rng.choice(topic_ids, size=n)] + 0.8 * rng.standard_normal((n, dim))
        return (tokens / np.linalg.norm(tokens, axis=1, keepdims=True)).astype(np.float32)

    documents = [sample(t, int(rng.integers(20, 61))) for t in topics]
    queries = [sample(topics[int(rng.integers(150))][:2], 8) for _ in range(20)]
    return queries, documents


@pytest.mark.parametrize(
    ("config", "threshold"),
    [(DEFAULT_MUVERA, 0.75), (MuveraConfig(3, 16, 32), 0.60)],
    ids=["default", "3-bits-d16-r32"],
)
def test_fde_dot_products_rank_documents_like_chamfer(config, threshold):
    """Mean per-query Spearman correlation between FDE dot products and exact Chamfer over
    150 clustered documents (384-dim tokens, as all-MiniLM-L6-v2's).

    Measured (data seeds 0-4, matrix seeds 0-4): DEFAULT_MUVERA (1 bit, no projection, 3
    reps) 0.80-0.83, and 0.839 on this test's data; 3 bits x d_proj 16 x 32 reps 0.67-0.71,
    and 0.709 here. The thresholds leave 0.05-0.09 of margin below the lowest measured value
    (other numpy streams draw other matrices). A broken encoder scores near 0. For scale:
    mean-pooled tokens score 0.848 on this data, and on SciFact the default scores 0.86 (see
    benchmarks/results/muvera/tuning.md).
    """
    queries, documents = clustered_sets(np.random.default_rng(11), 384)
    encoder = MuveraEncoder(config, token_dim=384)
    scores = encoder.encode_queries(queries) @ encoder.encode_documents(documents).T
    correlations = [
        spearman(scores[i], np.array([chamfer(q, d) for d in documents]))
        for i, q in enumerate(queries)
    ]
    assert np.mean(correlations) >= threshold, correlations


# -- seeds and fingerprints ------------------------------------------------------------------


def test_a_seed_fixes_the_encoding_and_another_seed_changes_it():
    texts = token_sets(np.random.default_rng(1), [4, 9], 8)
    config = MuveraConfig(3, 4, 2, final_dim=40)
    first, again = MuveraEncoder(config, 8), MuveraEncoder(config, 8)
    other = MuveraEncoder(MuveraConfig(3, 4, 2, final_dim=40, seed=1), 8)
    np.testing.assert_array_equal(first.encode_documents(texts), again.encode_documents(texts))
    assert not np.allclose(first.encode_documents(texts), other.encode_documents(texts))
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint()["matrices_sha256"] != other.fingerprint()["matrices_sha256"]


def test_the_fingerprint_round_trips_through_json():
    encoder = MuveraEncoder(MuveraConfig(3, None, 2, final_dim=64, seed=9, fill_empty=False), 8)
    meta = json.loads(json.dumps(encoder.fingerprint()))
    assert meta["dimension"] == 64 and meta["token_dim"] == 8 and meta["seed"] == 9
    rebuilt = MuveraEncoder.from_fingerprint(meta)
    assert rebuilt.config == encoder.config and rebuilt.dimension == encoder.dimension
    texts = token_sets(np.random.default_rng(2), [3, 6], 8)
    np.testing.assert_array_equal(rebuilt.encode_queries(texts), encoder.encode_queries(texts))


def test_a_fingerprint_drawn_from_other_matrices_is_refused():
    meta = MuveraEncoder(MuveraConfig(3, 4, 2), 8).fingerprint()
    with pytest.raises(ValueError, match=r"MUVERA matrices_sha256 differs: recorded 'abc'.*numpy"):
        MuveraEncoder.from_fingerprint({**meta, "matrices_sha256": "abc"})
    with pytest.raises(ValueError, match=r"MUVERA dimension differs: recorded 65"):
        MuveraEncoder.from_fingerprint({**meta, "dimension": 65})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other/1"}, r"Not a MUVERA fingerprint .*format 'other/1'"),
        ({"seed": "<drop>"}, r"missing keys \['seed'\], unknown keys \[\]"),
        ({"extra": 1}, r"unknown keys \['extra'\]"),
    ],
)
def test_something_other_than_a_fingerprint_is_refused(change, message):
    meta = MuveraEncoder(MuveraConfig(3, 4, 2), 8).fingerprint()
    meta.update(change)
    meta = {key: value for key, value in meta.items() if value != "<drop>"}
    with pytest.raises(ValueError, match=message):
        MuveraEncoder.from_fingerprint(meta)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"simhash_bits": 0}, r"simhash_bits=0: expected an integer from 1 to 12"),
        ({"simhash_bits": 13}, r"simhash_bits=13: expected an integer from 1 to 12"),
        ({"simhash_bits": True}, r"simhash_bits=True: expected an integer"),
        ({"simhash_bits": 2.0}, r"simhash_bits=2.0: expected an integer"),
        ({"repetitions": 0}, r"repetitions=0: expected a positive integer\."),
        ({"projection_dim": -1}, r"projection_dim=-1: expected a positive integer or None"),
        ({"final_dim": 0}, r"final_dim=0: expected a positive integer or None"),
        ({"seed": -1}, r"seed=-1: expected an integer 0 or more"),
        ({"fill_empty": 1}, r"fill_empty=1: expected True or False"),
    ],
)
def test_bad_configs_are_refused_with_the_value_and_what_is_expected(fields, message):
    values = {"simhash_bits": 3, "projection_dim": 8, "repetitions": 2, **fields}
    with pytest.raises(ValueError, match=message):
        MuveraConfig(**values)


def test_bad_dimensions_are_refused():
    with pytest.raises(ValueError, match=r"final_dim=200 is larger than the concatenation .*"
                       r"\(128 = 2 repetitions x 8 partitions x 8\): pass final_dim=None or "
                       r"at most 128"):  # fmt: skip
        MuveraConfig(3, 8, 2, final_dim=200).dimension(384)
    with pytest.raises(ValueError, match=r"token_dim=0: expected a positive integer"):
        MuveraEncoder(MuveraConfig(3, 8, 2), token_dim=0)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (np.zeros((3, 5), np.float32), ValueError, r"embeddings\[1\] has shape \(3, 5\): "
         r"expected \[tokens, 8\] .*array\[None, :\]"),
        (np.zeros(8, np.float32), ValueError, r"embeddings\[1\] has shape \(8,\)"),
        (np.zeros((1, 2, 8), np.float32), ValueError, r"embeddings\[1\] has shape \(1, 2, 8\)"),
        (np.full((2, 8), np.nan), ValueError, r"embeddings\[1\] holds NaN or infinite values"),
        (np.full((2, 8), np.inf), ValueError, r"embeddings\[1\] holds NaN or infinite values"),
        ([[0.0] * 8], TypeError, r"embeddings\[1\] is list: pass a float numpy array"),
        (np.zeros((2, 8), bool), TypeError, r"embeddings\[1\] is dtype bool"),
    ],
)  # fmt: skip
def test_bad_embeddings_are_refused_naming_the_text(bad, error, message):
    encoder = MuveraEncoder(MuveraConfig(3, 4, 2), token_dim=8)
    good = np.zeros((2, 8), np.float32)
    for encode in (encoder.encode_documents, encoder.encode_queries):
        with pytest.raises(error, match=message):
            encode([good, bad])


def test_one_array_instead_of_a_sequence_is_refused():
    encoder = MuveraEncoder(MuveraConfig(3, 4, 2), token_dim=8)
    with pytest.raises(TypeError, match=r"embeddings is one array of shape \(2, 3, 8\)"):
        encoder.encode_documents(np.zeros((2, 3, 8), np.float32))


def test_chamfer_refuses_mismatched_or_malformed_tokens():
    with pytest.raises(ValueError, match=r"query tokens have 4 coordinates, document tokens 5"):
        chamfer(np.zeros((2, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"query has shape \(4,\): expected \[tokens, dim\]"):
        chamfer(np.zeros(4), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"document holds NaN or infinite values"):
        chamfer(np.zeros((1, 4)), np.full((1, 4), np.nan))
