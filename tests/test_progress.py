"""Progress bars: tqdm on a terminal, a plain line every few seconds in a file or a pipe."""

from __future__ import annotations

import io

import pytest

from colbert_rerank.progress import progress_bar, progress_line


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_a_line_per_interval_not_per_update():
    out, clock = io.StringIO(), FakeClock()
    with progress_bar(
        total=1200, desc="indexing", unit="doc", enabled=True, stream=out, clock=clock
    ) as bar:
        for _ in range(1200):  # 1200 updates over 12 s
            clock.now += 0.01
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines  # at 5 s, at 10 s, and the final line
    assert lines[0] == "indexing: 500/1200 doc (42%), 100.0 doc/s, elapsed 0:05"
    assert lines[1].startswith("indexing: 1000/1200 doc (83%)")
    assert lines[2] == "indexing: 1200/1200 doc (100%), 100.0 doc/s, elapsed 0:12, done"
    assert "\r" not in out.getvalue()


def test_lines_are_at_least_the_interval_apart():
    out, clock = io.StringIO(), FakeClock()
    bar = progress_bar(
        total=None, desc="d", unit="x", enabled=True, stream=out, interval_s=2.0, clock=clock
    )
    written = []
    for step in (0.5, 1.0, 0.6, 0.1, 3.0, 0.2, 1.9):
        clock.now += step
        bar.update(1)
        if out.getvalue().count("\n") > len(written):
            written.append(clock.now)
    assert written == [pytest.approx(102.1), pytest.approx(105.2), pytest.approx(107.3)]
    bar.close()
    bar.close()  # closing twice writes the final line once
    assert out.getvalue().count("done") == 1


def test_unknown_total_shows_the_count_so_far_and_the_postfix():
    out, clock = io.StringIO(), FakeClock()
    with progress_bar(
        total=None, desc="mining", unit="query", enabled=True, stream=out, clock=clock
    ) as bar:
        clock.now += 6
        bar.set_postfix(failed=2, refresh=False)
        bar.update(12)
    first, final = out.getvalue().splitlines()
    assert first == "mining: 12 query, 2.0 query/s, elapsed 0:06, failed=2"
    assert final.endswith("failed=2, done") and "/" not in final.split(",")[0]


def test_an_iterable_is_counted_item_by_item_and_closed_at_the_end():
    out, clock = io.StringIO(), FakeClock()
    bar = progress_bar(
        ["a", "b", "c"], total=3, desc="scores", unit="ex", enabled=True, stream=out, clock=clock
    )
    assert list(bar) == ["a", "b", "c"]
    assert bar.n == 3
    assert out.getvalue().splitlines() == ["scores: 3/3 ex (100%), ? ex/s, elapsed 0:00, done"]


def test_a_disabled_bar_writes_nothing_but_still_counts_and_iterates():
    out = io.StringIO()
    with progress_bar(total=5, desc="d", unit="x", enabled=False, stream=out) as bar:
        bar.update(2)
        bar.set_postfix(refresh=True, failed=1)
    assert bar.n == 2 and out.getvalue() == ""
    items = progress_bar(range(4), total=4, desc="d", unit="x", enabled=False, stream=out)
    assert list(items) == [0, 1, 2, 3] and out.getvalue() == ""


def test_a_terminal_gets_tqdm_redrawn_in_place():
    out = Terminal()
    with progress_bar(total=50, desc="indexing", unit="doc", enabled=True, stream=out) as bar:
        for _ in range(50):
            bar.update(1)
        bar.set_postfix(failed=0, refresh=True)
    text = out.getvalue()
    assert "\r" in text and "indexing" in text and "50/50" in text  # tqdm's own drawing
    assert "elapsed" not in text and "failed=0" in text


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match=r"interval_s is -1: pass 0 or more seconds"):
        progress_bar(total=1, desc="d", unit="x", enabled=True, interval_s=-1)
    bar = progress_bar(total=1, desc="d", unit="x", enabled=False)
    with pytest.raises(TypeError, match="wraps no iterable: call update"):
        list(bar)


def test_progress_line_formats_long_runs_in_hours():
    line = progress_line(7200, 0, desc="fit", unit="doc", elapsed_s=3725.0)
    assert line == "fit: 7200 doc, 1.9 doc/s, elapsed 1:02:05"
