"""The drop-in service against the library in process: the same clients, one run.

``splade-es serve`` runs in its own process in front of the cluster (first stage ``app``,
top ``rerank_k`` reranked). N client threads send an app's ``_search`` through it with the
engine's official client (the library's BM25 query, ``size`` k); then the same N threads call
the library in process (``search_then_rerank`` with ``Retrieval(mode="bm25")``, one shared
Searcher and Reranker: what the service does per request). Each path is warmed up alike
(every query once, untimed; the in-process answers are the reference) and timed for the
same window, back to back. :func:`throughput_result` gives the throughput ratio (reranked
service answers per second over in-process answers per second), errors, p95/p50, the
service's answers by ``X-Splade-Es`` header (a passthrough or fail-open is counted apart)
and answers whose top k differs from the in-process one (score ties apart).

Example:
    >>> result = run_throughput(setup)  # doctest: +SKIP
    >>> result["targets"]["zero errors"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from load import load_average
from load_generator import (
    LoadConfig,
    LoadRun,
    Request,
    Response,
    run_load,
    search_rerank_request,
    summarize,
)
from service_client import (
    ServiceAnswer,
    ServiceClient,
    ServiceOptions,
    answering_request,
    service_process,
)

from colbert_rerank.encoder import ColbertEncoder
from splade_es.cluster.connection import Cluster
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher

TARGET_RATIO = 0.8
TARGET_TAIL = 3.0
SCORE_TOLERANCE = 1e-4
PROGRESS_S = 5.0


class ServiceError(RuntimeError):
    """The service answered other than 200 (an error of the throughput run)."""


@dataclass(frozen=True)
class ThroughputSetup:
    """What the throughput comparison runs on (the index holds SPLADE + ColBERT fields)."""

    cluster: Cluster
    index: str
    queries: list[str]
    splade: SpladeEncoder
    colbert: ColbertEncoder
    clients: int
    seconds: float
    k: int
    options: ServiceOptions
    work: Path
    client_timeout_s: float = 90.0


@dataclass(frozen=True)
class Agreement:
    """Answers compared with the reference top k of the same query.

    Attributes:
        checked: answers compared (reranked ones only, for the service).
        differing: whose ids differ from the reference's.
        ties_only: of those, the ones whose scores match position by position (the same
            scores, tied documents in another order).
        examples: up to three ``query: got ids / want ids``.
    """

    checked: int
    differing: int
    ties_only: int
    examples: list[str]


def strict(request: Request) -> Request:
    """``request``, raising :class:`ServiceError` for an answer other than 200."""

    def checked(query: str) -> Response:
        answer = request(query)
        if isinstance(answer, ServiceAnswer) and answer.status != 200:
            raise ServiceError(f"{answer.status} {answer.error_type}")
        return answer

    return checked


def agreement(
    responses: Sequence[tuple[str, Response]], reference: dict[str, Response]
) -> Agreement:
    """How many ``(query, response)`` differ from ``reference[query]`` (ties apart)."""
    checked = differing = ties = 0
    examples: list[str] = []
    for query, got in responses:
        if isinstance(got, ServiceAnswer) and not got.reranked:
            continue
        want = reference[query]
        checked += 1
        if got.ids == want.ids:
            continue
        differing += 1
        same_scores = len(got.scores) == len(want.scores) and all(
            abs(a - b) <= SCORE_TOLERANCE * max(1.0, abs(b))
            for a, b in zip(got.scores, want.scores, strict=True)
        )
        ties += same_scores
        if len(examples) < 3:
            examples.append(f"{query[:60]}: got {list(got.ids)} / want {list(want.ids)}")
    return Agreement(checked, differing, ties, examples)


def warm_up(request: Request, queries: Sequence[str]) -> dict[str, Response]:
    """Every query once, untimed; the answers (the in-process ones are the reference)."""
    return {query: request(query) for query in queries}


class Ticker:
    """Counts finished requests and prints a progress line every ``PROGRESS_S`` seconds."""

    def __init__(self, name: str, request: Request) -> None:
        self.name, self.inner = name, request
        self.done = self.failed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def __call__(self, query: str) -> Response:
        try:
            answer = self.inner(query)
        except Exception:
            with self.lock:
                self.failed += 1
            raise
        with self.lock:
            self.done += 1
        return answer

    @contextlib.contextmanager
    def printing(self) -> Iterator[None]:
        started = time.perf_counter()

        def loop() -> None:
            while not self.stop.wait(PROGRESS_S):
                elapsed = time.perf_counter() - started
                print(
                    f"  {self.name}: {elapsed:5.1f} s, {self.done} answers "
                    f"({self.done / elapsed:.1f}/s), {self.failed} errors",
                    flush=True,
                )

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self.stop.set()
            thread.join()


def timed_window(
    name: str, request: Request, queries: Sequence[str], config: LoadConfig
) -> dict[str, Any]:
    """One path's timed window: the run, and the load average before and after."""
    print(f"{name}: {config.clients} clients x {config.seconds:g} s ...", flush=True)
    ticker = Ticker(name, request)
    before = load_average()
    with ticker.printing():
        run = run_load(ticker, queries, config)
    return {"run": run, "uptime_before": before, "uptime_after": load_average()}


