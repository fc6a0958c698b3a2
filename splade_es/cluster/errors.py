"""What a failed request raises: :class:`ClusterError` with the status and the engine's reason.

The builders take plain values (status, body, URL), so every engine's exceptions end up in
the same two classes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from splade_es.cluster.config import ClusterConfig, redact_url

__all__ = ["ClusterError", "ClusterUnavailableError", "api_error", "unavailable_error"]


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


def api_error(method: str, path: str, status: int | None, body: Any) -> ClusterError:
    """The error for an answer with an error status, with the engine's type and reason."""
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


def unavailable_error(url: str, error: Exception) -> ClusterUnavailableError:
    """The error for a request that got no answer; a TLS failure names the fix."""
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


def not_a_search_engine(url: str, path: str, status: int | None, answer: Any) -> ClusterError:
    """The error for a URL whose server answers, but not as Elasticsearch or OpenSearch."""
    text = " ".join(str(answer).split())
    shown = text[:80] + ("..." if len(text) > 80 else "")
    return ClusterError(
        f"{url} is not an Elasticsearch or OpenSearch endpoint: GET {path} answered "
        f"{status if status is not None else 'without JSON'} ({shown!r}). Check --es-url "
        "(env ES_URL): the cluster's HTTP address, e.g. http://127.0.0.1:9200.",
        status,
        "not_a_search_engine",
        shown,
    )


def authentication_failed(config: ClusterConfig, error: ClusterError) -> ClusterError:
    """The 401 error in words that name the refused credentials (never the secret)."""
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
