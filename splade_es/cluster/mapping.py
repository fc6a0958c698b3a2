"""Index bodies (settings, mappings, ``_meta``) from the JSON templates in ``mappings/``.

Pure: configuration in, request body out. The ``_meta`` block records what built the index
(model, weight and tokenizer hashes, pooling, pruning, key encoding, package version) so that a
search with another model is caught instead of returning silently wrong results.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from splade_es import __version__

MappingType = Literal["rank_features", "sparse_vector"]
MAPPING_TYPES: tuple[MappingType, ...] = ("rank_features", "sparse_vector")
META_KEY = "splade_es"
KEY_ENCODING = "percent-dot-v1"
# Keys whose difference makes query weights meaningless against stored weights.
MODEL_KEYS = ("weights_sha256", "tokenizer_sha256", "pooling", "key_encoding")


@dataclass(frozen=True)
class IndexLayout:
    """Field names and shard settings of a SPLADE index.

    Attributes:
        mapping_type: ``rank_features`` (any ES >= 7, OpenSearch) or ``sparse_vector``
            (ES >= 8.11).
        field: the SPLADE field.
        text_fields: stored, BM25-searchable text fields.
        shards / replicas: index settings (``None``: the template's / the cluster's default).
        extra_properties: mappings for kept extra fields (e.g. ``{"year": {"type": "integer"}}``).
    """

    mapping_type: MappingType = "rank_features"
    field: str = "splade"
    text_fields: tuple[str, ...] = ("title", "text")
    shards: int | None = None
    replicas: int | None = None
    extra_properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mapping_type not in MAPPING_TYPES:
            raise ValueError(
                f"mapping_type={self.mapping_type!r}: expected rank_features or sparse_vector."
            )
        if not self.field or "." in self.field or self.field in self.text_fields:
            raise ValueError(
                f"SPLADE field {self.field!r} must be a non-empty name without dots, distinct "
                f"from the text fields {self.text_fields}."
            )


def template(mapping_type: MappingType) -> dict[str, Any]:
    """The JSON template of ``mappings/`` for a mapping type."""
    resource = importlib.resources.files("splade_es.mappings") / f"splade-{mapping_type}.json"
    body: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return body


def splade_meta(
    *,
    model: str,
    fingerprint: Mapping[str, str],
    pooling: str,
    max_length: int,
    pruning: str,
    layout: IndexLayout,
) -> dict[str, Any]:
    """The ``_meta.splade_es`` record for an index built with this model and layout."""
    return {
        "format": 1,
        "package_version": __version__,
        "model": model,
        "weights_sha256": fingerprint["weights_sha256"],
        "tokenizer_sha256": fingerprint["tokenizer_sha256"],
        "pooling": pooling,
        "document_max_length": max_length,
        "document_pruning": pruning,
        "key_encoding": KEY_ENCODING,
        "mapping_type": layout.mapping_type,
        "field": layout.field,
        "text_fields": list(layout.text_fields),
    }


def index_body(
    layout: IndexLayout, meta: Mapping[str, Any], extra_meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``PUT /<index>`` body for ``layout`` carrying ``meta`` (and other ``_meta`` blocks,
    e.g. ``colbert_rerank`` for stored token embeddings)."""
    body = copy.deepcopy(template(layout.mapping_type))
    properties: dict[str, Any] = body["mappings"]["properties"]
    splade = properties.pop("splade")
    for name in list(properties):
        if properties[name].get("type") == "text":
            del properties[name]
    for name in layout.text_fields:
        properties[name] = {"type": "text"}
    properties[layout.field] = splade
    for name, spec in layout.extra_properties.items():
        if name in properties:
            raise ValueError(f"extra field {name!r} clashes with a SPLADE index field.")
        properties[name] = dict(spec)
    body["mappings"]["_meta"] = {**dict(extra_meta or {}), META_KEY: dict(meta)}
    settings = body.setdefault("settings", {}).setdefault("index", {})
    if layout.shards is not None:
        settings["number_of_shards"] = layout.shards
    if layout.replicas is not None:
        settings["number_of_replicas"] = layout.replicas
    return body


def meta_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Model-relevant differences between an index's ``_meta`` and the current encoder's."""
    return [
        f"{key}: index has {stored.get(key)!r}, encoder has {current.get(key)!r}"
        for key in MODEL_KEYS
        if stored.get(key) != current.get(key)
    ]
