"""Documents in, validated: each input record becomes a :class:`Document` or a
:class:`Rejected` record saying which input was refused and why, so that nothing disappears
between the source and the index. :func:`from_records` takes any iterable of dicts; the file
readers (JSONL, CSV, BEIR) are in :mod:`splade_es.data.readers`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from splade_es.data.fields import FieldType, convert

MAX_ID_BYTES = 512  # Elasticsearch and OpenSearch refuse longer _id values


@dataclass(frozen=True)
class Document:
    """One document to index.

    Attributes:
        id: the ``_id`` it is stored under (deterministic: re-runs overwrite, never duplicate).
        text: the body that is encoded and stored.
        title: optional title (encoded as ``title + " " + text``).
        fields: extra source fields kept as they are (e.g. for filters).
    """

    id: str
    text: str
    title: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def encoded_text(self) -> str:
        """What the models encode: the title, a space, the text."""
        return encoded_text(self.title, self.text)

    @property
    def digest(self) -> str:
        """A short hash of what gets indexed (resuming skips only unchanged documents)."""
        payload = json.dumps(
            [self.id, self.title, self.text, dict(self.fields)],
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def encoded_text(title: str, text: str) -> str:
    """The text the models encode for a document: the title, a space, the body."""
    return f"{title} {text}".strip() if title else text


@dataclass(frozen=True)
class Rejected:
    """An input that was not turned into a document.

    Attributes:
        id: the document id when one could be read, else ``"<position N>"``.
        position: 0-based position in the input.
        reason: what was wrong and how to fix it.
        missing_field: the id or text field, when the record lacks it (the usual sign of a
            wrong ``--id-field``/``--text-field``).
        unreadable: the input could not be parsed into a record at all (not JSON, broken
            CSV quoting): when every record is, the file is probably not of its format.
    """

    id: str
    position: int
    reason: str
    missing_field: str | None = None
    unreadable: bool = False


@dataclass(frozen=True)
class FieldNames:
    """Which input fields hold the id, text and title, and which others to keep.

    Attributes:
        types: a type for some kept fields (``{"year": "int"}``): their values are converted,
            or the document is rejected with the reason (see :mod:`splade_es.data.fields`).
    """

    id: str = "_id"
    text: str = "text"
    title: str | None = "title"
    keep: tuple[str, ...] = ()
    types: Mapping[str, FieldType] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        untyped = sorted(set(self.types) - set(self.keep))
        if untyped:
            raise ValueError(
                f"types given for {untyped}, which are not kept fields {list(self.keep)}: "
                "keep them too (--keep-field name:type does both)."
            )


@dataclass(frozen=True)
class Limits:
    """Input validation limits.

    Attributes:
        max_text_bytes: documents whose title + text exceed this (UTF-8) are rejected.
    """

    max_text_bytes: int = 1_000_000


def id_problem(doc_id: str) -> str | None:
    """Why ``doc_id`` cannot be an ``_id`` (empty, over 512 UTF-8 bytes, a lone surrogate),
    or ``None``. Every document passes this before anything is sent, so the engines never
    answer with a 400 for an id."""
    if not isinstance(doc_id, str):
        return f"id {doc_id!r} is {type(doc_id).__name__}, not str: convert it with str()"
    if not doc_id.strip():
        return f"id {doc_id!r} is empty or whitespace"
    id_bytes = len(doc_id.encode("utf-8", "surrogatepass"))
    if id_bytes > MAX_ID_BYTES:
        return (
            f"id is {id_bytes} bytes, longer than {MAX_ID_BYTES} bytes (the engines' _id limit): "
            "shorten it (e.g. a hash of the long id, with the original kept in another field)"
        )
    if has_lone_surrogate(doc_id):
        return "id is not valid UTF-8 (lone surrogate)"
    return None


def make_document(
    raw: Any, position: int, names: FieldNames, limits: Limits
) -> Document | Rejected:
    """Validate one input record and build a Document, or say why not."""
    if not isinstance(raw, Mapping):
        return Rejected(
            f"<position {position}>",
            position,
            f"record is {type(raw).__name__}, not an object with {names.id!r} and {names.text!r}",
        )
    doc_id = _record_id(raw, position, names)
    if isinstance(doc_id, Rejected):
        return doc_id
    where = doc_id  # a valid id: the dead letter names the document by it
    text = raw.get(names.text)
    if not isinstance(text, str):
        return Rejected(
            where,
            position,
            f"text field {names.text!r} is {_describe(text)}, not a string: set --text-field "
            "or fix the record",
            names.text if text is None else None,
        )
    title = raw.get(names.title, "") if names.title else ""
    if title is None:
        title = ""
    if not isinstance(title, str):
        return Rejected(where, position, f"title field {names.title!r} is {_describe(title)}")
    problem = _text_problem(text, title, limits)
    kept: dict[str, Any] = {}
    if problem is None:
        kept, problem = _kept_fields(raw, names)
    if problem is not None:
        return Rejected(where, position, problem)
    return Document(id=doc_id, text=text, title=title, fields=kept)


def _kept_fields(raw: Mapping[str, Any], names: FieldNames) -> tuple[dict[str, Any], str | None]:
    """The kept fields of ``raw``, typed where ``names.types`` says, or why they cannot be."""
    kept = {name: raw[name] for name in names.keep if name in raw}
    for name, value in kept.items():
        if (problem := _json_problem(value)) is not None:
            return kept, f"field {name!r} {problem}: only JSON values can be stored"
        kind = names.types.get(name)
        if kind is not None:
            kept[name], problem = convert(value, kind)
            if problem is not None:
                return kept, (
                    f"field {name!r}: {problem} (--keep-field {name}:{kind}): fix the value, "
                    "or leave the type out"
                )
    return kept, None


def _record_id(raw: Mapping[str, Any], position: int, names: FieldNames) -> str | Rejected:
    """The record's id as a valid ``_id``, or why it has none."""
    raw_id = raw.get(names.id)
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        return Rejected(
            f"<position {position}>",
            position,
            f"id field {names.id!r} is {_describe(raw_id)}; every document needs a string "
            f"(or integer) id: set --id-field to the field that holds it",
            names.id if raw_id is None else None,
        )
    if isinstance(raw_id, int) and raw_id.bit_length() > 4 * MAX_ID_BYTES:  # str() would refuse
        return Rejected(
            f"<position {position}>", position, f"integer id has over {MAX_ID_BYTES} digits"
        )
    doc_id = str(raw_id)
    problem = id_problem(doc_id)
    if problem is not None:
        where = doc_id if doc_id.strip() else f"<position {position}>"
        return Rejected(where if len(where) <= 60 else where[:60] + "...", position, problem)
    return doc_id


