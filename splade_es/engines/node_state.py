"""What a started local node or cluster leaves behind: its state file, and how to tell
whether each member still runs and answers.

The state file is JSON (:class:`NodeInfo`). Its top-level fields describe the first (or
only) node, as they did before clusters; ``members`` lists every member of a cluster of
several nodes and is empty for a single node.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from splade_es.engines.processes import pid_runs
from splade_es.engines.security import NodeAccess, secured_health

__all__ = [
    "MemberInfo",
    "NodeError",
    "NodeInfo",
    "health",
    "is_alive",
    "member_running",
    "read_state",
    "write_state",
]


class NodeError(RuntimeError):
    """The node could not be started, or is not running."""


@dataclass(frozen=True)
class MemberInfo:
    """One member (node) of a started local cluster.

    Attributes:
        name: its ``node.name`` (``node-1`` ...).
        pid: its process-group id.
        url: its HTTP(S) URL.
        work_dir: its config, data, logs and temp files (deleted when it is stopped).
        log_file: its console output.
    """

    name: str
    pid: int
    url: str
    work_dir: str
    log_file: str


@dataclass(frozen=True)
class NodeInfo:
    """A started node (or cluster), as written to its state file.

    ``url``, ``pid``, ``work_dir`` and ``log_file`` are those of the first node; ``members``
    lists every member of a cluster of several nodes (empty for a single node).
    """

    engine: str
    version: str
    url: str
    pid: int
    work_dir: str
    log_file: str
    java_home: str
    java_feature: int
    start_seconds: float
    ca_certs: str = ""
    username: str = ""
    password_file: str = ""
    members: tuple[MemberInfo, ...] = field(default=())

    @property
    def access(self) -> NodeAccess | None:
        """How to reach a secured node (CA, user, password file); ``None`` when open."""
        if not self.ca_certs:
            return None
        return NodeAccess(Path(self.ca_certs), self.username, Path(self.password_file))

    @property
    def nodes(self) -> tuple[MemberInfo, ...]:
        """Every member: ``members``, or the single node as ``node-1``."""
        if self.members:
            return self.members
        return (MemberInfo("node-1", self.pid, self.url, self.work_dir, self.log_file),)

    def to_json(self) -> str:
        """The state file's text (a single node's has no ``members`` key, as before)."""
        data: dict[str, Any] = asdict(self)
        if not self.members:
            del data["members"]
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> NodeInfo:
        """Read a state file's text (one written before clusters too)."""
        data = json.loads(text)
        members = tuple(MemberInfo(**m) for m in data.pop("members", ()))
        return cls(**data, members=members)


def read_state(state_file: Path) -> NodeInfo | None:
    """The node recorded in ``state_file``, or ``None`` when there is no such file.

    Raises:
        NodeError: the file is not a node state file (says to delete it).
    """
    if not state_file.is_file():
        return None
    try:
        return NodeInfo.from_json(state_file.read_text())
    except (ValueError, TypeError) as error:
        raise NodeError(
            f"{state_file} is not a node state file ({error}); delete it and start again."
        ) from error


def write_state(state_file: Path, info: NodeInfo) -> None:
    """Record ``info`` in ``state_file`` (replaced at once: never half-written)."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = state_file.with_suffix(".tmp")
    temporary.write_text(info.to_json())
    os.replace(temporary, state_file)


def is_alive(info: NodeInfo) -> bool:
    """Whether the first node's process still runs (and is still that node, not a reused
    pid)."""
    return pid_runs(info.pid, info.work_dir.encode())


def member_running(member: MemberInfo) -> bool:
    """Whether ``member``'s process still runs (and is still that node)."""
    return pid_runs(member.pid, member.work_dir.encode())


def health(
    url: str, timeout_s: float = 2.0, access: NodeAccess | None = None
) -> dict[str, object] | None:
    """``_cluster/health`` of a local node, or ``None`` if it does not answer."""
    if access is not None:
        return secured_health(url, access, timeout_s)
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=timeout_s) as response:
            body: dict[str, object] = json.loads(response.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None
