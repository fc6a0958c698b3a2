"""The drop-in service as the load benchmarks see it: ``splade-es serve`` in its own process,
and the official client (``elasticsearch``, or ``opensearch-py``) an app would point at it.

:func:`service_process` starts the service and yields its URL (the last line it prints).
:class:`ServiceClient` sends an app's ``_search`` and returns a :class:`ServiceAnswer`: the
ids and scores, the status, the ``X-Splade-Es`` header and, for an error answer, whether its
body has the engines' error shape. An HTTP error answer is an answer, not an exception; only
no answer at all (a timeout, a refused connection) raises. The clients never retry, so every
error the service gives is seen.

Example:
    >>> with service_process(url, "docs", ServiceOptions(), log) as service:  # doctest: +SKIP
    ...     client = ServiceClient("elasticsearch", service, timeout_s=90, connections=8)
    ...     client.search("docs", {"match": {"text": "aspirin"}}, size=10).header
    'reranked 100'
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load_generator import Response

from splade_es.search.query import bm25_query

HEADER = "x-splade-es"
START_TIMEOUT_S = 300.0  # loading the models on a busy machine
STOP_TIMEOUT_S = 40.0


@dataclass(frozen=True)
class ServiceOptions:
    """How the benchmarks run ``splade-es serve``.

    Attributes:
        rerank_k: first-stage hits reranked (``--rerank-k``).
        rerank_timeout_ms: the per-request rerank budget (``--rerank-timeout-ms``).
        rerank_workers: model threads (``--rerank-workers``).
    """

    rerank_k: int = 100
    rerank_timeout_ms: int = 1000
    rerank_workers: int = 2


@dataclass(frozen=True)
class ServiceAnswer(Response):
    """One answer of the service.

    Attributes:
        status: the HTTP status.
        header: the ``X-Splade-Es`` header (``""`` when absent, as on error answers).
        error_type: ``error.type`` of an error body (``None`` for 200).
        engine_shape: an error body is JSON with ``error.type`` and ``status`` equal to the
            HTTP status, as the engines answer (always ``True`` for 200).
        answered_at: ``time.perf_counter()`` when the answer came back.
    """

    status: int = 200
    header: str = ""
    error_type: str | None = None
    engine_shape: bool = True
    answered_at: float = 0.0

    @property
    def reranked(self) -> bool:
        """Whether the service reranked this answer (``X-Splade-Es: reranked N``)."""
        return self.status == 200 and self.header.startswith("reranked")

    @property
    def outcome(self) -> str:
        """A short label: ``200 reranked``, ``200 passthrough; <reason>``, ``503 <type>``."""
        if self.status == 200:
            return "200 reranked" if self.reranked else f"200 {self.header or 'no header'}"
        return f"{self.status} {self.error_type or 'unreadable body'}"


def engine_error_shape(body: Any, status: int) -> bool:
    """Whether ``body`` is an engine error: ``{"error": {"type": ...}, "status": status}``.

    Example:
        >>> engine_error_shape({"error": {"type": "x", "reason": "y"}, "status": 503}, 503)
        True
        >>> engine_error_shape({"error": "x"}, 503)
        False
    """
    if not isinstance(body, Mapping) or body.get("status") != status:
        return False
    error = body.get("error")
    return isinstance(error, Mapping) and isinstance(error.get("type"), str)


def error_answer(status: int, body: Any, started: float) -> ServiceAnswer:
    """The :class:`ServiceAnswer` of an error answer (``body`` as the client decoded it)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    kind = error.get("type") if isinstance(error, Mapping) else None
    now = time.perf_counter()
    return ServiceAnswer(
        (),
        (),
        {"client": (now - started) * 1000},
        status=status,
        error_type=str(kind) if kind is not None else None,
        engine_shape=engine_error_shape(body, status),
        answered_at=now,
    )


def hits_answer(body: Mapping[str, Any], header: str, started: float) -> ServiceAnswer:
    """The :class:`ServiceAnswer` of a 200 ``_search`` answer."""
    hits = body.get("hits", {}).get("hits", [])
    now = time.perf_counter()
    return ServiceAnswer(
        tuple(str(hit["_id"]) for hit in hits),
        tuple(float(hit.get("_score") or 0.0) for hit in hits),
        {"client": (now - started) * 1000, "took": float(body.get("took", 0))},
        header=header,
        answered_at=now,
    )


