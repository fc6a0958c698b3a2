"""Package boundaries: which role may import which, checked on the source (``ast``) and at run
time. colbert_rerank stands alone; splade_es uses only its public names; imports stay light."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from colbert_rerank.exports import type_checking_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "splade_es"

# Role subpackage -> the splade_es roles it may import at run time (itself always allowed).
# Base layers first; indexing and search are siblings; training/evaluation sit on top; the CLI
# may use everything, and nothing imports the CLI.
ALLOWED = {
    "data": set(),
    "encoding": set(),
    "cluster": set(),
    "engines": {"cluster"},  # the launcher may name the connection's engine type
    "indexing": {"data", "encoding", "cluster"},
    "search": {"data", "encoding", "cluster"},
    "training": {"data", "encoding", "cluster", "search", "evaluation"},  # the λ sweep evaluates
    "evaluation": {"data", "encoding", "cluster", "indexing", "search"},
    "retrievers": {"encoding", "cluster", "search"},  # LangChain / LlamaIndex adapters
    "service": {"data", "encoding", "cluster", "search"},  # the reranking proxy
    "cli": {
        "data", "encoding", "cluster", "engines", "indexing", "search", "training", "evaluation",
        "service",
    },
}  # fmt: skip


def runtime_imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of each import that runs at import time or in a function
    (imports under ``if TYPE_CHECKING:`` are for type checkers only and are skipped)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def role_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "splade_es" and len(parts) > 1 else None


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_imports_only_the_roles_below_it(role):
    wrong = []
    for path in sorted((PACKAGE / role).rglob("*.py")):
        for line, module, _ in runtime_imports(path):
            other = role_of(module)
            if other is not None and other != role and other not in ALLOWED[role]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert wrong == [], f"{role}/ may import only {sorted(ALLOWED[role])}:\n" + "\n".join(wrong)


# Old import paths that a released README documented, kept as deprecated aliases.
DEPRECATED_ALIASES = {"colbert_index.py"}


def test_every_module_belongs_to_a_role():
    top = {"__init__.py", "__main__.py", *DEPRECATED_ALIASES}
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in top]
    assert loose == [], f"modules outside a role folder: {loose}"
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(ALLOWED)


def test_the_deprecated_alias_still_imports_with_a_warning():
    with pytest.warns(DeprecationWarning, match="from splade_es import open_reranker"):
        module = importlib.import_module("splade_es.colbert_index")
        importlib.reload(module)  # warns again if another test imported it first
    from splade_es.search.rerank import open_reranker

    assert module.open_reranker is open_reranker


def test_colbert_rerank_never_imports_splade_es():
    for path in (ROOT / "colbert_rerank").glob("*.py"):
        for line, module, _ in runtime_imports(path):
            assert module.split(".")[0] != "splade_es", f"{path.name}:{line} imports {module}"


def public_names(module_path: Path) -> set[str] | None:
    """The module's ``__all__`` as written in its source (``None`` when it has none)."""
    for node in ast.parse(module_path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return set(ast.literal_eval(node.value))
    return None


def test_splade_es_uses_only_public_colbert_rerank_names():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, module, names in runtime_imports(path):
            parts = module.split(".")
            if parts[0] != "colbert_rerank":
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if any(part.startswith("_") for part in parts):
                wrong.append(f"{where}: private module {module}")
                continue
            if len(parts) == 1:  # the package's lazy export table
                init = ROOT / "colbert_rerank" / "__init__.py"
                public = set(type_checking_imports(init.read_text(), "colbert_rerank"))
            else:
                public = public_names(ROOT / Path(*parts).with_suffix(".py"))
            if public is None:
                wrong.append(f"{where}: {module} has no __all__")
                continue
            wrong += [f"{where}: {module}.{n} is not public" for n in names if n not in public]
    assert wrong == [], "\n".join(wrong)


def loaded_modules(code: str) -> set[str]:
    program = f"{code}; import sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return set(__import__("json").loads(out.stdout))


def test_importing_the_packages_loads_neither_torch_nor_cuda():
    assert "torch" not in loaded_modules("import splade_es, colbert_rerank")


def test_connecting_to_a_cluster_never_loads_the_local_node_launcher():
    modules = loaded_modules("import splade_es.cluster.connection, splade_es.cluster.admin")
    assert not {m for m in modules if m.startswith("splade_es.engines")}
    assert "torch" not in modules


def test_encoding_loads_neither_indexing_nor_search():
    modules = loaded_modules("import splade_es.encoding.encoder, splade_es.encoding.features")
    assert not {m for m in modules if role_of(m) not in (None, "encoding")}
