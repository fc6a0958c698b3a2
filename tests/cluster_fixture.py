"""Three-node local clusters (one per engine) started with the package's launcher.

Use them by importing the fixtures into a test module (pytest finds fixtures in its
namespace)::

    from cluster_fixture import es_multinode, multinode, multinode_engine, opensearch_multinode

* ``es_multinode`` / ``opensearch_multinode`` (session): the engine's :class:`LocalCluster`,
  started on first use, stopped at the end of the session.
* ``multinode`` (per test, once per engine): the same object, restarted first when a
  previous test killed or stopped a member. Its engine comes from ``multinode_engine``, a
  session fixture with one parameter per engine, so pytest runs one engine's tests together
  and stops that cluster before it starts the other's (2 CPUs do not run six JVMs well).

Mark the tests ``multinode``. Each cluster has a state folder of its own (``cache_dir``,
for ``splade-es node ... --cache-dir``); downloads come from the suite's shared cache.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import cache_dir
from splade_es.cluster.connection import Cluster, ClusterConfig, connect
from splade_es.engines import (
    NodeConfig,
    NodeInfo,
    member_statuses,
    member_urls,
    node_status,
    start_node,
    stop_node,
)

NODES = 3
HEAP = "512m"


class LocalCluster:
    """A three-node cluster of one engine on this machine, shared by the tests of a session.

    Attributes:
        engine: ``elasticsearch`` or ``opensearch``.
        cache_dir: its own cache folder: ``splade-es node status --cache-dir`` finds it there.
        state_file: ``cache_dir/nodes/<engine>.json``, for the launcher's Python API.
        info: the cluster as started last (``None`` before the first start).
    """

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.cache_dir = Path(tempfile.mkdtemp(prefix=f"splade-es-multinode-{engine}-"))
        self.state_file = self.cache_dir / "nodes" / f"{engine}.json"
        self.info: NodeInfo | None = None
        self._cluster: Cluster | None = None
        self.users = 0

    @property
    def urls(self) -> tuple[str, ...]:
        """Every member's URL, ``node-1`` first."""
        return member_urls(self.state_file)

    @property
    def cluster(self) -> Cluster:
        """A client connected to ``node-1`` (the member fault tests never kill)."""
        if self._cluster is None:
            raise RuntimeError(f"The {self.engine} cluster is not started: call ensure().")
        return self._cluster

    def whole(self) -> bool:
        """Whether all members run, answer, and see each other."""
        statuses = member_statuses(self.state_file)
        if len(statuses) != NODES or not all(s.answering for s in statuses):
            return False
        _, health = node_status(self.state_file)
        return health is not None and health.get("number_of_nodes") == NODES

    def ensure(self) -> LocalCluster:
        """Start the cluster, or start it again when it is not whole; return ``self``."""
        if not self.whole():
            self.stop()
            config = NodeConfig(
                engine=self.engine,  # type: ignore[arg-type]
                state_file=self.state_file,
                cache_dir=cache_dir(),
                heap=HEAP,
                nodes=NODES,
            )
            self.info = start_node(config, os.environ)
            self._cluster = connect(ClusterConfig(url=self.info.url, engine=self.engine))  # type: ignore[arg-type]
        return self

    def stop(self) -> None:
        """Stop every member (those still running) and forget the client."""
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        stop_node(self.state_file)


_CLUSTERS: dict[str, LocalCluster] = {}


def _acquire(engine: str) -> LocalCluster:
    holder = _CLUSTERS.get(engine)
    if holder is None:
        holder = _CLUSTERS[engine] = LocalCluster(engine)
    holder.users += 1
    return holder.ensure()


def _release(holder: LocalCluster) -> None:
    holder.users -= 1
    if holder.users == 0:
        holder.stop()
        shutil.rmtree(holder.cache_dir, ignore_errors=True)
        del _CLUSTERS[holder.engine]


def _session(engine: str) -> Iterator[LocalCluster]:
    holder = _acquire(engine)
    try:
        yield holder
    finally:
        _release(holder)


@pytest.fixture(scope="session")
def es_multinode() -> Iterator[LocalCluster]:
    """A three-node Elasticsearch cluster for the session."""
    yield from _session("elasticsearch")


@pytest.fixture(scope="session")
def opensearch_multinode() -> Iterator[LocalCluster]:
    """A three-node OpenSearch cluster for the session."""
    yield from _session("opensearch")


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("elasticsearch", marks=pytest.mark.multinode),
        pytest.param("opensearch", marks=pytest.mark.multinode),
    ],
)
def multinode_engine(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """One engine's cluster at a time: pytest stops it when the parameter changes."""
    yield from _session(request.param)


@pytest.fixture
def multinode(multinode_engine: LocalCluster) -> LocalCluster:
    """The engine's three-node cluster, whole (restarted if a test broke it)."""
    return multinode_engine.ensure()
