"""Local Elasticsearch and OpenSearch nodes for development and tests, without Docker."""

from splade_es.engines.cluster_layout import ClusterLayout, MemberLayout, cluster_layout
from splade_es.engines.install import InstallError, install
from splade_es.engines.java import JavaNotFoundError, find_jdk
from splade_es.engines.maven import ArtifactError
from splade_es.engines.members import MemberStatus, kill_member, member_statuses, member_urls
from splade_es.engines.node import (
    NodeConfig,
    NodeError,
    NodeInfo,
    node_status,
    start_node,
    stop_node,
)
from splade_es.engines.node_state import MemberInfo
from splade_es.engines.security import NodeAccess, SecuritySetupError
from splade_es.engines.spec import ENGINES, Engine, EngineSpec, engine_spec

__all__ = [
    "ENGINES",
    "ArtifactError",
    "ClusterLayout",
    "Engine",
    "EngineSpec",
    "InstallError",
    "JavaNotFoundError",
    "MemberInfo",
    "MemberLayout",
    "MemberStatus",
    "NodeAccess",
    "NodeConfig",
    "NodeError",
    "NodeInfo",
    "SecuritySetupError",
    "cluster_layout",
    "engine_spec",
    "find_jdk",
    "install",
    "kill_member",
    "member_statuses",
    "member_urls",
    "node_status",
    "start_node",
    "stop_node",
]
