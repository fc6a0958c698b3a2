"""Unpack and assemble an engine distribution in the cache, once, safely.

Layout under the cache directory (``~/.cache/splade-es`` by default)::

    maven/                      local Maven repository: verified zips and jars
    dist/<engine>-<version>/    the assembled, read-only node home
    dist/.lock                  serialises concurrent installs

An install is unpacked into a temporary sibling folder and renamed into place only when it
is complete, so an interrupted or concurrent ``start`` never leaves a half-made home behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from splade_es.engines import maven
from splade_es.engines.spec import EngineSpec, MavenArtifact, plugin_descriptor

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".splade-es-complete.json"


class InstallError(RuntimeError):
    """The distribution could not be unpacked or is not a usable engine home."""


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def installed_home(spec: EngineSpec, cache_dir: Path) -> Path | None:
    """The assembled home for ``spec`` if a complete one is in the cache."""
    home = cache_dir / "dist" / spec.key
    marker = home / COMPLETE_MARKER
    if not marker.is_file():
        return None
    recorded = json.loads(marker.read_text())
    if recorded.get("artifacts") != [a.coordinates for a in spec.artifacts]:
        return None
    return home


def install(spec: EngineSpec, cache_dir: Path) -> Path:
    """Fetch (if needed), verify, unpack and assemble ``spec``; return the node home.

    Safe to call from several processes at once: one installs, the others wait and reuse it.
    Each step is logged at INFO (the download's progress too), as a first run takes minutes.
    """
    home = installed_home(spec, cache_dir)
    if home is not None:
        return home
    with locked(cache_dir / "dist" / ".lock"):
        home = installed_home(spec, cache_dir)
        if home is not None:
            return home
        started = time.monotonic()
        logger.info(
            "%s %s is not in %s yet: fetching and unpacking it (once)",
            spec.engine,
            spec.version,
            cache_dir / "dist",
        )
        files = maven.fetch(spec.artifacts, cache_dir / "maven")
        target = cache_dir / "dist" / spec.key
        staging = Path(tempfile.mkdtemp(prefix=f".{spec.key}-", dir=target.parent))
        try:
            root = _assemble(spec, files, staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(root, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info(
            "installed %s %s into %s in %.0f s",
            spec.engine,
            spec.version,
            target,
            time.monotonic() - started,
        )
        return target


def _assemble(spec: EngineSpec, files: dict[MavenArtifact, Path], staging: Path) -> Path:
    """Unpack the distribution into ``staging``, add the modules and plugins, and mark it
    complete; return its top folder."""
    archive = files[spec.distribution]
    size = archive.stat().st_size
    logger.info("unpacking %s (%.1f MB) ...", archive.name, size / 1e6)
    root = _unzip_single_root(archive, staging)
    for module in spec.modules:
        folder = root / "modules" / module.name
        folder.mkdir(parents=True, exist_ok=True)
        for jar in module.jars:
            shutil.copy2(files[jar], folder / jar.file_name)
        (folder / "plugin-descriptor.properties").write_text(plugin_descriptor(spec, module))
        if module.security_policy:
            (folder / "plugin-security.policy").write_text(module.security_policy)
    for plugin in spec.plugins:
        _unzip_plugin(files[plugin], root / "plugins" / plugin.artifact)
    launcher = root / "bin" / spec.launcher
    if not launcher.is_file():
        raise InstallError(
            f"{archive} has no bin/{spec.launcher}: it is not an {spec.engine} distribution. "
            f"Delete {archive.parent} and retry."
        )
    (root / COMPLETE_MARKER).write_text(
        json.dumps({"artifacts": [a.coordinates for a in spec.artifacts]})
    )
    return root


def _unzip_single_root(archive: Path, into: Path) -> Path:
    """Unpack ``archive`` (one top folder) into ``into`` keeping Unix modes; return the top."""
    with zipfile.ZipFile(archive) as zipped:
        tops = {name.split("/", 1)[0] for name in zipped.namelist() if name.strip("/")}
        if len(tops) != 1:
            raise InstallError(f"{archive} should hold one top folder, found {sorted(tops)[:5]}.")
        _extract(zipped, archive, into)
    return into / tops.pop()


def _unzip_plugin(archive: Path, into: Path) -> None:
    """Unpack a plugin zip (descriptor at its root) into the plugin's folder ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zipped:
        if "plugin-descriptor.properties" not in zipped.namelist():
            raise InstallError(
                f"{archive} has no plugin-descriptor.properties at its root: it is not an "
                "engine plugin. Delete it from the cache and retry."
            )
        _extract(zipped, archive, into)


def _extract(zipped: zipfile.ZipFile, archive: Path, into: Path) -> None:
    """Extract every entry below ``into``, keeping Unix modes and refusing escaping paths."""
    for info in zipped.infolist():
        resolved = (into / info.filename).resolve()
        if not resolved.is_relative_to(into.resolve()):
            raise InstallError(f"{archive} has an entry outside its folder: {info.filename}")
        zipped.extract(info, into)
        mode = (info.external_attr >> 16) & 0o777
        if mode and not info.is_dir():
            os.chmod(resolved, mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
