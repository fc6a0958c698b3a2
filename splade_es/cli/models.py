"""Model options shared by the commands that encode, and the encoder they build."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.encoding.features import Pruning

F = TypeVar("F", bound=Callable[..., Any])


def encoder_options(default_model: str | None = "splade-tiny") -> Callable[[F], F]:
    """Add --model, --device, --dtype, lengths, batch size, pooling and pruning options."""
    options = [
        click.option(
            "--model",
            default=default_model,
            show_default=True,
            help="SPLADE model: Hugging Face id, local directory, or splade-tiny."
            + ("" if default_model else " Default: the model recorded in the index."),
        ),
        click.option("--device", help="cpu, cuda, cuda:1, mps (default: best available)."),
        click.option(
            "--dtype",
            type=click.Choice(["float32", "float16", "bfloat16"]),
            default="float32",
            show_default=True,
        ),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option("--doc-max-length", type=int, default=256, show_default=True),
        click.option("--query-max-length", type=int, default=64, show_default=True),
        click.option("--pooling", type=click.Choice(["max", "sum"]), help="Default: the model's."),
        click.option("--doc-top-k", type=int, help="Keep at most this many terms per document."),
        click.option("--doc-min-weight", type=float, default=0.0, show_default=True),
        click.option("--query-top-k", type=int, help="Keep at most this many terms per query."),
        click.option("--query-min-weight", type=float, default=0.0, show_default=True),
    ]
    return lambda func: functools.reduce(lambda f, o: o(f), reversed(options), func)


def encoder_config(params: dict[str, Any], model: str | None = None) -> EncoderConfig:
    """Pop the model options from ``params`` into an EncoderConfig."""
    chosen = params.pop("model") or model
    if chosen is None:
        raise click.UsageError("Pass --model (the index records none).")
    return EncoderConfig(
        model=chosen,
        device=params.pop("device"),
        dtype=params.pop("dtype"),
        batch_size=params.pop("batch_size"),
        document_max_length=params.pop("doc_max_length"),
        query_max_length=params.pop("query_max_length"),
        pooling=params.pop("pooling"),
        document_pruning=Pruning(params.pop("doc_top_k"), params.pop("doc_min_weight")),
        query_pruning=Pruning(params.pop("query_top_k"), params.pop("query_min_weight")),
    )


def build_encoder(config: EncoderConfig) -> SpladeEncoder:
    click.echo(f"Loading SPLADE model {config.model} ...", err=True)
    return SpladeEncoder(config)
