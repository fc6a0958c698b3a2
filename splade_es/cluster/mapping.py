"""Index bodies (settings, mappings, ``_meta``) from JSON index templates.

Pure: configuration in, request body out (reading a template file is the only I/O). Every
mapping the package creates starts from a template in ``mappings/`` (``packaged_template``)
or from the user's own (``load_template``); the package adds only the SPLADE field, the
fields passed in ``IndexLayout.extra_properties`` (stored token embeddings) and ``_meta``, and
refuses a template that already defines one of them instead of overwriting it.

The ``_meta`` block records what built the index (model, weight and tokenizer hashes,
pooling, pruning, key encoding, package version) so that a search with another model is
caught instead of returning silently wrong results.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from splade_es import __version__

if TYPE_CHECKING:  # the encoder's type only: no model is loaded here
    from splade_es.encoding.encoder import SpladeEncoder

MappingType = Literal["rank_features", "sparse_vector"]
MAPPING_TYPES: tuple[MappingType, ...] = ("rank_features", "sparse_vector")
META_KEY = "splade_es"
# ``_meta`` blocks the packages write: a template may not define them.
VECTORS_META_KEY = "splade_es_vectors"  # the dense and MUVERA kNN fields
RESERVED_META_KEYS = (META_KEY, "colbert_rerank", VECTORS_META_KEY)
KEY_ENCODING = "percent-dot-v1"
# Keys whose difference makes query weights meaningless against stored weights.
MODEL_KEYS = ("weights_sha256", "tokenizer_sha256", "pooling", "key_encoding")
TEMPLATE_KEYS = ("settings", "mappings")


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
        source_excludes: fields left out of ``_source`` (``mappings._source.excludes``), e.g.
            token embeddings kept as doc values.
        knn: set ``index.knn`` (OpenSearch's k-NN plugin needs it for ``knn_vector`` fields).
    """

    mapping_type: MappingType = "rank_features"
    field: str = "splade"
    text_fields: tuple[str, ...] = ("title", "text")
    shards: int | None = None
    replicas: int | None = None
    extra_properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source_excludes: tuple[str, ...] = ()
    knn: bool = False

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


def packaged_template(name: str) -> dict[str, Any]:
    """A template shipped in ``mappings/`` (the ``splade_es.mappings`` package), by name.

    Args:
        name: the file name without ``.json``: ``index`` (the default SPLADE index),
            ``codebook`` (the ColBERT codebook companion index) or ``probe`` (the capability
            probe's throw-away indices).

    Returns:
        A fresh copy of the template (``settings`` and ``mappings``), safe to modify.

    Raises:
        ValueError: no template of that name ships with the package.

    Example:
        >>> packaged_template("codebook")["mappings"]["dynamic"]
        False
    """
    folder = importlib.resources.files("splade_es.mappings")
    names = sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))
    if name not in names:
        raise ValueError(f"No packaged template {name!r}: expected one of {', '.join(names)}.")
    text = (folder / f"{name}.json").read_text(encoding="utf-8")
    return check_template(json.loads(text), f"packaged template {name}.json")


