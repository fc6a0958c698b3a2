"""Options shared by every command that talks to a cluster, and how they become a Cluster.

Without ``--es-url`` (or ``ES_URL``) the command uses the local node of ``--engine``,
starting it if it is not running.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from splade_es.cluster.connection import Cluster, ClusterConfig, connect
from splade_es.engines import ENGINES, NodeConfig, start_node

F = TypeVar("F", bound=Callable[..., Any])


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "splade-es"


def cache_dir_option(func: F) -> F:
    return click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default_cache_dir,
        envvar="SPLADE_ES_CACHE_DIR",
        show_default="~/.cache/splade-es",
        help="Downloads, assembled engines and local node state.",
    )(func)


def engine_option(func: F) -> F:
    return click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default="elasticsearch",
        show_default=True,
        help="Engine of the local node used when no --es-url is given.",
    )(func)


def state_file(cache_dir: Path, engine: str) -> Path:
    return cache_dir / "nodes" / f"{engine}.json"


def cluster_options(func: F) -> F:
    """Add --es-url, auth and TLS options, and --engine/--cache-dir for the local node."""
    options = [
        click.option(
            "--es-url",
            envvar="ES_URL",
            help="Cluster URL (env ES_URL). Without it, a local node is used (and started).",
        ),
        click.option("--api-key", envvar="ES_API_KEY", help="API key (env ES_API_KEY)."),
        click.option("--username", envvar="ES_USERNAME", help="Basic-auth user (env ES_USERNAME)."),
        click.option(
            "--password", envvar="ES_PASSWORD", help="Basic-auth password (env ES_PASSWORD)."
        ),
        click.option(
            "--ca-certs",
            envvar="ES_CA_CERTS",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="PEM file of the CA that signed the cluster certificate (env ES_CA_CERTS).",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            help="Do not verify the cluster's TLS certificate (not for production).",
        ),
        engine_option,
        cache_dir_option,
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def open_cluster(params: dict[str, Any]) -> Cluster:
    """Build the ClusterConfig from parsed options and connect (starting a local node if needed).

    Pops the cluster options from ``params`` so the command sees only its own.
    """
    url = params.pop("es_url")
    engine = params.pop("engine")
    cache_dir = params.pop("cache_dir")
    auth = {
        "api_key": params.pop("api_key"),
        "username": params.pop("username"),
        "password": params.pop("password"),
        "ca_certs": params.pop("ca_certs"),
        "verify_certs": not params.pop("insecure"),
    }
    if url is None:
        info = start_node(
            NodeConfig(
                engine=engine, state_file=state_file(cache_dir, engine), cache_dir=cache_dir
            ),
            os.environ,
        )
        click.echo(f"Using local {info.engine} {info.version} at {info.url}", err=True)
        return connect(ClusterConfig(url=info.url, engine=engine))
    return connect(ClusterConfig(url=url, **auth))
