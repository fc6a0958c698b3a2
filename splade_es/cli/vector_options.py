"""The index command's kNN vector options: ``--dense [--dense-model]``, ``--muvera``,
``--vector-quantization``."""

from __future__ import annotations

from dataclasses import dataclass

import click

from splade_es.cli.options import option_group
from splade_es.cluster.vectors import QUANTIZATIONS, Quantization
from splade_es.encoding.dense import DEFAULT_MODEL, DenseConfig, DenseEncoder
from splade_es.indexing.vector_fields import DenseIndexing, MuveraIndexing


@dataclass(frozen=True)
class VectorOptions:
    """Which kNN fields the index command writes.

    Attributes:
        dense / dense_model: a dense sentence embedding per document, and its model.
        muvera: the MUVERA encoding of the ColBERT token embeddings (needs ``--colbert``).
        quantization: how the kNN graph stores both.
    """

    dense: bool
    dense_model: str
    muvera: bool
    quantization: Quantization

    def check(self, colbert: bool) -> None:
        """Refuse ``--muvera`` without ``--colbert`` (it encodes the ColBERT embeddings)."""
        if self.muvera and not colbert:
            raise click.UsageError(
                "--muvera encodes the ColBERT token embeddings: add --colbert (and "
                "--colbert-model for another model than the default)."
            )

    def dense_indexing(self, device: str | None) -> DenseIndexing | None:
        """The dense field with its model loaded (``None`` without ``--dense``)."""
        if not self.dense:
            return None
        click.echo(f"Loading dense model {self.dense_model} ...", err=True)
        encoder = DenseEncoder(DenseConfig(model=self.dense_model, device=device))
        return DenseIndexing(encoder, quantization=self.quantization)

    def muvera_indexing(self) -> MuveraIndexing | None:
        """The MUVERA field (``None`` without ``--muvera``)."""
        return MuveraIndexing(quantization=self.quantization) if self.muvera else None


quantization_option = click.option(
    "--vector-quantization",
    "quantization",
    type=click.Choice(QUANTIZATIONS),
    default="int8",
    show_default=True,
    help="How the kNN graph stores vectors: int8 (a quarter of float's bytes), none "
    "(float); Elasticsearch also int4 and bbq (1 bit per dimension).",
)
"""``--vector-quantization`` of the index and eval commands."""


vector_options = option_group(
    "vectors",
    VectorOptions,
    click.option(
        "--dense",
        is_flag=True,
        help="Also store a dense sentence embedding of each document in a kNN field (the "
        "'dense' search stage), in the same pass.",
    ),
    click.option(
        "--dense-model",
        default=DEFAULT_MODEL,
        show_default=True,
        help="Sentence-embedding model for --dense: HF id, local dir or the shipped alias.",
    ),
    click.option(
        "--muvera",
        is_flag=True,
        help="Also store the MUVERA encoding of each document's ColBERT token embeddings in a "
        "kNN field (the 'muvera' search stage); needs --colbert.",
    ),
    quantization_option,
)
