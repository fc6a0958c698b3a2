"""Feature keys, Lucene precision, pruning, vocabulary mapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from splade_es.encoding.features import (
    FeatureVocabulary,
    Pruning,
    SparseVector,
    decode_key,
    encode_key,
    lucene_stored,
    prune,
)


@given(st.text())
def test_keys_round_trip_and_never_contain_dots(token):
    key = encode_key(token)
    assert "." not in key and key != ""
    assert decode_key(key) == token


@given(st.text(), st.text())
def test_keys_are_one_to_one(a, b):
    if a != b:
        assert encode_key(a) != encode_key(b)


@pytest.mark.parametrize(
    ("token", "key"),
    [
        (".", "%2E"),
        ("%", "%25"),
        ("%2E", "%252E"),
        ("u.s.", "u%2Es%2E"),
        ("", "%"),
        ("##ing", "##ing"),
    ],
)
def test_known_keys(token, key):
    assert encode_key(token) == key


@pytest.mark.parametrize("key", ["%zz", "abc%", "%2", "x%41"])
def test_decode_rejects_foreign_keys(key):
    with pytest.raises(ValueError, match="bad escape"):
        decode_key(key)


def test_lucene_precision_truncates_to_nine_bits():
    weights = np.array([1.0, 1.5, 2.4231965, 0.02142334, 3.14159, 1e-3], dtype=np.float32)
    stored = lucene_stored(weights)
    assert np.all(stored <= weights)
    assert np.all((weights - stored) / weights < 2**-8)
    assert np.array_equal(lucene_stored(stored), stored)  # idempotent
    assert stored[0] == 1.0 and stored[1] == 1.5  # exact values stay exact


def test_prune_policies_and_counts():
    ids = np.arange(6, dtype=np.int64)
    weights = np.array([0.0, 0.05, 0.5, 2.0, 1.0, 0.3], dtype=np.float32)
    vector, removed = prune(ids, weights, Pruning())
    assert list(vector.ids) == [3, 4, 2, 5, 1] and removed == 0
    vector, removed = prune(ids, weights, Pruning(top_k=2))
    assert list(vector.ids) == [3, 4] and removed == 3
    vector, removed = prune(ids, weights, Pruning(min_weight=0.3))
    assert list(vector.ids) == [3, 4, 2] and removed == 2
    vector, removed = prune(ids, weights, Pruning(top_k=1, min_weight=0.3))
    assert list(vector.ids) == [3] and removed == 4
    assert Pruning(top_k=5, min_weight=0.1).name == "top_k=5,min_weight=0.1"
    assert Pruning().name == "none"


def test_prune_drops_subnormal_weights_lucene_refuses():
    vector, _ = prune(np.array([1, 2]), np.array([1e-40, 1.0], dtype=np.float32), Pruning())
    assert list(vector.ids) == [2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "top_k=0"),
        ({"top_k": 2.5}, "top_k=2.5"),
        ({"min_weight": -1}, "min_weight=-1"),
    ],
)
def test_pruning_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Pruning(**kwargs)


def test_vocabulary_refuses_tokens_that_would_merge():
    with pytest.raises(ValueError, match=r"ids 0 and 2 are both 'a'"):
        FeatureVocabulary(["a", "b", "a"])


def test_vocabulary_round_trip_and_foreign_keys():
    vocabulary = FeatureVocabulary(["[PAD]", ".", "%", "cat"])
    vector = SparseVector(np.array([3, 1, 2]), np.array([2.0, 1.0, 0.5], dtype=np.float32))
    features = vocabulary.to_features(vector)
    assert features == {"cat": 2.0, "%2E": 1.0, "%25": 0.5}
    back = vocabulary.from_features(features)
    assert list(back.ids) == [3, 1, 2]
    assert vocabulary.tokens(back) == ["cat", ".", "%"]
    with pytest.raises(ValueError, match="'dog' is not in this model's vocabulary"):
        vocabulary.from_features({"dog": 1.0})


def test_sparse_vector_dot_and_shape_check():
    a = SparseVector(np.array([1, 5, 9]), np.array([1.0, 2.0, 3.0], dtype=np.float32))
    b = SparseVector(np.array([9, 2, 5]), np.array([0.5, 7.0, 1.0], dtype=np.float32))
    assert a.dot(b) == pytest.approx(3.0 * 0.5 + 2.0 * 1.0)
    with pytest.raises(ValueError, match="equal 1-d shapes"):
        SparseVector(np.array([1, 2]), np.array([1.0], dtype=np.float32))
