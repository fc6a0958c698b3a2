"""The ``--mode``/``--stages`` names of the CLI, and the query-side models they load.

A stage is a first stage (``splade``, ``bm25``, ``hybrid``, ``dense``, ``muvera`` or several
joined by ``|``), optionally followed by ``+colbert`` (rerank its top hits with MaxSim).
"""

from __future__ import annotations

from typing import Any

import click

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from splade_es.cli.colbert import build_colbert
from splade_es.cluster.admin import require_index
from splade_es.cluster.connection import Cluster
from splade_es.cluster.mapping import VECTORS_META_KEY
from splade_es.encoding.dense import DenseConfig, DenseEncoder
from splade_es.search.pipeline import MODES, NO_VECTORS
from splade_es.search.searcher import Searcher
from splade_es.search.stages import VectorQueries, open_vector_queries, sources

STAGE_HELP = (
    "splade, bm25, hybrid (bm25|splade), dense, muvera, or several first stages joined by '|' "
    "and fused client-side (e.g. 'splade|dense|muvera'); '+colbert' reranks its top hits."
)


def split_stage(stage: str) -> tuple[str, bool]:
    """``(first stage, reranks)`` of a stage name such as ``splade|muvera+colbert``.

    Raises:
        ValueError: an unknown first stage, naming the valid ones.
    """
    first = stage.removesuffix("+colbert")
    if first not in MODES:
        sources(first)
    return first, first != stage


class _StageType(click.ParamType[str]):
    """A stage name, checked (``splade|dense+colbert``)."""

    name = "STAGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            split_stage(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)
        return str(value)


STAGE = _StageType()


def open_stage_vectors(
    connection: Cluster,
    searcher: Searcher,
    mode: str,
    colbert: ColbertEncoder | None,
    device: str | None,
) -> VectorQueries:
    """The kNN query side a first stage needs (:data:`NO_VECTORS` for one without kNN): the
    index's dense model, and for ``muvera`` its ColBERT model (``colbert`` when a reranker
    already loaded it), loaded with a note on stderr.

    Raises:
        click.UsageError: the index has no field for the stage.
    """
    names = () if mode in MODES else sources(mode)
    if "dense" not in names and "muvera" not in names:
        return NO_VECTORS
    fields = require_index(connection, searcher.config.index).all_meta.get(VECTORS_META_KEY) or {}
    dense = None
    if "dense" in names:
        if "dense" not in fields:
            raise click.UsageError(_missing(searcher.config.index, "dense", "--dense"))
        model = fields["dense"]["model"]["model"]
        click.echo(f"Loading dense model {model} ...", err=True)
        dense = DenseEncoder(DenseConfig(model=model, device=device))
    if "muvera" in names:
        if "muvera" not in fields:
            raise click.UsageError(_missing(searcher.config.index, "muvera", "--colbert --muvera"))
        model = fields["muvera"]["model"]["colbert_model"]
        colbert = colbert or build_colbert(ColbertConfig(model=model, device=device))
    try:
        return open_vector_queries(searcher, dense, colbert if "muvera" in names else None)
    except ValueError as error:
        raise click.UsageError(str(error)) from error


def _missing(index: str, kind: str, option: str) -> str:
    return (
        f"Index {index!r} has no {kind} vector field: build one with 'splade-es index ... "
        f"{option}' (a new index; move an alias to it with --alias)."
    )
