"""The drop-in service with its upstream killed (SIGKILL) and relaunched mid-run.

A node of its own (the package launcher), a small index on it, ``splade-es serve`` in front,
and client threads searching through the service. ``kill_at_s`` seconds in, the node's
process group is SIGKILLed as a crash would (``tests/faults.py``'s ``kill_node``), and
``down_s`` later it is started again on the same data. The clients keep going until the
service has answered reranked again for ``after_s`` seconds (or ``max_s`` passed).

Every answer is kept with its time, status and ``X-Splade-Es`` header, then split into three
phases by when it came back: before the kill, the outage (from the kill to the first
reranked answer of a request sent after the relaunch) and after recovery. The targets: every
request answered within the client timeout (the service never hangs), every error answer a
502/503 in the engines' error shape, recovery without help, and only reranked answers after.

Example:
    >>> result = run_outage(setup, OutagePlan(kill_at_s=3, down_s=2, after_s=5))  # doctest: +SKIP
    >>> result["targets"]["never hangs"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load import ensure_index
from load_generator import LoadConfig, Sample, percentiles, run_load
from service_client import (
    ServiceAnswer,
    ServiceClient,
    ServiceOptions,
    answering_request,
    service_process,
)

from colbert_rerank.encoder import ColbertEncoder
from splade_es.cluster.admin import require_index
from splade_es.cluster.connection import ClusterConfig, connect
from splade_es.data.corpus import Document, Rejected
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.engines import NodeConfig, NodeInfo, start_node, stop_node
from splade_es.engines.node import health

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from faults import kill_node

INDEX = "splade-es-service-outage"
PHASES = ("before kill", "outage", "after recovery")
ERROR_STATUSES = (502, 503)


@dataclass(frozen=True)
class OutagePlan:
    """When the node dies and comes back, relative to the clients' start (seconds).

    Attributes:
        kill_at_s: the SIGKILL.
        down_s: from the kill to the relaunch.
        after_s: load kept up after the first reranked answer past the relaunch.
        max_s: the run ends by then even if the service never recovered.
        step_s: length of each client round after the first (the run ends between rounds).
        back_timeout_s: how long the relaunched node may take to answer its health check.
        client_timeout_s: a request without an answer by then counts as hung.
    """

    kill_at_s: float = 10.0
    down_s: float = 5.0
    after_s: float = 10.0
    max_s: float = 300.0
    step_s: float = 2.0
    back_timeout_s: float = 240.0
    client_timeout_s: float = 90.0

    def __post_init__(self) -> None:
        for name in ("kill_at_s", "down_s", "after_s", "max_s", "step_s", "back_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected seconds > 0.")
        if not self.client_timeout_s > 0:
            raise ValueError(f"client_timeout_s={self.client_timeout_s!r}: expected > 0.")


@dataclass(frozen=True)
class OutageSetup:
    """What the outage run needs: engine, corpus, queries, models, service options."""

    engine: str
    documents: list[Document | Rejected]
    queries: list[str]
    splade: SpladeEncoder
    colbert: ColbertEncoder
    clients: int
    k: int
    options: ServiceOptions
    work: Path


@dataclass(frozen=True)
class Observation:
    """One request of the run, seconds after the clients started."""

    start_s: float
    end_s: float
    latency_ms: float
    outcome: str  # "200 reranked", "503 upstream_unavailable_exception", "no answer: ..."
    status: int | None = None
    engine_shape: bool = True
    reranked: bool = False


@dataclass
class Timeline:
    """Kills the node at ``plan.kill_at_s``, relaunches it ``plan.down_s`` later, then
    polls its health until it answers (times in seconds after ``t0``)."""

    info: NodeInfo
    plan: OutagePlan
    t0: float
    killed_at: float | None = None
    relaunched_at: float | None = None
    back_at: float | None = None
    relaunched_pid: int | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._guarded, name="outage-timeline", daemon=True)

    def _now(self) -> float:
        return time.perf_counter() - self.t0

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as error:  # reported by the run, never lost
            self.error = error

    def _run(self) -> None:
        time.sleep(max(self.plan.kill_at_s - self._now(), 0.0))
        self.killed_at = self._now()
        relaunch = kill_node(self.info.pid, self.info.log_file)
        time.sleep(max(self.killed_at + self.plan.down_s - self._now(), 0.0))
        self.relaunched_pid = relaunch.start()
        self.relaunched_at = self._now()
        deadline = self.relaunched_at + self.plan.back_timeout_s
        while self._now() < deadline:
            answer = health(self.info.url, timeout_s=1.0)
            if answer is not None and answer.get("status") in ("yellow", "green"):
                self.back_at = self._now()
                return
            time.sleep(0.25)


def observation(sample: Sample, offset: float, t0: float) -> Observation:
    """``sample`` of a client round begun at ``offset`` s, on the run's clock."""
    answer = sample.response
    if isinstance(answer, ServiceAnswer):
        end = answer.answered_at - t0
        start = end - sample.latency_ms / 1000
        return Observation(
            start,
            end,
            sample.latency_ms,
            answer.outcome,
            answer.status,
            answer.engine_shape,
            answer.reranked,
        )
    start = offset + sample.start_s
    kind = (sample.error or "no answer").split(":", 1)[0]
    return Observation(
        start, start + sample.latency_ms / 1000, sample.latency_ms, f"no answer: {kind}"
    )