def _text_problem(text: str, title: str, limits: Limits) -> str | None:
    """Why the text and title cannot be indexed (empty, invalid Unicode, too long), or None."""
    if not text.strip() and not title.strip():
        return "text and title are empty or whitespace"
    if has_lone_surrogate(text) or has_lone_surrogate(title):
        return "text is not valid UTF-8 (lone surrogate)"
    size = len(text.encode()) + len(title.encode())
    if size > limits.max_text_bytes:
        return (
            f"text is {size} bytes, over the {limits.max_text_bytes}-byte limit: split the "
            "document or raise --max-text-bytes"
        )
    return None


def from_records(
    records: Iterable[Any], names: FieldNames = FieldNames(), limits: Limits = Limits()
) -> Iterator[Document | Rejected]:
    """Validate any iterable of dicts (the Python way in)."""
    for position, raw in enumerate(records):
        yield make_document(raw, position, names, limits)


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (invalid Unicode: JSON and tokenizers refuse it)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


MAX_JSON_DEPTH = 100


def _json_problem(value: Any) -> str | None:
    """Why ``value`` would not reach the engine unchanged as JSON, or ``None``.

    Refused: NaN and infinity (not JSON), keys that are not strings (``json`` would turn
    ``1`` into ``"1"``), lone surrogates, other types (sets, bytes, objects), nesting deeper
    than ``MAX_JSON_DEPTH``. Tuples are stored as arrays.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        where = f" at {path}" if path else ""
        if depth > MAX_JSON_DEPTH:
            return f"nests deeper than {MAX_JSON_DEPTH} levels{where}"
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return f"holds {item}{where}, which JSON cannot represent"
        elif isinstance(item, str):
            if has_lone_surrogate(item):
                return f"holds a lone surrogate{where}"
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str) or has_lone_surrogate(key):
                    return f"has key {_describe(key)}{where}: object keys must be valid strings"
                stack.append((child, f"{path}.{key}"[:80], depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{i}]"[:80], depth + 1) for i, child in enumerate(item))
        else:
            return f"holds {_describe(item)}{where}"
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "missing"
    try:
        shown = f"{value!r:.40}"
    except (ValueError, RecursionError):  # an int over 4300 digits, a very deep list
        shown = "(too large to show)"
    return f"{type(value).__name__} {shown}"
