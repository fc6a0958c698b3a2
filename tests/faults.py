"""Fault injection around a real client: the node itself cannot fail on demand.

``inject(cluster, plan)`` wraps the client's transport so that chosen ``_bulk`` calls fail
before reaching the node (429/503 answers, connection resets, timeouts) or come back with
chosen documents marked as rejected (429). Every other call goes to the real node.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    """What happens to one bulk call: raise ``kind``, or reject some documents (``reject``)."""

    kind: str | None = None  # "429", "503", "reset", "timeout"
    reject: set[str] = field(default_factory=set)  # document ids answered 429


@dataclass
class Recorder:
    """Bulk calls seen: the document ids of each, and whether it reached the node."""

    calls: list[list[str]] = field(default_factory=list)
    delivered: list[bool] = field(default_factory=list)


def _ids(body: Any) -> list[str]:
    if isinstance(body, bytes | str):
        lines = body.decode() if isinstance(body, bytes) else body
        rows = [json.loads(line) for line in lines.splitlines() if line.strip()]
    else:
        rows = [json.loads(r) if isinstance(r, bytes | str) else r for r in body]
    return [
        next(iter(r.values()))["_id"]
        for r in rows
        if isinstance(r, dict) and len(r) == 1 and "index" in r
    ]


def _error(engine: str, kind: str) -> Exception:
    if engine == "elasticsearch":
        import elastic_transport
        from elasticsearch import ApiError

        if kind == "reset":
            return elastic_transport.ConnectionError("Connection reset by peer (injected)")
        if kind == "timeout":
            return elastic_transport.ConnectionTimeout("Read timed out (injected)")
        meta = elastic_transport.ApiResponseMeta(
            status=int(kind),
            http_version="1.1",
            headers=elastic_transport.HttpHeaders(),
            duration=0.0,
            node=elastic_transport.NodeConfig("http", "127.0.0.1", 9200),
        )
        body = {"error": {"type": "injected", "reason": f"injected {kind}"}, "status": int(kind)}
        return ApiError(f"injected {kind}", meta=meta, body=body)
    import opensearchpy

    if kind == "reset":
        return opensearchpy.ConnectionError("N/A", "Connection reset by peer (injected)", OSError())
    if kind == "timeout":
        return opensearchpy.ConnectionTimeout("TIMEOUT", "Read timed out (injected)", OSError())
    return opensearchpy.TransportError(int(kind), "injected", {"error": f"injected {kind}"})


@contextmanager
def inject(cluster: Any, plan: Callable[[int, list[str]], Fault | None]) -> Iterator[Recorder]:
    """Apply ``plan(call_number, ids)`` to each bulk call while the block runs."""
    transport = cluster.client.transport
    real = transport.perform_request
    recorder = Recorder()

    def perform_request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if not path.rstrip("/").endswith("_bulk"):
            return real(method, path, *args, **kwargs)
        ids = _ids(kwargs.get("body"))
        recorder.calls.append(ids)
        fault = plan(len(recorder.calls), ids)
        if fault is not None and fault.kind is not None:
            recorder.delivered.append(False)
            raise _error(cluster.engine, fault.kind)
        response = real(method, path, *args, **kwargs)
        recorder.delivered.append(True)
        if fault is not None and fault.reject:
            body = response.body if hasattr(response, "body") else response
            body["errors"] = True
            for item in body["items"]:
                detail = next(iter(item.values()))
                if detail["_id"] in fault.reject:
                    detail["status"] = 429
                    detail["error"] = {
                        "type": "es_rejected_execution_exception",
                        "reason": "injected",
                    }
        return response

    transport.perform_request = perform_request
    try:
        yield recorder
    finally:
        transport.perform_request = real