def recovered_at(observations: Sequence[Observation], relaunched_at: float | None) -> float | None:
    """When the first reranked answer of a request sent after the relaunch came back."""
    if relaunched_at is None:
        return None
    ends = [o.end_s for o in observations if o.reranked and o.start_s >= relaunched_at]
    return min(ends, default=None)


def outage_load(
    request: Callable[[str], ServiceAnswer],
    queries: Sequence[str],
    clients: int,
    timeline: Timeline,
) -> list[Observation]:
    """Client rounds from the kill until ``after_s`` past recovery (or ``max_s``)."""
    plan, t0 = timeline.plan, timeline.t0
    observations: list[Observation] = []
    seconds = plan.kill_at_s + plan.down_s
    while True:
        offset = time.perf_counter() - t0
        run = run_load(request, queries, LoadConfig(clients=clients, seconds=seconds))
        observations += [observation(s, offset, t0) for s in run.samples]
        now = time.perf_counter() - t0
        back = recovered_at(observations, timeline.relaunched_at)
        if (back is not None and now >= back + plan.after_s) or now >= plan.max_s:
            return sorted(observations, key=lambda o: o.end_s)
        if timeline.error is not None:
            raise RuntimeError("the kill/relaunch of the node failed") from timeline.error
        print(
            f"  outage run {now:5.1f} s: {len(observations)} answers; killed at "
            f"{_seconds(timeline.killed_at)}, relaunched at {_seconds(timeline.relaunched_at)}, "
            f"node back at {_seconds(timeline.back_at)}",
            flush=True,
        )
        seconds = plan.step_s


def phase_of(item: Observation, killed_at: float, back: float | None) -> str:
    """``before kill``, ``outage`` or ``after recovery``, by when the answer came."""
    if item.end_s < killed_at:
        return "before kill"
    return "outage" if back is None or item.end_s < back else "after recovery"


def phase_table(
    observations: Sequence[Observation], killed_at: float, back: float | None
) -> dict[str, Any]:
    """Per phase: requests, answers by outcome, latency p50 and max (ms)."""
    table: dict[str, Any] = {}
    for phase in PHASES:
        items = [o for o in observations if phase_of(o, killed_at, back) == phase]
        latency = percentiles([o.latency_ms for o in items])
        table[phase] = {
            "requests": len(items),
            "by_outcome": dict(Counter(o.outcome for o in items).most_common()),
            "p50_ms": latency.p50,
            "max_ms": latency.max,
        }
    return table


def outage_summary(observations: Sequence[Observation], timeline: Timeline) -> dict[str, Any]:
    """The outage figures and whether each target was met."""
    killed = timeline.killed_at if timeline.killed_at is not None else float("inf")
    back = recovered_at(observations, timeline.relaunched_at)
    errors = [o for o in observations if o.status is not None and o.status != 200]
    hung = [o for o in observations if o.status is None]
    after = [o for o in observations if phase_of(o, killed, back) == "after recovery"]
    longest = max((o.latency_ms for o in observations), default=0.0)
    bound_ms = timeline.plan.client_timeout_s * 1000

    def since(mark: float | None) -> float | None:
        return None if back is None or mark is None else round(back - mark, 2)

    return {
        "plan": vars(timeline.plan),
        "killed_at_s": timeline.killed_at,
        "relaunched_at_s": timeline.relaunched_at,
        "node_back_at_s": timeline.back_at,
        "first_reranked_again_at_s": back,
        "recovery_s_after_node_back": since(timeline.back_at),
        "recovery_s_after_relaunch": since(timeline.relaunched_at),
        "phases": phase_table(observations, killed, back),
        "error_answers": len(errors),
        "error_answers_by_status": dict(Counter(str(o.status) for o in errors)),
        "error_answers_in_engine_shape": sum(o.engine_shape for o in errors),
        "no_answer": len(hung),
        "max_latency_ms": longest,
        "targets": {
            "never hangs": not hung and longest < bound_ms,
            "errors are 502/503 in the engine's shape": all(
                o.engine_shape and o.status in ERROR_STATUSES for o in errors
            ),
            "recovers by itself": back is not None,
            "only reranked answers after recovery": bool(after) and all(o.reranked for o in after),
        },
    }


