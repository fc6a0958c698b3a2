"""A node's own folder: its home (hard links into the shared, read-only engine home), its
config copy, and its data, logs and temp folders, handed to an unprivileged user when this
process is root (both engines refuse to run as root)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from splade_es.engines.node_state import NodeError
from splade_es.engines.processes import link_or_copy
from splade_es.engines.security import NodeAccess, configure
from splade_es.engines.spec import localise_jvm_options

__all__ = ["Workspace", "prepare_workspace"]


@dataclass(frozen=True)
class Workspace:
    """A node's folder, ready to start it from.

    Attributes:
        home: the node's home (``work/home``), links into the shared engine home.
        conf: its own config folder (``work/config``).
        access: how to reach it when secured (``None``: plain HTTP).
        user: the user it runs as (``None``: this process's user).
    """

    home: Path
    conf: Path
    access: NodeAccess | None
    user: str | None


def prepare_workspace(
    home: Path, work: Path, java_home: Path, *, secure: bool, run_as: str
) -> Workspace:
    """Lay out ``work`` for one node of the engine installed in ``home``.

    Makes ``work/home`` (links), ``work/config`` (a copy, ``jvm.options`` pointed at
    ``work/logs`` and ``work/data``), ``data``, ``logs`` and ``tmp``; the certificates and
    user of a secured node; and hands the writable folders to ``run_as`` when root.

    Raises:
        NodeError: running as root and ``run_as`` does not exist.
        SecuritySetupError: the secured node's certificates or user could not be made.
    """
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
    if secure:
        access = configure(conf, work / "client", home=node_home, java_home=java_home)
    user = _drop_to(run_as, work, [conf, work / "data", work / "logs", work / "tmp"])
    return Workspace(node_home, conf, access, user)


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
