"""The official client of each engine, configured from a :class:`ClusterConfig` (auth, TLS,
timeouts). Only :mod:`splade_es.cluster.connection` calls these; they import their client
library when called.

With ``orjson`` installed (the ``fast`` extra), answers are decoded by it: a reranked search
returns megabytes of JSON, which it reads about twice as fast as the standard library.
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
    if has_orjson():
        kwargs["serializer"] = _elasticsearch_orjson_reader()
    return Elasticsearch(list(config.urls), **kwargs)


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
    if has_orjson():
        kwargs["serializer"] = _orjson_reader()
    return OpenSearch(hosts=list(config.urls), **kwargs)


def has_orjson() -> bool:
    """Whether ``orjson`` can be imported."""
    try:
        import orjson  # noqa: F401
    except ImportError:
        return False
    return True


def _elasticsearch_orjson_reader() -> Any:
    """elasticsearch-py's JSON serializer, reading answers with orjson and writing requests as
    before (orjson refuses integers beyond 64 bits, which documents may hold)."""
    import orjson
    from elastic_transport import SerializationError
    from elasticsearch.serializer import JsonSerializer

    class OrjsonReader(JsonSerializer):
        def loads(self, data: bytes) -> Any:
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError as error:
                raise SerializationError(f"Unable to deserialize as JSON: {data!r:.200}") from error

    return OrjsonReader()


def _orjson_reader() -> Any:
    """opensearch-py's JSON serializer, reading answers with orjson and writing requests as
    before."""
    import orjson
    from opensearchpy.exceptions import SerializationError
    from opensearchpy.serializer import JSONSerializer

    class OrjsonReader(JSONSerializer):
        def loads(self, s: str) -> Any:
            try:
                return orjson.loads(s)
            except orjson.JSONDecodeError as error:
                raise SerializationError(s, error) from error

    return OrjsonReader()
