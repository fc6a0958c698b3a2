"""The ASGI app: an Elasticsearch/OpenSearch-compatible proxy in front of one upstream.

Every request passes through unchanged (streamed both ways), except ``GET``/``POST
/{index}/_search`` on a configured index, which :class:`~splade_es.service.search.
SearchHandler` reranks. Before that, the :class:`Guard` refuses what must not reach the
upstream (absolute URLs, ``CONNECT``, ``Host`` tricks, path traversal, a target no URL can
hold: 400), bodies over the limit (413) and requests over the concurrency limit (429). No
answer from the upstream becomes 502/503 in the engines' error shape, and so does any other
error (502 from the upstream connection, 500 for a bug in the service). The service's own
endpoints are ``GET /_splade_es/health`` and ``GET /_splade_es/metrics`` (outside the
concurrency limit); other ``/_splade_es/`` paths answer 404 and never reach the upstream.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from splade_es.service.catalog import IndexCatalog
from splade_es.service.config import ServiceConfig
from splade_es.service.first_stage import FirstStageRunner
from splade_es.service.forwarding import AppRequest, BodyTooLarge, error_response, forward, limited
from splade_es.service.guards import SERVICE_PATHS, SERVICE_PREFIX, refusal, search_target
from splade_es.service.health import health_report
from splade_es.service.metrics import CONTENT_TYPE, ServiceMetrics
from splade_es.service.models import ServiceModels
from splade_es.service.rerank_stage import ModelPool, RerankStage
from splade_es.service.search import HEADER, SearchHandler
from splade_es.service.upstream import BadTarget, Upstream, UpstreamUnavailable

__all__ = ["METHODS", "Guard", "Proxy", "create_app"]

logger = logging.getLogger(__name__)
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


class Guard:
    """ASGI middleware: refuses bad request targets (400), bodies declared over the limit
    (413) and requests beyond the concurrency limit (429), before any upstream call."""

    def __init__(self, app: ASGIApp, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        problem = refusal(raw_path, scope["headers"], scope["method"])
        declared = _content_length(scope)
        response: Response | None = None
        if problem is not None:
            response = error_response(400, "illegal_argument_exception", problem)
        elif declared is not None and declared > self.config.max_body_bytes:
            response = _too_large(self.config.max_body_bytes)
        elif scope["path"].startswith(SERVICE_PREFIX):
            response = _own_endpoint_refusal(scope["method"], scope["path"])
            if response is None:  # health and metrics: outside the concurrency limit
                await self.app(scope, receive, send)
                return
        elif self.in_flight >= self.config.max_concurrency:
            response = error_response(
                429,
                "es_rejected_execution_exception",
                f"splade-es serve: {self.in_flight} requests in flight (max_concurrency "
                f"{self.config.max_concurrency}); retry later",
            )
        if response is not None:
            self.metrics.requests.labels(outcome="refused").inc()
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class Proxy:
    """The service's parts and its endpoints (one per app)."""

    def __init__(
        self, config: ServiceConfig, models: ServiceModels, metrics: ServiceMetrics
    ) -> None:
        self.config = config
        self.models = models
        self.metrics = metrics
        self.upstream = Upstream(config)
        self.pool = ModelPool(config.rerank_workers, queued=config.rerank_workers * 4)
        catalog = IndexCatalog(config, models, self.upstream)
        stage = RerankStage(catalog, self.upstream, self.pool, config.rerank_timeout_ms)
        runner = FirstStageRunner(config.first_stage, models, self.upstream, self.pool)
        self.searches = SearchHandler(
            catalog, runner, stage, self.upstream, metrics, config.max_body_bytes
        )

    async def proxy(self, request: Request) -> Response:
        """Any request but the service's own: passed through, or a handled ``_search``."""
        scope = request.scope
        started = time.perf_counter()
        target = search_target(request.method, scope["path"])
        rule = self.config.rule_for(target) if target is not None else None
        app_request = AppRequest(
            request.method,
            scope.get("raw_path") or scope["path"].encode("utf-8"),
            scope.get("query_string", b""),
            tuple(scope["headers"]),
            b"",
        )
        try:
            if target is not None and rule is not None:
                body = b"".join(
                    [c async for c in limited(request.stream(), self.config.max_body_bytes)]
                )
                app_request = dataclasses.replace(app_request, body=body)
                return await self.searches.handle(app_request, target, rule)
            extra = {HEADER: "passthrough; index not configured"} if target else {}
            response = await forward(self.upstream, app_request, self._body(request), extra)
            self.metrics.requests.labels(outcome="passthrough").inc()
            return response
        except BodyTooLarge:
            self.metrics.requests.labels(outcome="refused").inc()
            return _too_large(self.config.max_body_bytes)
        except UpstreamUnavailable as error:
            logger.warning("upstream unavailable for %s: %s", request.method, error.reason)
            self.metrics.requests.labels(outcome="upstream_unavailable").inc()
            return error_response(error.status, error.error_type, error.reason)
        except BadTarget as error:
            self.metrics.requests.labels(outcome="refused").inc()
            return error_response(400, "illegal_argument_exception", str(error))
        except Exception as error:  # the last resort: an answer in the engines' shape
            self.metrics.requests.labels(outcome="error").inc()
            return unexpected_error(error, request.method)
        finally:
            if rule is None:
                self.metrics.observe("passthrough", (time.perf_counter() - started) * 1000)

    def _body(self, request: Request) -> bytes | AsyncIterator[bytes]:
        """The body to stream on (none for a request that declares none)."""
        names = {name for name, _ in request.scope["headers"]}
        if b"content-length" not in names and b"transfer-encoding" not in names:
            return b""
        return limited(request.stream(), self.config.max_body_bytes)

    async def health(self, request: Request) -> Response:
        """``GET /_splade_es/health``."""
        status, body = await health_report(self.upstream, self.models)
        return JSONResponse(body, status_code=status)

    async def metrics_page(self, request: Request) -> Response:
        """``GET /_splade_es/metrics`` (Prometheus text)."""
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def close(self) -> None:
        """Close the upstream connections and the model threads."""
        await self.upstream.aclose()
        self.pool.close()


