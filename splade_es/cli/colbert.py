"""ColBERT options shared by index, search and eval, and the objects they build."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from colbert_rerank.encoder import DEFAULT_MODEL, ColbertConfig, ColbertEncoder
from colbert_rerank.fusion import Fusion
from splade_es.indexing.colbert_fields import ColbertStorage

F = TypeVar("F", bound=Callable[..., Any])


def storage_options(func: F) -> F:
    """How token embeddings are stored: codec, bits, codebook sample, reduced dims."""
    options = [
        click.option(
            "--codec",
            type=click.Choice(["residual", "int8", "float16"]),
            default="residual",
            show_default=True,
            help="How ColBERT token embeddings are stored.",
        ),
        click.option("--bits", type=click.Choice(["1", "2"]), default="2", show_default=True),
        click.option(
            "--codebook-sample",
            type=int,
            default=256,
            show_default=True,
            help="Documents whose embeddings fit the residual codebook (and projection).",
        ),
        click.option(
            "--colbert-dim",
            type=int,
            help="Store embeddings reduced to this many dims (projection fitted on the sample).",
        ),
    ]
    return functools.reduce(lambda f, o: o(f), reversed(options), func)


def colbert_options(func: F) -> F:
    """--colbert, the model, the token cap and the storage options of the index command."""
    options = [
        click.option(
            "--colbert",
            is_flag=True,
            help="Also store ColBERT token embeddings (for --rerank), in the same pass.",
        ),
        click.option(
            "--colbert-model",
            default=DEFAULT_MODEL,
            show_default=True,
            help="Late-interaction model: HF id, local dir (Stanford ColBERT, PyLate) or alias.",
        ),
        click.option(
            "--max-stored-tokens",
            type=int,
            help="Keep at most this many token embeddings per document (counted).",
        ),
        storage_options,
    ]
    return functools.reduce(lambda f, o: o(f), reversed(options), func)


def rerank_options(func: F) -> F:
    """--rerank and its settings for search and eval."""
    options = [
        click.option(
            "--colbert-model",
            help="Reranking model (default: the one recorded in the index).",
        ),
        click.option(
            "--rerank-k",
            type=int,
            default=100,
            show_default=True,
            help="First-stage hits rescored by MaxSim.",
        ),
        click.option(
            "--rerank-fusion",
            type=click.Choice(["replace", "weighted", "rrf"]),
            default="replace",
            show_default=True,
        ),
        click.option(
            "--rerank-weight",
            type=float,
            default=0.5,
            show_default=True,
            help="MaxSim share for --rerank-fusion weighted.",
        ),
    ]
    return functools.reduce(lambda f, o: o(f), reversed(options), func)


def colbert_config(params: dict[str, Any], model: str | None = None) -> ColbertConfig:
    return ColbertConfig(
        model=params.pop("colbert_model", None) or model or DEFAULT_MODEL,
        device=params.get("device"),
        max_stored_tokens=params.pop("max_stored_tokens", None),
    )


def storage_config(params: dict[str, Any]) -> ColbertStorage:
    return ColbertStorage(
        codec=params.pop("codec"),
        bits=int(params.pop("bits")),
        sample_documents=params.pop("codebook_sample"),
        dim=params.pop("colbert_dim"),
    )


def fusion_of(params: dict[str, Any]) -> Fusion:
    return Fusion(method=params.pop("rerank_fusion"), weight=params.pop("rerank_weight"))


def build_colbert(config: ColbertConfig) -> ColbertEncoder:
    click.echo(f"Loading ColBERT model {config.model} ...", err=True)
    return ColbertEncoder(config)
