"""Late-interaction scoring: ``score(q, d) = sum_i max_j q_i . d_j``. Pure tensor functions.

All candidates are scored at once: their token embeddings are concatenated into one
``[tokens, dim]`` matrix, one matrix product gives every document-token/query-token
similarity, and a segment maximum over each document's rows then a sum over query tokens gives
the scores (no padding is ever materialised). Works on CPU and GPU alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "Alignment",
    "PackedDocuments",
    "align",
    "maxsim",
    "maxsim_reference",
]


@dataclass(frozen=True)
class PackedDocuments:
    """Token embeddings of several documents, concatenated.

    Attributes:
        embeddings: ``[total_tokens, dim]``.
        lengths: ``[documents]`` token counts (each >= 1).
    """

    embeddings: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def pack(cls, documents: Sequence[torch.Tensor]) -> PackedDocuments:
        """Concatenate per-document ``[tokens, dim]`` tensors (all the same dim, >= 1 token).

        Raises:
            ValueError: a document has no tokens or another dimension.
        """
        if not documents:
            raise ValueError("No documents to pack.")
        dim = documents[0].shape[-1]
        for position, doc in enumerate(documents):
            if doc.ndim != 2 or doc.shape[1] != dim:
                raise ValueError(
                    f"Document {position} has shape {tuple(doc.shape)}, expected [tokens, {dim}]."
                )
            if doc.shape[0] == 0:
                raise ValueError(f"Document {position} has no token embeddings.")
        lengths = torch.tensor([d.shape[0] for d in documents], dtype=torch.long)
        return cls(torch.cat(list(documents), dim=0), lengths)


def maxsim(query: torch.Tensor, documents: PackedDocuments) -> torch.Tensor:
    """MaxSim of one query against every packed document.

    Args:
        query: ``[query_tokens, dim]``.
        documents: the candidates.

    Returns:
        ``[documents]`` scores (float32), in the packed order.
    """
    if query.ndim != 2 or query.shape[0] == 0:
        raise ValueError(
            f"Query embeddings have shape {tuple(query.shape)}, expected [tokens, dim]."
        )
    embeddings = documents.embeddings
    if query.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"Query dim {query.shape[1]} differs from the documents' {embeddings.shape[1]}: they "
            "were encoded by different models or codecs."
        )
    lengths = documents.lengths.to(embeddings.device)
    similarities = embeddings @ query.to(embeddings.dtype).T  # [total_tokens, query_tokens]
    best = torch.segment_reduce(similarities, "max", lengths=lengths, axis=0)
    return best.sum(dim=1).float()


def maxsim_reference(query: torch.Tensor, documents: Sequence[torch.Tensor]) -> torch.Tensor:
    """The definition, one document at a time (for tests and benchmarks)."""
    scores = [(query @ doc.T).max(dim=1).values.sum() for doc in documents]
    return torch.stack(scores).float()


@dataclass(frozen=True)
class Alignment:
    """A query token, the document token it matched, and what that added to the score."""

    query_position: int
    document_position: int
    similarity: float


def align(query: torch.Tensor, document: torch.Tensor) -> list[Alignment]:
    """For each query token, its best document token and the similarity (the contribution)."""
    similarities = query @ document.T
    values, positions = similarities.max(dim=1)
    return [Alignment(i, int(positions[i]), float(values[i])) for i in range(query.shape[0])]
