"""Lazy package exports, declared once: the ``if TYPE_CHECKING:`` imports of an ``__init__``.

A package that must import fast (no torch until a name is used) lists its public names as
``from module import Name as Name`` lines inside ``if TYPE_CHECKING:``. Type checkers read
those lines (the redundant alias marks an explicit re-export); at run time
:func:`lazy_exports` reads the same lines from the ``__init__``'s source with :mod:`ast`
and returns the module's ``__getattr__``, ``__dir__`` and ``__all__``. Both ``splade_es``
and ``colbert_rerank`` use it. This module imports only the standard library.

Example:
    >>> # in a package's __init__.py
    >>> from typing import TYPE_CHECKING
    >>> from colbert_rerank.exports import lazy_exports
    >>> if TYPE_CHECKING:  # doctest: +SKIP
    ...     from colbert_rerank.codecs import Codec as Codec
    >>> __getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["LazyExports", "lazy_exports", "type_checking_imports"]


class LazyExports(NamedTuple):
    """What a lazily exporting ``__init__`` assigns to its module attributes.

    Attributes:
        getattr: the module's ``__getattr__``: imports the defining module on first use.
        dir: the module's ``__dir__``: its globals plus every exported name.
        all: the module's ``__all__``: the exported names (and ``also``), sorted.
    """

    getattr: Callable[[str], Any]
    dir: Callable[[], list[str]]
    all: list[str]


def type_checking_imports(source: str, package: str, filename: str = "<string>") -> dict[str, str]:
    """The names imported inside the top-level ``if TYPE_CHECKING:`` block of ``source``.

    Args:
        source: the text of a package's ``__init__.py``.
        package: the package's name, for resolving relative imports (``from .x import A``).
        filename: named in error messages.

    Returns:
        ``{exported name: "module:attribute"}`` in source order (``attribute`` differs from
        the exported name only for ``from module import attribute as name``).

    Raises:
        ValueError: no ``if TYPE_CHECKING:`` block, or a line in it that is not
            ``from module import name`` (``import x``, ``*``), or a name exported twice.

    Example:
        >>> type_checking_imports(
        ...     "if TYPE_CHECKING:\\n    from p.m import A as A, f as g\\n", "p"
        ... )
        {'A': 'p.m:A', 'g': 'p.m:f'}
    """
    block = _type_checking_block(ast.parse(source, filename), filename)
    found: dict[str, str] = {}
    for statement in block:
        if not isinstance(statement, ast.ImportFrom):
            raise ValueError(
                f"{filename}:{statement.lineno}: the TYPE_CHECKING block lists the exports and "
                f"may hold only 'from module import Name as Name' lines, not "
                f"{ast.unparse(statement)!r}."
            )
        module = importlib.util.resolve_name(
            "." * statement.level + (statement.module or ""), package
        )
        for alias in statement.names:
            if alias.name == "*":
                raise ValueError(
                    f"{filename}:{statement.lineno}: 'from {module} import *' hides which names "
                    "are exported: list them."
                )
            name = alias.asname or alias.name
            if name in found:
                raise ValueError(f"{filename}:{statement.lineno}: {name!r} is exported twice.")
            found[name] = f"{module}:{alias.name}"
    return found


def lazy_exports(module_name: str, init_file: str, also: Iterable[str] = ()) -> LazyExports:
    """Lazy ``__getattr__``, ``__dir__`` and ``__all__`` for the package ``module_name``.

    Args:
        module_name: the package (pass ``__name__`` from its ``__init__``).
        init_file: its ``__init__.py`` (pass ``__file__``); its ``if TYPE_CHECKING:`` block
            is the export table (see :func:`type_checking_imports`).
        also: names the ``__init__`` defines itself that belong in ``__all__`` (e.g.
            ``__version__``).

    Returns:
        The three module attributes; accessing an exported name imports its module then.

    Raises:
        ValueError: the export table is malformed (see :func:`type_checking_imports`).

    Example:
        >>> __getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)  # doctest: +SKIP
    """
    source = Path(init_file).read_text(encoding="utf-8")
    table = type_checking_imports(source, module_name, init_file)
    names = sorted({*table, *also})
    return LazyExports(_getter(module_name, table), _lister(module_name, names), names)


def _type_checking_block(tree: ast.Module, filename: str) -> list[ast.stmt]:
    for statement in tree.body:
        if isinstance(statement, ast.If) and _is_type_checking(statement.test):
            return statement.body
    raise ValueError(f"{filename} has no top-level 'if TYPE_CHECKING:' block listing its exports.")


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _getter(module_name: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)

    return __getattr__


def _lister(module_name: str, names: list[str]) -> Callable[[], list[str]]:
    def __dir__() -> list[str]:
        """Lets ``dir()`` and ``pydoc`` see the lazily imported names."""
        return sorted(set(vars(sys.modules[module_name])) | set(names))

    return __dir__
