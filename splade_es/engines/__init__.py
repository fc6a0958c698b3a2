"""Local Elasticsearch and OpenSearch nodes for development and tests, without Docker."""

from splade_es.engines.install import InstallError, install
from splade_es.engines.java import JavaNotFoundError, find_jdk
from splade_es.engines.maven import ArtifactError
from splade_es.engines.node import (
    NodeConfig,
    NodeError,
    NodeInfo,
    node_status,
    start_node,
    stop_node,
)
from splade_es.engines.security import NodeAccess, SecuritySetupError
from splade_es.engines.spec import ENGINES, Engine, EngineSpec, engine_spec

__all__ = [
    "ENGINES",
    "ArtifactError",
    "Engine",
    "EngineSpec",
    "InstallError",
    "JavaNotFoundError",
    "NodeAccess",
    "NodeConfig",
    "NodeError",
    "NodeInfo",
    "SecuritySetupError",
    "engine_spec",
    "find_jdk",
    "install",
    "node_status",
    "start_node",
    "stop_node",
]
