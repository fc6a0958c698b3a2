"""The benchmark's lookup-table MaxSim equals decode-then-MaxSim on the same residual blobs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lut_maxsim import lut_maxsim, split_blobs

from colbert_rerank.codebook import fit_codebook
from colbert_rerank.codecs import Codec
from colbert_rerank.maxsim import maxsim_reference


@pytest.mark.parametrize(("dim", "bits"), [(16, 2), (32, 1), (64, 2)])
def test_lookup_tables_equal_decode_then_maxsim(dim: int, bits: int) -> None:
    generator = np.random.default_rng(dim)
    sample = generator.normal(size=(600, dim)).astype(np.float32)
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    codec = Codec("residual", dim, fit_codebook(sample, bits=bits, centroids=32))
    counts = [1, 5, 40, 17]
    documents = [sample[generator.integers(0, 600, n)] for n in counts]
    blobs = [codec.encode(d) for d in documents]
    query = sample[:7]
    expected = maxsim_reference(
        torch.from_numpy(query), [torch.from_numpy(codec.decode(b)) for b in blobs]
    ).numpy()
    ids, packed = split_blobs(blobs, counts)
    assert codec.codebook is not None
    got = lut_maxsim(query, codec.codebook, ids, packed, np.asarray(counts))
    assert got.shape == (4,)
    assert np.abs(got - expected).max() < 1e-5