@contextlib.contextmanager
def own_node(engine: str, work: Path) -> Iterator[Future[NodeInfo]]:
    """A node this run may kill, starting in the background (it takes a while: let the
    caller load models and index meanwhile); stopped at the end."""
    state = work / "outage-node" / "state.json"
    cache = Path(os.environ.get("SPLADE_ES_CACHE_DIR", Path.home() / ".cache" / "splade-es"))
    config = NodeConfig(engine=engine, state_file=state, cache_dir=cache, heap="512m")  # type: ignore[arg-type]
    with ThreadPoolExecutor(1, thread_name_prefix="outage-node") as pool:
        future = pool.submit(start_node, config, os.environ)
        try:
            yield future
        finally:
            with contextlib.suppress(Exception):
                future.result()  # a node still starting is stopped once it is up
            stop_node(state)


def run_outage(setup: OutageSetup, plan: OutagePlan, info: NodeInfo) -> dict[str, Any]:
    """Index on the node ``info``, serve in front of it, run the clients through its kill
    and relaunch; the outage figures (:func:`outage_summary`)."""
    cluster = connect(ClusterConfig(url=info.url, engine=setup.engine))  # type: ignore[arg-type]
    try:
        built = ensure_index(cluster, INDEX, setup.documents, setup.splade, setup.colbert)
        print(f"outage: {built}", flush=True)
        fields = require_index(cluster, INDEX).meta.get("text_fields", ["title", "text"])
    finally:
        cluster.close()
    timeline = Timeline(info, plan, 0.0)
    try:
        with service_process(info.url, INDEX, setup.options, setup.work / "outage.log") as url:
            client = ServiceClient(setup.engine, url, plan.client_timeout_s, setup.clients)
            request = answering_request(client, INDEX, fields, setup.k)
            warm = [request(query) for query in setup.queries]  # untimed
            if not all(answer.reranked for answer in warm):
                outcomes = [answer.outcome for answer in warm]
                raise RuntimeError(f"the service does not rerank before the kill: {outcomes}")
            timeline.t0 = time.perf_counter()
            timeline.thread.start()
            observations = outage_load(request, setup.queries, setup.clients, timeline)
            timeline.thread.join(plan.back_timeout_s + plan.max_s)
            client.close()
    finally:
        if timeline.relaunched_pid is not None:  # the relaunched node is not in the state file
            with contextlib.suppress(ProcessLookupError):
                os.killpg(timeline.relaunched_pid, signal.SIGKILL)
    result = outage_summary(observations, timeline)
    result.update(node=f"{info.engine} {info.version}", node_start_s=info.start_seconds)
    return result


def describe_outage(result: dict[str, Any]) -> str:
    """The outage as markdown: the timeline, answers by phase and outcome, the targets."""
    plan = result["plan"]
    lines = [
        f"### Upstream SIGKILLed and relaunched mid-run ({result['node']})",
        "",
        f"Node killed at {result['killed_at_s']:.1f} s, relaunched at "
        f"{result['relaunched_at_s']:.1f} s, answering its health check at "
        f"{_seconds(result['node_back_at_s'])}; first reranked answer again at "
        f"{_seconds(result['first_reranked_again_at_s'])} "
        f"({_seconds(result['recovery_s_after_node_back'])} after the node was back). "
        f"Client timeout {plan['client_timeout_s']:g} s; longest request "
        f"{result['max_latency_ms']:.0f} ms; requests without an answer: {result['no_answer']}.",
        "",
        "| phase | answer | count | p50 ms (phase) | max ms (phase) |",
        "|---|---|---:|---:|---:|",
    ]
    for phase, row in result["phases"].items():
        for outcome, count in row["by_outcome"].items() or {"(none)": 0}.items():
            lines.append(
                f"| {phase} | {outcome} | {count} | {row['p50_ms']:.0f} | {row['max_ms']:.0f} |"
            )
    lines += [
        "",
        f"Error answers: {result['error_answers']} {result['error_answers_by_status']}, "
        f"{result['error_answers_in_engine_shape']} of them JSON with `error.type` and "
        "`status` as the engines answer.",
        "",
        *[f"- {name}: {'met' if ok else 'MISSED'}" for name, ok in result["targets"].items()],
    ]
    return "\n".join(lines) + "\n"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
