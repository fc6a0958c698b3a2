"""Fetch Maven artifacts through the machine's own ``mvn`` and verify their checksums.

``mvn`` is used rather than a hand-written HTTP client so that the machine's Maven settings
(mirrors, proxies, credentials) decide where artifacts come from. Every file is checked
against the checksum file the repository publishes next to it before it is used. mvn's
transfer output is read as it comes and logged as progress (:mod:`~.transfers`).
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import selectors
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape

from splade_es.engines.spec import MavenArtifact
from splade_es.engines.transfers import MvnConsole

logger = logging.getLogger(__name__)


class ArtifactError(RuntimeError):
    """An artifact could not be fetched, or its checksum did not match."""


def pom_for(artifacts: tuple[MavenArtifact, ...]) -> str:
    """A throw-away POM whose dependencies are the artifacts and their checksum files."""
    deps = []
    for art in artifacts:
        companions = [] if art.pinned else [f"{art.packaging}.{art.checksum}"]
        for packaging in (art.packaging, *companions):
            deps.append(
                "    <dependency>"
                f"<groupId>{escape(art.group)}</groupId>"
                f"<artifactId>{escape(art.artifact)}</artifactId>"
                f"<version>{escape(art.version)}</version>"
                f"<type>{escape(packaging)}</type>"
                "</dependency>"
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<project>\n"
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>splade-es.local</groupId><artifactId>engine-fetch</artifactId>"
        "<version>1</version><packaging>pom</packaging>\n"
        "  <dependencies>\n" + "\n".join(deps) + "\n  </dependencies>\n</project>\n"
    )


def published_digest(checksum_text: str, artifact: MavenArtifact) -> str:
    """The hex digest inside a ``.sha1``/``.sha512`` file (which may append a file name)."""
    token = checksum_text.strip().split()[0].lower() if checksum_text.strip() else ""
    length = 40 if artifact.checksum == "sha1" else 128
    if len(token) != length or any(c not in "0123456789abcdef" for c in token):
        raise ArtifactError(
            f"The published {artifact.checksum} for {artifact.coordinates} is not a digest: "
            f"{checksum_text[:80]!r}. Delete it from the cache and fetch again."
        )
    return token


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(repo: Path, artifact: MavenArtifact) -> Path:
    """Check one artifact in a local repository against its published checksum.

    Returns:
        The verified file.

    Raises:
        ArtifactError: if the file or its checksum is missing, or they disagree (the bad
            file is deleted so that the next fetch downloads it again).
    """
    path = repo / artifact.repository_path
    checksum_path = path.with_name(f"{path.name}.{artifact.checksum}")
    if not path.is_file() or not (artifact.pinned or checksum_path.is_file()):
        raise ArtifactError(
            f"{artifact.coordinates} is not in {repo} (or its .{artifact.checksum} is missing)."
        )
    expected = artifact.pinned or published_digest(
        checksum_path.read_text(errors="replace"), artifact
    )
    actual = file_digest(path, artifact.checksum)
    if actual != expected:
        path.unlink()
        raise ArtifactError(
            f"Checksum mismatch for {artifact.coordinates}: {artifact.checksum} is {actual}, "
            f"expected {expected}. The file was deleted; run the command again to "
            "download it afresh."
        )
    return path


def find_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ArtifactError(
            "Maven ('mvn') is needed to download the search engine: install it (e.g. "
            "'apt-get install maven' or 'brew install maven'), or pass --home with an "
            "engine you downloaded yourself."
        )
    return mvn


def fetch(artifacts: tuple[MavenArtifact, ...], repo: Path) -> dict[MavenArtifact, Path]:
    """Make sure every artifact is in the local repository ``repo`` and verified.

    Artifacts already present and verified are not downloaded again; the rest are fetched in
    one ``mvn`` run.

    Returns:
        Each artifact mapped to its verified file.
    """
    missing = [a for a in artifacts if not _present(repo, a)]
    if missing:
        _run_mvn(tuple(missing), repo)
    return {artifact: verify(repo, artifact) for artifact in artifacts}


def _present(repo: Path, artifact: MavenArtifact) -> bool:
    try:
        verify(repo, artifact)
    except ArtifactError:
        return False
    return True


def _run_mvn(artifacts: tuple[MavenArtifact, ...], repo: Path) -> None:
    mvn = find_mvn()
    repo.mkdir(parents=True, exist_ok=True)
    files = [a.file_name for a in artifacts]
    more = f" and {len(files) - 1} more files" if len(files) > 1 else ""
    logger.info("fetching %s%s with mvn into %s (once; later runs reuse it)", files[0], more, repo)
    console = MvnConsole(artifacts, repo)
    with tempfile.TemporaryDirectory(prefix="splade-es-mvn-") as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(pom_for(artifacts))
        command = [
            mvn,
            # Not batch mode (-B) and not quiet (-q): mvn then prints its transfer progress.
            "-Dstyle.color=never",
            f"-Dmaven.repo.local={repo}",
            "-f",
            str(pom),
            "dependency:resolve",
            "-DexcludeTransitive=true",
        ]
        returncode = watch(command, console)
    if returncode != 0:
        errors = [line for line in console.lines if "ERROR" in line]
        detail = "\n".join(errors[:5] or console.lines[-10:]) or (
            f"mvn exited with {returncode} and printed nothing (is -q set in MAVEN_ARGS or "
            f".mvn/maven.config?); run it by hand to see why: {' '.join(command)}"
        )
        names = ", ".join(a.coordinates for a in artifacts)
        raise ArtifactError(
            f"mvn could not download {names}. Check that this machine reaches its Maven "
            f"repository (mvn settings, proxy) and that the version exists.\n{detail}"
        )


def watch(command: list[str], console: MvnConsole, tick_s: float = 1.0) -> int:
    """Run ``command``, feeding its output to ``console`` as it comes, and ticking it every
    ``tick_s`` seconds while it is silent; return its exit code (it is killed if this is
    interrupted)."""
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        if process.stdout is not None:  # always, with stdout=PIPE
            _pump(process.stdout, console, tick_s)
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        if process.stdout is not None:
            process.stdout.close()
    return process.wait()


def _pump(stream: IO[bytes], console: MvnConsole, tick_s: float) -> None:
    """Hand everything ``stream`` yields to ``console`` until it ends."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            if not selector.select(timeout=tick_s):
                console.tick()
                continue
            chunk = os.read(stream.fileno(), 1 << 16)
            if not chunk:
                break
            console.feed(decoder.decode(chunk))
    console.feed(decoder.decode(b"", final=True))
    console.close()
