"""The one connection the service holds: an ``httpx.AsyncClient`` to the upstream cluster.

Requests go to the upstream with the app's method, path (as sent, percent-encoding kept),
query string, body and headers, less the hop-by-hop ones; the app's ``Authorization`` (basic,
API key, bearer) is one of them, sent on and never logged or kept. Answers come back with
their status, headers and raw bytes. No answer at all (refused, reset, timed out) raises
:class:`UpstreamUnavailable`, which the proxy turns into the engines' 502/503 error body.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from splade_es.service.config import ServiceConfig

__all__ = [
    "HOP_BY_HOP",
    "BadTarget",
    "Upstream",
    "UpstreamUnavailable",
    "connection_named",
    "forwarded_headers",
    "read_json",
]

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# Headers httpx adds by itself: removed again unless the app sent them, so the upstream
# sees the app's request (and, say, compresses only for an app that accepts it).
CLIENT_DEFAULTS = ("accept", "accept-encoding", "user-agent")


class UpstreamUnavailable(Exception):
    """No answer from the upstream.

    Attributes:
        status: 503 when it could not be reached (refused, connect timeout), 502 when the
            connection broke or the answer did not come in time.
        error_type: the error ``type`` of the body the app gets.
    """

    def __init__(self, status: int, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason


class BadTarget(ValueError):
    """The app's path or query string cannot be sent on (the proxy answers 400)."""


def connection_named(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[str]:
    """The header names a ``Connection`` header lists (hop-by-hop too, RFC 9110 7.6.1),
    lower-case.

    Example:
        >>> sorted(connection_named([(b"connection", b"close, X-Trace"), (b"x-trace", b"1")]))
        ['close', 'x-trace']
    """
    return frozenset(
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
        if token.strip()
    )


def forwarded_headers(
    headers: Sequence[tuple[bytes, bytes]], body_unchanged: bool
) -> list[tuple[bytes, bytes]]:
    """The app's request headers to send on: all but hop-by-hop ones (and those its
    ``Connection`` header names), and for a body the service rewrote also without
    ``content-length`` and ``content-encoding``.

    Example:
        >>> forwarded_headers([(b"host", b"x"), (b"authorization", b"Basic eDp5")], False)
        [(b'authorization', b'Basic eDp5')]
    """
    dropped = HOP_BY_HOP | connection_named(headers)
    if not body_unchanged:
        dropped |= {"content-length", "content-encoding"}
    return [
        (name, value) for name, value in headers if name.decode("latin-1").lower() not in dropped
    ]


class Upstream:
    """The async client to the upstream, and the requests the service sends it."""

    def __init__(self, config: ServiceConfig) -> None:
        verify: ssl.SSLContext | bool = True
        if config.ca_certs is not None:
            verify = ssl.create_default_context(cafile=str(config.ca_certs))
        self.base = httpx.URL(config.upstream)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                config.upstream_timeout_s, connect=min(10.0, config.upstream_timeout_s)
            ),
            verify=verify,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=config.max_concurrency * 2),
        )

    def url(self, raw_path: bytes, query: bytes) -> httpx.URL:
        """The upstream URL of an app's path and query string (both as sent).

        Raises:
            BadTarget: they hold characters a URL cannot (a ``#``, ...).
        """
        prefix = self.base.raw_path.split(b"?")[0].rstrip(b"/")
        try:
            return self.base.copy_with(
                raw_path=prefix + raw_path + (b"?" + query if query else b"")
            )
        except httpx.InvalidURL as error:
            raise BadTarget(
                f"the request target holds characters a URL cannot ({error}): "
                "percent-encode them (a '#' as %23)"
            ) from error

    async def send(
        self,
        method: str,
        url: httpx.URL,
        headers: Sequence[tuple[bytes, bytes]],
        content: bytes | AsyncIterator[bytes],
    ) -> httpx.Response:
        """Send one request; the answer is open for streaming (close it after).

        Raises:
            UpstreamUnavailable: no answer.
        """
        request = self.client.build_request(method, url, headers=list(headers), content=content)
        sent = {name.decode("latin-1").lower() for name, _ in headers}
        for name in CLIENT_DEFAULTS:
            if name not in sent:
                request.headers.pop(name, None)
        try:
            return await self.client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise UpstreamUnavailable(
                503, "upstream_unavailable_exception", _unreachable(error)
            ) from error
        except httpx.TransportError as error:
            raise UpstreamUnavailable(
                502,
                "upstream_error_exception",
                f"the upstream cluster did not answer ({type(error).__name__})",
            ) from error

    async def read(
        self,
        method: str,
        url: httpx.URL,
        headers: Sequence[tuple[bytes, bytes]],
        content: bytes,
    ) -> httpx.Response:
        """Send one request and read the whole (decoded) answer.

        Raises:
            UpstreamUnavailable: no answer, or it broke off.
        """
        response = await self.send(method, url, headers, content)
        try:
            await response.aread()
        except httpx.TransportError as error:
            raise UpstreamUnavailable(
                502,
                "upstream_error_exception",
                f"the upstream answer broke off ({type(error).__name__})",
            ) from error
        finally:
            await response.aclose()
        return response

    async def json_call(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        headers: Sequence[tuple[bytes, bytes]],
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """A JSON request of the service's own (index ``_meta``, embeddings), sent with the
        app's credentials.

        Raises:
            UpstreamUnavailable: no answer.
        """
        query = httpx.QueryParams(list(params))
        url = self.url(path.encode("ascii"), str(query).encode("ascii"))
        kept = [
            (n, v) for n, v in headers if n.lower() in (b"authorization", b"es-security-runas-user")
        ]
        kept.append((b"content-type", b"application/json"))
        kept.append((b"accept", b"application/json"))
        content = b"" if body is None else _dumps(body)
        return await self.read(method, url, kept, content)

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def read_json(content: bytes) -> Any:
    """An upstream answer's JSON, read by ``orjson`` when it is installed (the ``fast`` extra:
    a first stage with its hits' embeddings is about a megabyte), else by the standard library,
    which also reads what orjson refuses (escaped lone surrogates, valid JSON).

    Raises:
        ValueError: ``content`` is not JSON.

    Example:
        >>> read_json(b'{"a": [1, "\\udc80"]}')
        {'a': [1, '\udc80']}
    """
    try:
        import orjson
    except ImportError:
        return json.loads(content)
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def _unreachable(error: BaseException) -> str:
    """Why the upstream cannot be reached, naming ``ca_certs`` when its certificate failed
    verification (the message of an error, which may hold a URL, is left out)."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return (
            "the upstream cluster's TLS certificate failed verification: set ca_certs "
            "(--ca-certs) to the PEM file of the CA that signed it"
        )
    return f"the upstream cluster cannot be reached ({type(error).__name__})"
