"""The official client of each engine, configured from a :class:`ClusterConfig` (auth, TLS,
timeouts). Only :mod:`splade_es.cluster.connection` calls these; they import their client
library when called.
"""

from __future__ import annotations

from typing import Any

from splade_es.cluster.config import ClusterConfig

__all__ = ["elasticsearch_client", "opensearch_client"]


def elasticsearch_client(config: ClusterConfig) -> Any:
    """An ``elasticsearch.Elasticsearch`` client for ``config``."""
    from elasticsearch import Elasticsearch

    kwargs: dict[str, Any] = {
        "request_timeout": config.request_timeout_s,
        "verify_certs": config.verify_certs,
    }
    if config.ca_certs is not None:
        kwargs["ca_certs"] = str(config.ca_certs)
    if config.api_key is not None:
        kwargs["api_key"] = config.api_key
    if config.username is not None and config.password is not None:
        kwargs["basic_auth"] = (config.username, config.password)
    if not config.verify_certs:
        kwargs["ssl_show_warn"] = False
    return Elasticsearch(config.url, **kwargs)


def opensearch_client(config: ClusterConfig) -> Any:
    """An ``opensearchpy.OpenSearch`` client for ``config``.

    Raises:
        ImportError: ``opensearch-py`` is not installed (names the extra).
    """
    try:
        from opensearchpy import OpenSearch
    except ImportError as error:
        raise ImportError(
            "Talking to OpenSearch needs opensearch-py: pip install 'splade-es[opensearch]'."
        ) from error
    kwargs: dict[str, Any] = {
        "timeout": config.request_timeout_s,
        "verify_certs": config.verify_certs,
        "ssl_show_warn": config.verify_certs,
    }
    if config.ca_certs is not None:
        kwargs["ca_certs"] = str(config.ca_certs)
    if config.username is not None and config.password is not None:
        kwargs["http_auth"] = (config.username, config.password)
    if config.api_key is not None:
        kwargs["headers"] = {"Authorization": f"ApiKey {config.api_key}"}
    return OpenSearch(hosts=[config.url], **kwargs)