def load_template(path: Path) -> dict[str, Any]:
    """Read a user index template: a JSON object with ``settings`` and/or ``mappings``.

    The template is what ``PUT /<index>`` would take, minus what the package adds (see
    ``index_body``): analyzers and other settings, text fields with their analyzers, any
    other fields, and ``_meta`` entries of your own.

    Args:
        path: the JSON file.

    Returns:
        The template, checked by ``check_template``.

    Raises:
        ValueError: the file cannot be read, is not JSON, or is not a valid template; the
            message names the file.

    Example:
        >>> template = load_template(Path("my-index.json"))  # doctest: +SKIP
        >>> body = index_body(layout, meta, template=template)  # doctest: +SKIP
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"Cannot read index template {str(path)!r} ({error}): pass a readable UTF-8 JSON file."
        ) from error
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"Index template {str(path)!r} is not valid JSON (line {error.lineno}, column "
            f"{error.colno}: {error.msg}): fix the file."
        ) from error
    return check_template(body, f"index template {str(path)!r}")


def check_template(template: Any, source: str = "index template") -> dict[str, Any]:
    """Check the shape of an index template; return it as a plain ``dict``.

    Args:
        template: the parsed template.
        source: how error messages name it (e.g. the file).

    Raises:
        ValueError: it is not an object, has keys other than ``settings``/``mappings``, or
            ``settings``, ``settings.index``, ``mappings``, ``mappings.properties``, one of
            its fields or ``mappings._meta`` is not an object.
    """
    if not isinstance(template, dict):
        raise ValueError(
            f"{source} must be a JSON object with 'settings' and/or 'mappings', "
            f"not {type(template).__name__}."
        )
    unknown = sorted(set(template) - set(TEMPLATE_KEYS))
    if unknown:
        raise ValueError(
            f"{source} has unknown top-level keys {unknown}: only 'settings' and 'mappings' "
            "are allowed (create aliases with --alias)."
        )
    settings = template.get("settings", {})
    mappings = template.get("mappings", {})
    _check_object(settings, "settings", source)
    _check_object(settings.get("index", {}), "settings.index", source)
    _check_object(mappings, "mappings", source)
    _check_object(mappings.get("_meta", {}), "mappings._meta", source)
    properties = mappings.get("properties", {})
    _check_object(properties, "mappings.properties", source)
    for name, spec in properties.items():
        _check_object(spec, f"mappings.properties.{name}", source)
    return template


def _check_object(value: Any, where: str, source: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(
            f"{source}: {where} must be a JSON object, not {type(value).__name__} "
            f"({json.dumps(value)[:60]})."
        )


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


def encoder_meta(encoder: SpladeEncoder, layout: IndexLayout) -> dict[str, Any]:
    """The ``_meta.splade_es`` record ``encoder`` writes into an index of ``layout`` (and a
    searcher compares with the index's, to refuse another model)."""
    return splade_meta(
        model=encoder.config.model,
        fingerprint=encoder.fingerprint(),
        pooling=encoder.pooling,
        max_length=encoder.config.document_max_length,
        pruning=encoder.config.document_pruning.name,
        layout=layout,
    )


def index_body(
    layout: IndexLayout,
    meta: Mapping[str, Any],
    extra_meta: Mapping[str, Any] | None = None,
    template: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``PUT /<index>`` body: ``template`` plus the SPLADE field, extra fields and ``_meta``.

    Everything in the template is kept (settings, analyzers, fields, ``_meta`` entries). The
    layout's text fields use the template's mapping when it has one (which must be of type
    ``text``, so its analyzer applies) and are added as ``{"type": "text"}`` when it has none.
    ``layout.shards``/``layout.replicas``, when not ``None``, override the template's.

    Args:
        layout: the field names and shard settings.
        meta: the ``_meta.splade_es`` record (``splade_meta``).
        extra_meta: other ``_meta`` blocks, e.g. ``colbert_rerank`` for stored embeddings.
        template: a user template (``load_template``); ``None``: the packaged
            ``mappings/index.json``, of which only the text fields the layout names are used.

    Raises:
        ValueError: the template defines the SPLADE field, an extra field or a ``_meta``
            block the package writes, or maps a layout text field to another type.

    Example:
        >>> layout = IndexLayout(text_fields=("body",))
        >>> body = index_body(layout, {"field": "splade"})
        >>> body["mappings"]["properties"]
        {'body': {'type': 'text'}, 'splade': {'type': 'rank_features'}}
    """
    if template is None:
        body = _default_template(layout)
    else:
        body = copy.deepcopy(check_template(dict(template)))
    mappings = body.setdefault("mappings", {})
    properties = mappings.setdefault("properties", {})
    _add_text_fields(properties, layout.text_fields)
    added = [(layout.field, {"type": layout.mapping_type})]
    added += [(name, dict(spec)) for name, spec in layout.extra_properties.items()]
    for name, spec in added:
        if name in properties:
            raise ValueError(_clash(name, layout))
        properties[name] = spec
    if layout.source_excludes:
        source = mappings.setdefault("_source", {})
        excludes = list(source.get("excludes", []))
        source["excludes"] = excludes + [f for f in layout.source_excludes if f not in excludes]
    mappings["_meta"] = _merged_meta(mappings.get("_meta", {}), meta, extra_meta or {})
    settings = body.setdefault("settings", {})
    for name, value in (
        ("number_of_shards", layout.shards),
        ("number_of_replicas", layout.replicas),
    ):
        if value is not None:
            _set_index_setting(settings, name, value)
    if layout.knn:
        settings.pop("index.knn", None)
        settings.setdefault("index", {})["knn"] = True
    return body


def _default_template(layout: IndexLayout) -> dict[str, Any]:
    """The packaged template, keeping only the text fields the layout names."""
    body = packaged_template("index")
    properties = body["mappings"]["properties"]
    body["mappings"]["properties"] = {
        name: spec for name, spec in properties.items() if name in layout.text_fields
    }
    return body


def _add_text_fields(properties: dict[str, Any], text_fields: tuple[str, ...]) -> None:
    """Keep the template's mapping of each text field (checked), or add a plain ``text``."""
    for name in text_fields:
        spec = properties.get(name)
        if spec is None:
            properties[name] = {"type": "text"}
        elif spec.get("type") != "text" or spec.get("index") is False:
            raise ValueError(
                f"Template field {name!r} is {json.dumps(spec)}, but {name!r} is a BM25 text "
                f'field: map it as {{"type": "text", ...}} (an analyzer is fine), remove it '
                "from the template, or choose other text fields."
            )


def _clash(name: str, layout: IndexLayout) -> str:
    """Why ``name`` cannot be added: an extra field reuses a package field, or the template
    already defines it."""
    if name in layout.extra_properties and (name == layout.field or name in layout.text_fields):
        kind = "SPLADE" if name == layout.field else "text"
        return f"Extra field {name!r} clashes with the {kind} field {name!r}: rename one of them."
    if name == layout.field:
        return (
            f"Template field {name!r} clashes with the SPLADE field, which the package adds as "
            f"{layout.mapping_type}: remove {name!r} from the template or choose another "
            "SPLADE field name."
        )
    return (
        f"Template field {name!r} clashes with a field the package adds "
        f"({json.dumps(dict(layout.extra_properties[name]))}, e.g. stored token embeddings): "
        f"remove {name!r} from the template or choose another field name for it."
    )


def _merged_meta(
    template_meta: Mapping[str, Any], meta: Mapping[str, Any], extra_meta: Mapping[str, Any]
) -> dict[str, Any]:
    """The template's ``_meta`` entries plus the package's blocks (which it may not define)."""
    for key in (*RESERVED_META_KEYS, *extra_meta):
        if key in template_meta:
            raise ValueError(
                f"Template _meta key {key!r} is written by the package (it records how the index "
                f"was built): remove '_meta.{key}' from the template."
            )
    return {**template_meta, **extra_meta, META_KEY: dict(meta)}


def _set_index_setting(settings: dict[str, Any], name: str, value: int) -> None:
    """Set ``settings.index.<name>``, dropping the flat spellings a template may use (and, for
    a replica count, the ``auto_expand_replicas`` range it replaces)."""
    dropped = [name, "auto_expand_replicas"] if name == "number_of_replicas" else [name]
    for key in dropped:
        settings.pop(key, None)
        settings.pop(f"index.{key}", None)
        settings.get("index", {}).pop(key, None)
    settings.setdefault("index", {})[name] = value


def meta_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Model-relevant differences between an index's ``_meta`` and the current encoder's."""
    return [
        f"{key}: index has {stored.get(key)!r}, encoder has {current.get(key)!r}"
        for key in MODEL_KEYS
        if stored.get(key) != current.get(key)
    ]
