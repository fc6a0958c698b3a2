"""Kept fields with a type: ``--keep-field year:int``. Pure: a value in, the typed value out.

Without a type, a kept field is stored as it comes and mapped by the engine's dynamic
mapping; CSV values are all text, so ``year`` would be mapped ``text`` and a range filter on it
would compare strings. With a type, every value is converted (or its document rejected, with
the reason) and the index maps the field accordingly.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, cast

__all__ = ["FIELD_TYPES", "FieldType", "KeptField", "convert"]

FieldType = Literal["int", "float", "bool", "date", "keyword", "text"]
# The engine mapping of each type.
FIELD_TYPES: dict[str, dict[str, str]] = {
    "int": {"type": "long"},
    "float": {"type": "double"},
    "bool": {"type": "boolean"},
    "date": {"type": "date"},
    "keyword": {"type": "keyword"},
    "text": {"type": "text"},
}
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class KeptField:
    """A source field to store, and optionally its type.

    Example:
        >>> KeptField.parse("year:int")
        KeptField(name='year', type='int')
    """

    name: str
    type: FieldType | None = None

    @classmethod
    def parse(cls, spec: str) -> KeptField:
        """``name`` or ``name:type`` (type one of int, float, bool, date, keyword, text).

        Raises:
            ValueError: an empty name or an unknown type, named with the accepted ones.
        """
        name, _, kind = spec.partition(":")
        if not name.strip():
            raise ValueError(f"--keep-field {spec!r}: the field name is empty (e.g. year:int).")
        if kind and kind not in FIELD_TYPES:
            raise ValueError(
                f"--keep-field {spec!r}: unknown type {kind!r}; use one of "
                f"{', '.join(FIELD_TYPES)} (e.g. year:int), or leave the type out."
            )
        return cls(name, cast(FieldType, kind) if kind else None)

    @property
    def mapping(self) -> dict[str, str] | None:
        """The field's mapping, or ``None`` (untyped: the engine's dynamic mapping)."""
        return dict(FIELD_TYPES[self.type]) if self.type else None


def convert(value: Any, kind: FieldType) -> tuple[Any, str | None]:
    """``(typed value, None)``, or ``(None, why not)`` for a value that is not a ``kind``.

    ``None`` and an empty or blank string (an empty CSV cell) are a missing value: ``None``.

    Example:
        >>> convert(" 2020 ", "int"), convert("soon", "int")[1]
        ((2020, None), "'soon' is not an int")
    """
    if value is None or (isinstance(value, str) and not value.strip() and kind != "text"):
        return None, None  # a missing value (an empty CSV cell) stays missing
    try:
        typed = _CONVERTERS[kind](value)
    except (TypeError, ValueError, OverflowError):
        return None, f"{value!r:.40} is not {'an' if kind == 'int' else 'a'} {kind}"
    return typed, None


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("bool")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("fraction")
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise ValueError("not an integer")
    if not -(2**63) <= number < 2**63:  # the engines' long
        raise OverflowError("beyond a long")
    return number


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("bool")
    number = float(str(value).strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("not a boolean")


def _date(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    # ISO 8601 in, written back in the form the engines' default date format reads.
    return datetime.datetime.fromisoformat(value.strip()).isoformat()


def _keyword(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError("not a scalar")
    return str(value)


_CONVERTERS = {
    "int": _int,
    "float": _float,
    "bool": _bool,
    "date": _date,
    "keyword": _keyword,
    "text": _keyword,
}
