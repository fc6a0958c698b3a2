"""Where the reranker gets each hit's ColBERT embeddings, and how the hits are cleaned after.
Pure: request bodies in, hits out.

An index keeps its embeddings in binary doc values (the default), a stored field, or
``_source`` (its ``_meta.colbert_rerank.form``). For the first two, the first-stage search
asks for them (``docvalue_fields`` / ``stored_fields``, as
:func:`colbert_rerank.storage.fetch_clause` writes) and the hits carry them in ``fields``:
:meth:`Route.strip` takes out what the service added, so the app gets the hits it asked
for. Otherwise (``_source``, or the app's own query string names those options) the
embeddings are fetched by id after the first stage (:func:`fetch_request`), and the hits are
left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from colbert_rerank.hits import hit_value
from colbert_rerank.storage import StoredForm, check_form

__all__ = [
    "EmbeddingSource",
    "Route",
    "embedding_route",
    "embeddings_from",
    "fetch_request",
]


@dataclass(frozen=True)
class EmbeddingSource:
    """The embeddings field of an index and the form it keeps them in."""

    field: str
    form: StoredForm

    def __post_init__(self) -> None:
        check_form(self.form)


@dataclass(frozen=True)
class Route:
    """How the embeddings reach the reranker for one request.

    Attributes:
        source: the index's embeddings field and form.
        inline: they come with the first-stage hits (in ``fields``); else fetched by id.
        added: the service added ``source.field`` to the request's ``docvalue_fields`` or
            ``stored_fields``, so it strips it from the hits' ``fields``.
        force_source: the service added ``_source: true`` (``stored_fields`` would otherwise
            turn ``_source`` off).
    """

    source: EmbeddingSource
    inline: bool
    added: bool = False
    force_source: bool = False

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` asking for the embeddings (a new dict)."""
        out = dict(body)
        if not self.added:
            return out
        key = "docvalue_fields" if self.source.form == "doc_values" else "stored_fields"
        out[key] = [*_as_list(body.get(key)), self.source.field]
        if self.force_source:
            out["_source"] = True
        return out

    def strip(self, hit: Mapping[str, Any]) -> dict[str, Any]:
        """``hit`` without what the service asked for (a new dict).

        Example:
            >>> route = Route(EmbeddingSource("colbert", "doc_values"), inline=True, added=True)
            >>> route.strip({"_id": "d1", "fields": {"colbert": ["Q1I="]}})
            {'_id': 'd1'}
        """
        out = dict(hit)
        fields = out.get("fields")
        if self.added and isinstance(fields, Mapping) and self.source.field in fields:
            kept = {k: v for k, v in fields.items() if k != self.source.field}
            if kept:
                out["fields"] = kept
            else:
                del out["fields"]
        return out


def embedding_route(
    body: Mapping[str, Any], params: Sequence[tuple[str, str]], source: EmbeddingSource
) -> Route:
    """How a search with ``body`` and query string ``params`` gets the embeddings.

    Example:
        >>> embedding_route({}, [], EmbeddingSource("colbert", "source")).inline
        False
    """
    names = {name for name, _ in params}
    if source.form == "source":
        return Route(source, inline=False)
    if source.form == "doc_values":
        if "docvalue_fields" in names:
            return Route(source, inline=False)
        listed = [_field_name(entry) for entry in _as_list(body.get("docvalue_fields"))]
        return Route(source, inline=True, added=source.field not in listed)
    stored = _as_list(body.get("stored_fields"))
    if (
        "stored_fields" in names
        or "_none_" in stored
        or any(n.startswith("_source") for n in names)
    ):
        return Route(source, inline=False)
    force = "stored_fields" not in body and "_source" not in body
    return Route(source, inline=True, added=source.field not in stored, force_source=force)


def fetch_request(
    index: str, ids: Sequence[str], source: EmbeddingSource
) -> tuple[str, str, list[tuple[str, str]], dict[str, Any]]:
    """``(method, path, params, body)`` of the request that reads the embeddings of ``ids``
    (``_mget``, or a search by id for doc values), as ``Cluster.fetch_field`` sends it.

    Example:
        >>> fetch_request("docs", ["d1"], EmbeddingSource("colbert", "source"))[:3]
        ('POST', '/docs/_mget', [('_source_includes', 'colbert')])
    """
    if source.form == "doc_values":
        body = {
            "query": {"ids": {"values": list(ids)}},
            "size": len(ids),
            "_source": False,
            "docvalue_fields": [source.field],
        }
        return "POST", f"/{index}/_search", [], body
    option = "stored_fields" if source.form == "stored" else "_source_includes"
    return "POST", f"/{index}/_mget", [(option, source.field)], {"ids": list(ids)}


def embeddings_from(answer: Any, field: str) -> dict[str, Any]:
    """``{id: stored value}`` from the answer of a :func:`fetch_request` (documents not
    found, or without the field, left out).

    Example:
        >>> embeddings_from({"docs": [{"_id": "d1", "found": True,
        ...                            "_source": {"colbert": "Q1I="}}]}, "colbert")
        {'d1': 'Q1I='}
    """
    if not isinstance(answer, Mapping):
        return {}
    if "docs" in answer:
        docs = [doc for doc in answer.get("docs") or [] if doc.get("found")]
    else:
        docs = list((answer.get("hits") or {}).get("hits") or [])
    values = {str(doc.get("_id")): hit_value(doc, field) for doc in docs if "_id" in doc}
    return {doc_id: value for doc_id, value in values.items() if value is not None}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _field_name(entry: Any) -> Any:
    """A ``docvalue_fields`` entry's field (a name, or ``{"field": name, "format": ...}``)."""
    return entry.get("field") if isinstance(entry, Mapping) else entry
