"""Every code block of the README, run against the real nodes, in README order.

Shell blocks run command by command (``splade-es`` in-process through click, relative paths in
a scratch folder laid out like the README assumes); Python blocks run in one shared namespace.
The only changes to what a reader would type: ``pip install`` lines are not run (the
environment running this test is that install), ``python -m pytest`` is this suite, the
quickstart indexes fewer documents (``--max-docs 100``), and the Python examples' cluster URL
is replaced with the test node's.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from corpus_fixture import DOCS, write_beir, write_jsonl

from conftest import cache_dir
from splade_es.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
EXAMPLE_URL = "http://127.0.0.1:9200"
NOT_RUN = {
    "pip": "the environment running this test is that install",
    "python -m pytest": "this suite",
}
EXTRA_ARGS = {"quickstart": ["--max-docs", "100", "--no-progress"]}


def blocks() -> list[tuple[str, str, int]]:
    """``(language, code, line)`` for every fenced block."""
    text = README.read_text(encoding="utf-8")
    return [
        (m.group(1), m.group(2), text[: m.start()].count("\n") + 1) for m in FENCE.finditer(text)
    ]


def commands(code: str) -> list[list[str]]:
    """Shell commands of a block: continuation lines joined, comments dropped, ``&&`` split."""
    joined = code.replace("\\\n", " ")
    out: list[list[str]] = []
    for line in joined.splitlines():
        tokens = shlex.split(line, comments=True)
        current: list[str] = []
        for token in tokens:
            if token == "&&":
                out.append(current)
                current = []
            else:
                current.append(token)
        if current:
            out.append(current)
    return out


def test_readme_blocks_are_all_known_kinds():
    found = blocks()
    assert len(found) >= 10
    assert {language for language, _, _ in found} <= {"bash", "python"}
    skipped = [c for lang, code, _ in found if lang == "bash" for c in commands(code)]
    skipped = [c for c in skipped if c[0] != "splade-es"]
    for command in skipped:
        joined = " ".join(command)
        assert any(joined.startswith(prefix) for prefix in NOT_RUN), f"cannot run {joined!r}"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """The files the README's examples name, small, in a scratch working folder."""
    work = tmp_path / "work"
    work.mkdir()
    write_jsonl(work / "corpus.jsonl")
    rows = ["id,title,text"] + [f'{d["_id"]},"{d["title"]}","{d["text"]}"' for d in DOCS[:4]]
    (work / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    write_beir(work / "scifact")
    write_beir(tmp_path / "shared" / "datasets" / "scifact")  # ../shared/datasets/scifact
    mydata = write_beir(work / "mydata")
    (mydata / "qrels" / "train.tsv").write_text((mydata / "qrels" / "test.tsv").read_text())
    return work


@pytest.fixture
def isolated_cache(tmp_path: Path) -> Path:
    """A cache folder sharing the downloaded engines but not the running nodes' state, so the
    README's ``node start/stop`` start and stop a node of their own."""
    real = cache_dir()
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("dist", "maven"):
        if (real / name).exists():
            (cache / name).symlink_to(real / name, target_is_directory=True)
    return cache


def _indices(cluster) -> set[str]:
    rows = cluster.request("GET", "/_cat/indices", params={"format": "json", "h": "index"})
    return {row["index"] for row in rows}


@pytest.mark.es
@pytest.mark.opensearch
@pytest.mark.slow
def test_readme_runs(es_cluster, opensearch_cluster, scratch, isolated_cache, monkeypatch):
    monkeypatch.chdir(scratch)
    before = {c: _indices(c) for c in (es_cluster, opensearch_cluster)}
    env = {"ES_URL": es_cluster.url, "SPLADE_ES_CACHE_DIR": str(isolated_cache)}
    runner = CliRunner()
    namespace: dict[str, object] = {"__name__": "readme"}  # later blocks use earlier names
    ran = 0
    try:
        for language, code, line in blocks():
            if language == "python":
                target = opensearch_cluster if "opensearchpy" in code else es_cluster
                if target is opensearch_cluster:  # the hook's index, as the bash block made it
                    result = runner.invoke(
                        cli,
                        [
                            "index",
                            "corpus.jsonl",
                            "--index",
                            "docs-rerank",
                            "--colbert",
                            "--es-url",
                            opensearch_cluster.url,
                            "--no-progress",
                        ],
                    )
                    assert result.exit_code == 0, result.output
                source = code.replace(EXAMPLE_URL, target.url)
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    exec(compile(source, f"README.md:{line}", "exec"), namespace)
                assert printed.getvalue().strip(), f"README.md:{line} printed nothing"
                ran += 1
                continue
            for command in commands(code):
                if command[0] != "splade-es":
                    continue
                args = command[1:] + EXTRA_ARGS.get(command[1], [])
                result = runner.invoke(cli, args, env=env, catch_exceptions=True)
                where = f"README.md:{line}: {' '.join(command)}"
                assert result.exit_code == 0, f"{where}\n{result.output}\n{result.exception!r}"
                ran += 1
        assert ran >= 25
        assert (scratch / "reports" / "trained" / "report.png").is_file()
        assert (scratch / "runs" / "sweep" / "sweep.png").is_file()
    finally:
        runner.invoke(cli, ["node", "stop", "--engine", "elasticsearch"], env=env)
        for cluster, names in before.items():
            for index in _indices(cluster) - names:
                cluster.request("DELETE", f"/{index}")
