"""MaxSim over residual codes without decompressing them (PLAID's lookup tables), for the
scoring benchmark: the package's reranker decodes then multiplies, which measured faster on CPU.

For a token stored as centroid ``c`` plus residual buckets ``r`` and re-normalised,
``q . d = (q . c + sum_d q_d r_d) / |c + r|``. ``q . c`` comes from a query x centroid table;
the residual part from one table per packed byte position (the four 2-bit buckets of a byte
summed against the matching query dimensions), so a token's score is one table read per byte
instead of a decode and a dot product. The norm is the one per-token quantity left; it does
not depend on the query, but with this codec's re-normalised tokens it still needs each
token rebuilt (PLAID stores residuals that are not re-normalised, and skips it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from colbert_rerank.codebook import Codebook
from colbert_rerank.codecs import HEADER_BYTES as HEADER

__all__ = ["lut_maxsim", "split_blobs"]


def split_blobs(
    blobs: list[bytes], counts: list[int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Centroid ids ``[tokens]`` and packed residual bytes ``[tokens, bytes]`` of residual blobs."""
    centroids = b"".join(b[HEADER : HEADER + 2 * n] for b, n in zip(blobs, counts, strict=True))
    packed = b"".join(b[HEADER + 2 * n :] for b, n in zip(blobs, counts, strict=True))
    ids = np.frombuffer(centroids, dtype="<u2").astype(np.int64)
    return ids, np.frombuffer(packed, dtype=np.uint8).reshape(len(ids), -1)


def lut_maxsim(
    query: npt.NDArray[np.float32],
    codebook: Codebook,
    centroid_ids: npt.NDArray[np.int64],
    packed: npt.NDArray[np.uint8],
    counts: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """MaxSim of ``query`` ``[q, dim]`` against documents of ``counts`` tokens each."""
    tokens, width = packed.shape
    per_byte = 8 // codebook.bits
    values = codebook.byte_values  # [256, per_byte]: the residual values a byte stands for
    by_position = query.reshape(query.shape[0], width, per_byte)  # [q, bytes, per_byte]
    table = np.einsum("qpk,bk->pbq", by_position, values).reshape(width * 256, -1)
    index = packed.astype(np.int64) + (np.arange(width) * 256)[None, :]
    scores = table[index].sum(axis=1)  # [tokens, q]: the residual part
    scores += (query @ codebook.centroids.T)[:, centroid_ids].T  # the centroid part
    vectors = codebook.centroids[centroid_ids] + values[packed].reshape(tokens, -1)
    scores /= np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)[:, None]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    best: npt.NDArray[np.float32] = np.maximum.reduceat(scores, starts, axis=0).sum(axis=1)
    return best.astype(np.float32)
