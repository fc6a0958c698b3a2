"""A real corpus every machine has: the Python standard library's own documentation.

Each public function, class and method of a fixed list of standard-library modules becomes a
document: id and title ``module.name``, text its docstring as ``pydoc`` shows it. Used by the
quickstart, so that the product can be seen working without any data or network.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pydoc
import warnings
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

MODULES: tuple[str, ...] = (
    "argparse",
    "array",
    "asyncio",
    "base64",
    "bisect",
    "bz2",
    "calendar",
    "cmath",
    "collections",
    "colorsys",
    "concurrent.futures",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email.message",
    "enum",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "functools",
    "getpass",
    "gettext",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "html.parser",
    "http.client",
    "http.server",
    "imaplib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "locale",
    "logging",
    "lzma",
    "mailbox",
    "math",
    "mimetypes",
    "multiprocessing",
    "operator",
    "os",
    "os.path",
    "pathlib",
    "pickle",
    "platform",
    "pprint",
    "queue",
    "random",
    "re",
    "sched",
    "secrets",
    "select",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "smtplib",
    "socket",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "timeit",
    "tomllib",
    "traceback",
    "typing",
    "unicodedata",
    "unittest",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "weakref",
    "xml.etree.ElementTree",
    "zipfile",
    "zlib",
    "zoneinfo",
)


def _public(module: Any) -> Iterator[tuple[str, Any]]:
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in sorted(set(names)):
        try:
            value = getattr(module, name)
        except AttributeError:
            continue
        owner = getattr(value, "__module__", None)
        if (inspect.isfunction(value) or inspect.isbuiltin(value) or inspect.isclass(value)) and (
            owner is None
            or owner.split(".")[0] in (module.__name__.split(".")[0], "_" + name)
            or owner.lstrip("_").split(".")[0] == module.__name__.split(".")[0]
        ):
            yield name, value


def _text(value: Any) -> str:
    doc = pydoc.getdoc(value) or ""
    return " ".join(doc.split())


def stdlib_corpus(
    limit: int | None = None, modules: tuple[str, ...] = MODULES
) -> list[dict[str, str]]:
    """Documents (``_id``, ``title``, ``text``) from standard-library docstrings.

    Args:
        limit: at most this many documents (spread over the modules in order).
        modules: which modules to read.

    Returns:
        Documents whose text has at least 40 characters, in a stable order.
    """
    documents: list[dict[str, str]] = []
    seen: set[str] = set()
    for module_name in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module(module_name)
        except ImportError:
            logger.info("Module %s is not available here", module_name)
            continue
        for name, value in _public(module):
            entries = [(f"{module_name}.{name}", value)]
            if inspect.isclass(value):
                for method_name, method in sorted(vars(value).items()):
                    if not method_name.startswith("_") and callable(method):
                        entries.append((f"{module_name}.{name}.{method_name}", method))
            for doc_id, obj in entries:
                text = _text(obj)
                if len(text) < 40 or doc_id in seen:
                    continue
                seen.add(doc_id)
                documents.append({"_id": doc_id, "title": doc_id, "text": text[:2000]})
    if limit is not None:
        documents = _spread(documents, limit)
    return documents


def _spread(documents: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """``limit`` documents taken round-robin over modules, so every module is represented."""
    by_module: dict[str, list[dict[str, str]]] = {}
    for doc in documents:
        by_module.setdefault(doc["_id"].rsplit(".", 1)[0].split(".")[0], []).append(doc)
    chosen: list[dict[str, str]] = []
    queues = list(by_module.values())
    position = 0
    while len(chosen) < limit and any(position < len(q) for q in queues):
        for queue in queues:
            if position < len(queue) and len(chosen) < limit:
                chosen.append(queue[position])
        position += 1
    return sorted(chosen, key=lambda doc: doc["_id"])
