"""The engine cache: verified once, assembled atomically, safe under concurrent starts."""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import zipfile
from pathlib import Path

import pytest

from splade_es.engines.install import COMPLETE_MARKER, InstallError, install, installed_home
from splade_es.engines.spec import MavenArtifact, ModuleSpec, engine_spec


def _publish(repo: Path, art: MavenArtifact, content: bytes) -> None:
    path = repo / art.repository_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    digest = hashlib.new(art.checksum, content).hexdigest()
    path.with_name(f"{path.name}.{art.checksum}").write_text(digest + "\n")


def _zip(entries: dict[str, tuple[str, int]]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, (text, mode) in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, text)
    return buffer.getvalue()


def fake_spec(
    cache: Path, top: str = "opensearch-0.0.1", launcher: str = "opensearch", publish: bool = True
):
    """A spec whose artifacts are small files already in the cache's Maven repository
    (written there unless ``publish`` is false)."""
    dist = MavenArtifact("test.dist", "opensearch", "0.0.1", "zip", "sha512")
    jar = MavenArtifact("test.plugin", "extras", "0.0.1", "jar", "sha1")
    module = ModuleSpec("extras", "test.ExtrasPlugin", "test module", (jar,), "grant {};\n")
    spec = dataclasses.replace(
        engine_spec("opensearch"), version="0.0.1", distribution=dist, modules=(module,), plugins=()
    )
    if not publish:
        return spec
    _publish(
        cache / "maven",
        dist,
        _zip(
            {
                f"{top}/bin/{launcher}": ("#!/bin/sh\n", 0o755),
                f"{top}/config/jvm.options": ("-Xms1g\n", 0o644),
            }
        ),
    )
    _publish(cache / "maven", jar, b"jar")
    return spec


def test_install_assembles_modules_and_keeps_modes(tmp_path):
    spec = fake_spec(tmp_path)
    home = install(spec, tmp_path)
    assert home == tmp_path / "dist" / "opensearch-0.0.1"
    assert (home / "bin" / "opensearch").stat().st_mode & 0o111
    module = home / "modules" / "extras"
    assert (module / "extras-0.0.1.jar").read_bytes() == b"jar"
    assert "classname=test.ExtrasPlugin" in (module / "plugin-descriptor.properties").read_text()
    assert (module / "plugin-security.policy").read_text() == "grant {};\n"
    assert installed_home(spec, tmp_path) == home


def _install_in_child(cache: str) -> str:
    # The parent published the artifacts: rewriting them here would race the other children.
    return str(install(fake_spec(Path(cache), publish=False), Path(cache)))


def test_concurrent_installs_share_one_complete_home(tmp_path):
    fake_spec(tmp_path)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        homes = pool.map(_install_in_child, [str(tmp_path)] * 4)
    assert len(set(homes)) == 1
    leftovers = [p.name for p in (tmp_path / "dist").iterdir() if p.name.startswith(".opensearch")]
    assert leftovers == []
    assert (Path(homes[0]) / COMPLETE_MARKER).is_file()


def test_interrupted_install_is_redone(tmp_path):
    spec = fake_spec(tmp_path)
    home = install(spec, tmp_path)
    (home / COMPLETE_MARKER).unlink()  # as if the process died before finishing
    (home / "bin" / "opensearch").unlink()
    assert installed_home(spec, tmp_path) is None
    home = install(spec, tmp_path)
    assert (home / "bin" / "opensearch").is_file()


def test_archive_without_launcher_is_rejected(tmp_path):
    spec = fake_spec(tmp_path, launcher="something-else")
    with pytest.raises(InstallError, match="has no bin/opensearch: it is not an opensearch"):
        install(spec, tmp_path)
    assert installed_home(spec, tmp_path) is None


def test_archive_escaping_its_folder_is_rejected(tmp_path):
    spec = fake_spec(tmp_path, top="..")
    with pytest.raises(InstallError):
        install(spec, tmp_path)
