"""Progress bars that suit where they are written.

On a terminal (or in a notebook) a bar is tqdm's, redrawn in place. Written to a file or a
pipe (a log, CI output, ``nohup``), a redrawn bar becomes thousands of lines, so there the
bar writes one plain line at most every ``interval_s`` seconds, and a final line when it
closes. A disabled bar does nothing. Shared by both packages; imports neither.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Generic, TypeVar, overload

__all__ = ["ProgressBar", "progress_bar"]

T = TypeVar("T")


class ProgressBar(Generic[T]):
    """A bar that counts and shows nothing: the disabled bar, and the base of the others.

    Use it as a context manager (closing it writes the final state), call :meth:`update`
    with each step's count, or iterate over it when it wraps an iterable (each item counts
    one). ``n`` is the count so far.
    """

    def __init__(self, iterable: Iterable[T] | None) -> None:
        self.n = 0
        self._iterable = iterable

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps."""
        self.n += n
        self._shown()

    def set_postfix(self, refresh: bool = False, **values: object) -> None:
        """Show ``values`` (e.g. ``failed=3``) after the count; ``refresh`` redraws now."""

    def close(self) -> None:
        """Show the final state (once) and release the output."""

    def __iter__(self) -> Iterator[T]:
        if self._iterable is None:
            raise TypeError("This progress bar wraps no iterable: call update(n) instead.")
        try:
            for item in self._iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> ProgressBar[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _shown(self) -> None:
        """Hook: show the new count (nothing here)."""


class _LineBar(ProgressBar[T]):
    """One plain line per ``interval_s`` seconds (and a final one) on a non-terminal stream."""

    def __init__(
        self,
        iterable: Iterable[T] | None,
        *,
        total: int | None,
        desc: str,
        unit: str,
        stream: IO[str],
        interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(iterable)
        self._total, self._desc, self._unit = total, desc, unit
        self._stream, self._interval_s, self._clock = stream, interval_s, clock
        self._started = self._last = clock()
        self._postfix = ""
        self._closed = False

    def set_postfix(self, refresh: bool = False, **values: object) -> None:
        self._postfix = ", ".join(f"{key}={value}" for key, value in values.items())
        if refresh:
            self._write(self._clock())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(self._clock(), final=True)

    def _shown(self) -> None:
        now = self._clock()
        if now - self._last >= self._interval_s:
            self._write(now)

    def _write(self, now: float, final: bool = False) -> None:
        self._last = now
        line = progress_line(
            self.n, self._total, desc=self._desc, unit=self._unit, elapsed_s=now - self._started
        )
        extra = [part for part in (self._postfix, "done" if final else "") if part]
        self._stream.write(f"{line}{', ' if extra else ''}{', '.join(extra)}\n")
        self._stream.flush()


class _TerminalBar(ProgressBar[T]):
    """tqdm's bar, redrawn in place (it throttles itself)."""

    def __init__(self, iterable: Iterable[T] | None, bar: Any) -> None:
        super().__init__(iterable)
        self._bar = bar

    def set_postfix(self, refresh: bool = False, **values: object) -> None:
        self._bar.set_postfix(refresh=refresh, **values)

    def close(self) -> None:
        self._bar.close()

    def _shown(self) -> None:
        self._bar.update(self.n - self._bar.n)


@overload
def progress_bar(
    iterable: None = None,
    *,
    total: int | None,
    desc: str,
    unit: str,
    enabled: bool,
    stream: IO[str] | None = ...,
    interval_s: float = ...,
    clock: Callable[[], float] = ...,
) -> ProgressBar[Any]: ...


@overload
def progress_bar(
    iterable: Iterable[T],
    *,
    total: int | None,
    desc: str,
    unit: str,
    enabled: bool,
    stream: IO[str] | None = ...,
    interval_s: float = ...,
    clock: Callable[[], float] = ...,
) -> ProgressBar[T]: ...


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None,
    desc: str,
    unit: str,
    enabled: bool,
    stream: IO[str] | None = None,
    interval_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> ProgressBar[T]:
    """A progress bar that fits its output: tqdm on a terminal, plain lines elsewhere.

    Args:
        iterable: items to count as they are iterated over, or ``None`` to call ``update``.
        total: the number of steps expected, or ``None`` when unknown (no percentage).
        desc: what is counted, e.g. ``"indexing"``.
        unit: one step's name, e.g. ``"doc"``.
        enabled: ``False`` gives a bar that writes nothing.
        stream: where to write (default: ``sys.stderr`` at the time of the call).
        interval_s: on a non-terminal stream, the least time between two lines, in seconds.
        clock: seconds from a monotonic clock (tests pass their own).

    Example:
        >>> with progress_bar(total=3, desc="demo", unit="doc", enabled=True) as bar:
        ...     bar.update(3)  # doctest: +SKIP
    """
    if interval_s < 0:
        raise ValueError(f"interval_s is {interval_s}: pass 0 or more seconds between lines.")
    if not enabled:
        return ProgressBar(iterable)
    out = sys.stderr if stream is None else stream
    if _is_interactive(out):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit=unit, file=out, dynamic_ncols=True)
        return _TerminalBar(iterable, bar)
    return _LineBar(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        stream=out,
        interval_s=interval_s,
        clock=clock,
    )


def progress_line(count: int, total: int | None, *, desc: str, unit: str, elapsed_s: float) -> str:
    """``"indexing: 1200/2000 doc (60%), 45.1 doc/s, elapsed 0:26"`` (no total: no share).

    Example:
        >>> progress_line(30, 120, desc="encoding", unit="doc", elapsed_s=10.0)
        'encoding: 30/120 doc (25%), 3.0 doc/s, elapsed 0:10'
    """
    share = f"{count}/{total} {unit} ({100 * count / total:.0f}%)" if total else f"{count} {unit}"
    rate = f"{count / elapsed_s:.1f} {unit}/s" if elapsed_s > 0 else f"? {unit}/s"
    return f"{desc}: {share}, {rate}, elapsed {_clock_time(elapsed_s)}"


def _clock_time(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _is_interactive(stream: IO[str]) -> bool:
    """A terminal, or a notebook kernel's output (tqdm draws a widget there)."""
    if type(stream).__module__.startswith("ipykernel"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())
