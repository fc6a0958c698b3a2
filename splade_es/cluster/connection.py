"""Connect to Elasticsearch or OpenSearch through that engine's official Python client.

``elasticsearch`` refuses to talk to OpenSearch, so the engine decides the client:
``elasticsearch`` for Elasticsearch, ``opensearch-py`` (the ``opensearch`` extra) for
OpenSearch. :class:`Cluster` hides the difference behind one JSON request method, and
turns each client's exceptions into :class:`ClusterError` with the status and reason.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from splade_es.engines.spec import Engine

logger = logging.getLogger(__name__)

EngineChoice = Literal["auto", "elasticsearch", "opensearch"]


class ClusterError(RuntimeError):
    """A request failed on the cluster.

    Attributes:
        status: HTTP status, or ``None`` when no answer came (connection, timeout).
        error_type: the engine's error type (e.g. ``mapper_parsing_exception``).
        reason: the engine's reason text.
    """

    def __init__(self, message: str, status: int | None, error_type: str, reason: str):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.reason = reason


class ClusterUnavailableError(ClusterError):
    """No answer from the cluster (refused, reset, timed out, TLS failure)."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster is and how to authenticate.

    Attributes:
        url: e.g. ``https://es.example.com:9200``. Credentials in the URL are rejected, so
            they cannot leak into logs; use the fields below.
        engine: ``auto`` detects Elasticsearch or OpenSearch on connect.
        api_key: Elasticsearch API key (the encoded ``id:key`` form).
        username / password: basic auth.
        ca_certs: PEM file of the CA that signed the cluster's certificate.
        verify_certs: TLS verification (on unless explicitly turned off).
        request_timeout_s: per-request timeout.
    """

    url: str
    engine: EngineChoice = "auto"
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: Path | None = None
    verify_certs: bool = True
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"Cluster URL {redact_url(self.url)!r} is not an http(s) URL: pass e.g. "
                "--es-url http://127.0.0.1:9200."
            )
        if parts.username or parts.password:
            raise ValueError(
                "Put credentials in --username/--password or --api-key (or ES_USERNAME, "
                "ES_PASSWORD, ES_API_KEY), not in the URL "
                f"{redact_url(self.url)!r}."
            )
        if self.engine not in ("auto", "elasticsearch", "opensearch"):
            raise ValueError(f"engine={self.engine!r}: expected auto, elasticsearch or opensearch.")
        if (self.username is None) != (self.password is None):
            raise ValueError("Basic auth needs both a username and a password.")


def redact_url(url: str) -> str:
    """``url`` with any user info replaced by ``***`` (safe to log)."""
    parts = urllib.parse.urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


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
            raise _authentication_failed(config, error) from error
        raise


def _connect(config: ClusterConfig) -> Cluster:
    if config.engine in ("auto", "elasticsearch"):
        import elasticsearch

        client = _elasticsearch_client(config)
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
                if config.engine == "elasticsearch":
                    raise ClusterError(
                        f"{redact_url(config.url)} is not Elasticsearch; pass --engine "
                        "opensearch (or auto) for OpenSearch.",
                        None,
                        "unsupported_product",
                        "not Elasticsearch",
                    ) from error
            else:
                raise
        else:
            version = next(iter(nodes["nodes"].values()))["version"]
            return Cluster(client, "elasticsearch", version, config.url)
    client = _opensearch_client(config)
    info = _request(client, "opensearch", config.url, "GET", "/", None, None)
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


def _elasticsearch_client(config: ClusterConfig) -> Any:
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


def _opensearch_client(config: ClusterConfig) -> Any:
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
            raise _api_error(method, path, error.meta.status, error.body) from error
        except elastic_transport.TransportError as error:
            raise _unavailable(url, error) from error
        return response.body
    import opensearchpy

    try:
        return client.transport.perform_request(method, path, params=params, body=body)
    except opensearchpy.ConnectionError as error:
        raise _unavailable(url, error) from error
    except opensearchpy.TransportError as error:
        status = error.status_code if isinstance(error.status_code, int) else None
        raise _api_error(method, path, status, error.info) from error


def _api_error(method: str, path: str, status: int | None, body: Any) -> ClusterError:
    error_type, reason = "unknown", str(body)[:500]
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        cause = body["error"].get("root_cause") or [body["error"]]
        error_type = str(cause[0].get("type", "unknown"))
        reason = str(cause[0].get("reason", ""))
    elif isinstance(body, Mapping) and isinstance(body.get("error"), str):
        reason = body["error"]
    advice = ""
    if status == 401:
        advice = " (authentication failed: check --username/--password or --api-key)"
    return ClusterError(
        f"{method} {path} failed with {status} {error_type}: {reason}{advice}",
        status,
        error_type,
        reason,
    )


def _authentication_failed(config: ClusterConfig, error: ClusterError) -> ClusterError:
    if config.api_key is not None:
        refused = "the API key given (--api-key / ES_API_KEY)"
    elif config.username is not None:
        refused = f"user {config.username!r} with the password given (--password / ES_PASSWORD)"
    else:
        refused = (
            "a request without credentials: pass --username and --password (env ES_USERNAME, "
            "ES_PASSWORD) or --api-key (env ES_API_KEY)"
        )
    return ClusterError(
        f"Authentication failed at {redact_url(config.url)} (401): the cluster refused "
        f"{refused}. Check the credentials; the cluster's reason: {error.reason}",
        401,
        error.error_type,
        error.reason,
    )


def _unavailable(url: str, error: Exception) -> ClusterUnavailableError:
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        found = re.search(r"certificate verify failed: ([^()]+?)\s*\(", text)
        detail = found.group(1) if found else "the certificate is not trusted"
        return ClusterUnavailableError(
            f"TLS certificate verify failed for {redact_url(url)}: {detail}. The cluster's "
            "certificate is not signed by a CA this client trusts (verification is on by "
            "default): pass --ca-certs <the cluster's CA PEM> (env ES_CA_CERTS, or "
            "ClusterConfig.ca_certs), and check that the URL's host is in the certificate.",
            None,
            "tls_verification_failed",
            detail,
        )
    return ClusterUnavailableError(
        f"No answer from {redact_url(url)} ({type(error).__name__}: {error}). Check the URL "
        "and that the cluster runs, or start a local node with 'splade-es node start'.",
        None,
        "unavailable",
        str(error),
    )
