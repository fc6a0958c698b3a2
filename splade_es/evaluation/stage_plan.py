"""Evaluation stage names: which are valid, and what a list of them needs (ColBERT, dense or
MUVERA fields), so that the index is built once with every field its stages read."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from colbert_rerank.encoder import ColbertEncoder
from colbert_rerank.muvera import DEFAULT_MUVERA
from splade_es.cluster.admin import field_sizes
from splade_es.encoding.dense import DenseEncoder
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.search.pipeline import MODES, NO_VECTORS
from splade_es.search.searcher import Searcher
from splade_es.search.stages import VectorQueries, open_vector_queries, sources

NAMED_STAGES = (
    "bm25",
    "splade",
    "splade+colbert",
    "bm25+colbert",
    "splade-idf",
    "splade-idf+colbert",
)
"""The stages named in full; any first stage of :func:`~splade_es.search.stages.sources`
(``dense``, ``muvera``, ``splade|dense|muvera``, ...) is valid too, with or without ``+colbert``."""

STAGES_HELP = (
    f"{', '.join(NAMED_STAGES)}, hybrid, dense, muvera, or first stages joined by '|' "
    "(e.g. splade|dense|muvera), each optionally with +colbert"
)


@dataclass(frozen=True)
class StageNeeds:
    """What the index and the query side need for a list of stages.

    Attributes:
        reranks: some stage reranks with ColBERT (``+colbert``).
        dense: some stage reads the dense field.
        muvera: some stage reads the MUVERA field (which the ColBERT model also writes).
    """

    reranks: bool = False
    dense: bool = False
    muvera: bool = False

    @property
    def colbert(self) -> bool:
        """Whether the ColBERT model runs (reranking, or the MUVERA field and query)."""
        return self.reranks or self.muvera


def first_stage_of(stage: str) -> str:
    """The first stage a stage name runs: ``splade|dense+colbert`` -> ``splade|dense``;
    ``splade-idf`` runs ``splade`` (with IDF query weights)."""
    first = stage.removesuffix("+colbert")
    return "splade" if first == "splade-idf" else first


def check_stages(stages: Sequence[str]) -> StageNeeds:
    """What ``stages`` need, or a ValueError naming the unknown ones and the valid names."""
    unknown = [s for s in stages if not _valid(s)]
    if unknown or not stages:
        raise ValueError(f"Unknown stages {unknown or '(none given)'}: choose from {STAGES_HELP}.")
    names = {n for s in stages for n in _sources(first_stage_of(s))}
    return StageNeeds(
        reranks=any(s.endswith("+colbert") for s in stages),
        dense="dense" in names,
        muvera="muvera" in names,
    )


def _valid(stage: str) -> bool:
    if stage in NAMED_STAGES:
        return True
    try:
        _sources(stage.removesuffix("+colbert"))
    except ValueError:
        return False
    return True


def _sources(first: str) -> tuple[str, ...]:
    return (first,) if first in MODES else sources(first)


def vectors_tag(needs: StageNeeds, dense: DenseEncoder | None, quantization: str) -> str:
    """The part of the evaluation index's name that says which kNN fields it holds, so that
    an index without them is never reused for stages that read them."""
    tag = ""
    if needs.dense and dense is not None:
        tag += f"-dn{dense.fingerprint()['weights_sha256'][:6]}"
    if needs.muvera:  # the encoding's parameters: another default gets another index
        tag += "-mv" + hashlib.sha256(repr(DEFAULT_MUVERA).encode()).hexdigest()[:6]
    if tag and quantization != "int8":
        tag += f"-{quantization}"
    return tag


def model_tag(
    encoder: SpladeEncoder, colbert: ColbertEncoder | None, storage: ColbertStorage, reranks: bool
) -> str:
    """A short tag of the models and storage, so that another setup gets another index."""
    tag = encoder.fingerprint()["weights_sha256"][:8]
    if reranks and colbert is not None:
        tag += f"-{colbert.fingerprint()['weights_sha256'][:6]}-{storage.codec}"
        if storage.codec == "residual":
            tag += f"{storage.bits}"
        if storage.dim is not None:
            tag += f"-d{storage.dim}"
        tag += {"source": "", "doc_values": "-dv", "stored": "-sf"}[storage.form]
    return tag


def check_models(
    needs: StageNeeds, colbert: ColbertEncoder | None, dense: DenseEncoder | None
) -> None:
    """Refuse stages whose model was not given."""
    if needs.colbert and colbert is None:
        raise ValueError("The +colbert and muvera stages need a ColBERT encoder (--colbert-model).")
    if needs.dense and dense is None:
        raise ValueError("The dense stages need a dense encoder (--dense-model).")


def vector_queries(
    searcher: Searcher,
    needs: StageNeeds,
    models: tuple[ColbertEncoder | None, DenseEncoder | None],
    candidates: int,
    result: dict[str, Any],
) -> VectorQueries:
    """The kNN query side of the dense and muvera stages; notes each field's size."""
    if not (needs.dense or needs.muvera):
        return NO_VECTORS
    colbert, dense = models
    vectors = open_vector_queries(
        searcher, dense if needs.dense else None, colbert if needs.muvera else None, candidates
    )
    result["fields"] = field_sizes(searcher.cluster, searcher.config.index, result["index_docs"])
    return vectors
