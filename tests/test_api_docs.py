"""The public API is documented: every exported name and its public members have docstrings,
and ``python -m pydoc`` renders both packages."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import colbert_rerank
import splade_es


def undocumented(package) -> list[str]:
    missing = []
    for name in package.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(package, name)
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_"):
                    continue
                function = value.fget if isinstance(value, property) else value
                function = getattr(function, "__func__", function)
                if callable(function) and not inspect.getdoc(function):
                    missing.append(f"{name}.{member}")
    return missing


@pytest.mark.parametrize("package", [splade_es, colbert_rerank], ids=lambda p: p.__name__)
def test_every_public_name_has_a_docstring(package):
    assert undocumented(package) == []


@pytest.mark.parametrize("name", ["splade_es", "colbert_rerank"])
def test_pydoc_lists_the_api(name):
    out = subprocess.run(
        [sys.executable, "-m", "pydoc", name], capture_output=True, text=True, check=True
    ).stdout
    package = sys.modules[name]
    for exported in package.__all__:
        if not exported.startswith("__"):
            assert exported in out
