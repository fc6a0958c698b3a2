"""An optional linear reduction of token embeddings before storage (e.g. 384 -> 128 dims).

Fitted like the codebook, on a sample of the corpus's document token embeddings: the top
directions of their (uncentred) second moment, which keep inner products, hence MaxSim, best
among linear maps of that size. Applied to documents before encoding and to queries before
scoring, then rows are re-normalised. Serialised with safetensors, identified by a content hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "Projection",
    "fit_projection",
]

FORMAT = "colbert_rerank.projection/1"


@dataclass(frozen=True, eq=False)
class Projection:
    """``matrix``: ``[input_dim, output_dim]`` float32 with orthonormal columns."""

    matrix: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[1] > self.matrix.shape[0]:
            raise ValueError(
                f"projection matrix has shape {self.matrix.shape}: expected [input, output] with "
                "output <= input."
            )

    @property
    def input_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def output_dim(self) -> int:
        return int(self.matrix.shape[1])

    def apply(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``[tokens, input_dim]`` -> ``[tokens, output_dim]``, rows re-normalised."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.input_dim:
            raise ValueError(
                f"embeddings have shape {embeddings.shape}, expected [tokens, {self.input_dim}]."
            )
        reduced = embeddings.astype(np.float32) @ self.matrix
        norms = np.linalg.norm(reduced, axis=1, keepdims=True)
        out: npt.NDArray[np.float32] = (reduced / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    def to_bytes(self) -> bytes:
        from safetensors.numpy import save

        return save(
            {"matrix": np.ascontiguousarray(self.matrix, dtype=np.float32)},
            metadata={"colbert_rerank": json.dumps({"format": FORMAT})},
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Projection:
        from safetensors.numpy import load

        try:
            tensors = load(data)
            header_size = int.from_bytes(data[:8], "little")
            metadata = json.loads(data[8 : 8 + header_size]).get("__metadata__", {})
            described = json.loads(metadata["colbert_rerank"])
        except Exception as error:
            raise ValueError(
                f"Not a safetensors projection ({error}): projections load only from the "
                "safetensors bytes Projection.to_bytes writes (never pickle); re-create the index."
            ) from error
        if described.get("format") != FORMAT:
            raise ValueError(f"Not a colbert_rerank projection ({described.get('format')!r}).")
        return cls(tensors["matrix"])

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(f"{FORMAT}:{self.matrix.shape}".encode())
        digest.update(np.ascontiguousarray(self.matrix, dtype="<f4").tobytes())
        return digest.hexdigest()


def fit_projection(sample: npt.NDArray[np.float32], output_dim: int) -> Projection:
    """The ``output_dim`` leading eigenvectors of ``sample.T @ sample``.

    Raises:
        ValueError: ``output_dim`` not in 1..input dim, or an empty sample.
    """
    if sample.ndim != 2 or sample.shape[0] == 0:
        raise ValueError(f"sample has shape {sample.shape}: expected [n >= 1, dim].")
    if not 1 <= output_dim <= sample.shape[1]:
        raise ValueError(f"output_dim={output_dim}: expected 1..{sample.shape[1]}.")
    moment = sample.T.astype(np.float64) @ sample.astype(np.float64)
    values, vectors = np.linalg.eigh(moment)
    order = np.argsort(-values)[:output_dim]
    chosen = vectors[:, order]
    # Fix each column's sign so the fit is deterministic across LAPACK builds.
    signs = np.sign(chosen[np.abs(chosen).argmax(axis=0), np.arange(output_dim)])
    return Projection((chosen * signs).astype(np.float32))
