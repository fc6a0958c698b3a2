"""Passing a request through to the upstream unchanged, and the answers the service writes.

The upstream's answer is streamed back as it comes: status, headers (less hop-by-hop ones)
and the raw bytes, so a passed-through body is byte-identical to the upstream's. Request
bodies stream too, counted against the size limit on the way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from splade_es.service.responses import error_body
from splade_es.service.upstream import (
    HOP_BY_HOP,
    Upstream,
    connection_named,
    forwarded_headers,
)

__all__ = [
    "AppRequest",
    "BodyTooLarge",
    "content_response",
    "error_response",
    "forward",
    "json_response",
    "limited",
]

Headers = Sequence[tuple[bytes, bytes]]


class BodyTooLarge(ValueError):
    """The request body is over ``max_body_bytes``."""


@dataclass(frozen=True)
class AppRequest:
    """An app's request, its body read (a ``_search`` the service may rewrite).

    Attributes:
        method: the HTTP method.
        raw_path: the path as sent (percent-encoded).
        query: the raw query string.
        headers: the request headers, names lower-case.
        body: the whole body.
    """

    method: str
    raw_path: bytes
    query: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


async def forward(
    upstream: Upstream,
    request: AppRequest,
    content: bytes | AsyncIterator[bytes],
    extra: Mapping[str, str],
) -> StreamingResponse:
    """Send ``request`` (with ``content`` as its body) to the upstream and stream the
    answer back unchanged, plus the ``extra`` headers.

    Raises:
        UpstreamUnavailable: no answer.
        BodyTooLarge: the streamed body went over the limit.
    """
    url = upstream.url(request.raw_path, request.query)
    headers = forwarded_headers(request.headers, body_unchanged=True)
    answer = await upstream.send(request.method, url, headers, content)
    response = StreamingResponse(
        answer.aiter_raw(), status_code=answer.status_code, background=BackgroundTask(answer.aclose)
    )
    dropped = HOP_BY_HOP | connection_named(answer.headers.raw)
    kept = [
        (name, value)
        for name, value in answer.headers.raw
        if name.decode("latin-1").lower() not in dropped
    ]
    response.raw_headers = kept + _encoded(extra)
    return response


def json_response(
    body: Any, status: int, upstream_headers: Headers, extra: Mapping[str, str]
) -> Response:
    """A JSON answer the service rewrote, with the upstream's headers (less length,
    encoding and hop-by-hop ones) and the ``extra`` ones.

    Non-ASCII characters are written as ``\\u`` escapes, so a lone surrogate a document
    holds (valid JSON, as the engines send it) stays encodable.
    """
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return content_response(content, status, upstream_headers, extra)


def content_response(
    content: bytes, status: int, upstream_headers: Headers, extra: Mapping[str, str]
) -> Response:
    """An upstream answer read whole (decompressed), sent back with its status and headers
    (less length, encoding and hop-by-hop ones) and the ``extra`` ones."""
    dropped = HOP_BY_HOP | connection_named(upstream_headers) | {"content-length"}
    dropped |= {"content-encoding"}
    kept = [(n, v) for n, v in upstream_headers if n.decode("latin-1").lower() not in dropped]
    response = Response(content, status_code=status)
    length = [(b"content-length", str(len(content)).encode("ascii"))]
    response.raw_headers = kept + length + _encoded(extra)
    return response


def error_response(status: int, error_type: str, reason: str) -> Response:
    """An error the service answers itself, in the engines' error shape."""
    headers = [(b"content-type", b"application/json; charset=UTF-8")]
    return json_response(error_body(status, error_type, reason), status, headers, {})


async def limited(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """``stream`` as it comes, raising :class:`BodyTooLarge` past ``max_bytes``."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > max_bytes:
            raise BodyTooLarge(f"request body over {max_bytes} bytes")
        if chunk:
            yield chunk


def _encoded(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
