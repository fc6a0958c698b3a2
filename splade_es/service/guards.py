"""What the service refuses before anything reaches the upstream. Pure.

The service only ever talks to its one upstream, so a request must name a path on it:
absolute URLs in the request line, ``CONNECT``, a ``Host`` header that is not a plain
``host[:port]`` (or several of them), and path traversal (path segments that are ``.`` or
``..``, literal or percent-encoded, as the upstream decodes them once) are refused with 400.
Anything else in a segment passes: a document id such as ``C:\\docs\\a.txt`` or
``a%2F..%2Fb`` is one segment to the upstream. The service never routes by ``Host``, so any
well-formed ``host[:port]`` passes (``search_es:9280`` too). The ``_search`` requests the
service handles are recognised here too.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence

__all__ = ["refusal", "search_target"]

# host[:port]: an IP literal, or a name of RFC 3986 unreserved characters ("_" included).
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~-]+)(:[0-9]{1,5})?$")
SERVICE_PREFIX = "/_splade_es/"
SERVICE_PATHS = (f"{SERVICE_PREFIX}health", f"{SERVICE_PREFIX}metrics")


def refusal(
    raw_path: bytes, headers: Sequence[tuple[bytes, bytes]], method: str = "GET"
) -> str | None:
    """Why a request must be refused (``None`` when it may pass).

    Args:
        raw_path: the request target's path as sent (percent-encoded, no query string).
        headers: the request headers, names lower-case (ASGI's ``scope["headers"]``).
        method: the request method (``CONNECT`` is refused).

    Example:
        >>> refusal(b"/docs/_search", [(b"host", b"search_es:9280")]) is None
        True
        >>> refusal(b"/docs/%2e%2E/_cluster/settings", [])
        "path segment '%2e%2E' is '..' (path traversal): send a path without '.' or '..' segments"
    """
    if method.upper() == "CONNECT":
        return "CONNECT is not allowed: the service only sends requests to its upstream"
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:
        return "the request path is not ASCII: percent-encode it"
    if not path.startswith("/") or path.startswith("//"):
        return f"request target {path[:80]!r} is not a path: send requests to the service's paths"
    for segment in path.split("/"):
        decoded = urllib.parse.unquote(segment)  # %2e and %2E decode to "."
        if decoded in (".", ".."):
            return (
                f"path segment {segment!r} is {decoded!r} (path traversal): send a path "
                "without '.' or '..' segments"
            )
    hosts = [value for name, value in headers if name == b"host"]
    if len(hosts) > 1:
        return "several Host headers: send one"
    if hosts and not _HOST.match(hosts[0].decode("latin-1")):
        return f"Host header {hosts[0].decode('latin-1')[:80]!r} is not host[:port]"
    return None


def search_target(method: str, path: str) -> str | None:
    """The index named by a ``GET``/``POST /{index}/_search`` request, else ``None``.

    Example:
        >>> search_target("POST", "/docs/_search"), search_target("GET", "/_search")
        ('docs', None)
    """
    if method not in ("GET", "POST"):
        return None
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "" or parts[2] != "_search" or not parts[1]:
        return None
    target = urllib.parse.unquote(parts[1])
    return None if target.startswith("_") else target
