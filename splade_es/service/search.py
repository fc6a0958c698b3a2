"""A ``_search`` on a configured index: read it, run the first stage, rerank, answer.

Top-down: the index's profile (its ``_meta``) -> the plan (query text, first-stage body)
-> the first stage -> the rerank of its head (failing open) -> the answer in the engine's
shape, with ``X-Splade-Es: reranked N`` or ``X-Splade-Es: passthrough; <reason>``. A request
the service cannot read passes through untouched, with the reason in the header.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
import zlib
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response

from splade_es.service.catalog import IndexCatalog
from splade_es.service.config import IndexRule
from splade_es.service.first_stage import FirstStageAnswer, FirstStageRunner
from splade_es.service.forwarding import (
    AppRequest,
    content_response,
    error_response,
    forward,
    json_response,
)
from splade_es.service.metrics import ServiceMetrics
from splade_es.service.queries import SearchPlan, Unhandled, plan_search
from splade_es.service.rerank_stage import Outcome, RerankStage
from splade_es.service.responses import first_stage_answer, reranked_answer
from splade_es.service.upstream import Upstream, forwarded_headers

__all__ = ["HEADER", "SearchHandler"]

logger = logging.getLogger(__name__)
HEADER = "X-Splade-Es"


class SearchHandler:
    """Serves the ``_search`` requests of the configured indices."""

    def __init__(
        self,
        catalog: IndexCatalog,
        first_stage: FirstStageRunner,
        rerank: RerankStage,
        upstream: Upstream,
        metrics: ServiceMetrics,
        max_body_bytes: int,
    ) -> None:
        self.catalog = catalog
        self.max_body_bytes = max_body_bytes
        self.first_stage = first_stage
        self.rerank = rerank
        self.upstream = upstream
        self.metrics = metrics

    async def handle(self, request: AppRequest, target: str, rule: IndexRule) -> Response:
        """The answer to ``request``, a ``_search`` on ``target`` (which ``rule`` names).

        A first stage answered other than 200 goes back as it came (status, body, content
        type), with ``X-Splade-Es: passthrough; first stage answered N``.

        Raises:
            UpstreamUnavailable: the upstream does not answer (the proxy answers 502/503).
            BadTarget: the path cannot be sent on (the proxy answers 400).
        """
        started = time.perf_counter()
        try:
            profile = await self.catalog.profile(target, request.headers)
            body = _decoded(request.body, _encoding(request.headers), self.max_body_bytes)
            plan = plan_search(body, _params(request.query), rule.rerank_k, profile.source)
            sent = forwarded_headers(request.headers, body_unchanged=False)
            path = request.raw_path.decode("ascii")
            first = await self.first_stage.run(plan, profile, path, sent)
        except BadBody as error:  # the engines hang up on such a body: answer it here
            self.metrics.requests.labels(outcome="refused").inc()
            return error_response(400, "parse_exception", str(error))
        except Unhandled as error:
            return await self.passthrough(request, error.reason)
        if first.status != 200:
            return self._first_stage_error(first)
        self.metrics.observe("first_stage", _ms_since(started))
        head = first.answer.get("hits", {}).get("hits", [])[: rule.rerank_k]
        outcome = await self.rerank.attempt(profile, plan, head, request.headers)
        for stage, milliseconds in outcome.timings.items():
            self.metrics.observe(stage, milliseconds)
        response = self._answer(first, plan, outcome, _ms_since(started))
        self.metrics.observe("total", _ms_since(started))
        return response

    def _answer(
        self, first: FirstStageAnswer, plan: SearchPlan, outcome: Outcome, elapsed_ms: float
    ) -> Response:
        """The reranked answer, or the first stage's when the rerank failed (fail open)."""
        if outcome.reason is None:
            try:
                upstream_took = float(first.answer.get("took", 0))
                added = max(elapsed_ms - upstream_took, 0.0)
                body = reranked_answer(first.answer, outcome.hits, plan, added)
            except (ValueError, TypeError) as error:
                logger.warning("reranked answer could not be written: %r", error)
                outcome = Outcome([], f"rerank error: {type(error).__name__}")
            else:
                self.metrics.requests.labels(outcome="reranked").inc()
                self.metrics.reranked_hits.inc(outcome.reranked)
                header = f"reranked {outcome.reranked}"
                return json_response(body, 200, first.headers.raw, {HEADER: header})
        reason = outcome.reason or "rerank error"
        self.metrics.requests.labels(outcome="fail_open").inc()
        self.metrics.fail_open.labels(reason=reason).inc()
        body = first_stage_answer(first.answer, plan)
        return json_response(body, 200, first.headers.raw, {HEADER: f"passthrough; {reason}"})

    def _first_stage_error(self, first: FirstStageAnswer) -> Response:
        """The first stage's answer other than 200, sent back as it came (not sent again)."""
        reason = f"first stage answered {first.status}"
        self.metrics.requests.labels(outcome="passthrough").inc()
        self.metrics.passed_searches.labels(reason=reason).inc()
        extra = {HEADER: f"passthrough; {reason}"}
        return content_response(first.content, first.status, first.headers.raw, extra)

    async def passthrough(self, request: AppRequest, reason: str) -> Response:
        """``request`` sent on unchanged, its answer streamed back, with the reason."""
        self.metrics.requests.labels(outcome="passthrough").inc()
        self.metrics.passed_searches.labels(reason=reason).inc()
        return await forward(
            self.upstream, request, request.body, {HEADER: f"passthrough; {reason}"}
        )


class BadBody(ValueError):
    """A ``_search`` body no engine could read (the engines close the connection on it)."""


def _decoded(body: bytes, encoding: str, limit: int) -> Any:
    """The app's JSON body (gzip-compressed ones too, as the clients' ``http_compress``
    sends them, up to ``limit`` bytes once decompressed)."""
    if encoding == "gzip":
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflate.decompress(body, limit + 1)
        except zlib.error as error:
            raise BadBody(
                "the request body is declared Content-Encoding: gzip but is not gzip: send it "
                "compressed, or without that header"
            ) from error
        if len(body) > limit or inflate.unconsumed_tail:
            raise Unhandled("body over the limit once decompressed")
    elif encoding not in ("", "identity"):
        raise Unhandled("body encoding unreadable")
    if not body.strip():
        return {}
    try:  # strict UTF-8: json.loads(bytes) lets lone surrogates through, the engines do not
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise Unhandled("body is not JSON") from error


def _encoding(headers: Sequence[tuple[bytes, bytes]]) -> str:
    found = [value for name, value in headers if name.lower() == b"content-encoding"]
    return found[-1].decode("latin-1").strip().lower() if found else ""


def _params(query: bytes) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
