"""The residual-compression codebook (ColBERTv2): centroids plus residual buckets.

Fitted once per index on a sample of document token embeddings: spherical k-means gives the
centroids; the residuals (embedding minus its centroid) of the sample give ``2**bits`` bucket
cut-offs (quantiles) and bucket values (the quantiles at the bucket middles), shared by all
dimensions. Serialised with safetensors (never pickle), identified by the SHA-256 of those bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "Codebook",
    "default_centroids",
    "fit_codebook",
]

FORMAT = "colbert_rerank.codebook/1"


@dataclass(frozen=True, eq=False)
class Codebook:
    """Centroids and residual buckets.

    Attributes:
        centroids: ``[k, dim]`` float32, unit norm.
        cutoffs: ``[2**bits - 1]`` ascending residual thresholds.
        values: ``[2**bits]`` residual value of each bucket.
        bits: bits per residual dimension (1, 2, 4 or 8).
    """

    centroids: npt.NDArray[np.float32]
    cutoffs: npt.NDArray[np.float32]
    values: npt.NDArray[np.float32]
    bits: int

    def __post_init__(self) -> None:
        if self.bits not in (1, 2, 4, 8):
            raise ValueError(f"bits={self.bits!r}: expected 1, 2, 4 or 8.")
        if self.centroids.ndim != 2 or not 0 < self.centroids.shape[0] <= 65536:
            raise ValueError(
                f"centroids have shape {self.centroids.shape}: expected [k <= 65536, dim]."
            )
        if self.cutoffs.shape != (2**self.bits - 1,) or self.values.shape != (2**self.bits,):
            raise ValueError("cutoffs/values do not match the number of bits.")

    @property
    def dim(self) -> int:
        """Embedding dimensions of the centroids."""
        return int(self.centroids.shape[1])

    def to_bytes(self) -> bytes:
        """safetensors bytes (the only stored form)."""
        from safetensors.numpy import save

        return save(
            {
                "centroids": np.ascontiguousarray(self.centroids, dtype=np.float32),
                "cutoffs": np.ascontiguousarray(self.cutoffs, dtype=np.float32),
                "values": np.ascontiguousarray(self.values, dtype=np.float32),
            },
            # One metadata key: safetensors writes a map's keys in no fixed order.
            metadata={"colbert_rerank": json.dumps({"format": FORMAT, "bits": self.bits})},
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Codebook:
        """Load from safetensors bytes.

        Raises:
            ValueError: not a codebook written by :meth:`to_bytes`.
        """
        from safetensors.numpy import load

        try:
            tensors = load(data)
            header_size = int.from_bytes(data[:8], "little")
            metadata = json.loads(data[8 : 8 + header_size]).get("__metadata__", {})
        except Exception as error:
            raise ValueError(
                f"Not a safetensors codebook ({error}): codebooks load only from the "
                "safetensors bytes Codebook.to_bytes writes (never pickle); re-create the index."
            ) from error
        try:
            described = json.loads(metadata["colbert_rerank"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"Not a colbert_rerank codebook (metadata {metadata}).") from error
        if described.get("format") != FORMAT:
            raise ValueError(f"Not a colbert_rerank codebook (format {described.get('format')!r}).")
        bits = int(described["bits"])
        return cls(tensors["centroids"], tensors["cutoffs"], tensors["values"], bits)

    @property
    def sha256(self) -> str:
        """Hash of the content (bits and the three arrays), independent of file layout."""
        digest = hashlib.sha256(f"{FORMAT}:{self.bits}:{self.centroids.shape}".encode())
        for array in (self.centroids, self.cutoffs, self.values):
            digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
        return digest.hexdigest()

    @property
    def tag(self) -> int:
        """First 4 bytes of the hash, written into every blob."""
        return int(self.sha256[:8], 16)

    def quantise(
        self, embeddings: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
        """Nearest centroid (by inner product) and residual bucket codes of each embedding."""
        centroids = torch.from_numpy(self.centroids)
        values = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        nearest = _nearest(values, centroids)
        residual = values - centroids[nearest]
        codes = torch.bucketize(residual, torch.from_numpy(self.cutoffs), right=True)
        return nearest.numpy(), codes.to(torch.uint8).numpy()

    @functools.cached_property
    def byte_values(self) -> npt.NDArray[np.float32]:
        """``[256, 8 // bits]``: the residual values one packed byte stands for."""
        per_byte = 8 // self.bits
        mask = (1 << self.bits) - 1
        shifts = np.arange(per_byte - 1, -1, -1) * self.bits
        codes = (np.arange(256)[:, None] >> shifts) & mask
        table: npt.NDArray[np.float32] = self.values[codes].astype(np.float32)
        return table

    def reconstruct_into(
        self,
        centroid_ids: npt.NDArray[np.int64],
        packed: npt.NDArray[np.uint8],
        out: npt.NDArray[np.float32],
    ) -> None:
        """Write centroid + residual, re-normalised, into ``out`` (``[tokens, dim]``).

        ``packed`` holds the residual codes as :func:`~colbert_rerank.codecs` packs them
        (most significant bits first); each byte is expanded through a 256-entry table.
        """
        if centroid_ids.size and int(centroid_ids.max()) >= self.centroids.shape[0]:
            raise ValueError("centroid id beyond the codebook: corrupted blob or wrong codebook.")
        # torch's gathers and row norms use the intra-op threads; numpy's are single-threaded
        target = torch.from_numpy(out)
        ids = torch.from_numpy(np.asarray(centroid_ids, dtype=np.int64))
        torch.index_select(self._centroid_table, 0, ids, out=target)
        codes = torch.from_numpy(packed.reshape(-1).astype(np.int32))
        target += torch.index_select(self._byte_table, 0, codes).view(target.shape)
        target /= torch.linalg.vector_norm(target, dim=1, keepdim=True).clamp_min_(1e-12)

    @functools.cached_property
    def _byte_table(self) -> torch.Tensor:
        return torch.from_numpy(np.array(self.byte_values, dtype=np.float32))  # a writable copy

    @functools.cached_property
    def _centroid_table(self) -> torch.Tensor:
        return torch.from_numpy(np.array(self.centroids, dtype=np.float32))  # a writable copy


def _nearest(values: torch.Tensor, centroids: torch.Tensor, block: int = 8192) -> torch.Tensor:
    out = []
    for start in range(0, values.shape[0], block):
        out.append((values[start : start + block] @ centroids.T).argmax(dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def default_centroids(num_embeddings: int) -> int:
    """ColBERTv2's rule, ``2**floor(log2(16 * sqrt(n)))``, capped to 2**16 and to ``n``."""
    if num_embeddings < 1:
        raise ValueError("No embeddings to fit a codebook on.")
    k = 2 ** int(np.floor(np.log2(16 * np.sqrt(num_embeddings))))
    return int(max(1, min(k, 65536, num_embeddings)))


def fit_codebook(
    sample: npt.NDArray[np.float32],
    bits: int = 2,
    centroids: int | None = None,
    iterations: int = 10,
    seed: int = 0,
) -> Codebook:
    """Spherical k-means on ``sample`` (``[n, dim]``, unit-norm rows) and residual buckets.

    Args:
        sample: document token embeddings.
        bits: residual bits per dimension.
        centroids: number of centroids (default: :func:`default_centroids`).
        iterations: k-means iterations.
        seed: makes the fit deterministic.
    """
    values = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"sample has shape {tuple(values.shape)}: expected [n >= 1, dim].")
    k = centroids or default_centroids(values.shape[0])
    if k > values.shape[0]:
        raise ValueError(
            f"{k} centroids need at least {k} sample embeddings, got {values.shape[0]}."
        )
    generator = torch.Generator().manual_seed(seed)
    center = values[torch.randperm(values.shape[0], generator=generator)[:k]].clone()
    for _ in range(iterations):
        assignment = _nearest(values, center)
        sums = torch.zeros_like(center).index_add_(0, assignment, values)
        counts = torch.bincount(assignment, minlength=k).unsqueeze(1)
        empty = counts.squeeze(1) == 0
        center = torch.where(empty.unsqueeze(1), center, sums / counts.clamp(min=1))
        center = torch.nn.functional.normalize(center, dim=1)
    residual = (values - center[_nearest(values, center)]).flatten()
    levels = 2**bits
    cut_q = torch.arange(1, levels, dtype=torch.float32) / levels
    mid_q = (torch.arange(levels, dtype=torch.float32) + 0.5) / levels
    picked = residual
    if picked.numel() > 2_000_000:  # quantile() limits its input size
        picked = picked[torch.randperm(picked.numel(), generator=generator)[:2_000_000]]
    cutoffs = torch.quantile(picked, cut_q)
    bucket_values = torch.quantile(picked, mid_q)
    return Codebook(center.numpy(), cutoffs.numpy(), bucket_values.numpy(), bits)
