"""Concurrent load: client threads calling one request function for a fixed time, summarised.

The loop knows nothing about clusters or models: a request is any callable that takes a query
and returns a :class:`Response` (the ids it answered and its phase timings).
:func:`search_rerank_request` builds the one the load benchmark and its test use: SPLADE search
then ColBERT rerank, with one :class:`~splade_es.search.searcher.Searcher` and one
:class:`~colbert_rerank.rerank.Reranker` shared by every thread. :func:`summarize` and
:func:`percentiles` are pure: samples in, throughput, latency percentiles and errors by type out.

Example:
    >>> request = search_rerank_request(searcher, reranker, k=10, depth=100)  # doctest: +SKIP
    >>> run = run_load(request, ["aspirin", "coffee"], LoadConfig(clients=8, seconds=60))
    >>> summarize(run).latency.p95  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from splade_es.search.pipeline import Mode, Retrieval, search_then_rerank

if TYPE_CHECKING:
    from colbert_rerank.rerank import Reranker
    from splade_es.search.searcher import Searcher


@dataclass(frozen=True)
class Response:
    """What one request answered.

    Attributes:
        ids: the returned document ids, best first.
        scores: their final scores.
        phases_ms: time per phase (e.g. ``search``, ``rerank``), milliseconds.
    """

    ids: tuple[str, ...]
    scores: tuple[float, ...]
    phases_ms: Mapping[str, float]


Request = Callable[[str], Response]


@dataclass(frozen=True)
class Sample:
    """One request made by one client.

    Attributes:
        client: the client thread, ``0 .. clients - 1``.
        query: the query sent.
        start_s: when it started, seconds after the run began.
        latency_ms: wall time of the whole request.
        response: what it answered (``None`` when it raised).
        error: ``"ExceptionType: message"`` when it raised.
    """

    client: int
    query: str
    start_s: float
    latency_ms: float
    response: Response | None
    error: str | None


@dataclass(frozen=True)
class LoadConfig:
    """How hard and how long to push.

    Attributes:
        clients: concurrent client threads.
        seconds: how long each client keeps starting requests (the ones in flight at the end
            finish and count).
    """

    clients: int = 8
    seconds: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.clients, int) or self.clients < 1:
            raise ValueError(f"clients={self.clients!r}: expected a positive integer.")
        if not self.seconds > 0:
            raise ValueError(f"seconds={self.seconds!r}: expected a positive duration.")


@dataclass(frozen=True)
class LoadRun:
    """Every sample of a run, and how long it took from start to the last client's end."""

    config: LoadConfig
    samples: list[Sample]
    wall_s: float


@dataclass(frozen=True)
class Percentiles:
    """Latency distribution in milliseconds (``count`` values; all NaN when there are none)."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True)
class LoadSummary:
    """Throughput, latency and errors of a run.

    Attributes:
        clients / seconds: the configuration; ``wall_s`` the measured run length.
        requests: requests made; ``errors`` how many raised, by exception type in
            ``errors_by_type`` with the first message of each in ``error_examples``.
        throughput: successful requests per second of wall time.
        latency: of successful requests; ``phases`` per phase.
        tail_ratio: ``p95 / p50`` of the latency.
        per_client: successful requests of each client.
    """

    clients: int
    seconds: float
    wall_s: float
    requests: int
    errors: int
    errors_by_type: dict[str, int]
    error_examples: dict[str, str]
    throughput: float
    latency: Percentiles
    phases: dict[str, Percentiles]
    tail_ratio: float
    per_client: list[int]

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values."""
        return asdict(self)


