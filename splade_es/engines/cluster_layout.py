"""How the members of a local cluster are laid out: names, ports, discovery and settings.

Pure builders: from the engine spec, the ports and a cluster name to each member's node
settings. One member is a single-node cluster (``discovery.type=single-node``), exactly as
:func:`~splade_es.engines.spec.node_settings` makes it; several members find each other
through ``discovery.seed_hosts`` (every transport port on 127.0.0.1) and elect the first
cluster manager among all of them (``cluster.initial_master_nodes`` on Elasticsearch,
``cluster.initial_cluster_manager_nodes`` on OpenSearch 2.x).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from splade_es.engines.spec import Engine, EngineSpec

__all__ = [
    "INITIAL_MANAGERS_SETTING",
    "ClusterLayout",
    "MemberLayout",
    "cluster_layout",
    "cluster_startup_timeout",
]

INITIAL_MANAGERS_SETTING: Mapping[Engine, str] = {
    # Elasticsearch 7 to 9 bootstrap the first election from this list.
    "elasticsearch": "cluster.initial_master_nodes",
    # OpenSearch 2.x renamed "master" to "cluster manager"; the old name is deprecated.
    "opensearch": "cluster.initial_cluster_manager_nodes",
}
"""The setting that lists the nodes of a new cluster's first election, per engine."""

_MULTI_NODE_DROPPED = ("discovery.type",)


@dataclass(frozen=True)
class MemberLayout:
    """One member of a local cluster.

    Attributes:
        name: its ``node.name`` (``node-1``, ``node-2``, ...).
        http_port / transport_port: its ports on 127.0.0.1.
        settings: every node setting but its paths, in order.
    """

    name: str
    http_port: int
    transport_port: int
    settings: tuple[tuple[str, str], ...]

    @property
    def url(self) -> str:
        """Its plain-HTTP URL (a secured node is reached over ``https`` instead)."""
        return f"http://127.0.0.1:{self.http_port}"

    def arguments(self, *, data: str, logs: str) -> list[str]:
        """Command-line ``-Ekey=value`` arguments, with its data and log folders.

        Example:
            >>> member.arguments(data="/tmp/n1/data", logs="/tmp/n1/logs")  # doctest: +SKIP
            ['-Ediscovery.type=single-node', ..., '-Epath.logs=/tmp/n1/logs']
        """
        pairs = [*self.settings, ("path.data", data), ("path.logs", logs)]
        return [f"-E{key}={value}" for key, value in pairs]


@dataclass(frozen=True)
class ClusterLayout:
    """Every member of a local cluster, first member first.

    Attributes:
        cluster_name: ``cluster.name`` of every member (unset for a single node).
        members: the members, named ``node-1`` ... ``node-N``.
    """

    cluster_name: str
    members: tuple[MemberLayout, ...]


def cluster_layout(
    spec: EngineSpec,
    nodes: int,
    *,
    http_ports: Sequence[int],
    transport_ports: Sequence[int],
    cluster_name: str,
    processors: int | None = None,
) -> ClusterLayout:
    """The settings of each member of an ``nodes``-node cluster of ``spec``'s engine.

    Args:
        spec: the engine (its fixed settings come first; a cluster drops
            ``discovery.type``).
        nodes: how many members, at least 1; 1 is a single-node cluster, set exactly as
            :func:`~splade_es.engines.spec.node_settings` sets one.
        http_ports / transport_ports: one port of each kind per member, all distinct.
        cluster_name: ``cluster.name`` of a cluster of several members.
        processors: ``node.processors`` of each member of a cluster (``None``: the engine
            counts the machine's CPUs for every member).

    Raises:
        ValueError: ``nodes`` below 1, a port count that is not ``nodes``, a port used
            twice, an empty cluster name, or ``processors`` below 1.

    Example:
        >>> layout = cluster_layout(spec, 3, http_ports=[9201, 9202, 9203],
        ...     transport_ports=[9301, 9302, 9303], cluster_name="dev")  # doctest: +SKIP
        >>> [m.name for m in layout.members]  # doctest: +SKIP
        ['node-1', 'node-2', 'node-3']
    """
    _check(nodes, http_ports, transport_ports, cluster_name, processors)
    names = [f"node-{i}" for i in range(1, nodes + 1)]
    seeds = ",".join(f"127.0.0.1:{port}" for port in transport_ports)
    shared: list[tuple[str, str]] = list(spec.settings)
    if nodes > 1:
        shared = [(k, v) for k, v in shared if k not in _MULTI_NODE_DROPPED]
        shared += [
            ("cluster.name", cluster_name),
            ("discovery.seed_hosts", seeds),
            (INITIAL_MANAGERS_SETTING[spec.engine], ",".join(names)),
        ]
        if processors is not None:
            shared.append(("node.processors", str(processors)))
    members = []
    for name, http, transport in zip(names, http_ports, transport_ports, strict=True):
        own = [("node.name", name)] if nodes > 1 else []
        ports = [("http.port", str(http)), ("transport.port", str(transport))]
        members.append(MemberLayout(name, http, transport, (*shared, *own, *ports)))
    return ClusterLayout(cluster_name, tuple(members))


def cluster_startup_timeout(per_node_s: float, nodes: int) -> float:
    """How long ``nodes`` members starting at once may take to form a cluster: the time of
    one node, plus half of it for each further member (their JVMs share the CPUs).

    Example:
        >>> cluster_startup_timeout(240.0, 3)
        480.0
    """
    return per_node_s * (1 + 0.5 * (max(nodes, 1) - 1))


def _check(
    nodes: int,
    http_ports: Sequence[int],
    transport_ports: Sequence[int],
    cluster_name: str,
    processors: int | None,
) -> None:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ValueError(
            f"nodes={nodes!r}: expected an integer >= 1 (1 for a single node, e.g. 3 for a "
            "cluster); pass --nodes 1 or more."
        )
    for kind, ports in (("http", http_ports), ("transport", transport_ports)):
        if len(ports) != nodes:
            raise ValueError(
                f"{len(ports)} {kind} port(s) {list(ports)} for {nodes} node(s): pass one "
                f"{kind} port per node."
            )
    every = [*http_ports, *transport_ports]
    repeated = sorted({port for port in every if every.count(port) > 1})
    if repeated:
        raise ValueError(
            f"Port(s) {repeated} given twice: each node needs its own HTTP and transport "
            "port (free_ports(2 * nodes) gives distinct ones)."
        )
    if nodes > 1 and not cluster_name.strip():
        raise ValueError(
            f"cluster_name={cluster_name!r}: a cluster of {nodes} nodes needs a name; pass "
            "e.g. 'splade-es-dev'."
        )
    if processors is not None and (isinstance(processors, bool) or processors < 1):
        raise ValueError(
            f"processors={processors!r}: expected an integer >= 1 or None (the engine's count)."
        )
