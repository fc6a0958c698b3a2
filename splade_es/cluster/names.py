"""Index and alias names: the one check a user-supplied name passes before it reaches a URL.

Every request path this package builds from an index or alias name (``/{name}/_bulk``,
``/{name}/_mapping``, ``/_alias/{name}``...) takes a name that went through
:func:`check_index_name`, so a name can never address several indices (wildcards, comma
lists, ``_all``, date math), a system or hidden index (a leading ``.``), or another endpoint
(``/``, ``?``, ``#``...). Document ids never reach a path: they travel in request bodies.
"""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_BYTES", "check_index_name"]

MAX_NAME_BYTES = 255  # the engines' limit, in UTF-8 bytes
_PLAIN = re.compile(r"[a-z0-9._+-]")
_HOW = "use lowercase letters, digits and . _ + - (not first), e.g. 'scifact-v2'"


def check_index_name(name: str) -> str:
    """``name`` unchanged if it names exactly one ordinary index or alias.

    Refused, each with the rule it breaks: empty names, names over 255 UTF-8 bytes,
    wildcards (``*`` ``?``), comma lists, date math (``<logs-{now/d}>``), a leading ``.``
    (system and hidden indices), ``_`` (``_all`` and the API endpoints), ``-`` or ``+``,
    ``..`` anywhere, uppercase, and any character outside ``a-z 0-9 . _ + -`` (``/`` ``\\``
    ``#`` ``:`` spaces, non-ASCII) that would change the request path or query.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: the name is not allowed (the message says why and how to fix it).

    Example:
        >>> check_index_name("scifact-v2")
        'scifact-v2'
    """
    if not isinstance(name, str):
        raise TypeError(
            f"Index name {name!r} is {type(name).__name__}, not str: pass the name as a string."
        )
    problem = _problem(name)
    if problem is not None:
        raise ValueError(f"Index name {name!r} is not allowed: {problem}; {_HOW}.")
    return name


def _problem(name: str) -> str | None:
    """Why ``name`` is refused, or ``None``."""
    if not name:
        return "it is empty"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long, over the engines' limit of {MAX_NAME_BYTES}"
    if "*" in name or "?" in name:
        return "wildcards (* ?) would address every matching index: name one index"
    if "," in name:
        return "a comma list addresses several indices: name one index"
    if name.startswith("<") or name.endswith(">"):
        return "date math (<...>) resolves to a computed name: write the name out"
    if name == "_all":
        return "_all addresses every index: name one index"
    if name[0] in "._-+":
        why = {
            ".": "names starting with '.' are system or hidden indices",
            "_": "names starting with '_' are reserved for the engines' endpoints",
            "-": "the engines refuse names starting with '-'",
            "+": "the engines refuse names starting with '+'",
        }[name[0]]
        return why
    if ".." in name:
        return "'..' is refused (no path tricks)"
    if name != name.lower():
        return f"the engines refuse uppercase letters (did you mean {name.lower()!r}?)"
    bad = sorted({char for char in name if not _PLAIN.fullmatch(char)})
    if bad:
        shown = " ".join(repr(char) for char in bad)
        return f"it contains {shown}, which could change the request path or query"
    return None
