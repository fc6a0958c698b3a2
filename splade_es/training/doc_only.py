"""Doc-only (inference-free) SPLADE: the document encoder trained with a static query table.

The query side is sentence-transformers' ``SparseStaticEmbedding``: a query's vector is its
tokens (no special tokens), each weighted by one learned float per vocabulary token. The table
starts from BM25's IDF over the training documents (:func:`idf_weights`) and learns at its own
rate; the document side is the usual MLM + SPLADE pooling. The two sit behind a ``Router``
while training, and are saved apart (:func:`save_doc_only`): an ordinary SPLADE folder plus
the table, which :class:`~splade_es.encoding.encoder.SpladeEncoder` picks up for queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splade_es.encoding.static_query import save_static_weights
from splade_es.search.static_queries import bm25_idf

__all__ = ["TABLE_PARAMETER", "doc_only_model", "idf_weights", "router_mapping", "save_doc_only"]

TABLE_PARAMETER = r"sub_modules\.query\.0\.weight$"  # the table's name inside the Router


def idf_weights(
    texts: Sequence[str],
    tokenizer: Any,
    max_length: int,
    size: int | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """BM25 IDF ``[size]`` of every token over ``texts`` (their own tokens, first
    ``max_length``; tokenised ``chunk`` texts at a time); tokens no text holds get the
    largest IDF, special tokens 0.

    Args:
        size: the table's length: the model's output dimension (``config.vocab_size``, which
            may exceed the tokenizer's vocabulary); ``None``: the tokenizer's.

    Raises:
        ValueError: ``texts`` is empty, or ``size`` is smaller than the vocabulary.
    """
    if not texts:
        raise ValueError("The static query table starts from IDF over documents: pass some.")
    vocab = len(tokenizer.get_vocab())
    size = vocab if size is None else size
    if size < vocab:
        raise ValueError(f"size={size}: the table needs at least the vocabulary's {vocab}.")
    df = np.zeros(size, dtype=np.int64)
    for start in range(0, len(texts), chunk):
        part = list(texts[start : start + chunk])
        encoded = tokenizer(part, add_special_tokens=False, truncation=True, max_length=max_length)
        for ids in encoded["input_ids"]:
            df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
    weights = torch.from_numpy(bm25_idf(df, len(texts)).copy())
    weights[torch.tensor(tokenizer.all_special_ids, dtype=torch.long)] = 0.0
    return weights


def doc_only_model(encoder: Any, idf: torch.Tensor) -> Any:
    """A ``SparseEncoder`` routing queries to a static table (starting at ``idf``) and
    documents to ``encoder``'s MLM + SPLADE pooling (the same module objects)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding

    table = SparseStaticEmbedding(tokenizer=encoder.tokenizer, weight=idf.clone(), frozen=False)
    router = Router.for_query_document(
        query_modules=[table], document_modules=[encoder[0], encoder[1]]
    )
    model = SparseEncoder(modules=[router], similarity_fn_name="dot", device=str(encoder.device))
    model.max_seq_length = encoder.max_seq_length
    return model


def router_mapping(columns: Sequence[str]) -> dict[str, str]:
    """Route the ``query`` column to the table and every other text column to the documents.

    Example:
        >>> router_mapping(["query", "positive", "negative_1", "label"])
        {'query': 'query', 'positive': 'document', 'negative_1': 'document'}
    """
    return {c: "query" if c == "query" else "document" for c in columns if c != "label"}


def save_doc_only(model: Any, folder: Path) -> Path:
    """Save the document encoder as a SPLADE folder, with the table beside it (written first:
    a save cut short never leaves a folder that loads as a full model)."""
    from sentence_transformers import SparseEncoder

    router = model[0]
    folder.mkdir(parents=True, exist_ok=True)
    table = router.sub_modules["query"][0].weight
    save_static_weights(folder, table.detach().float().cpu())
    document = SparseEncoder(modules=list(router.sub_modules["document"]), similarity_fn_name="dot")
    document.save_pretrained(str(folder))
    return folder
