"""How options reach a command, and the cluster options every cluster command shares.

:func:`stack` applies a list of click options in reading order; :func:`option_group` adds a
group of options to a command and hands it one typed object built from their values, so a
command's signature names what it gets instead of taking ``**params``.

Without ``--es-url`` (or ``ES_URL``) a command uses the local node of ``--engine``, starting
it if it is not running.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from colbert_rerank.devices import check_device
from splade_es.cluster.connection import Cluster, ClusterConfig, connect
from splade_es.engines import ENGINES, Engine, NodeConfig, node_status, start_node

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

POSITIVE_INT = click.IntRange(min=1)
"""Every integer option that must be at least 1 (counts, sizes, lengths, ranks)."""
NON_NEGATIVE_INT = click.IntRange(min=0)
"""Integer options where 0 means "none" (replicas, hard negatives, a warm-up)."""
PORT = click.IntRange(1, 65535)
LISTEN_PORT = click.IntRange(0, 65535)  # a port to listen on: 0 picks a free one
UNIT_FLOAT = click.FloatRange(0.0, 1.0)
"""Fusion weights, in [0, 1]."""


def stack(*options: Decorator) -> Callable[[F], F]:
    """One decorator applying ``options`` as if written one above the other, in this order."""

    def apply(func: F) -> F:
        for option in reversed(options):
            func = option(func)  # type: ignore[assignment]
        return func

    return apply


def option_names(*options: Decorator) -> tuple[str, ...]:
    """The parameter names click gives ``options``, in order, read off a dummy function."""

    def dummy() -> None: ...

    stack(*options)(dummy)
    params: list[click.Parameter] = getattr(dummy, "__click_params__", [])
    return tuple(str(param.name) for param in reversed(params))  # click stores them last first


def option_group(name: str, build: Callable[..., T], *options: Decorator) -> Callable[[F], F]:
    """Add ``options`` to a command, which gets one keyword argument ``name`` instead:
    ``build(**values of those options)``, e.g. a frozen dataclass.

    Example:
        >>> @dataclass(frozen=True)
        ... class Size:
        ...     width: int
        >>> @click.command()
        ... @option_group("size", Size, click.option("--width", type=POSITIVE_INT, default=1))
        ... def draw(size: Size) -> None:
        ...     click.echo(size.width)
    """
    names = option_names(*options)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def command(*args: Any, **values: Any) -> Any:
            group = {key: values.pop(key) for key in names}
            return func(*args, **values, **{name: build(**group)})

        return stack(*options)(command)  # type: ignore[return-value]

    return decorate


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


@dataclass(frozen=True)
class ClusterOptions:
    """Where the cluster is: ``es_url`` and its credentials, or the local node of ``engine``.

    Attributes:
        es_url: cluster URL; ``None`` uses (and starts) the local node of ``engine``.
        api_key / username / password: credentials for ``es_url``.
        ca_certs: PEM file of the CA that signed the cluster certificate.
        insecure: do not verify the cluster's TLS certificate.
        engine: the local node's engine.
        cache_dir: downloads, assembled engines, local node state and checkpoints.
    """

    es_url: str | None
    api_key: str | None = field(repr=False)
    username: str | None
    password: str | None = field(repr=False)
    ca_certs: Path | None
    insecure: bool
    engine: Engine
    cache_dir: Path


cluster_options = option_group(
    "cluster",
    ClusterOptions,
    click.option(
        "--es-url",
        envvar="ES_URL",
        help="Cluster URL (env ES_URL). Without it, a local node is used (and started).",
    ),
    click.option("--api-key", envvar="ES_API_KEY", help="API key (env ES_API_KEY)."),
    click.option("--username", envvar="ES_USERNAME", help="Basic-auth user (env ES_USERNAME)."),
    click.option("--password", envvar="ES_PASSWORD", help="Basic-auth password (env ES_PASSWORD)."),
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
)
"""Add --es-url, auth and TLS options, and --engine/--cache-dir: the command gets ``cluster``."""


def open_cluster(options: ClusterOptions) -> Cluster:
    """Connect to ``options.es_url``, or to the local node (started if it is not running)."""
    config = cluster_config(options)
    if config is None:
        return _local_cluster(options.engine, options.cache_dir)
    return connect(config)


def cluster_config(options: ClusterOptions) -> ClusterConfig | None:
    """The config for ``options.es_url`` and its credentials (``None`` without a URL: the
    local node, whose URL is known once it runs)."""
    if options.es_url is None:
        return None
    return ClusterConfig(
        url=options.es_url,
        api_key=options.api_key,
        username=options.username,
        password=options.password,
        ca_certs=options.ca_certs,
        verify_certs=not options.insecure,
    )


@contextmanager
def launch_messages() -> Iterator[None]:
    """Within the block, the local-node launcher's progress (download, unpacking, start,
    ready) is written to stderr as plain lines, whatever the log level.

    The launcher logs these steps at INFO under ``splade_es.engines``; a first start
    downloads an engine and takes minutes, which must not pass in silence.
    """
    engines = logging.getLogger("splade_es.engines")
    if any(isinstance(h, _LaunchHandler) for h in engines.handlers):
        yield  # already on in an outer block: one line per message, not two
        return
    handler = _LaunchHandler(sys.stderr)
    saved = engines.level, engines.propagate
    engines.setLevel(min(logging.INFO, engines.getEffectiveLevel()))
    engines.propagate = False  # with -v, the root handler would print each line again
    engines.addHandler(handler)
    try:
        yield
    finally:
        engines.removeHandler(handler)
        engines.setLevel(saved[0])
        engines.propagate = saved[1]


class _LaunchHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The launcher's lines as plain text; warnings and errors keep their level."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"{record.levelname}: {text}" if record.levelno >= logging.WARNING else text


def _local_cluster(engine: Engine, cache_dir: Path) -> Cluster:
    """The local node of ``engine``, started unless it runs; says which, and how to stop it."""
    state = state_file(cache_dir, engine)
    before, health = node_status(state)
    config = NodeConfig(engine=engine, state_file=state, cache_dir=cache_dir)
    with launch_messages():
        info = start_node(config, os.environ)
    implied = (default_cache_dir(), Path(os.environ.get("SPLADE_ES_CACHE_DIR", "")))
    where = "" if cache_dir in implied else f" --cache-dir {cache_dir}"
    stop = f"stop it with 'splade-es node stop --engine {engine}{where}'"
    if before is not None and health is not None and before.pid == info.pid:
        click.echo(
            f"Using the local {engine} {info.version} node at {info.url} ({stop}).", err=True
        )
    else:
        click.echo(
            f"Started a local {engine} {info.version} node at {info.url} in "
            f"{info.start_seconds:.0f} s (no --es-url given). It keeps running for the next "
            f"commands; {stop}.",
            err=True,
        )
    urls = ",".join(member.url for member in info.members) or info.url  # every member
    return connect(ClusterConfig(url=urls, engine=engine))


def device_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--device`` checked at parse time, with the same message as the Python API."""
    try:
        return check_device(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None
