"""Connect to Elasticsearch or OpenSearch through that engine's official Python client.

``elasticsearch`` refuses to talk to OpenSearch, so the engine decides the client:
``elasticsearch`` for Elasticsearch, ``opensearch-py`` (the ``opensearch`` extra) for
OpenSearch. :class:`Cluster` hides every difference between the engines and their versions:
one JSON request method, bulk writes, the retry decision for a failed call, ``_source``
filters and field fetches. Requests turn each client's exceptions into :class:`ClusterError`
with the status and reason; a failed bulk request raises the client's exception, which
:meth:`Cluster.transient_status` classifies. Nothing else in the package branches on the
engine or imports its client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from splade_es.cluster.clients import elasticsearch_client, opensearch_client
from splade_es.cluster.config import ENGINES, ClusterConfig, Engine, EngineChoice, redact_url
from splade_es.cluster.errors import (
    ClusterError,
    ClusterUnavailableError,
    api_error,
    authentication_failed,
    not_a_search_engine,
    unavailable_error,
)

__all__ = [
    "ENGINES",
    "RETRY_STATUSES",
    "BulkOutcome",
    "Cluster",
    "ClusterConfig",
    "ClusterError",
    "ClusterUnavailableError",
    "Engine",
    "EngineChoice",
    "connect",
    "redact_url",
]

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""HTTP statuses that say "try again later" (throttled, gateway or node unavailable)."""

BulkOutcome = tuple[bool, dict[str, Any]]
"""One item of a bulk answer: whether it was applied, and the item, e.g.
``{"index": {"_id": "d1", "status": 429, "error": {"type": ..., "reason": ...}}}``."""


