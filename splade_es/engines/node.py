"""Start, inspect and stop a local single-node Elasticsearch or OpenSearch.

A node runs in the background in its own process group, bound to 127.0.0.1 on free ports,
with its config, data, logs and temp files in a fresh folder under the system temp dir. A
small JSON state file (by default ``~/.cache/splade-es/nodes/<engine>.json``) records how to
find and stop it. Both engines refuse to run as root, so when this process is root the node
runs as an unprivileged user (``nobody`` unless told otherwise).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from splade_es.engines.install import install, locked
from splade_es.engines.java import find_jdk
from splade_es.engines.processes import kill_group, link_or_copy, log_tail, pid_runs, spawn
from splade_es.engines.security import NodeAccess, configure, secured_health
from splade_es.engines.spec import (
    SECURED_OPENSEARCH_VERSION,
    Engine,
    EngineSpec,
    engine_spec,
    localise_jvm_options,
    node_environment,
    node_settings,
    secured_opensearch_spec,
)

logger = logging.getLogger(__name__)

WAITING_NOTICE_S = 10.0
"""While a node starts, a "still starting" message is logged this often (seconds)."""


class NodeError(RuntimeError):
    """The node could not be started, or is not running."""


@dataclass(frozen=True)
class NodeConfig:
    """How to run one local node.

    Attributes:
        engine: ``elasticsearch`` or ``opensearch``.
        state_file: where the running node is recorded (one node per state file).
        cache_dir: downloads and assembled distributions (``~/.cache/splade-es``).
        version: engine version; ``None`` for the tested default.
        http_port: fixed HTTP port, or ``None`` for a free one.
        heap: JVM heap, e.g. ``"512m"`` or ``"2g"`` (both -Xms and -Xmx).
        java_home: a JDK to use instead of searching for one.
        home: an engine installation to run instead of downloading the test distribution
            (e.g. a full Elasticsearch tarball unpacked, which has ``rank_features``).
        run_as: user to run the node as when this process is root.
        startup_timeout_s: how long to wait for the node to answer.
        secure: OpenSearch only: TLS and basic auth (see :mod:`splade_es.engines.security`);
            the version defaults to the one the security plugin is published for.
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

    def __post_init__(self) -> None:
        if self.secure and self.engine != "opensearch":
            raise ValueError(
                f"A secured node is available for OpenSearch only, not {self.engine!r} (the "
                "Elasticsearch test distribution has no security): pass --engine opensearch."
            )


@dataclass(frozen=True)
class NodeInfo:
    """A started node, as written to its state file."""

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

    @property
    def access(self) -> NodeAccess | None:
        """How to reach a secured node (CA, user, password file); ``None`` when open."""
        if not self.ca_certs:
            return None
        return NodeAccess(Path(self.ca_certs), self.username, Path(self.password_file))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> NodeInfo:
        return cls(**json.loads(text))


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


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


def read_state(state_file: Path) -> NodeInfo | None:
    if not state_file.is_file():
        return None
    try:
        return NodeInfo.from_json(state_file.read_text())
    except (ValueError, TypeError) as error:
        raise NodeError(
            f"{state_file} is not a node state file ({error}); delete it and start again."
        ) from error


def is_alive(info: NodeInfo) -> bool:
    """Whether the node's process still runs (and is still that node, not a reused pid)."""
    return pid_runs(info.pid, info.work_dir.encode())


def start_node(config: NodeConfig, environ: Mapping[str, str]) -> NodeInfo:
    """Start the node described by ``config``, or return the one already running for it.

    Args:
        config: what to run.
        environ: the caller's environment (JDK variables are read from it; the node gets a
            copy with its own variables set).

    Returns:
        The running node; ``url`` is ``http://127.0.0.1:<port>`` (``https`` when secure).

    Raises:
        NodeError: the node did not come up (the message holds the end of its log).
        JavaNotFoundError / ArtifactError / InstallError: a missing JDK or download.
    """
    with locked(config.state_file.with_suffix(".lock")):
        existing = read_state(config.state_file)
        if existing is not None:
            if is_alive(existing) and health(existing.url, access=existing.access) is not None:
                if (existing.access is not None) != config.secure:
                    raise NodeError(
                        f"A {'secured' if existing.access else 'plain'} {existing.engine} node "
                        f"is already running at {existing.url} ({config.state_file}): stop it "
                        f"first with 'splade-es node stop --engine {existing.engine}'."
                    )
                logger.info("%s is already running at %s", existing.engine, existing.url)
                return existing
            _cleanup(existing, config.state_file)
        return _start_new(config, environ)