def create_app(
    config: ServiceConfig, models: ServiceModels, metrics: ServiceMetrics | None = None
) -> Starlette:
    """The service as an ASGI app (serve it with uvicorn: :func:`splade_es.service.server.serve`).

    Example:
        >>> config = ServiceConfig(upstream="http://127.0.0.1:9200", indices=(IndexRule("docs"),))
        >>> app = create_app(config, load_models(config))  # doctest: +SKIP
    """
    proxy = Proxy(config, models, metrics or ServiceMetrics())

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await proxy.close()

    routes = [
        Route(f"{SERVICE_PREFIX}health", proxy.health, methods=["GET"]),
        Route(f"{SERVICE_PREFIX}metrics", proxy.metrics_page, methods=["GET"]),
        Route("/{path:path}", proxy.proxy, methods=METHODS),
    ]
    guard = Middleware(Guard, config=config, metrics=proxy.metrics)
    app = Starlette(
        routes=routes,
        middleware=[guard],
        lifespan=lifespan,
        exception_handlers={Exception: _last_resort},
    )
    app.state.proxy = proxy
    return app


def unexpected_error(error: Exception, method: str) -> Response:
    """An exception nothing else handled, as an error in the engines' shape: 502 when it
    came from the upstream connection (``httpx``), 500 otherwise (a bug in the service).

    Logged with its type and traceback but not its message, which could quote a header.
    """
    trace = "".join(traceback.format_tb(error.__traceback__))
    kind = type(error).__name__
    if isinstance(error, httpx.HTTPError):
        logger.warning("upstream error for %s: %s\n%s", method, kind, trace)
        reason = f"the upstream cluster's answer could not be relayed ({kind})"
        return error_response(502, "upstream_error_exception", reason)
    logger.error("internal error for %s: %s\n%s", method, kind, trace)
    reason = f"splade-es serve: internal error ({kind}); the service log has the traceback"
    return error_response(500, "splade_es_internal_exception", reason)


async def _last_resort(request: Request, error: Exception) -> Response:
    """Starlette's handler of last resort (errors outside :meth:`Proxy.proxy`)."""
    return unexpected_error(error, request.method)


def _own_endpoint_refusal(method: str, path: str) -> Response | None:
    """``None`` for ``GET`` of the service's own endpoints; else 404 (no such endpoint)
    or 405 (another method), never sent upstream."""
    if path not in SERVICE_PATHS:
        return error_response(
            404,
            "resource_not_found_exception",
            f"no splade-es endpoint {path[:80]!r}: the service serves "
            f"{' and '.join(SERVICE_PATHS)}",
        )
    if method not in ("GET", "HEAD"):
        return error_response(
            405, "method_not_allowed_exception", f"{method} {path}: send GET (or HEAD)"
        )
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> Response:
    return error_response(
        413, "content_too_long_exception", f"request body is over max_body_bytes ({limit} bytes)"
    )
