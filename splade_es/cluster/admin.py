"""Index administration: create (never replace), read ``_meta``, swap aliases.

Nothing here deletes an index. Reindexing for a new model writes a new index and moves the
alias in one atomic ``_aliases`` call; the old index is left for the user to drop.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from splade_es.cluster.capabilities import probe
from splade_es.cluster.connection import Cluster, ClusterError
from splade_es.cluster.mapping import META_KEY, RESERVED_META_KEYS, MappingType, meta_differences
from splade_es.cluster.names import check_index_name

__all__ = [
    "IndexInfo",
    "IndexMismatchError",
    "check_index_name",
    "close_index_names",
    "ensure_index",
    "field_types",
    "get_index",
    "index_stats",
    "index_uuid",
    "replicas",
    "require_index",
    "resolve_mapping_type",
    "swap_alias",
]

logger = logging.getLogger(__name__)


class IndexMismatchError(ValueError):
    """The index exists but was built with another model or layout."""


@dataclass(frozen=True)
class IndexInfo:
    """An existing index (or the index an alias points to).

    Attributes:
        name: the concrete index.
        meta: its ``_meta.splade_es`` block (empty if splade-es did not create it).
        mapping_type: the type of the SPLADE field.
        all_meta: the whole ``_meta`` (other blocks, e.g. ``colbert_rerank``).
    """

    name: str
    meta: Mapping[str, Any]
    mapping_type: str | None
    all_meta: Mapping[str, Any]


def resolve_mapping_type(
    cluster: Cluster, requested: Literal["auto", "rank_features", "sparse_vector"]
) -> MappingType:
    """``rank_features`` where the cluster has it, else ``sparse_vector`` (for ``auto``)."""
    if requested != "auto":
        return requested
    caps = probe(cluster, checks=("rank_features", "sparse_vector"))
    if caps.rank_features:
        return "rank_features"
    if caps.sparse_vector:
        return "sparse_vector"
    raise ValueError(
        f"{cluster.engine} {cluster.version} supports neither rank_features nor sparse_vector: "
        "install the mapper-extras module (it is in every full distribution)."
    )


def get_index(cluster: Cluster, name: str) -> IndexInfo | None:
    """The index ``name`` (or behind alias ``name``) with its ``_meta``; ``None`` if absent."""
    check_index_name(name)
    try:
        mappings = cluster.request("GET", f"/{name}/_mapping")
    except ClusterError as error:
        if error.status == 404:
            return None
        raise
    if len(mappings) != 1:
        raise ValueError(
            f"{name!r} resolves to {len(mappings)} indices ({', '.join(sorted(mappings))}): "
            "point it at exactly one."
        )
    concrete, body = next(iter(mappings.items()))
    mapping = body.get("mappings", {})
    all_meta = mapping.get("_meta", {})
    meta = all_meta.get(META_KEY, {})
    field = meta.get("field")
    field_type = mapping.get("properties", {}).get(field, {}).get("type") if field else None
    return IndexInfo(name=concrete, meta=meta, mapping_type=field_type, all_meta=all_meta)


def require_index(cluster: Cluster, name: str) -> IndexInfo:
    """The index ``name`` (or behind alias ``name``), or an error naming the close names.

    Raises:
        ValueError: no such index or alias; the message suggests up to three existing names
            that look alike (a typo is the usual cause).

    Example:
        >>> require_index(cluster, "scifcat")  # doctest: +SKIP
        ValueError: Index 'scifcat' does not exist on elasticsearch 9.5.4 (did you mean
        'scifact'?): ...
    """
    info = get_index(cluster, name)
    if info is not None:
        return info
    close = close_index_names(cluster, name)
    hint = f" (did you mean {', '.join(repr(n) for n in close)}?)" if close else ""
    raise ValueError(
        f"Index {name!r} does not exist on {cluster.engine} {cluster.version}{hint}: create it "
        "with 'splade-es index' or pass the right --index."
    )


def close_index_names(cluster: Cluster, name: str, limit: int = 3) -> list[str]:
    """Existing index and alias names that look like ``name`` (hidden ones left out)."""
    try:
        params = {"format": "json", "h": "index"}
        names = {row["index"] for row in cluster.request("GET", "/_cat/indices", params=params)}
        params = {"format": "json", "h": "alias"}
        names |= {row["alias"] for row in cluster.request("GET", "/_cat/aliases", params=params)}
    except ClusterError:  # a user allowed to read one index only: no suggestions
        return []
    visible = sorted(n for n in names if not n.startswith("."))
    return difflib.get_close_matches(name, visible, n=limit, cutoff=0.6)


def ensure_index(
    cluster: Cluster, name: str, body: Mapping[str, Any]
) -> Literal["created", "exists"]:
    """Create ``name`` with ``body``, or accept it if it exists with the same model and layout.

    Raises:
        IndexMismatchError: it exists but was built differently (or not by splade-es).
    """
    check_index_name(name)
    wanted = body["mappings"]["_meta"][META_KEY]
    existing = get_index(cluster, name)
    if existing is None:
        try:
            cluster.request("PUT", f"/{name}", body=dict(body))
        except ClusterError as error:
            if error.error_type != "resource_already_exists_exception":
                raise
            existing = get_index(cluster, name)  # created by a concurrent run
        else:
            logger.info("Created index %s (%s)", name, wanted["mapping_type"])
            return "created"
    if existing is None:
        raise ClusterError(f"Index {name!r} vanished while being created", None, "gone", name)
    if not existing.meta:
        raise IndexMismatchError(
            f"Index {name!r} exists and was not created by splade-es (no _meta.{META_KEY}): "
            "choose another --index name; this tool never overwrites or deletes it."
        )
    problems = meta_differences(existing.meta, wanted)
    for key in ("mapping_type", "field"):
        if existing.meta.get(key) != wanted.get(key):
            problems.append(f"{key}: index has {existing.meta.get(key)!r}, wanted {wanted[key]!r}")
    wanted_all = body["mappings"]["_meta"]
    for key in RESERVED_META_KEYS:  # the package's own blocks; a template's _meta is the user's
        if key != META_KEY and wanted_all.get(key) != existing.all_meta.get(key):
            problems.append(f"_meta.{key} differs (the settings or model of its fields)")
    if problems:
        raise IndexMismatchError(
            f"Index {name!r} was built differently ({'; '.join(problems)}). Index into a new "
            "index and move an alias to it (--alias), or pick another --index."
        )
    return "exists"


def swap_alias(cluster: Cluster, alias: str, index: str) -> list[str]:
    """Point ``alias`` at ``index`` only, atomically; return the indices it left.

    The indices it left are not deleted.
    """
    check_index_name(alias)
    check_index_name(index)
    try:
        current = cluster.request("GET", f"/_alias/{alias}")
    except ClusterError as error:
        if error.status != 404:
            raise
        current = {}
    previous = [name for name in current if name != index]
    actions: list[dict[str, Any]] = [{"remove": {"index": n, "alias": alias}} for n in previous]
    actions.append({"add": {"index": index, "alias": alias}})
    try:
        cluster.request("POST", "/_aliases", body={"actions": actions})
    except ClusterError as error:
        if error.error_type == "invalid_alias_name_exception":
            raise ValueError(
                f"Cannot use {alias!r} as an alias: an index has that name ({error.reason}). "
                "Pick another alias name."
            ) from error
        raise
    if previous:
        logger.info("Alias %s moved from %s to %s", alias, ", ".join(previous), index)
    return previous


def index_stats(cluster: Cluster, index: str) -> tuple[int, int]:
    """(document count, primary store size in bytes) after a refresh."""
    check_index_name(index)
    cluster.request("POST", f"/{index}/_refresh")
    stats = cluster.request("GET", f"/{index}/_stats/docs,store")
    primaries = stats["_all"]["primaries"]
    return int(primaries["docs"]["count"]), int(primaries["store"]["size_in_bytes"])


def field_sizes(cluster: Cluster, index: str, documents: int) -> dict[str, Any]:
    """Bytes on disk of each field (all its structures: postings, doc values, kNN graph and
    vectors) and per document, from Elasticsearch's ``_disk_usage`` analysis (it reads every
    segment once); ``{"unavailable": reason}`` on an engine without it (OpenSearch)."""
    check_index_name(index)
    try:
        cluster.request("POST", f"/{index}/_flush")
        usage = cluster.request(
            "POST", f"/{index}/_disk_usage", params={"run_expensive_tasks": "true"}
        )
    except ClusterError as error:
        if error.status not in (400, 404, 405):  # the engine knows no such endpoint
            raise
        return {"unavailable": f"{cluster.engine} has no _disk_usage API ({error.status})"}
    fields = next(iter(v for k, v in usage.items() if k != "_shards"))["fields"]
    return {
        name: {
            "bytes": int(field["total_in_bytes"]),
            "bytes_per_doc": round(int(field["total_in_bytes"]) / max(documents, 1), 1),
        }
        for name, field in sorted(fields.items())
        if not name.startswith("_")
    }


def index_uuid(cluster: Cluster, name: str) -> str:
    """The UUID of index ``name`` (changes when an index is deleted and re-created)."""
    check_index_name(name)
    settings = cluster.request("GET", f"/{name}/_settings/index.uuid")
    if len(settings) != 1:
        raise ValueError(f"{name!r} resolves to {len(settings)} indices: point it at one.")
    return str(next(iter(settings.values()))["settings"]["index"]["uuid"])


def replicas(cluster: Cluster, index: str) -> str:
    """How ``index`` replicates, in words: ``"1"``, or ``"auto 0-1 (now 0)"`` for a range."""
    check_index_name(index)
    body = cluster.request("GET", f"/{index}/_settings")
    settings = next(iter(body.values()))["settings"]["index"]
    count = settings.get("number_of_replicas", "?")
    auto = settings.get("auto_expand_replicas")
    if auto in (None, "false", False):
        return str(count)
    return f"auto {auto} (now {count})"


def await_copies(cluster: Cluster, index: str, timeout_s: float = 60.0) -> str:
    """Wait until every copy of ``index``'s shards is assigned and in sync (green), when the
    cluster has the data nodes for its replicas; return the health status reached.

    A replica still copying from its primary is not a valid copy: were the primary's node lost
    then, the shard would have none left. Polled (``wait_for_status`` would need a request
    timeout the clients read differently); returns the status as it is after ``timeout_s``.
    """
    check_index_name(index)
    deadline = time.monotonic() + timeout_s
    settings = cluster.request("GET", f"/{index}/_settings")  # once: the loop reads health only
    wanted = int(next(iter(settings.values()))["settings"]["index"]["number_of_replicas"])
    while True:
        health = cluster.request("GET", f"/_cluster/health/{index}")
        status = str(health["status"])
        if status == "green" or wanted >= int(health["number_of_data_nodes"]):
            return status  # green, or replicas that this cluster can never place
        if time.monotonic() > deadline:
            logger.warning(
                "Index %r is %s after %.0f s: some shard copies are not in sync yet; writing "
                "anyway (losing a node now could leave a shard without a copy).",
                index,
                status,
                timeout_s,
            )
            return status
        time.sleep(0.5)


def field_types(cluster: Cluster, index: str, names: list[str]) -> dict[str, str]:
    """The mapped type of each of ``names`` in ``index`` (fields not mapped are left out)."""
    check_index_name(index)
    if not names:
        return {}
    body = cluster.request("GET", f"/{index}/_mapping")
    properties = next(iter(body.values()))["mappings"].get("properties", {})
    return {n: str(properties[n].get("type", "object")) for n in names if n in properties}