def run_load(request: Request, queries: Sequence[str], config: LoadConfig) -> LoadRun:
    """Run ``config.clients`` threads, each calling ``request`` in a loop for ``config.seconds``.

    Client ``c`` sends ``queries[c], queries[c + 1], ...`` cycling over the list, so clients
    start on different queries. Exceptions are recorded, never raised.

    Raises:
        ValueError: no queries.
    """
    if not queries:
        raise ValueError("queries is empty: pass at least one query to send.")
    start = threading.Event()
    per_client: list[list[Sample]] = [[] for _ in range(config.clients)]
    began = 0.0

    def client(index: int) -> None:
        start.wait()
        samples = per_client[index]
        deadline = began + config.seconds
        position = index
        while (now := time.perf_counter()) < deadline:
            query = queries[position % len(queries)]
            position += 1
            response: Response | None = None
            error: str | None = None
            try:
                response = request(query)
            except Exception as raised:
                error = f"{type(raised).__name__}: {raised}"
            latency_ms = (time.perf_counter() - now) * 1000
            samples.append(Sample(index, query, now - began, latency_ms, response, error))

    threads = [
        threading.Thread(target=client, args=(i,), name=f"load-client-{i}", daemon=True)
        for i in range(config.clients)
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    start.set()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - began
    return LoadRun(config, [s for samples in per_client for s in samples], wall_s)


def percentiles(values_ms: Sequence[float]) -> Percentiles:
    """Mean, p50, p95, p99 and max (linear interpolation between ranks, as numpy does)."""
    if not values_ms:
        nan = float("nan")
        return Percentiles(0, nan, nan, nan, nan, nan)
    values = np.asarray(values_ms, dtype=np.float64)
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
    return Percentiles(len(values), float(values.mean()), p50, p95, p99, float(values.max()))


def summarize(run: LoadRun) -> LoadSummary:
    """Throughput, latency percentiles (overall and per phase) and errors of ``run``."""
    ok = [s for s in run.samples if s.response is not None]
    failed = [s for s in run.samples if s.error is not None]
    kinds = Counter(s.error.split(":", 1)[0] for s in failed if s.error)
    examples: dict[str, str] = {}
    for sample in failed:
        if sample.error:
            examples.setdefault(sample.error.split(":", 1)[0], sample.error)
    phase_names = sorted({name for s in ok if s.response for name in s.response.phases_ms})
    phases = {
        name: percentiles([s.response.phases_ms[name] for s in ok if s.response])
        for name in phase_names
    }
    latency = percentiles([s.latency_ms for s in ok])
    counts = Counter(s.client for s in ok)
    return LoadSummary(
        clients=run.config.clients,
        seconds=run.config.seconds,
        wall_s=run.wall_s,
        requests=len(run.samples),
        errors=len(failed),
        errors_by_type=dict(kinds),
        error_examples=examples,
        throughput=len(ok) / run.wall_s if run.wall_s > 0 else 0.0,
        latency=latency,
        phases=phases,
        tail_ratio=latency.p95 / latency.p50 if latency.count and latency.p50 > 0 else float("nan"),
        per_client=[counts.get(c, 0) for c in range(run.config.clients)],
    )


def markdown(summary: LoadSummary) -> str:
    """The summary as a markdown table: one row overall, one per phase, then the errors."""
    lines = [
        f"{summary.clients} clients x {summary.seconds:g} s (wall {summary.wall_s:.1f} s): "
        f"{summary.requests} requests, {summary.errors} errors, "
        f"{summary.throughput:.2f} requests/s, p95/p50 = {summary.tail_ratio:.2f}",
        "",
        "| | requests | mean ms | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("search + rerank", summary.latency), *summary.phases.items()]
    for name, p in rows:
        lines.append(
            f"| {name} | {p.count} | {p.mean:.1f} | {p.p50:.1f} | {p.p95:.1f} | {p.p99:.1f} "
            f"| {p.max:.1f} |"
        )
    if summary.errors_by_type:
        lines += ["", "| error | count | first message |", "|---|---:|---|"]
        for kind, count in sorted(summary.errors_by_type.items()):
            message = summary.error_examples[kind].replace("|", "\\|")[:200]
            lines.append(f"| {kind} | {count} | {message} |")
    return "\n".join(lines) + "\n"


def search_rerank_request(
    searcher: Searcher, reranker: Reranker, k: int, depth: int, mode: Mode = "splade"
) -> Request:
    """A request: ``mode``'s top ``depth`` from ``searcher`` (SPLADE by default), reranked by
    ``reranker``, first ``k``.

    The searcher must return the stored embeddings (``SearchConfig(include_embeddings=True)``)
    or the reranker must have a fetch function. Both are shared by every caller.

    Raises:
        ValueError: ``k`` or ``depth`` below 1.
    """
    if k < 1 or depth < 1:
        raise ValueError(f"k={k!r}, depth={depth!r}: expected positive integers.")

    retrieval = Retrieval(k=k, mode=mode, rerank_k=depth)

    def request(query: str) -> Response:
        ranking = search_then_rerank(searcher, query, retrieval, reranker)
        stats = ranking.rerank
        rerank_ms = 0.0 if stats is None else stats.encode_ms + stats.fetch_ms
        rerank_ms += 0.0 if stats is None else stats.decode_ms + stats.maxsim_ms
        return Response(
            tuple(hit.id for hit in ranking.hits),
            tuple(hit.score for hit in ranking.hits),
            {"search": ranking.search_ms, "rerank": rerank_ms},
        )

    return request
