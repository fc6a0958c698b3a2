"""``splade-es node``: a local Elasticsearch/OpenSearch node for development, without Docker."""

from __future__ import annotations

import os
from pathlib import Path

import click

from splade_es.cli.options import (
    PORT,
    POSITIVE_INT,
    cache_dir_option,
    launch_messages,
    state_file,
)
from splade_es.engines import (
    ENGINES,
    MemberStatus,
    NodeConfig,
    NodeInfo,
    member_statuses,
    node_status,
    start_node,
    stop_node,
)


@click.group()
def node() -> None:
    """Start, inspect and stop local nodes (downloaded once into the cache via mvn)."""


@node.command()
@click.option("--engine", type=click.Choice(ENGINES), default="elasticsearch", show_default=True)
@click.option("--version", "version", help="Engine version (default: the tested one).")
@click.option("--port", type=PORT, help="HTTP port (of the first node; default: a free one).")
@click.option(
    "--heap", default="1g", show_default=True, help="JVM heap of each node, e.g. 512m or 2g."
)
@click.option(
    "--nodes",
    type=POSITIVE_INT,
    default=1,
    show_default=True,
    help="Nodes of the local cluster, all on this machine (1: a single node; 3: a cluster "
    "with replicas that survives losing one node). Not with --secure.",
)
@click.option(
    "--java-home",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="JDK to use (default: ES_JAVA_HOME/OPENSEARCH_JAVA_HOME, JAVA_HOME, then installed JDKs).",
)
@click.option(
    "--home",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run this engine installation instead of downloading the test distribution.",
)
@click.option(
    "--run-as",
    default="nobody",
    show_default=True,
    help="User to run the node as when started by root (the engines refuse root).",
)
@click.option(
    "--secure",
    is_flag=True,
    help="OpenSearch only: TLS with a CA made at start, and basic auth for user 'admin' "
    "with a random password (stored in a file readable by you only; never printed).",
)
@cache_dir_option
def start(
    engine: str,
    version: str | None,
    port: int | None,
    heap: str,
    java_home: Path | None,
    home: Path | None,
    run_as: str,
    secure: bool,
    nodes: int,
    cache_dir: Path,
) -> None:
    """Start a node (or a cluster of --nodes) in the background; the last line printed is
    the URL of its first node."""
    config = NodeConfig(
        engine=engine,  # type: ignore[arg-type]
        state_file=state_file(cache_dir, engine),
        cache_dir=cache_dir,
        version=version,
        http_port=port,
        heap=heap,
        java_home=java_home,
        home=home,
        run_as=run_as,
        secure=secure,
        nodes=nodes,
    )
    with launch_messages():
        info = start_node(config, os.environ)
    _echo_started(info, nodes)
    access = info.access
    if access is not None:
        click.echo(f"TLS CA certificate: {access.ca_certs}  (--ca-certs / ES_CA_CERTS)")
        click.echo(
            f"User: {access.username}; password in {access.password_file} (mode 0600), e.g. "
            f'ES_PASSWORD="$(cat {access.password_file})"'
        )
    click.echo(info.url)


def _echo_started(info: NodeInfo, asked: int) -> None:
    if len(info.nodes) != asked:
        click.echo(
            f"Warning: the {info.engine} cluster already running has {len(info.nodes)} "
            f"node(s), not {asked} (--nodes counts at start only): stop it first to change it.",
            err=True,
        )
    click.echo(
        f"{info.engine} {info.version} running (pid {info.pid}, Java {info.java_feature}, "
        f"up in {info.start_seconds:.1f}s, log {info.log_file})"
    )
    if info.members:
        click.echo(f"{len(info.members)} nodes:")
        for member in info.members:
            click.echo(f"  {member.name} at {member.url} (pid {member.pid}, log {member.log_file})")


@node.command()
@click.option("--engine", type=click.Choice(ENGINES), help="Only this engine (default: all).")
@cache_dir_option
def status(engine: str | None, cache_dir: Path) -> None:
    """Show local nodes (each node of a cluster); exit code 3 when the asked-for node is not
    running."""
    running = 0
    for name in [engine] if engine else list(ENGINES):
        info, health = node_status(state_file(cache_dir, name))
        if info is None:
            click.echo(f"{name}: not started")
        elif health is None:
            click.echo(
                f"{name}: not answering (pid {info.pid}, was {info.url}, log {info.log_file})"
            )
        elif not info.members:
            running += 1
            click.echo(
                f"{name} {info.version}: {health.get('status')} at {info.url} (pid {info.pid})"
            )
        else:
            running += 1
            click.echo(
                f"{name} {info.version}: {health.get('status')}, "
                f"{health.get('number_of_nodes')} of {len(info.members)} nodes in the cluster"
            )
        if info is not None and info.members:
            for each in member_statuses(state_file(cache_dir, name)):
                click.echo(_member_line(each))
    if engine and running == 0:
        raise click.exceptions.Exit(3)


def _member_line(status: MemberStatus) -> str:
    member = status.member
    if status.answering:
        state = f"running at {member.url}"
    elif status.running:
        state = f"not answering at {member.url}"
    else:
        state = f"not running (was {member.url})"
    return f"  {member.name}: {state} (pid {member.pid}, log {member.log_file})"


@node.command()
@click.option("--engine", type=click.Choice(ENGINES), default="elasticsearch", show_default=True)
@cache_dir_option
def stop(engine: str, cache_dir: Path) -> None:
    """Stop the node (every node of a cluster) and delete its data folders."""
    info = stop_node(state_file(cache_dir, engine))
    if info is None:
        click.echo(f"{engine}: no node was started")
    elif info.members:
        click.echo(f"{engine} {info.version}: {len(info.members)} nodes from {info.url} stopped")
    else:
        click.echo(f"{engine} {info.version} at {info.url} stopped")
