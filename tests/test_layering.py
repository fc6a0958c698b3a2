"""Package boundaries from the design: colbert_rerank stands alone; imports stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_colbert_rerank_never_imports_splade_es():
    for path in (ROOT / "colbert_rerank").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "splade_es" or n.startswith("splade_es.") for n in names), path


def test_importing_the_packages_loads_neither_torch_nor_cuda():
    code = "import splade_es, colbert_rerank, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
