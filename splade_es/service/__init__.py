"""The drop-in reranking service (``splade-es serve``): an Elasticsearch/OpenSearch-compatible
HTTP proxy in front of one cluster that reranks ``_search`` answers with ColBERT.

Point an app in any language at it instead of the cluster: every request passes through
unchanged, except ``_search`` on the configured indices built by splade-es, whose top hits
come back reranked (and the first-stage answer when the rerank fails: it fails open).

Needs the ``serve`` extra (``pip install 'splade-es[serve]'``): Starlette, uvicorn, httpx
and prometheus-client.

Example:
    >>> from splade_es.service import IndexRule, ServiceConfig, ServiceThread, load_models
    >>> config = ServiceConfig(upstream="http://127.0.0.1:9200", port=0,
    ...                        indices=(IndexRule("docs"),))
    >>> with ServiceThread(config, load_models(config)) as url:  # doctest: +SKIP
    ...     ...  # point the app's client at url
"""

from __future__ import annotations

import importlib.util

_MISSING = [
    name
    for name in ("starlette", "uvicorn", "httpx", "prometheus_client")
    if importlib.util.find_spec(name) is None
]
if _MISSING:
    raise ImportError(
        f"splade-es serve needs {', '.join(_MISSING)}: install the serve extra "
        "(pip install 'splade-es[serve]')."
    )

from splade_es.service.config import IndexRule, ServiceConfig, load_config  # noqa: E402
from splade_es.service.models import ServiceModels, load_models  # noqa: E402
from splade_es.service.proxy import create_app  # noqa: E402
from splade_es.service.server import ServiceThread, serve  # noqa: E402

__all__ = [
    "IndexRule",
    "ServiceConfig",
    "ServiceModels",
    "ServiceThread",
    "create_app",
    "load_config",
    "load_models",
    "serve",
]
