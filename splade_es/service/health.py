"""``GET /_splade_es/health``: is the upstream reachable, which models are loaded.

The upstream counts as reachable when it answers HTTP at all (a 401 or 405 still proves it
is there); the answer is 200 when it is, 503 when it is not.
"""

from __future__ import annotations

from typing import Any

from splade_es.service.models import ServiceModels
from splade_es.service.upstream import Upstream, UpstreamUnavailable

__all__ = ["health_report"]


async def health_report(upstream: Upstream, models: ServiceModels) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` of the health answer.

    Example:
        >>> status, body = await health_report(upstream, models)  # doctest: +SKIP
        >>> body["upstream"]["reachable"]  # doctest: +SKIP
        True
    """
    upstream_status: int | None = None
    problem = None
    try:
        answer = await upstream.read("HEAD", upstream.url(b"/", b""), [], b"")
        upstream_status = answer.status_code
    except UpstreamUnavailable as error:
        problem = error.reason
    reachable = upstream_status is not None
    body: dict[str, Any] = {
        "status": "ok" if reachable else "upstream unreachable",
        "upstream": {
            "url": str(upstream.base),
            "reachable": reachable,
            "status": upstream_status,
            **({"problem": problem} if problem else {}),
        },
        "models_loaded": True,
        "models": models.describe(),
    }
    return (200 if reachable else 503), body
