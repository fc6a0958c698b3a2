"""Start, inspect and stop a local Elasticsearch or OpenSearch node, or a cluster of several.

Each node runs in the background in its own process group, bound to 127.0.0.1 on free ports,
with its config, data, logs and temp files in a fresh folder under the system temp dir. A
small JSON state file (by default ``~/.cache/splade-es/nodes/<engine>.json``) records how to
find and stop it (every member, for a cluster). Both engines refuse to run as root, so when
this process is root the node runs as an unprivileged user (``nobody`` unless told otherwise).

A cluster (``nodes`` > 1) is laid out by :mod:`~splade_es.engines.cluster_layout` and its
processes handled by :mod:`~splade_es.engines.members`; the state file types live in
:mod:`~splade_es.engines.node_state`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from splade_es.engines.cluster_layout import (
    ClusterLayout,
    cluster_layout,
    cluster_startup_timeout,
)
from splade_es.engines.install import install, locked
from splade_es.engines.java import find_jdk
from splade_es.engines.members import MemberLaunch, launch_members, remove_members
from splade_es.engines.node_state import (
    MemberInfo,
    NodeError,
    NodeInfo,
    health,
    is_alive,
    member_running,
    read_state,
)
from splade_es.engines.spec import (
    SECURED_OPENSEARCH_VERSION,
    Engine,
    EngineSpec,
    engine_spec,
    localise_jvm_options,
    secured_opensearch_spec,
)

__all__ = [
    "WAITING_NOTICE_S",
    "MemberInfo",
    "NodeConfig",
    "NodeError",
    "NodeInfo",
    "free_ports",
    "health",
    "is_alive",
    "localise_jvm_options",
    "node_status",
    "read_state",
    "start_node",
    "stop_node",
]

logger = logging.getLogger(__name__)

WAITING_NOTICE_S = 10.0
"""While a node starts, a "still starting" message is logged this often (seconds)."""


@dataclass(frozen=True)
class NodeConfig:
    """How to run one local node, or a local cluster of several.

    Attributes:
        engine: ``elasticsearch`` or ``opensearch``.
        state_file: where the running node is recorded (one node or cluster per state file).
        cache_dir: downloads and assembled distributions (``~/.cache/splade-es``).
        version: engine version; ``None`` for the tested default.
        http_port: fixed HTTP port (of the first node), or ``None`` for a free one.
        heap: JVM heap of each node, e.g. ``"512m"`` or ``"2g"`` (both -Xms and -Xmx).
        java_home: a JDK to use instead of searching for one.
        home: an engine installation to run instead of downloading the test distribution
            (e.g. a full Elasticsearch tarball unpacked, which has ``rank_features``).
        run_as: user to run the node as when this process is root.
        startup_timeout_s: how long to wait for one node to answer; a cluster waits longer
            (:func:`~splade_es.engines.cluster_layout.cluster_startup_timeout`).
        secure: OpenSearch only: TLS and basic auth (see :mod:`splade_es.engines.security`);
            the version defaults to the one the security plugin is published for.
        nodes: how many nodes: 1 is a single node (``discovery.type=single-node``); more
            form one cluster on this machine (seeded discovery, one folder and two ports
            each), all started at once.
    """

    engine: Engine
    state_file: Path
    cache_dir: Path
    version: str | None = None
    http_port: int | None = None
    heap: str = "512m"
    java_home: Path | None = None
    home: Path | None = None
    run_as: str = "nobody"
    startup_timeout_s: float = 240.0
    secure: bool = False
    nodes: int = 1

    def __post_init__(self) -> None:
        if self.secure and self.engine != "opensearch":
            raise ValueError(
                f"A secured node is available for OpenSearch only, not {self.engine!r} (the "
                "Elasticsearch test distribution has no security): pass --engine opensearch."
            )
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 1:
            raise ValueError(
                f"nodes={self.nodes!r}: expected an integer >= 1 (1 for a single node, e.g. 3 "
                "for a cluster)."
            )
        if self.secure and self.nodes > 1:
            raise ValueError(
                f"A secured cluster of {self.nodes} nodes is not supported: the launcher makes "
                "TLS certificates for one node only (its members would also need transport "
                "certificates). Pass --nodes 1 with --secure, or leave --secure out."
            )


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def start_node(config: NodeConfig, environ: Mapping[str, str]) -> NodeInfo:
    """Start the node (or cluster) described by ``config``, or return the one already
    running for its state file (whatever its size: ``nodes`` counts at start only).

    Args:
        config: what to run.
        environ: the caller's environment (JDK variables are read from it; the node gets a
            copy with its own variables set).

    Returns:
        The running node; ``url`` is ``http://127.0.0.1:<port>`` (``https`` when secure), of
        the first node of a cluster, and ``members`` lists every member of a cluster.

    Raises:
        NodeError: the node did not come up (the message holds the end of its log).
        JavaNotFoundError / ArtifactError / InstallError: a missing JDK or download.

    Example:
        >>> info = start_node(NodeConfig("opensearch", state, cache, nodes=3), os.environ)
        >>> [m.name for m in info.members]  # doctest: +SKIP
        ['node-1', 'node-2', 'node-3']
    """
    with locked(config.state_file.with_suffix(".lock")):
        existing = read_state(config.state_file)
        if existing is not None:
            if _answers(existing):
                if (existing.access is not None) != config.secure:
                    raise NodeError(
                        f"A {'secured' if existing.access else 'plain'} {existing.engine} node "
                        f"is already running at {existing.url} ({config.state_file}): stop it "
                        f"first with 'splade-es node stop --engine {existing.engine}'."
                    )
                logger.info("%s is already running at %s", existing.engine, existing.url)
                return existing
            remove_members(existing, config.state_file)
        return _start_new(config, environ)


def _answers(info: NodeInfo) -> bool:
    """Whether some member of ``info`` runs and answers."""
    return any(
        member_running(m) and health(m.url, access=info.access) is not None for m in info.nodes
    )


def _start_new(config: NodeConfig, environ: Mapping[str, str]) -> NodeInfo:
    if config.secure:
        spec = secured_opensearch_spec(config.version or SECURED_OPENSEARCH_VERSION)
    else:
        spec = engine_spec(config.engine, config.version)
    jdk = find_jdk(spec, environ, config.java_home)
    home = config.home.resolve() if config.home else install(spec, config.cache_dir)
    if not (home / "bin" / spec.launcher).is_file():
        raise NodeError(f"{home} has no bin/{spec.launcher}: pass an {spec.engine} home.")
    launch = MemberLaunch(
        spec=spec,
        home=home,
        java_home=jdk.home,
        java_feature=jdk.feature,
        heap=config.heap,
        secure=config.secure,
        run_as=config.run_as,
        state_file=config.state_file,
        timeout_s=cluster_startup_timeout(config.startup_timeout_s, config.nodes),
    )
    return launch_members(launch, _layout(config, spec), environ, WAITING_NOTICE_S)


def _layout(config: NodeConfig, spec: EngineSpec) -> ClusterLayout:
    """Names, ports and settings of each node; a cluster shares this machine's CPUs."""
    count = config.nodes
    ports = free_ports(2 * count)
    http_ports = [config.http_port or ports[0], *ports[1:count]]
    processors = max(1, (os.cpu_count() or 1) // count) if count > 1 else None
    return cluster_layout(
        spec,
        count,
        http_ports=http_ports,
        transport_ports=ports[count:],
        cluster_name=f"splade-es-{spec.engine}-{ports[count]}",
        processors=processors,
    )


def stop_node(state_file: Path, timeout_s: float = 60.0) -> NodeInfo | None:
    """Stop the node (every member of a cluster) recorded in ``state_file`` and delete its
    temp folders.

    Returns:
        The node that was stopped, or ``None`` if none was recorded.
    """
    with locked(state_file.with_suffix(".lock")):
        info = read_state(state_file)
        if info is None:
            return None
        remove_members(info, state_file, timeout_s)
        return info


def node_status(state_file: Path) -> tuple[NodeInfo | None, dict[str, object] | None]:
    """The recorded node and its cluster health, as the first member that runs and answers
    sees it (``None`` when none does)."""
    info = read_state(state_file)
    if info is None:
        return None, None
    for member in info.nodes:
        if member_running(member):
            state = health(member.url, access=info.access)
            if state is not None:
                return info, state
    return info, None
