"""What the reranking service serves and how: :class:`ServiceConfig`, and the config file.

Pure apart from :func:`load_config`, which reads one TOML or JSON file, and the check that
``ca_certs`` names a file. Every key is checked at start, before any model loads: an unknown
key, a value of the wrong type or out of range, a missing ``ca_certs`` file raises a
``ValueError`` that names the key, the bad value and what to write instead.

A config file (TOML; JSON takes the same keys)::

    upstream = "https://es.internal:9200"
    port = 9280
    rerank_k = 100              # for the indices listed without their own
    rerank_timeout_ms = 1000
    first_stage = "app"         # app | splade | fusion
    indices = ["docs", "news-*"]

    # or, with a depth per index:
    # [indices."docs-*"]
    # rerank_k = 50
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import ssl
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "FIRST_STAGES",
    "FirstStage",
    "IndexRule",
    "ServiceConfig",
    "config_from_mapping",
    "load_config",
    "read_config_file",
]

FirstStage = Literal["app", "splade", "fusion"]
FIRST_STAGES: tuple[FirstStage, ...] = ("app", "splade", "fusion")
DEFAULT_RERANK_K = 100


@dataclass(frozen=True)
class IndexRule:
    """Indices whose ``_search`` the service reranks.

    Attributes:
        pattern: an index or alias name, or a pattern with ``*`` (``news-*``), matched
            against the index named in the request path.
        rerank_k: first-stage hits rescored with ColBERT (``from``/``size`` apply after).
    """

    pattern: str
    rerank_k: int = DEFAULT_RERANK_K

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern.strip(","):
            raise ValueError(
                f"Index pattern {self.pattern!r} is empty: pass an index name or a pattern "
                "such as 'docs-*'."
            )
        if "," in self.pattern or "/" in self.pattern:
            raise ValueError(
                f"Index pattern {self.pattern!r} holds ',' or '/': list each index or "
                "pattern on its own (--rerank-index docs --rerank-index news-*)."
            )
        _check_int(f"rerank_k of {self.pattern!r}", self.rerank_k, low=1)

    def matches(self, target: str) -> bool:
        """Whether the request's index ``target`` is one of these indices."""
        return fnmatch.fnmatchcase(target, self.pattern)


@dataclass(frozen=True)
class ServiceConfig:
    """The reranking service (``splade-es serve``).

    Attributes:
        upstream: the one cluster behind the service, ``http(s)://host:port`` (a path
            prefix is kept). It holds no credentials: each app's own pass through.
        host / port: where the service listens (port 0: a free port, printed at start).
        indices: the indices reranked; every other request passes through untouched.
        rerank_timeout_ms: budget of one rerank (embedding fetch and MaxSim); past it the
            first-stage answer goes back (fail open).
        max_body_bytes: larger request bodies are refused with 413.
        max_concurrency: requests in flight at once; more are refused with 429.
        rerank_workers: threads that run the models (off the event loop).
        ca_certs: PEM file of the CA that signed the upstream's certificate.
        first_stage: ``app`` (the app's own query), ``splade`` (SPLADE on the query text,
            with the app's filters) or ``fusion`` (both, fused client-side with RRF).
        colbert_model: the ColBERT model (``None``: the package default); an index written
            by another model passes through.
        splade_model: the SPLADE model of ``splade``/``fusion`` (``None``: the default).
        device: where the models run (``None``: auto).
        upstream_timeout_s: per-request timeout towards the upstream, in seconds.
        meta_ttl_s: how long an index's ``_meta`` is cached, in seconds.
    """

    upstream: str
    host: str = "127.0.0.1"
    port: int = 9280
    indices: tuple[IndexRule, ...] = ()
    rerank_timeout_ms: int = 1000
    max_body_bytes: int = 100 * 1024 * 1024
    max_concurrency: int = 64
    rerank_workers: int = 2
    ca_certs: Path | None = None
    first_stage: FirstStage = "app"
    colbert_model: str | None = None
    splade_model: str | None = None
    device: str | None = None
    upstream_timeout_s: float = 60.0
    meta_ttl_s: float = 30.0

    def __post_init__(self) -> None:
        _check_upstream(self.upstream)
        _check_int("port", self.port, low=0, high=65535)
        for key in ("rerank_timeout_ms", "max_body_bytes", "max_concurrency", "rerank_workers"):
            _check_int(key, getattr(self, key), low=1)
        for key in ("upstream_timeout_s", "meta_ttl_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{key}={value!r}: expected a positive number of seconds.")
        if self.first_stage not in FIRST_STAGES:
            raise ValueError(
                f"first_stage={self.first_stage!r}: expected one of {', '.join(FIRST_STAGES)}."
            )
        if not all(isinstance(rule, IndexRule) for rule in self.indices):
            raise TypeError(f"indices={self.indices!r}: pass IndexRule objects.")
        _check_ca_certs(self.ca_certs)

    def rule_for(self, target: str) -> IndexRule | None:
        """The rule that names ``target`` (the last one listed wins), or ``None``."""
        found = [rule for rule in self.indices if rule.matches(target)]
        return found[-1] if found else None

    @property
    def upstream_display(self) -> str:
        """The upstream URL, safe to print (it holds no credentials)."""
        return self.upstream.rstrip("/")


KEYS = (*(f.name for f in fields(ServiceConfig)), "rerank_k")


