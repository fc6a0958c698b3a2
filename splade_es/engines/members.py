"""The processes of a local cluster: start every member at once and wait until all joined,
list them, SIGKILL one (fault tests), stop them all and delete their folders.

A single node is a cluster of one member here; its state file and messages are those of
the single-node launcher. The layout (names, ports, discovery settings) comes from
:mod:`~splade_es.engines.cluster_layout`; each member's folder from
:mod:`~splade_es.engines.workspace`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from splade_es.engines.cluster_layout import ClusterLayout, MemberLayout
from splade_es.engines.install import locked
from splade_es.engines.node_state import (
    MemberInfo,
    NodeError,
    NodeInfo,
    health,
    member_running,
    read_state,
    write_state,
)
from splade_es.engines.processes import is_gone, kill_group, log_tail, spawn
from splade_es.engines.security import NodeAccess
from splade_es.engines.spec import EngineSpec, node_environment
from splade_es.engines.workspace import prepare_workspace

__all__ = [
    "MemberLaunch",
    "MemberStatus",
    "kill_member",
    "launch_members",
    "member_statuses",
    "member_urls",
    "remove_members",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemberLaunch:
    """What every member of a local cluster starts from.

    Attributes:
        spec: the engine.
        home: the installed engine home (shared, read-only; each member links into it).
        java_home / java_feature: the JDK and its feature release.
        heap: JVM heap of each member (``-Xms`` and ``-Xmx``).
        secure: TLS and basic auth (a single node only).
        run_as: the user members run as when this process is root.
        state_file: where the started cluster is recorded.
        timeout_s: how long all members may take to answer together.
    """

    spec: EngineSpec
    home: Path
    java_home: Path
    java_feature: int
    heap: str
    secure: bool
    run_as: str
    state_file: Path
    timeout_s: float


@dataclass(frozen=True)
class MemberStatus:
    """How one member of a recorded cluster is doing.

    Attributes:
        member: the member as recorded.
        running: its process still runs.
        answering: it answers HTTP (``_cluster/health``).
    """

    member: MemberInfo
    running: bool
    answering: bool


@dataclass(frozen=True)
class _Started:
    member: MemberInfo
    process: subprocess.Popen[bytes]
    access: NodeAccess | None


def launch_members(
    launch: MemberLaunch,
    layout: ClusterLayout,
    environ: Mapping[str, str],
    notice_s: float,
) -> NodeInfo:
    """Start every member of ``layout`` at once, wait until the first one answers with all
    of them joined (health green or yellow), record the cluster and return it.

    Raises:
        NodeError: a member exited, or they did not all join within ``launch.timeout_s``
            (the message holds the end of a log); every member is then stopped and its
            folder deleted.
    """
    started = time.monotonic()
    running: list[_Started] = []
    try:
        for member in layout.members:
            running.append(_start_member(launch, member, len(layout.members) == 1, environ))
        _announce(launch, running)
        info = _record(launch, running)
        return _await_members(launch, info, [r.process for r in running], started, notice_s)
    except BaseException:
        for each in running:
            kill_group(each.process.pid, 10.0)
            shutil.rmtree(each.member.work_dir, ignore_errors=True)
        raise


def _announce(launch: MemberLaunch, running: Sequence[_Started]) -> None:
    spec, logs = launch.spec, ", ".join(r.member.log_file for r in running)
    if len(running) == 1:
        what, heap = f"{spec.engine} {spec.version}", launch.heap
    else:
        what = f"a cluster of {len(running)} {spec.engine} {spec.version} nodes"
        heap = f"{launch.heap} each"
    logger.info("starting %s (Java %d, heap %s, log %s) ...", what, launch.java_feature, heap, logs)


def _start_member(
    launch: MemberLaunch, member: MemberLayout, single: bool, environ: Mapping[str, str]
) -> _Started:
    """Lay out a fresh folder for ``member`` and spawn it (in the background)."""
    spec = launch.spec
    prefix = f"splade-es-{spec.engine}-" + ("" if single else f"{member.name}-")
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        space = prepare_workspace(
            launch.home, work, launch.java_home, secure=launch.secure, run_as=launch.run_as
        )
        command = [
            str(space.home / "bin" / spec.launcher),
            *member.arguments(data=str(work / "data"), logs=str(work / "logs")),
        ]
        env = node_environment(
            spec, environ, launch.java_home, space.conf, work / "tmp", launch.heap
        )
        log_file = work / "console.log"
        process = spawn(command, cwd=work, env=env, log_file=log_file, user=space.user)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    scheme = "https" if space.access else "http"
    url = f"{scheme}://127.0.0.1:{member.http_port}"
    info = MemberInfo(member.name, process.pid, url, str(work), str(log_file))
    return _Started(info, process, space.access)


def _record(launch: MemberLaunch, running: Sequence[_Started]) -> NodeInfo:
    first, access = running[0].member, running[0].access
    return NodeInfo(
        engine=launch.spec.engine,
        version=launch.spec.version,
        url=first.url,
        pid=first.pid,
        work_dir=first.work_dir,
        log_file=first.log_file,
        java_home=str(launch.java_home),
        java_feature=launch.java_feature,
        start_seconds=0.0,
        ca_certs=str(access.ca_certs) if access else "",
        username=access.username if access else "",
        password_file=str(access.password_file) if access else "",
        members=tuple(r.member for r in running) if len(running) > 1 else (),
    )


def _await_members(
    launch: MemberLaunch,
    info: NodeInfo,
    processes: Sequence[subprocess.Popen[bytes]],
    started: float,
    notice_s: float,
) -> NodeInfo:
    """Wait until the first member reports green or yellow health with every member joined,
    then record the cluster in its state file.

    Raises:
        NodeError: a member exited, or the cluster did not form within the timeout.
    """
    count = len(processes)
    deadline = started + launch.timeout_s
    said, joined = started, 0
    while time.monotonic() < deadline:
        if time.monotonic() - said >= notice_s:
            said = time.monotonic()
            progress = f" ({joined} of {count} nodes joined)" if count > 1 else ""
            logger.info(
                "still starting %s, %.0f s so far%s ...", info.engine, said - started, progress
            )
        _check_exits(info, processes)
        state = health(info.url, timeout_s=1.0, access=info.access)
        joined = _joined(state)
        if (
            state is not None
            and state.get("status") in ("green", "yellow")
            and (count == 1 or joined >= count)
        ):
            info = replace(info, start_seconds=time.monotonic() - started)
            write_state(launch.state_file, info)
            logger.info(
                "%s %s ready at %s in %.0f s",
                info.engine,
                info.version,
                info.url,
                info.start_seconds,
            )
            return info
        time.sleep(0.5)
    raise NodeError(_timeout_message(launch, info, count, joined))


def _joined(state: Mapping[str, object] | None) -> int:
    nodes = None if state is None else state.get("number_of_nodes")
    return nodes if isinstance(nodes, int) else 0


def _check_exits(info: NodeInfo, processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for member, process in zip(info.nodes, processes, strict=True):
        if process.poll() is not None:
            who = f"{info.engine} {info.version}"
            if len(processes) > 1:
                who += f" node {member.name}"
            raise NodeError(
                f"{who} exited with code {process.returncode} while starting. End of "
                f"{member.log_file}:\n{log_tail(Path(member.log_file))}"
            )


def _timeout_message(launch: MemberLaunch, info: NodeInfo, count: int, joined: int) -> str:
    tail = log_tail(Path(info.log_file))
    if count == 1:
        return (
            f"{info.engine} {info.version} did not answer at {info.url} within "
            f"{launch.timeout_s:.0f}s. End of its log:\n{tail}"
        )
    return (
        f"{info.engine} {info.version}: {joined} of {count} nodes had joined the cluster at "
        f"{info.url} after {launch.timeout_s:.0f}s (each node's log is console.log in its "
        f"folder; a slow machine may need a longer startup timeout or fewer nodes). End of "
        f"{info.log_file}:\n{tail}"
    )


def remove_members(info: NodeInfo, state_file: Path, timeout_s: float = 60.0) -> None:
    """Stop every member of ``info`` that still runs (all at once: SIGTERM, then SIGKILL after
    ``timeout_s``), delete their folders and the state file."""
    alive = [m for m in info.nodes if member_running(m)]
    if alive:
        with ThreadPoolExecutor(len(alive)) as pool:
            list(pool.map(lambda m: kill_group(m.pid, timeout_s), alive))
    for member in info.nodes:
        work = Path(member.work_dir)
        if work.name.startswith(f"splade-es-{info.engine}-"):
            shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        state_file.unlink()


def kill_member(state_file: Path, name: str, timeout_s: float = 30.0) -> MemberInfo:
    """SIGKILL one member of the cluster recorded in ``state_file`` (a crash, for fault
    tests); the others keep running, and the state file still lists it (``node stop``
    deletes its folder with the others').

    Args:
        state_file: the cluster's state file.
        name: the member, e.g. ``node-2`` (see :func:`member_statuses`).
        timeout_s: how long to wait for its processes to be gone.

    Returns:
        The member as recorded.

    Raises:
        NodeError: no cluster is recorded, or it has no member ``name``.

    Example:
        >>> kill_member(state_file, "node-3").url  # doctest: +SKIP
        'http://127.0.0.1:40123'
    """
    with locked(state_file.with_suffix(".lock")):
        info = _recorded(state_file)
        names = [m.name for m in info.nodes]
        if name not in names:
            raise NodeError(
                f"The {info.engine} cluster in {state_file} has no node {name!r}: pass one of "
                f"{', '.join(names)}."
            )
        member = info.nodes[names.index(name)]
        if member_running(member):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(member.pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout_s
            while not is_gone(member.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        return member


def member_urls(state_file: Path) -> tuple[str, ...]:
    """The URL of every member of the cluster recorded in ``state_file``, first one first.

    Raises:
        NodeError: no cluster is recorded there.
    """
    return tuple(m.url for m in _recorded(state_file).nodes)


def member_statuses(state_file: Path) -> tuple[MemberStatus, ...]:
    """Whether each member of the recorded cluster runs and answers (empty: none recorded)."""
    info = read_state(state_file)
    if info is None:
        return ()
    statuses = []
    for member in info.nodes:
        running = member_running(member)
        answering = running and health(member.url, access=info.access) is not None
        statuses.append(MemberStatus(member, running, answering))
    return tuple(statuses)


def _recorded(state_file: Path) -> NodeInfo:
    info = read_state(state_file)
    if info is None:
        raise NodeError(
            f"No node or cluster is recorded in {state_file}: start one first (splade-es node "
            "start --nodes 3, or start_node)."
        )
    return info
