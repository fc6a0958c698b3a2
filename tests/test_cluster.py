"""Connecting: engine detection, configuration errors, unreachable clusters."""

from __future__ import annotations

import pytest

from splade_es.cluster.connection import (
    ClusterConfig,
    ClusterError,
    ClusterUnavailableError,
    connect,
    redact_url,
)
from splade_es.engines.node import free_ports


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "localhost:9200"}, r"'localhost:9200' is not an http\(s\) URL"),
        ({"url": "ftp://h:21"}, r"is not an http\(s\) URL"),
        ({"url": "http://bob:secret@h:9200"}, r"not in the URL 'http://\*\*\*@h:9200'"),
        ({"url": "http://h", "engine": "solr"}, r"engine='solr'"),
        ({"url": "http://h", "username": "bob"}, r"needs both a username and a password"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        ClusterConfig(**kwargs)
    assert "secret" not in str(caught.value)


def test_secrets_stay_out_of_repr():
    config = ClusterConfig(url="http://h:9200", api_key="SEKRIT", username="u", password="PW")
    assert "SEKRIT" not in repr(config) and "PW" not in repr(config)


def test_redact_url():
    assert redact_url("https://u:p@h:9243/x") == "https://***@h:9243/x"
    assert redact_url("http://h:9200") == "http://h:9200"


def test_nothing_listening_is_reported_clearly():
    (port,) = free_ports(1)
    with pytest.raises(ClusterUnavailableError, match=rf"No answer from http://127.0.0.1:{port}"):
        connect(ClusterConfig(url=f"http://127.0.0.1:{port}", request_timeout_s=2))


@pytest.mark.es
def test_detects_elasticsearch(es_node):
    cluster = connect(ClusterConfig(url=es_node.config.url))
    assert cluster.engine == "elasticsearch" and cluster.major >= 8
    cluster.close()


@pytest.mark.opensearch
def test_detects_opensearch_and_refuses_the_wrong_engine(opensearch_node):
    cluster = connect(ClusterConfig(url=opensearch_node.config.url))
    assert cluster.engine == "opensearch" and cluster.version.startswith("2.")
    cluster.close()
    with pytest.raises(ClusterError, match="is not Elasticsearch; pass --engine opensearch"):
        connect(ClusterConfig(url=opensearch_node.config.url, engine="elasticsearch"))


@pytest.mark.opensearch
def test_errors_carry_status_and_engine_reason(opensearch_cluster):
    with pytest.raises(ClusterError) as caught:
        opensearch_cluster.request("GET", "/no-such-index-xyz/_search")
    assert caught.value.status == 404
    assert caught.value.error_type == "index_not_found_exception"
