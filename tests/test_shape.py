"""Code shape from the style guide: functions fit on a screen, modules stay readable.

A function is measured from its ``def`` line to its last line (decorators left out, the
docstring counted); a module by its line count.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("splade_es", "colbert_rerank")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    """``path:line name (N lines)`` for each function over the limit, in file order."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append((node.lineno, f"{node.name} ({length} lines)"))
    relative = path.relative_to(root)
    return [f"{relative}:{line} {what}" for line, what in sorted(found)]


def test_the_walk_finds_both_packages():
    names = {path.relative_to(ROOT).parts[0] for path in sources()}
    assert names == set(PACKAGES)


def test_functions_fit_on_a_screen():
    offenders = [entry for path in sources() for entry in long_functions(path)]
    assert not offenders, (
        f"{len(offenders)} function(s) over {MAX_FUNCTION_LINES} lines; split each into named "
        "steps:\n" + "\n".join(offenders)
    )


def test_modules_stay_under_the_size_limit():
    offenders = []
    for path in sources():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            offenders.append(f"{path.relative_to(ROOT)}:1 ({lines} lines)")
    assert not offenders, (
        f"{len(offenders)} module(s) over {MAX_MODULE_LINES} lines; move a coherent part "
        "out:\n" + "\n".join(offenders)
    )


def test_the_measure_leaves_out_decorators_and_counts_docstrings(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 2))
    sample = tmp_path / "sample.py"
    sample.write_text(f'@decorator\n@another\ndef f():\n    """Doc."""\n{body}')
    assert long_functions(sample, tmp_path) == []  # exactly at the limit
    sample.write_text(f'@decorator\ndef f():\n    """Doc."""\n{body}    y = 0\n')
    assert long_functions(sample, tmp_path) == ["sample.py:2 f (61 lines)"]
