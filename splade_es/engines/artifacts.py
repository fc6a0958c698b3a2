"""A file on a Maven repository, as the engine launcher fetches it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MavenArtifact:
    """One file on a Maven repository, with the checksum algorithm it is verified by.

    Attributes:
        group: Maven group id, e.g. ``org.opensearch.plugin``.
        artifact: Maven artifact id.
        version: exact version (no ranges, so the cache is reproducible).
        packaging: file type, ``jar`` or ``zip``.
        checksum: the algorithm of the companion checksum file that must match: ``sha512``
            where the publisher uploads one, else ``sha1``.
        pinned: a hex digest (of ``checksum``'s algorithm) recorded in this package, for
            artifacts whose repository publishes no checksum file at all; it replaces the
            companion file.
    """

    group: str
    artifact: str
    version: str
    packaging: str = "jar"
    checksum: Literal["sha1", "sha512"] = "sha1"
    pinned: str | None = None

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}:{self.packaging}"

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.{self.packaging}"

    @property
    def repository_path(self) -> str:
        """Path of the file inside a Maven repository layout."""
        return "/".join([*self.group.split("."), self.artifact, self.version, self.file_name])
