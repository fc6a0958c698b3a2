"""``splade-es node start/status/stop`` as a user runs them, against a real OpenSearch node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import cache_dir
from splade_es.engines.install import installed_home
from splade_es.engines.spec import engine_spec


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "splade_es", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def private_cache(tmp_path):
    """A cache dir of its own (own node state) that reuses the suite's downloads."""
    shared = cache_dir()
    for name in ("maven", "dist"):
        (shared / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(shared / name)
    return tmp_path


@pytest.mark.opensearch
@pytest.mark.slow
def test_start_status_stop(private_cache, opensearch_node):
    # opensearch_node makes sure the distribution is in the shared cache already.
    env = {"SPLADE_ES_CACHE_DIR": str(private_cache)}
    start = ["node", "start", "--engine", "opensearch", "--heap", "512m"]
    with ThreadPoolExecutor(2) as pool:  # two starts at once: one node, same URL
        first, second = pool.map(lambda _: run_cli(*start, env=env), range(2))
    try:
        assert first.returncode == 0, first.stderr
        assert second.returncode == 0, second.stderr
        url = first.stdout.strip().splitlines()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert second.stdout.strip().splitlines()[-1] == url
        with urllib.request.urlopen(url) as response:
            assert json.loads(response.read())["version"]["distribution"] == "opensearch"

        status = run_cli("node", "status", "--engine", "opensearch", env=env)
        assert status.returncode == 0 and url in status.stdout

        spec = engine_spec("opensearch")
        assert installed_home(spec, private_cache) is not None  # cache intact
        state = json.loads((private_cache / "nodes" / "opensearch.json").read_text())
        work_dir = Path(state["work_dir"])
        assert (work_dir / "data").is_dir()
    finally:
        stop = run_cli("node", "stop", "--engine", "opensearch", env=env)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    after = run_cli("node", "status", "--engine", "opensearch", env=env)
    assert after.returncode == 3 and "not started" in after.stdout
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)
    assert not work_dir.exists()  # data folder deleted with the node


def test_missing_jdk_is_a_one_line_fix_it_error(tmp_path):
    result = run_cli(
        "node",
        "start",
        "--engine",
        "elasticsearch",
        env={"ES_JAVA_HOME": "/nonexistent/jdk", "SPLADE_ES_CACHE_DIR": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ES_JAVA_HOME=/nonexistent/jdk is not a JDK" in lines[0]
    assert "Traceback" not in result.stderr


def test_stop_without_a_node(tmp_path):
    result = run_cli(
        "node", "stop", "--engine", "opensearch", env={"SPLADE_ES_CACHE_DIR": str(tmp_path)}
    )
    assert result.returncode == 0 and "no node was started" in result.stdout


@pytest.mark.opensearch
@pytest.mark.slow
def test_a_command_without_es_url_says_it_started_a_node_and_how_to_stop_it(
    private_cache, opensearch_node
):
    env = {k: v for k, v in os.environ.items() if k != "ES_URL"}
    env["SPLADE_ES_CACHE_DIR"] = str(private_cache)
    probe = ["capabilities", "--engine", "opensearch"]
    try:
        first = subprocess.run(
            [sys.executable, "-m", "splade_es", *probe], capture_output=True, text=True, env=env
        )
        again = subprocess.run(
            [sys.executable, "-m", "splade_es", *probe], capture_output=True, text=True, env=env
        )
    finally:
        stop = run_cli("node", "stop", "--engine", "opensearch", env=env)
    assert first.returncode == 0, first.stderr
    stop_hint = "stop it with 'splade-es node stop --engine opensearch'"
    assert "Started a local opensearch" in first.stderr and stop_hint in first.stderr
    assert "Using the local opensearch" in again.stderr and stop_hint in again.stderr
    assert stop.returncode == 0, stop.stderr
