"""The operating-system side of a local node: spawn it in its own process group (as another
user when asked), tell whether it still runs, stop the whole group, read its log's tail.

Linux-first (``/proc`` is read when present); nothing here knows which engine runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["is_gone", "kill_group", "link_or_copy", "log_tail", "pid_runs", "spawn"]


def spawn(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_file: Path,
    user: str | None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session (its own process group), output to ``log_file``.

    Args:
        command: the program and its arguments.
        cwd: its working folder.
        env: its whole environment.
        log_file: created (or truncated); receives stdout and stderr.
        user: run as this user with its primary group and no supplementary groups (needs
            root), or ``None`` to run as this process's user.

    Returns:
        The running process; its pid is also its process-group id.

    Example:
        >>> spawn(["sleep", "1"], cwd=Path("."), env={}, log_file=log, user=None)  # doctest: +SKIP
    """
    with log_file.open("wb") as log:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            group=_group_of(user) if user else None,
            extra_groups=[] if user else None,
        )


def pid_runs(pid: int, marker: bytes) -> bool:
    """Whether ``pid`` runs and is still the process started (its command line has ``marker``).

    A zombie counts as stopped; where ``/proc`` is missing, a live pid is trusted.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[-1].split()[0] == "Z":
                return False
            return marker in cmdline.read_bytes()
        except OSError:
            return False
    return True


def kill_group(pid: int, timeout_s: float = 60.0) -> None:
    """SIGTERM the process group ``pid``, SIGKILL it after ``timeout_s``, and reap it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_gone(pid):
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    while not is_gone(pid) and time.monotonic() < deadline + 10:
        time.sleep(0.1)


def is_gone(pid: int) -> bool:
    """Whether the process group ``pid`` has ended (reaping the leader if it is our child).

    A group left with zombies only has ended: its leader may be the child of another
    process (one that started the node and has not reaped it yet), which this process
    cannot reap.
    """
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _only_zombies(pid)


def _only_zombies(group: int) -> bool:
    """Whether every process of ``group`` is a zombie (``False`` where ``/proc`` is missing)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue  # ended while we looked
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
            return False
    return True


def link_or_copy(source: str, target: str) -> str:
    """Hard-link ``source`` to ``target``, or copy it where linking fails (``copytree`` hook)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log, after its first few error lines; ``(no log)``."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    relevant = [line for line in text if "ERROR" in line or "Exception" in line]
    return "\n".join(([*relevant[:5], "..."] if relevant else []) + text[-lines:])


def _group_of(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid
