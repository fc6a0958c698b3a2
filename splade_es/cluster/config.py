"""Where the cluster is and how to reach it: the engines, :class:`ClusterConfig`, safe URLs.

No client and no network here: the local-node launcher (``splade_es.engines``) may import
these types without loading a search client.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["ENGINES", "ClusterConfig", "Engine", "EngineChoice", "redact_url"]

Engine = Literal["elasticsearch", "opensearch"]
ENGINES: tuple[Engine, ...] = ("elasticsearch", "opensearch")
EngineChoice = Literal["auto", "elasticsearch", "opensearch"]


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster is and how to authenticate.

    Attributes:
        url: e.g. ``https://es.example.com:9200``, or several nodes of one cluster separated
            by commas (``http://10.0.0.1:9200,http://10.0.0.2:9200``): the client spreads
            requests over them and, when one stops answering, retries on another (so a run
            survives the loss of the node it was talking to). Credentials in the URL are
            rejected, so they cannot leak into logs; use the fields below.
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
        if len(self.urls) > 1 and not all(self.urls):
            raise ValueError(
                f"Cluster URL list {redact_url(self.url)!r} has an empty entry: separate node "
                "URLs by single commas, e.g. http://10.0.0.1:9200,http://10.0.0.2:9200."
            )
        for url in self.urls:
            _check_url(url)
        if self.engine not in ("auto", *ENGINES):
            raise ValueError(f"engine={self.engine!r}: expected auto, elasticsearch or opensearch.")
        if (self.username is None) != (self.password is None):
            raise ValueError("Basic auth needs both a username and a password.")

    @property
    def urls(self) -> tuple[str, ...]:
        """The node URLs ``url`` lists (one, or several separated by commas)."""
        return tuple(part.strip() for part in self.url.split(","))


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"Cluster URL {redact_url(url)!r} is not an http(s) URL: pass e.g. "
            "--es-url http://127.0.0.1:9200 (several nodes: separate their URLs by commas)."
        )
    if parts.username or parts.password:
        raise ValueError(
            "Put credentials in --username/--password or --api-key (or ES_USERNAME, "
            f"ES_PASSWORD, ES_API_KEY), not in the URL {redact_url(url)!r}."
        )


def redact_url(url: str) -> str:
    """``url`` (or each of a comma-separated list) with any user info replaced by ``***``
    (safe to log)."""
    if "," in url:
        return ",".join(redact_url(part.strip()) for part in url.split(","))
    parts = urllib.parse.urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))