def run_throughput(setup: ThroughputSetup) -> tuple[dict[str, Any], dict[str, LoadRun]]:
    """Both paths, warmed up alike, then timed back to back (service first): the figures
    (:func:`throughput_result`) and each path's run."""
    searcher = Searcher(
        setup.cluster, setup.splade, SearchConfig(index=setup.index, include_embeddings=True)
    )
    reranker = open_reranker(setup.cluster, setup.index, setup.colbert)
    local = search_rerank_request(searcher, reranker, setup.k, setup.options.rerank_k, "bm25")
    log = setup.work / "service-throughput.log"
    config = LoadConfig(clients=setup.clients, seconds=setup.seconds)
    with service_process(setup.cluster.url, setup.index, setup.options, log) as url:
        client = ServiceClient(setup.cluster.engine, url, setup.client_timeout_s, setup.clients)
        fields = searcher.text_fields
        remote = strict(answering_request(client, setup.index, fields, setup.k))
        reference = warm_up(local, setup.queries)
        warm = warm_up(remote, setup.queries)
        windows = {
            "service": timed_window("service", remote, setup.queries, config),
            "in process": timed_window("in process", local, setup.queries, config),
        }
        client.close()
    runs: dict[str, LoadRun] = {name: window["run"] for name, window in windows.items()}
    return throughput_result(windows, reference, warm), runs


def throughput_result(
    windows: dict[str, dict[str, Any]], reference: dict[str, Response], warm: dict[str, Response]
) -> dict[str, Any]:
    """Figures of both windows, the agreement of the answers, and the targets."""
    runs: dict[str, LoadRun] = {name: window["run"] for name, window in windows.items()}
    summaries = {name: summarize(run) for name, run in runs.items()}
    service, local = summaries["service"], summaries["in process"]
    answers = [s.response for s in runs["service"].samples if isinstance(s.response, ServiceAnswer)]
    by_header = Counter(a.header or "no header" for a in answers)
    reranked_per_s = sum(a.reranked for a in answers) / runs["service"].wall_s
    ratio = reranked_per_s / local.throughput if local.throughput else float("nan")
    pairs = {
        name: [(s.query, s.response) for s in run.samples if s.response is not None]
        for name, run in runs.items()
    }
    agree = {
        "service vs in process": agreement(pairs["service"], reference),
        "service warm-up vs in process": agreement(list(warm.items()), reference),
        "in process (concurrent) vs single-threaded": agreement(pairs["in process"], reference),
    }
    passthrough = sum(
        count for header, count in by_header.items() if not header.startswith("reranked")
    )
    return {
        "paths": {
            name: {
                "summary": summaries[name].as_dict(),
                "uptime_before": windows[name]["uptime_before"],
                "uptime_after": windows[name]["uptime_after"],
            }
            for name in runs
        },
        "service_answers_by_header": dict(by_header.most_common()),
        "service_reranked_per_s": reranked_per_s,
        "ratio": ratio,
        "ratio_all_answers": service.throughput / local.throughput if local.throughput else None,
        "agreement": {name: asdict(value) for name, value in agree.items()},
        "targets": {
            f"service throughput >= {TARGET_RATIO}x in process": ratio >= TARGET_RATIO,
            "zero errors": service.errors == 0 and local.errors == 0,
            f"service p95 <= {TARGET_TAIL:g}x p50": service.tail_ratio <= TARGET_TAIL,
            "every service answer reranked": passthrough == 0,
            "service top k = in-process top k": agree["service vs in process"].differing == 0,
        },
    }


def describe_throughput(result: dict[str, Any]) -> str:
    """The comparison as markdown: one row per path, the answers, the targets."""
    meta, figures = result["meta"], result["throughput"]
    lines = [
        f"### Drop-in service vs in process: {meta['engine']}, {meta['clients']} clients x "
        f"{meta['seconds']:g} s per path",
        "",
        f"`{meta['command']}`",
        "",
        f"{meta['machine']}, torch {meta['torch']} ({meta['torch_threads']} intra-op threads "
        f"per process); {meta['corpus']} ({meta['documents']} documents), {meta['queries']} "
        f"queries cycled, BM25 top {meta['rerank_k']} reranked, top {meta['k']} returned; "
        f"rerank budget {meta['rerank_timeout_ms']} ms. Started {meta['started']}.",
        "",
        "| path | req/s | p50 ms | p95 ms | p99 ms | p95/p50 | errors | top-k mismatches "
        "(ties) | load before -> after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    compared = {
        "service": "service vs in process",
        "in process": "in process (concurrent) vs single-threaded",
    }
    for name, path in figures["paths"].items():
        s, agree = path["summary"], figures["agreement"][compared[name]]
        latency = s["latency"]
        lines.append(
            f"| {name} | {s['throughput']:.2f} | {latency['p50']:.0f} | {latency['p95']:.0f} "
            f"| {latency['p99']:.0f} | {s['tail_ratio']:.2f} | {s['errors']} "
            f"| {agree['differing']} ({agree['ties_only']}) "
            f"| {_load(path['uptime_before'])} -> {_load(path['uptime_after'])} |"
        )
    lines += [
        "",
        f"Service answers by `X-Splade-Es`: {figures['service_answers_by_header']}. Ratio "
        f"(reranked service answers/s over in-process/s): **{figures['ratio']:.2f}x** "
        f"(all answers: {figures['ratio_all_answers']:.2f}x).",
        "",
        *[f"- {name}: {'met' if ok else 'MISSED'}" for name, ok in figures["targets"].items()],
    ]
    examples = figures["agreement"]["service vs in process"]["examples"]
    lines += ["", *[f"Mismatch: {example}" for example in examples]] if examples else []
    return "\n".join(lines) + "\n"


def _load(uptime: str) -> str:
    return uptime.split("load average:")[-1].strip()
