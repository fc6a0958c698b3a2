"""``splade-es serve``: the drop-in reranking service in front of one cluster."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from splade_es.cli.options import LISTEN_PORT, POSITIVE_INT

FIRST_STAGES = ("app", "splade", "fusion")
# Options that are config keys under the same name.
CONFIG_KEYS = (
    "upstream",
    "host",
    "port",
    "rerank_k",
    "rerank_timeout_ms",
    "first_stage",
    "ca_certs",
    "colbert_model",
    "splade_model",
    "device",
    "max_body_bytes",
    "max_concurrency",
    "rerank_workers",
)


def config_values(
    file_values: Mapping[str, Any],
    given: Mapping[str, Any],
    rerank_indices: tuple[str, ...],
    source: str = "config file",
) -> dict[str, Any]:
    """The config keys: the file's, overridden by the options given on the command line,
    with the ``--rerank-index`` names added to the file's ``indices``.

    Raises:
        ValueError: the file's ``indices`` is neither a list of index names nor a table of
            pattern -> ``{rerank_k = N}``, so the names cannot be added (the message names
            the key and both forms).

    Example:
        >>> config_values({"indices": ["docs"]}, {"rerank_k": 7}, ("news-*",))["indices"]
        {'docs': {}, 'news-*': {'rerank_k': 7}}
    """
    values = dict(file_values)
    values.update({k: str(v) if isinstance(v, Path) else v for k, v in given.items()})
    if rerank_indices:
        table = _index_table(values.get("indices", []), source)
        for name in rerank_indices:
            table[name] = {"rerank_k": given["rerank_k"]} if "rerank_k" in given else {}
        values["indices"] = table
    return values


def _index_table(listed: Any, source: str) -> dict[str, Any]:
    """The config's ``indices`` as a table, to add ``--rerank-index`` names to."""
    if isinstance(listed, list) and all(isinstance(name, str) for name in listed):
        return {name: {} for name in listed}
    if isinstance(listed, Mapping):
        return dict(listed)
    raise ValueError(
        f"{source}: key 'indices' is {listed!r:.60} ({type(listed).__name__}): expected a "
        'list of index names (indices = ["docs", "news-*"]) or a table of pattern -> '
        "{rerank_k = N}, to which --rerank-index adds its names."
    )


@click.command("serve")
@click.option("--upstream", metavar="URL", help="The cluster to proxy (or 'upstream' in --config).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=LISTEN_PORT, default=9280, show_default=True, help="0: a free port.")
@click.option(
    "--rerank-index",
    "rerank_indices",
    multiple=True,
    metavar="NAME_OR_PATTERN",
    help="Index, alias or pattern (docs-*) whose _search is reranked (repeatable).",
)
@click.option("--rerank-k", type=POSITIVE_INT, default=100, show_default=True)
@click.option(
    "--rerank-timeout-ms",
    type=POSITIVE_INT,
    default=1000,
    show_default=True,
    help="Rerank budget per request; past it the first-stage answer goes back.",
)
@click.option(
    "--first-stage",
    type=click.Choice(FIRST_STAGES),
    default="app",
    show_default=True,
    help="app: the app's own query; splade: SPLADE with the app's filters; fusion: both (RRF).",
)
@click.option(
    "--ca-certs",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA of the upstream's TLS certificate.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML or JSON config (options given here override its keys).",
)
@click.option("--colbert-model", help="ColBERT model (default: all-MiniLM-L6-v2).")
@click.option("--splade-model", help="SPLADE model of --first-stage splade/fusion.")
@click.option("--device", help="cpu, cuda, mps (default: auto).")
@click.option("--max-body-bytes", type=POSITIVE_INT, default=100 * 1024 * 1024)
@click.option("--max-concurrency", type=POSITIVE_INT, default=64, show_default=True)
@click.option("--rerank-workers", type=POSITIVE_INT, default=2, show_default=True)
@click.pass_context
def serve(
    context: click.Context,
    upstream: str | None,
    host: str,
    port: int,
    rerank_indices: tuple[str, ...],
    rerank_k: int,
    rerank_timeout_ms: int,
    first_stage: str,
    ca_certs: Path | None,
    config_file: Path | None,
    colbert_model: str | None,
    splade_model: str | None,
    device: str | None,
    max_body_bytes: int,
    max_concurrency: int,
    rerank_workers: int,
) -> None:
    """Serve an Elasticsearch/OpenSearch-compatible proxy in front of --upstream that reranks
    _search answers on the --rerank-index indices with ColBERT; every other request passes
    through unchanged. Prints the URL it serves as its last line once ready."""
    from splade_es.service.config import config_from_mapping, read_config_file

    # Only the options given on the command line override the config file's keys.
    sources = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    given = {
        key: context.params[key]
        for key in CONFIG_KEYS
        if context.get_parameter_source(key) in sources
    }
    file_values = read_config_file(config_file) if config_file else {}
    source = str(config_file) if config_file else "command line"
    values = config_values(file_values, given, rerank_indices, source)
    config = config_from_mapping(values, source)
    if not config.indices:
        click.echo("No --rerank-index given: every request passes through.", err=True)

    from splade_es.service import load_models
    from splade_es.service.server import serve as run_service

    click.echo(
        f"Loading models for the service in front of {config.upstream_display} ...", err=True
    )
    models = load_models(config)

    def ready(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()

    run_service(config, models, ready)
