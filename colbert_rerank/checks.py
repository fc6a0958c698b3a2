"""Argument checks shared by the frozen configs of both packages (``splade_es`` uses them too).

Standard library only: a config's ``__post_init__`` calls them without loading any model code.
"""

from __future__ import annotations

__all__ = ["check_positive_ints"]


def check_positive_ints(owner: object, *names: str, optional: bool = False) -> None:
    """Refuse the first attribute of ``owner`` in ``names`` that is not a positive integer.

    Args:
        owner: the object whose attributes to check, e.g. a frozen dataclass in its
            ``__post_init__``.
        names: the attribute names, checked in order.
        optional: ``None`` is accepted too (and the message says so).

    Raises:
        ValueError: names the attribute, echoes its value, and says what is expected.
            ``True``/``False`` are refused although Python counts them as integers.

    Example:
        >>> from types import SimpleNamespace
        >>> check_positive_ints(SimpleNamespace(k=0), "k")
        Traceback (most recent call last):
        ...
        ValueError: k=0: expected a positive integer.
    """
    for name in names:
        value = getattr(owner, name)
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            either = " or None" if optional else ""
            raise ValueError(f"{name}={value!r}: expected a positive integer{either}.")
