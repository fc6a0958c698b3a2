"""The service config: its checks, the config file, and how command-line options override it.
Every message names the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from splade_es.cli.serving import config_values
from splade_es.service.config import (
    IndexRule,
    ServiceConfig,
    config_from_mapping,
    load_config,
    read_config_file,
)

URL = "http://127.0.0.1:9200"


def test_a_toml_file_with_a_depth_per_index(tmp_path):
    path = tmp_path / "serve.toml"
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(certifi.where()).read_bytes())  # real CA certificates, as it checks
    path.write_text(
        f'upstream = "{URL}"\nport = 0\nrerank_k = 30\nfirst_stage = "fusion"\n'
        f'ca_certs = "{ca}"\n[indices."news-*"]\nrerank_k = 50\n[indices.docs]\n'
    )
    config = load_config(path)
    assert config.indices == (IndexRule("news-*", 50), IndexRule("docs", 30))
    assert (config.port, config.first_stage, config.ca_certs) == (0, "fusion", ca)
    assert config.rule_for("news-2024") == IndexRule("news-*", 50)
    assert config.rule_for("docs") == IndexRule("docs", 30)
    assert config.rule_for("docs-old") is None


def test_a_json_file_lists_names(tmp_path):
    path = tmp_path / "serve.json"
    path.write_text(json.dumps({"upstream": URL, "indices": ["a", "b-*"]}))
    config = load_config(path)
    assert [rule.pattern for rule in config.indices] == ["a", "b-*"]
    assert all(rule.rerank_k == 100 for rule in config.indices)


def test_the_last_matching_rule_wins():
    config = ServiceConfig(URL, indices=(IndexRule("docs-*", 5), IndexRule("docs-v2", 7)))
    assert config.rule_for("docs-v2").rerank_k == 7
    assert config.rule_for("docs-v1").rerank_k == 5


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"upstream": URL, "rerank_kk": 3},
            r"serve.toml: unknown key 'rerank_kk' \(did you mean 'rerank_k'\?\)",
        ),
        ({"port": 1}, "serve.toml: key 'upstream' is missing"),
        ({"upstream": URL, "port": "80"}, r"key 'port' is '80' \(str\): expected int"),
        ({"upstream": URL, "rerank_k": 2.5}, r"key 'rerank_k' is 2.5 \(float\): expected int"),
        ({"upstream": URL, "rerank_k": True}, r"key 'rerank_k' is True \(bool\)"),
        ({"upstream": URL, "device": 1}, r"key 'device' is 1 \(int\): expected str or null"),
        ({"upstream": URL, "port": 70000}, r"port=70000: expected an integer between 0 and 65535"),
        (
            {"upstream": URL, "max_concurrency": 0},
            r"max_concurrency=0: expected an integer at least 1",
        ),
        (
            {"upstream": URL, "first_stage": "bm25"},
            r"first_stage='bm25': expected one of app, splade, fusion",
        ),
        (
            {"upstream": URL, "indices": "docs"},
            r"key 'indices' is str: expected a list of index names",
        ),
        ({"upstream": URL, "indices": [1]}, r"key 'indices' must list index names"),
        (
            {"upstream": URL, "indices": {"d": {"k": 1}}},
            r"key 'indices.d' is \{'k': 1\}: expected a table with only 'rerank_k'",
        ),
        (
            {"upstream": URL, "indices": {"d": {"rerank_k": 0}}},
            r"key 'indices.d': rerank_k of 'd'=0: expected an integer at least 1",
        ),
        ({"upstream": URL, "indices": {"a,b": {}}}, r"Index pattern 'a,b' holds ','"),
        ({"upstream": "es.local:9200"}, r"upstream='es.local:9200' is not an http\(s\) URL"),
        ({"upstream": "http://u:pw@es.local:9200"}, "upstream holds credentials"),
        ({"upstream": f"{URL}?x=1"}, "has a query or fragment"),
        (
            {"upstream": URL, "meta_ttl_s": 0},
            r"meta_ttl_s=0: expected a positive number of seconds",
        ),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_mapping(values, "serve.toml")


def test_credentials_in_the_upstream_are_not_echoed():
    with pytest.raises(ValueError) as raised:
        ServiceConfig("http://admin:hunter2@es.local:9200")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("serve.yaml", "", r"expected a .toml or .json file"),
        ("serve.toml", "upstream = ", r"serve.toml' does not parse"),
        ("serve.json", "[1]", r"holds list: expected keys"),
    ],
)
def test_bad_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_config_file(path)
    with pytest.raises(ValueError, match="cannot be read"):
        read_config_file(tmp_path / "missing.toml")


def test_the_command_line_overrides_the_file():
    file_values = {"upstream": URL, "indices": ["docs"], "port": 9300}
    values = config_values(file_values, {"port": 0, "rerank_k": 7}, ("news-*",))
    config = config_from_mapping(values, "command line")
    assert config.port == 0
    assert config.indices == (IndexRule("docs", 7), IndexRule("news-*", 7))
    table = config_values({"upstream": URL, "indices": {"docs": {"rerank_k": 3}}}, {}, ("x",))
    assert config_from_mapping(table, "c").indices == (IndexRule("docs", 3), IndexRule("x", 100))


@pytest.mark.parametrize(
    ("file_values", "message"),
    [
        (
            {"upstream": URL, "indices": "docs"},
            r"serve.toml: key 'indices' is 'docs' \(str\): expected a list of index names "
            r"\(indices = \[\"docs\", \"news-\*\"\]\) or a table",
        ),
        (
            {"upstream": URL, "indices": [{"rerank_k": 5}]},
            r"serve.toml: key 'indices' is \[\{'rerank_k': 5\}\] \(list\): expected a list of "
            "index names",
        ),
        (
            {"upstream": URL, "indices": {"docs": 5}},
            r"serve.toml: key 'indices.docs' is 5: expected a table with only 'rerank_k'",
        ),
    ],
    ids=["string", "list-of-tables", "table-of-ints"],
)
def test_a_bad_indices_key_merged_with_rerank_index_names_the_key(file_values, message):
    with pytest.raises(ValueError, match=message):
        values = config_values(file_values, {"rerank_k": 5}, ("x",), "serve.toml")
        config_from_mapping(values, "serve.toml")


def test_a_list_of_tables_without_rerank_index_names_the_key():
    with pytest.raises(ValueError, match=r"serve.toml: key 'indices' must list index names"):
        config_from_mapping(config_values({"upstream": URL, "indices": [{}]}, {}, ()), "serve.toml")


def test_a_missing_ca_file_fails_at_validation(tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=r"serve.toml: ca_certs='.*nope.pem': no such file: pass"):
        config_from_mapping({"upstream": URL, "ca_certs": str(missing)}, "serve.toml")
    with pytest.raises(ValueError, match=r"ca_certs='.*nope.pem': no such file"):
        ServiceConfig(URL, ca_certs=missing)


def test_serve_refuses_a_missing_ca_file_before_loading_models(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text(f'upstream = "{URL}"\nca_certs = "{tmp_path / "nope.pem"}"\n')
    command = [sys.executable, "-m", "splade_es", "serve", "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "ca_certs=" in result.stderr and "no such file" in result.stderr
    assert "Loading models" not in result.stderr


def test_the_service_needs_the_serve_extra():
    hide = "import sys; sys.modules['starlette'] = None; import splade_es.service"
    result = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True)
    assert "ImportError: splade-es serve needs starlette: install the serve extra" in result.stderr
    assert "pip install 'splade-es[serve]'" in result.stderr


def test_importing_the_package_and_cli_loads_no_service_dependency():
    code = "import splade_es, splade_es.cli, sys; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert result.returncode == 0 and "splade_es" in loaded
    assert not loaded & {"starlette", "uvicorn", "prometheus_client"}
