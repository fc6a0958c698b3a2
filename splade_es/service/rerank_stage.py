"""Model work off the event loop, bounded, on a budget; and the rerank that fails open.

:class:`ModelPool` runs blocking calls (encoding, MaxSim) on a fixed number of threads and
refuses new work when too much is queued. :class:`RerankStage` reranks the head of a
first-stage answer within ``rerank_timeout_ms``: it fetches embeddings the hits lack, then
reranks in the pool. It never raises: any error or a run past the budget gives an
:class:`Outcome` with the reason, and the proxy sends the first-stage answer back (fail
open). A call past its budget keeps its thread until it ends, one not started yet is
dropped; the pool's bound keeps such calls from piling up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from colbert_rerank.rerank import Reranker, RerankResult
from splade_es.service.catalog import IndexCatalog, IndexProfile
from splade_es.service.embeddings import embeddings_from, fetch_request
from splade_es.service.queries import SearchPlan, Unhandled
from splade_es.service.upstream import Upstream, UpstreamUnavailable, read_json

__all__ = ["ModelPool", "Outcome", "PoolBusy", "RerankStage"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class PoolBusy(RuntimeError):
    """The model threads already have as much work queued as the pool allows."""


class ModelPool:
    """A bounded thread pool for blocking model calls.

    A call whose caller stopped waiting (past its timeout, or cancelled) is dropped if it has
    not started, and skipped at its start if it was queued past its deadline, so abandoned
    work does not hold the threads; a call already running ends on its thread.

    Args:
        workers: threads running model calls.
        queued: calls waiting or running at most (more raise :class:`PoolBusy`).
    """

    def __init__(self, workers: int, queued: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splade-es")
        self._limit = queued
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Calls queued or running now."""
        return self._pending

    async def run(self, call: Callable[[], T], timeout_s: float) -> T:
        """``call()`` on a model thread, awaited at most ``timeout_s`` seconds.

        Raises:
            PoolBusy: too much work queued already.
            TimeoutError: past ``timeout_s`` (a call already running ends on its thread;
                one not started is dropped).
        """
        with self._lock:
            if self._pending >= self._limit:
                raise PoolBusy(f"{self._pending} model calls queued")
            self._pending += 1
        deadline = time.monotonic() + timeout_s
        try:
            work = self._executor.submit(_before(deadline, call))
        except BaseException:
            self._done(None)
            raise
        work.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(work)), timeout_s)
        except BaseException:
            work.cancel()  # only drops a call that has not started
            raise

    def _done(self, _work: Future[Any] | None) -> None:
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        """Stop taking work; queued calls are dropped, running ones finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _before(deadline: float, call: Callable[[], T]) -> Callable[[], T]:
    """``call``, skipped when its thread picks it up past ``deadline`` (its caller left)."""

    def guarded() -> T:
        if time.monotonic() >= deadline:
            raise TimeoutError("model call abandoned: queued past its deadline")
        return call()

    return guarded


@dataclass(frozen=True)
class Outcome:
    """What a rerank attempt did.

    Attributes:
        hits: the reranker's hits for the head (empty when it failed).
        reason: ``None`` when reranked; else why the first-stage answer goes back.
        reranked: hits rescored by MaxSim.
        timings: milliseconds by stage (``fetch``, ``rerank``).
    """

    hits: list[dict[str, Any]]
    reason: str | None
    reranked: int = 0
    timings: dict[str, float] = field(default_factory=dict)


class RerankStage:
    """Reranks the head of a first-stage answer, failing open."""

    def __init__(
        self, catalog: IndexCatalog, upstream: Upstream, pool: ModelPool, budget_ms: int
    ) -> None:
        self.catalog = catalog
        self.upstream = upstream
        self.pool = pool
        self.budget_ms = budget_ms

    async def attempt(
        self,
        profile: IndexProfile,
        plan: SearchPlan,
        head: Sequence[Mapping[str, Any]],
        headers: Sequence[tuple[bytes, bytes]],
    ) -> Outcome:
        """Rerank ``head`` (the first ``rerank_k`` first-stage hits) for ``plan.text``.

        Never raises: errors and timeouts come back as :attr:`Outcome.reason`.
        """
        timings: dict[str, float] = {}
        try:
            async with asyncio.timeout(self.budget_ms / 1000):
                result = await self._rerank(profile, plan, head, headers, timings)
        except TimeoutError:
            return Outcome([], "rerank timeout", 0, timings)
        except PoolBusy:
            return Outcome([], "rerank busy", 0, timings)
        except Unhandled as error:
            return Outcome([], error.reason, 0, timings)
        except UpstreamUnavailable:
            return Outcome([], "embedding fetch failed", 0, timings)
        except Exception as error:  # fail open: any rerank error returns the first stage
            logger.warning("rerank failed, answering with the first stage: %r", error)
            return Outcome([], f"rerank error: {type(error).__name__}", 0, timings)
        return Outcome(result.hits, None, result.stats.reranked, timings)

    async def _rerank(
        self,
        profile: IndexProfile,
        plan: SearchPlan,
        head: Sequence[Mapping[str, Any]],
        headers: Sequence[tuple[bytes, bytes]],
        timings: dict[str, float],
    ) -> RerankResult:
        reranker = await self.catalog.reranker(profile, headers)
        started = time.perf_counter()
        embeddings: dict[str, Any] = {}
        if not plan.route.inline and head:
            embeddings = await self._fetch(profile, [str(h["_id"]) for h in head], headers)
        timings["fetch"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        remaining = self.budget_ms / 1000 - sum(timings.values()) / 1000
        result = await self.pool.run(
            _call(reranker, plan.text, list(head), embeddings), max(remaining, 0.001)
        )
        timings["rerank"] = (time.perf_counter() - started) * 1000
        return result

    async def _fetch(
        self, profile: IndexProfile, ids: list[str], headers: Sequence[tuple[bytes, bytes]]
    ) -> dict[str, Any]:
        method, path, params, body = fetch_request(profile.name, ids, profile.source)
        response = await self.upstream.json_call(method, path, params, headers, body)
        if response.status_code != 200:
            raise Unhandled(f"embedding fetch failed (status {response.status_code})")
        return embeddings_from(read_json(response.content), profile.source.field)


def _call(
    reranker: Reranker, text: str, head: list[Mapping[str, Any]], embeddings: dict[str, Any]
) -> Callable[[], RerankResult]:
    def run() -> RerankResult:
        return reranker.rerank(text, head, embeddings or None)

    return run