def config_from_mapping(values: Mapping[str, Any], source: str) -> ServiceConfig:
    """A :class:`ServiceConfig` from the keys of a config file (or the command line).

    Args:
        values: the keys of :class:`ServiceConfig`, with ``indices`` as a list of names or
            a table ``{pattern: {"rerank_k": N}}``, and ``rerank_k`` the depth of the
            indices listed without their own.
        source: where the values come from, for the messages (a file name).

    Raises:
        ValueError: an unknown key (the message suggests the close one), a missing
            ``upstream``, or a bad value; each message names the key.

    Example:
        >>> config_from_mapping({"upstream": "http://127.0.0.1:9200", "indices": ["docs"]},
        ...                     "example").indices
        (IndexRule(pattern='docs', rerank_k=100),)
    """
    for key in values:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{source}: unknown key {key!r}{hint}; expected one of {', '.join(KEYS)}."
            )
    if "upstream" not in values:
        raise ValueError(f"{source}: key 'upstream' is missing: set the cluster URL to proxy.")
    default_k = values.get("rerank_k", DEFAULT_RERANK_K)
    _check_key(source, "rerank_k", default_k, int)
    chosen: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("rerank_k", "indices"):
            continue
        _check_key(source, key, value, _EXPECTED[key])
        chosen[key] = Path(value) if key == "ca_certs" and value is not None else value
    chosen["indices"] = _rules(source, values.get("indices", []), default_k)
    try:
        return ServiceConfig(**chosen)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: {error}") from error


def read_config_file(path: Path) -> dict[str, Any]:
    """The keys of a ``.toml`` or ``.json`` config file (unchecked: see
    :func:`config_from_mapping`).

    Raises:
        ValueError: the file is missing, has another suffix, or does not parse; the
            message names the file and the parser's complaint.
    """
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"Config file {str(path)!r}: expected a .toml or .json file.")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"Config file {str(path)!r} cannot be read ({error}).") from error
    try:
        loaded: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Config file {str(path)!r} does not parse: {error}.") from error
    if not isinstance(loaded, dict):
        raise ValueError(f"Config file {str(path)!r} holds {type(loaded).__name__}: expected keys.")
    return loaded


def load_config(path: Path) -> ServiceConfig:
    """The service config in ``path`` (TOML or JSON), checked key by key.

    Example:
        >>> load_config(Path("serve.toml"))  # doctest: +SKIP
    """
    return config_from_mapping(read_config_file(path), str(path))


_EXPECTED: dict[str, type | tuple[type, ...]] = {
    "upstream": str,
    "host": str,
    "port": int,
    "rerank_timeout_ms": int,
    "max_body_bytes": int,
    "max_concurrency": int,
    "rerank_workers": int,
    "ca_certs": (str, Path, type(None)),
    "first_stage": str,
    "colbert_model": (str, type(None)),
    "splade_model": (str, type(None)),
    "device": (str, type(None)),
    "upstream_timeout_s": (int, float),
    "meta_ttl_s": (int, float),
}


def _check_key(source: str, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, expected):
        kinds = expected if isinstance(expected, tuple) else (expected,)
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ValueError(
            f"{source}: key {key!r} is {value!r:.60} ({type(value).__name__}): expected {names}."
        )


def _rules(source: str, raw: Any, default_k: int) -> tuple[IndexRule, ...]:
    """``indices`` as a list of names or a table of ``{pattern: {"rerank_k": N}}``."""
    if isinstance(raw, list):
        entries: dict[str, Any] = {str(name): {} for name in raw if isinstance(name, str)}
        if len(entries) != len(raw):
            raise ValueError(f"{source}: key 'indices' must list index names (strings): {raw!r}.")
    elif isinstance(raw, Mapping):
        entries = dict(raw)
    else:
        raise ValueError(
            f"{source}: key 'indices' is {type(raw).__name__}: expected a list of index names "
            "or a table of pattern -> {rerank_k = N}."
        )
    rules = []
    for pattern, options in entries.items():
        if not isinstance(options, Mapping) or set(options) - {"rerank_k"}:
            raise ValueError(
                f"{source}: key 'indices.{pattern}' is {options!r:.60}: expected a table with "
                "only 'rerank_k'."
            )
        rerank_k = options.get("rerank_k", default_k)
        _check_key(source, f"indices.{pattern}.rerank_k", rerank_k, int)
        try:
            rules.append(IndexRule(pattern, rerank_k))
        except ValueError as error:
            raise ValueError(f"{source}: key 'indices.{pattern}': {error}") from error
    return tuple(rules)


def _check_int(key: str, value: Any, low: int, high: int | None = None) -> None:
    bad = isinstance(value, bool) or not isinstance(value, int) or value < low
    if bad or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{key}={value!r}: expected an integer {span}.")


def _check_ca_certs(path: Path | None) -> None:
    """The CA file must exist now, not when the first request opens a connection."""
    if path is not None and not Path(path).is_file():
        raise ValueError(
            f"ca_certs={str(path)!r}: no such file: pass the PEM file of the CA that signed "
            "the upstream's certificate (or leave ca_certs out for the system CAs)."
        )
    if path is not None:
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, ValueError) as error:
            raise ValueError(
                f"ca_certs={str(path)!r} holds no readable CA certificate ({error}): pass the "
                "PEM file of the CA that signed the upstream's certificate."
            ) from error


def _check_upstream(url: Any) -> None:
    if not isinstance(url, str):
        raise ValueError(f"upstream={url!r}: expected the cluster URL, e.g. http://127.0.0.1:9200.")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"upstream={url!r} is not an http(s) URL: pass e.g. http://127.0.0.1:9200."
        )
    if parts.username or parts.password:
        raise ValueError(
            "upstream holds credentials: the service keeps none of its own; each app's "
            "Authorization header passes through. Remove the user info from the URL."
        )
    if parts.query or parts.fragment:
        raise ValueError(f"upstream={url!r} has a query or fragment: pass scheme://host:port.")