class Cluster:
    """A connected cluster: the official client of its engine, plus engine and version.

    Attributes:
        client: ``elasticsearch.Elasticsearch`` or ``opensearchpy.OpenSearch``.
        engine: ``elasticsearch`` or ``opensearch``.
        version: the server version, e.g. ``9.5.4``.
        url: the URL connected to.
    """

    def __init__(self, client: Any, engine: Engine, version: str, url: str) -> None:
        self.client = client
        self.engine: Engine = engine
        self.version = version
        self.url = url

    @property
    def major(self) -> int:
        """The engine's major version (e.g. 9 for Elasticsearch 9.5.4)."""
        return int(self.version.split(".", 1)[0])

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one JSON request and return the decoded body.

        Raises:
            ClusterError: the engine answered with an error status.
            ClusterUnavailableError: no answer.
        """
        return _request(self.client, self.engine, self.url, method, path, body, params)

    def bulk(self, actions: Sequence[Mapping[str, Any]]) -> list[BulkOutcome]:
        """Send ``actions`` in one ``_bulk`` request, with the engine's bulk helper.

        Nothing is retried here: the caller decides what to send again (see
        :meth:`transient_status` for a failed request, and each item's ``status``).

        Args:
            actions: bulk-helper actions (``_op_type``, ``_index``, ``_id``, ``_source``);
                they are not modified, so the same actions can be sent again.

        Returns:
            One :data:`BulkOutcome` per action, in order; ``ok`` is ``False`` for a document
            the cluster refused (its ``status`` and ``error`` are in the item).

        Raises:
            Exception: the client's own exception when the whole request failed (no answer,
                429, 503...); pass it to :meth:`transient_status`.
            RuntimeError: the answer does not hold one item per action.

        Example:
            >>> cluster.bulk([{"_index": "docs", "_id": "d1", "_source": {"text": "hi"}}])
            [(True, {'index': {'_id': 'd1', 'status': 201, ...}})]
        """
        if not actions:
            return []
        if self.engine == "opensearch":
            from opensearchpy import helpers
        else:
            from elasticsearch import helpers  # type: ignore[no-redef]
        outcomes = list(
            helpers.streaming_bulk(
                self.client,
                actions,
                chunk_size=len(actions),
                max_chunk_bytes=2**31 - 1,  # one request: the caller cuts chunks by bytes
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=0,
                yield_ok=True,
            )
        )
        if len(outcomes) != len(actions):
            raise RuntimeError(f"bulk answered {len(outcomes)} items for {len(actions)} sent")
        return outcomes

    def transient_status(self, error: BaseException) -> int | None:
        """Whether a request that raised ``error`` is worth sending again after a backoff.

        Args:
            error: what the client raised (e.g. from :meth:`bulk`).

        Returns:
            ``0`` when no answer came (connection refused or reset, timeout, TLS failure),
            the HTTP status when it is one of :data:`RETRY_STATUSES`, ``None`` otherwise
            (a lasting error: do not retry).
        """
        status: object = None
        if self.engine == "elasticsearch":
            import elastic_transport

            if isinstance(error, elastic_transport.ApiError):  # an answer with an error status
                status = error.meta.status
            elif isinstance(error, elastic_transport.TransportError):  # no usable answer
                return 0
        else:
            import opensearchpy

            if isinstance(error, opensearchpy.ConnectionError):
                return 0
            if isinstance(error, opensearchpy.TransportError):
                status = error.status_code
        return status if isinstance(status, int) and status in RETRY_STATUSES else None

    def source_filter(self, includes: Sequence[str]) -> dict[str, Any]:
        """A search ``_source`` filter that returns the fields ``includes``, vectors included.

        Elasticsearch 9 leaves ``sparse_vector`` and ``dense_vector`` values out of
        ``_source`` unless asked (``exclude_vectors: false``); older versions and OpenSearch
        return them anyway and would refuse the option.

        Args:
            includes: field names (or patterns) to return.

        Returns:
            The value for a search body's ``_source``.

        Raises:
            TypeError: ``includes`` is a single string; pass a list of field names.

        Example:
            >>> body = {"query": {"match_all": {}}, "_source": cluster.source_filter(["splade"])}
        """
        if isinstance(includes, str):
            raise TypeError(
                f"includes={includes!r} is a string: pass a list of field names, e.g. "
                f"[{includes!r}]."
            )
        source: dict[str, Any] = {"includes": list(includes)}
        if self.engine == "elasticsearch" and self.major >= 9:
            source["exclude_vectors"] = False
        return source

    def fetch_field(
        self, index: str, ids: Sequence[str], field: str, form: str = "source"
    ) -> dict[str, Any]:
        """One top-level field of each of ``ids``: from ``_source`` or a stored field with
        ``_mget``, or from binary doc values (``form="doc_values"``) with a search.

        ``_mget`` is real time: a document is found as soon as it is indexed, before a
        refresh; a search sees it after the next refresh. Ids ``_mget`` misses (documents
        indexed with a custom routing live on another shard than their id says) are looked
        up again with one search by id over every shard. Built for fetch functions such as
        :class:`colbert_rerank.Reranker`'s
        (``lambda ids: cluster.fetch_field(index, ids, "colbert")``). Elasticsearch 9 keeps
        vector fields (``sparse_vector``, ``dense_vector``) out of ``_source``: for those,
        search with :meth:`source_filter`.

        Args:
            index: index (or alias) to read.
            ids: document ids.
            field: the ``_source`` field to return.
            form: ``source``, ``stored`` or ``doc_values``: how the index keeps ``field``.

        Returns:
            ``{id: value}`` for the documents found that hold ``field``; ids not found and
            documents without the field are left out.

        Raises:
            TypeError: ``ids`` is a single string; pass a list of ids.
            ValueError: ``form`` is none of the three.
            ClusterError: the request failed (e.g. 404 when ``index`` does not exist).
            ClusterUnavailableError: no answer.
        """
        if isinstance(ids, str):
            raise TypeError(f"ids={ids!r} is a string: pass a list of ids, e.g. [{ids!r}].")
        from colbert_rerank.storage import check_form, fetch_by_id  # loads torch: lazily

        stored = check_form(form)

        def mget(wanted: list[str], params: dict[str, str]) -> Any:
            return self.request("POST", f"/{index}/_mget", body={"ids": wanted}, params=params)

        def search(body: dict[str, Any]) -> Any:
            return self.request("POST", f"/{index}/_search", body=body)

        return fetch_by_id(ids, field, stored, mget, search)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def __repr__(self) -> str:
        return f"Cluster({self.engine} {self.version} at {redact_url(self.url)})"


def connect(config: ClusterConfig) -> Cluster:
    """Connect, detecting the engine when ``config.engine`` is ``auto``.

    Raises:
        ClusterUnavailableError: nothing answers at the URL, or its TLS certificate is not
            signed by a trusted CA.
        ClusterError: status 401 when the credentials are refused (the message names the
            user or the API key, never the secret).
        ImportError: OpenSearch found but ``opensearch-py`` is not installed.
    """
    try:
        return _connect(config)
    except ClusterError as error:
        if error.status == 401:
            raise authentication_failed(config, error) from error
        raise


def _connect(config: ClusterConfig) -> Cluster:
    if config.engine in ("auto", "elasticsearch"):
        found = _connect_elasticsearch(config)
        if found is not None:
            return found
    return _connect_opensearch(config)


def _connect_elasticsearch(config: ClusterConfig) -> Cluster | None:
    """The cluster at ``config.url`` if it is Elasticsearch; ``None`` when it answers as
    another product and ``config.engine`` is ``auto``."""
    import elasticsearch

    client = elasticsearch_client(config)
    try:
        nodes = _request(
            client,
            "elasticsearch",
            config.url,
            "GET",
            "/_nodes/_local",
            None,
            {"filter_path": "nodes.*.version"},
        )
    except ClusterError as error:
        client.close()
        if isinstance(error.__cause__, elasticsearch.UnsupportedProductError):
            if not isinstance(error.__cause__.body, Mapping):  # a web page, not a product
                raise not_a_search_engine(
                    redact_url(config.url), "/_nodes/_local", error.status, error.reason
                ) from error
            if config.engine == "elasticsearch":
                raise ClusterError(
                    f"{redact_url(config.url)} is not Elasticsearch; pass --engine "
                    "opensearch (or auto) for OpenSearch.",
                    None,
                    "unsupported_product",
                    "not Elasticsearch",
                ) from error
            return None  # another product: try OpenSearch
        raise _foreign(config, "/_nodes/_local", error) from error
    version = next(iter(nodes["nodes"].values()))["version"]
    return Cluster(client, "elasticsearch", version, config.url)


def _foreign(config: ClusterConfig, path: str, error: ClusterError) -> ClusterError:
    """``error`` in the words that fit a first request whose answer is not the engine's
    JSON: a page that is no search engine (404, 405, 2xx), a proxy whose cluster is down
    (502-504); anything else (401, 403, the engine's own errors) unchanged."""
    if error.error_type != "unknown" or error.status is None:
        return error
    url = redact_url(config.url)
    if error.status in (404, 405) or 200 <= error.status < 300:
        return not_a_search_engine(url, path, error.status, error.reason)
    if error.status in (502, 503, 504):
        return ClusterUnavailableError(
            f"{url} answered {error.status} to GET {path}: the cluster behind it (or a proxy in "
            "front of it) is not serving; check that it runs, then try again.",
            error.status,
            "unavailable",
            error.reason[:200],
        )
    return error


def _connect_opensearch(config: ClusterConfig) -> Cluster:
    """The cluster at ``config.url``, which must be OpenSearch."""
    client = opensearch_client(config)
    import opensearchpy  # installed: opensearch_client needs it

    try:
        info = _request(client, "opensearch", config.url, "GET", "/", None, None)
    except opensearchpy.SerializationError as error:  # an answer that is not JSON
        client.close()
        raise not_a_search_engine(redact_url(config.url), "/", 200, error) from error
    except ClusterError as error:
        client.close()
        raise _foreign(config, "/", error) from error
    if not isinstance(info, Mapping) or not isinstance(info.get("version"), Mapping):
        client.close()
        raise not_a_search_engine(redact_url(config.url), "/", 200, info)
    distribution = info.get("version", {}).get("distribution", "elasticsearch")
    if distribution != "opensearch":
        client.close()
        raise ClusterError(
            f"{redact_url(config.url)} answers as {distribution}, not OpenSearch.",
            None,
            "unsupported_product",
            distribution,
        )
    return Cluster(client, "opensearch", info["version"]["number"], config.url)


def _request(
    client: Any,
    engine: str,
    url: str,
    method: str,
    path: str,
    body: Any,
    params: Mapping[str, Any] | None,
) -> Any:
    if engine == "elasticsearch":
        import elastic_transport
        import elasticsearch

        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        try:
            response = client.perform_request(
                method, path, params=dict(params or {}), headers=headers, body=body
            )
        except elasticsearch.ApiError as error:
            raise api_error(method, path, error.meta.status, error.body) from error
        except elastic_transport.TransportError as error:
            raise unavailable_error(url, error) from error
        return response.body
    import opensearchpy

    try:
        return client.transport.perform_request(method, path, params=params, body=body)
    except opensearchpy.ConnectionError as error:
        raise unavailable_error(url, error) from error
    except opensearchpy.TransportError as error:
        status = error.status_code if isinstance(error.status_code, int) else None
        raise api_error(method, path, status, error.info) from error