def _start_new(config: NodeConfig, environ: Mapping[str, str]) -> NodeInfo:
    if config.secure:
        spec = secured_opensearch_spec(config.version or SECURED_OPENSEARCH_VERSION)
    else:
        spec = engine_spec(config.engine, config.version)
    jdk = find_jdk(spec, environ, config.java_home)
    home = config.home.resolve() if config.home else install(spec, config.cache_dir)
    if not (home / "bin" / spec.launcher).is_file():
        raise NodeError(f"{home} has no bin/{spec.launcher}: pass an {spec.engine} home.")

    work = Path(tempfile.mkdtemp(prefix=f"splade-es-{spec.engine}-"))
    try:
        return _launch(config, spec, jdk.home, jdk.feature, home, work, environ)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _launch(
    config: NodeConfig,
    spec: EngineSpec,
    java_home: Path,
    java_feature: int,
    home: Path,
    work: Path,
    environ: Mapping[str, str],
) -> NodeInfo:
    """Lay out ``work``, start the node from it, and wait until it answers."""
    node_home, conf, access, user = _prepare(config, home, work, java_home)
    spare_http, transport_port = free_ports(2)
    http_port = config.http_port or spare_http
    command = [
        str(node_home / "bin" / spec.launcher),
        *node_settings(
            spec,
            http_port=http_port,
            transport_port=transport_port,
            data=str(work / "data"),
            logs=str(work / "logs"),
        ),
    ]
    env = node_environment(spec, environ, java_home, conf, work / "tmp", config.heap)
    log_file = work / "console.log"
    logger.info(
        "starting %s %s (Java %d, heap %s, log %s) ...",
        spec.engine,
        spec.version,
        java_feature,
        config.heap,
        log_file,
    )
    started = time.monotonic()
    process = spawn(command, cwd=work, env=env, log_file=log_file, user=user)
    info = NodeInfo(
        engine=spec.engine,
        version=spec.version,
        url=f"{'https' if access else 'http'}://127.0.0.1:{http_port}",
        pid=process.pid,
        work_dir=str(work),
        log_file=str(log_file),
        java_home=str(java_home),
        java_feature=java_feature,
        start_seconds=0.0,
        ca_certs=str(access.ca_certs) if access else "",
        username=access.username if access else "",
        password_file=str(access.password_file) if access else "",
    )
    return _await_health(config, process, info, started)


def _prepare(
    config: NodeConfig, home: Path, work: Path, java_home: Path
) -> tuple[Path, Path, NodeAccess | None, str | None]:
    """The node's home (links into ``home``), its own config folder, its access (secured
    nodes) and the user it runs as, with ``data``, ``logs`` and ``tmp`` made in ``work``."""
    node_home = work / "home"
    shutil.copytree(home, node_home, copy_function=link_or_copy, symlinks=True)
    conf = work / "config"
    shutil.copytree(home / "config", conf)
    for name in ("data", "logs", "tmp"):
        (work / name).mkdir()
    jvm_options = conf / "jvm.options"
    if jvm_options.is_file():
        jvm_options.write_text(
            localise_jvm_options(jvm_options.read_text(), logs=work / "logs", data=work / "data")
        )
    access = None
    if config.secure:
        access = configure(conf, work / "client", home=node_home, java_home=java_home)
    user = _drop_to(config.run_as, work, [conf, work / "data", work / "logs", work / "tmp"])
    return node_home, conf, access, user


def _await_health(
    config: NodeConfig, process: subprocess.Popen[bytes], info: NodeInfo, started: float
) -> NodeInfo:
    """Wait for green or yellow health, then record the node in its state file.

    Raises:
        NodeError: the process exited, or the node did not answer within the timeout (then
            its process group is killed).
    """
    log_file = Path(info.log_file)
    deadline = started + config.startup_timeout_s
    said = started
    while time.monotonic() < deadline:
        if time.monotonic() - said >= WAITING_NOTICE_S:
            said = time.monotonic()
            logger.info("still starting %s, %.0f s so far ...", info.engine, said - started)
        if process.poll() is not None:
            raise NodeError(
                f"{info.engine} {info.version} exited with code {process.returncode} while "
                f"starting. End of {log_file}:\n{log_tail(log_file)}"
            )
        state = health(info.url, timeout_s=1.0, access=info.access)
        if state is not None and state.get("status") in ("green", "yellow"):
            info = NodeInfo(**{**asdict(info), "start_seconds": time.monotonic() - started})
            config.state_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = config.state_file.with_suffix(".tmp")
            temporary.write_text(info.to_json())
            os.replace(temporary, config.state_file)
            logger.info(
                "%s %s ready at %s in %.0f s",
                info.engine,
                info.version,
                info.url,
                info.start_seconds,
            )
            return info
        time.sleep(0.5)
    tail = log_tail(log_file)
    kill_group(process.pid)
    raise NodeError(
        f"{info.engine} {info.version} did not answer at {info.url} within "
        f"{config.startup_timeout_s:.0f}s. End of its log:\n{tail}"
    )


def stop_node(state_file: Path, timeout_s: float = 60.0) -> NodeInfo | None:
    """Stop the node recorded in ``state_file`` and delete its temp folder.

    Returns:
        The node that was stopped, or ``None`` if none was recorded.
    """
    with locked(state_file.with_suffix(".lock")):
        info = read_state(state_file)
        if info is None:
            return None
        if is_alive(info):
            kill_group(info.pid, timeout_s)
        _cleanup(info, state_file)
        return info


def node_status(state_file: Path) -> tuple[NodeInfo | None, dict[str, object] | None]:
    """The recorded node and its cluster health (``None`` when it does not answer)."""
    info = read_state(state_file)
    if info is None or not is_alive(info):
        return info, None
    return info, health(info.url, access=info.access)


def _cleanup(info: NodeInfo, state_file: Path) -> None:
    work = Path(info.work_dir)
    if work.name.startswith(f"splade-es-{info.engine}-"):
        shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        state_file.unlink()


def _drop_to(run_as: str, work: Path, writable: list[Path]) -> str | None:
    """When root, hand the node's writable folders to ``run_as``; return that user."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(run_as)
    except KeyError as error:
        raise NodeError(
            f"Running as root, the node must run as another user, and user {run_as!r} does "
            "not exist: pass --run-as with an existing unprivileged user."
        ) from error
    os.chmod(work, 0o755)
    for folder in writable:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return run_as
