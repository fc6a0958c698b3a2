"""Model options shared by the commands that encode, and the encoder they build."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import click

from splade_es.cli.options import POSITIVE_INT, F, device_option, option_group
from splade_es.encoding.encoder import DType, EncoderConfig, Pooling, SpladeEncoder
from splade_es.encoding.features import Pruning


@dataclass(frozen=True)
class ModelOptions:
    """The SPLADE encoder options of a command (``--model``, lengths, pruning, ...).

    Attributes:
        model: Hugging Face id, local directory or alias; ``None`` for the index's model.
        device / dtype / batch_size: where and how the encoder runs.
        doc_max_length / query_max_length: token limits, in tokens.
        pooling: ``max`` or ``sum``; ``None`` for the model's own.
        doc_top_k / doc_min_weight / query_top_k / query_min_weight: pruning.
    """

    model: str | None
    device: str | None
    dtype: DType
    batch_size: int
    doc_max_length: int
    query_max_length: int
    pooling: Pooling | None
    doc_top_k: int | None
    doc_min_weight: float
    query_top_k: int | None
    query_min_weight: float

    @classmethod
    def for_queries(
        cls,
        model: str | None,
        device: str | None,
        dtype: DType,
        query_max_length: int,
        pooling: Pooling | None,
        query_top_k: int | None,
        query_min_weight: float,
    ) -> ModelOptions:
        """The options of a command that only encodes queries (documents keep the defaults,
        which such a command never uses)."""
        defaults = EncoderConfig()
        return cls(
            model=model,
            device=device,
            dtype=dtype,
            batch_size=defaults.batch_size,
            doc_max_length=defaults.document_max_length,
            query_max_length=query_max_length,
            pooling=pooling,
            doc_top_k=None,
            doc_min_weight=0.0,
            query_top_k=query_top_k,
            query_min_weight=query_min_weight,
        )

    def encoder_config(self, recorded: str | None = None) -> EncoderConfig:
        """The encoder config: ``--model``, else ``recorded`` (the model the index records)."""
        chosen = self.model or recorded
        if chosen is None:
            raise click.UsageError("Pass --model (the index records none).")
        return EncoderConfig(
            model=chosen,
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            document_max_length=self.doc_max_length,
            query_max_length=self.query_max_length,
            pooling=self.pooling,
            document_pruning=Pruning(self.doc_top_k, self.doc_min_weight),
            query_pruning=Pruning(self.query_top_k, self.query_min_weight),
        )


def _model_option(default_model: str | None) -> Callable[[F], F]:
    return click.option(
        "--model",
        default=default_model,
        show_default=True,
        help="SPLADE model: Hugging Face id, local directory, or splade-tiny."
        + ("" if default_model else " Default: the model recorded in the index."),
    )


_device = click.option(
    "--device",
    callback=device_option,
    help="cpu, cuda, cuda:1, mps (default: the best available).",
)
_dtype = click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
)
_query_length = click.option("--query-max-length", type=POSITIVE_INT, default=64, show_default=True)
_pooling = click.option(
    "--pooling", type=click.Choice(["max", "sum"]), help="Default: the model's."
)
_query_pruning = (
    click.option(
        "--query-top-k", type=POSITIVE_INT, help="Keep at most this many terms per query."
    ),
    click.option("--query-min-weight", type=float, default=0.0, show_default=True),
)


def encoder_options(default_model: str | None = "splade-tiny") -> Callable[[F], F]:
    """Add --model, --device, --dtype, lengths, batch size, pooling and pruning options; the
    command gets ``model``, a :class:`ModelOptions`."""
    return option_group(
        "model",
        ModelOptions,
        _model_option(default_model),
        _device,
        _dtype,
        click.option("--batch-size", type=POSITIVE_INT, default=32, show_default=True),
        click.option("--doc-max-length", type=POSITIVE_INT, default=256, show_default=True),
        _query_length,
        _pooling,
        click.option(
            "--doc-top-k", type=POSITIVE_INT, help="Keep at most this many terms per document."
        ),
        click.option("--doc-min-weight", type=float, default=0.0, show_default=True),
        *_query_pruning,
    )


def query_encoder_options(default_model: str | None = None) -> Callable[[F], F]:
    """The model options of a command that only encodes queries (search, explain, mining):
    no document length, document pruning or batch size, which would do nothing there."""
    return option_group(
        "model",
        ModelOptions.for_queries,
        _model_option(default_model),
        _device,
        _dtype,
        _query_length,
        _pooling,
        *_query_pruning,
    )


def build_encoder(config: EncoderConfig) -> SpladeEncoder:
    click.echo(f"Loading SPLADE model {config.model} ...", err=True)
    return SpladeEncoder(config)