class ServiceClient:
    """The engine's official client pointed at the service, shared by every client thread.

    Args:
        engine: ``elasticsearch`` (the ``elasticsearch`` client) or ``opensearch``
            (``opensearch-py``).
        url: the service.
        timeout_s: per-request timeout; a request past it raises (it "hung").
        connections: pooled connections (one per client thread).
    """

    def __init__(self, engine: str, url: str, timeout_s: float, connections: int) -> None:
        if engine not in ("elasticsearch", "opensearch"):
            raise ValueError(f"engine={engine!r}: expected 'elasticsearch' or 'opensearch'.")
        self.engine = engine
        self._local = threading.local()
        if engine == "elasticsearch":
            from elasticsearch import Elasticsearch

            self._client: Any = Elasticsearch(
                url,
                request_timeout=timeout_s,
                max_retries=0,
                retry_on_status=(),
                retry_on_timeout=False,
                connections_per_node=connections,
            )
        else:
            self._client = _opensearch_client(url, timeout_s, connections, self._local)

    def search(self, index: str, query: Mapping[str, Any], size: int) -> ServiceAnswer:
        """``POST /{index}/_search`` with ``{"query": query, "size": size}``.

        Raises:
            Exception: the client's own when no answer came (timeout, connection error).
        """
        started = time.perf_counter()
        if self.engine == "elasticsearch":
            from elasticsearch import ApiError

            try:
                response = self._client.search(index=index, query=dict(query), size=size)
            except ApiError as error:
                return error_answer(error.meta.status, error.body, started)
            header = response.meta.headers.get(HEADER, "")
            return hits_answer(response.body, header, started)
        from opensearchpy import ConnectionError as NoAnswer
        from opensearchpy import TransportError

        self._local.headers = {}
        try:
            body = self._client.search(index=index, body={"query": dict(query), "size": size})
        except NoAnswer:
            raise
        except TransportError as error:
            return error_answer(int(error.status_code), error.info, started)
        headers = {k.lower(): v for k, v in self._local.headers.items()}
        return hits_answer(body, headers.get(HEADER, ""), started)

    def close(self) -> None:
        self._client.close()


def _opensearch_client(url: str, timeout_s: float, connections: int, local: Any) -> Any:
    """opensearch-py's client, keeping each thread's last answer headers on ``local``
    (its ``search`` returns the body only)."""
    from opensearchpy import OpenSearch, Urllib3HttpConnection

    class HeaderConnection(Urllib3HttpConnection):
        def perform_request(self, *args: Any, **kwargs: Any) -> Any:
            status, headers, data = super().perform_request(*args, **kwargs)
            local.headers = dict(headers)
            return status, headers, data

    return OpenSearch(
        hosts=[url],
        timeout=timeout_s,
        max_retries=0,
        retry_on_status=(),
        retry_on_timeout=False,
        connection_class=HeaderConnection,
        maxsize=connections,
    )


def answering_request(
    client: ServiceClient, index: str, text_fields: Sequence[str], k: int
) -> Callable[[str], ServiceAnswer]:
    """A request through the service: the app's BM25 query (as the library's ``bm25``
    first stage sends it) with ``size`` k; error answers come back, not raised."""
    fields = list(text_fields)

    def request(query: str) -> ServiceAnswer:
        return client.search(index, bm25_query(query, fields), k)

    return request


def serve_command(upstream: str, index: str, options: ServiceOptions) -> list[str]:
    """The ``splade-es serve`` command line in front of ``upstream``, reranking ``index``."""
    return [
        sys.executable,
        "-m",
        "splade_es",
        "serve",
        "--upstream",
        upstream,
        "--port",
        "0",
        "--rerank-index",
        index,
        "--rerank-k",
        str(options.rerank_k),
        "--rerank-timeout-ms",
        str(options.rerank_timeout_ms),
        "--rerank-workers",
        str(options.rerank_workers),
    ]


@contextmanager
def service_process(upstream: str, index: str, options: ServiceOptions, log: Path) -> Iterator[str]:
    """Run ``splade-es serve`` in its own process; yield its URL; stop it with SIGTERM.

    Its stderr goes to ``log``.

    Raises:
        RuntimeError: it ended or printed no URL within ``START_TIMEOUT_S`` (with its log).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = serve_command(upstream, index, options)
    with log.open("wb") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, env=env
        )
    try:
        yield _service_url(process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _service_url(process: subprocess.Popen[bytes], log: Path) -> str:
    """The URL the service prints once ready (its stdout's last line)."""
    if process.stdout is None:
        raise RuntimeError("splade-es serve was started without a stdout pipe.")
    watchdog = threading.Timer(START_TIMEOUT_S, process.kill)  # unblocks readline
    watchdog.start()
    try:
        while line := process.stdout.readline():
            text = line.decode().strip()
            if text.startswith(("http://", "https://")):
                return text
    finally:
        watchdog.cancel()
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"splade-es serve printed no URL (exit {process.poll()}):\n{tail}")
