"""mvn's console output, read as download progress: a few plain messages instead of silence.

Maven prints ``Downloading from <repository>: <url>``, then ``Progress (n): 4.1/132 MB | ...``
redrawn in place with carriage returns (one ``done/total`` per transfer in flight, unnamed),
then ``Downloaded from <repository>: <url> (132 MB at 5.1 MB/s)``. :class:`MvnConsole` turns
that into log messages (logger ``splade_es.engines.transfers``, level INFO): one when an
engine file starts, the largest transfer's size so far (against its total when mvn knows it)
at most every ``interval_s`` seconds, and one when it is done. Files mvn fetches for itself
(its plugins, POMs, checksums) are counted, not named. Where mvn prints no progress (batch
mode set in the user's Maven settings), the size of the growing ``.part`` file in the local
repository (``.part`` or ``.tmp``) is shown instead.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from splade_es.engines.spec import MavenArtifact

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TRANSFER = re.compile(
    r"^(?:\[INFO\]\s+)?(Downloading|Downloaded) from ([^:]+): (\S+)(?: \((.+)\))?"
)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)(?:/(\d+(?:\.\d+)?))? ?(B|kB|KB|MB|GB)\b")
_UNITS = {"B": 1, "kB": 1000, "KB": 1024, "MB": 1000**2, "GB": 1000**3}


def progress_sizes(line: str) -> list[tuple[float, float | None]]:
    """``(bytes so far, bytes in all or None)`` per transfer on a ``Progress (n): ...`` line.

    Example:
        >>> progress_sizes("Progress (2): 125 kB | 4.1/73 kB")
        [(125000.0, None), (4100.0, 73000.0)]
    """
    sizes = []
    for done, total, unit in _SIZE.findall(line.partition(":")[2]):
        scale = _UNITS[unit]
        sizes.append((float(done) * scale, float(total) * scale if total else None))
    return sizes


def megabytes(size: float) -> str:
    """``"45.2 MB"`` (decimal megabytes, as Maven prints them)."""
    return f"{size / 1e6:.1f} MB"


def amount(sizes: Iterable[tuple[float, float | None]]) -> str:
    """The largest transfer in flight: ``"45.0/132.4 MB (34%)"``, or ``"45.0 MB so far"`` when
    its total is unknown, plus how many smaller ones run beside it.

    Example:
        >>> amount([(4100.0, 73000.0), (45e6, 132.4e6)])
        '45.0/132.4 MB (34%) (+1 smaller)'
    """
    pairs = sorted(sizes, key=lambda pair: pair[1] or pair[0], reverse=True)
    if not pairs:
        return "size not known yet"
    done, total = pairs[0]
    text = f"{done / 1e6:.1f}/{megabytes(total)} ({100 * done / total:.0f}%)" if total else ""
    text = text or f"{megabytes(done)} so far"
    return text + (f" (+{len(pairs) - 1} smaller)" if len(pairs) > 1 else "")


class MvnConsole:
    """Reads one mvn run's output and logs its download progress.

    Args:
        artifacts: the engine files being fetched (named in messages; others are counted).
        repo: the local Maven repository mvn downloads into (for ``.part`` files).
        interval_s: least time between two progress messages, in seconds.
        clock: seconds from a monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        artifacts: Iterable[MavenArtifact],
        repo: Path,
        *,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wanted = {a.file_name: repo / a.repository_path for a in artifacts}
        self._interval_s, self._clock = interval_s, clock
        self._started = self._said = clock()
        self._active: set[str] = set()
        self._sizes: list[tuple[float, float | None]] = []
        self._sizes_at = float("-inf")
        self._supporting = 0
        self._pending = ""
        self.lines: list[str] = []
        """Every line but the progress redraws, for an error report."""

    def feed(self, text: str) -> None:
        """Take the next chunk of output (lines may be split across chunks)."""
        *complete, self._pending = re.split(r"[\r\n]", self._pending + text)
        for line in complete:
            self._line(_ANSI.sub("", line).strip())
        self.tick()

    def close(self) -> None:
        """Take the last, unterminated line."""
        last, self._pending = _ANSI.sub("", self._pending).strip(), ""
        self._line(last)

    def tick(self) -> None:
        """Log where the download stands, if the last message is ``interval_s`` old."""
        now = self._clock()
        if now - self._said < self._interval_s:
            return
        elapsed = f"{now - self._started:.0f} s"
        if self._active:
            names = sorted(self._active)
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            logger.info("downloading %s%s: %s, %s", names[0], more, self._amount(now), elapsed)
        elif self._supporting:
            logger.info("mvn: %d of its own files fetched, %s", self._supporting, elapsed)
        else:
            return
        self._said = now

    def _amount(self, now: float) -> str:
        if now - self._sizes_at < self._interval_s and self._sizes:
            return amount(self._sizes)
        return amount((size, None) for size in map(_partial_size, self._active_paths()))

    def _active_paths(self) -> list[Path]:
        return [self._wanted[name] for name in self._active]

    def _line(self, line: str) -> None:
        if not line:
            return
        if line.startswith("Progress ("):
            self._sizes, self._sizes_at = progress_sizes(line), self._clock()
            return
        self.lines.append(line)
        match = _TRANSFER.match(line)
        if match is None:
            return
        verb, repository, url, detail = match.groups()
        name = url.rsplit("/", 1)[-1]
        if name not in self._wanted:
            # An engine file's checksum companion is neither named nor counted.
            if verb == "Downloaded" and not name.startswith(tuple(self._wanted)):
                self._supporting += 1
                if self._supporting == 1:
                    logger.info("mvn is fetching its own plugins and POMs (once per cache)")
            return
        if verb == "Downloading":
            self._active.add(name)
            logger.info("downloading %s from %s ...", name, repository)
        else:
            self._active.discard(name)
            logger.info("downloaded %s (%s)", name, detail or "done")
        self._said = self._clock()


def _partial_size(path: Path) -> float:
    """Bytes so far of ``path``'s download: mvn writes ``<file>.part`` (Maven 3.8) or
    ``<file>.<random>.tmp`` (3.9); 0 when neither is there (yet, or any more)."""
    try:
        candidates = [path.with_name(f"{path.name}.part"), *path.parent.glob(f"{path.name}.*tmp")]
        return float(max((c.stat().st_size for c in candidates if c.is_file()), default=0))
    except OSError:  # renamed or removed between listing and stat: progress never fails a run
        return 0.0
