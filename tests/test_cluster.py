"""Connecting: engine detection, configuration errors, unreachable clusters."""

from __future__ import annotations

import pytest
from faults import client_error

from splade_es.cluster.connection import (
    Cluster,
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


def offline(engine, version):
    return Cluster(None, engine, version, "http://127.0.0.1:9200")


@pytest.mark.parametrize(
    ("engine", "version", "vectors_option"),
    [
        ("elasticsearch", "9.5.4", True),
        ("elasticsearch", "8.19.0", False),
        ("opensearch", "2.19.6", False),
    ],
)
def test_source_filter_asks_for_vectors_only_where_they_are_left_out(
    engine, version, vectors_option
):
    source = offline(engine, version).source_filter(["splade"])
    assert source["includes"] == ["splade"]
    assert ("exclude_vectors" in source) == vectors_option
    if vectors_option:
        assert source["exclude_vectors"] is False


def test_a_single_string_is_refused_where_a_list_is_expected():
    cluster = offline("elasticsearch", "9.5.4")
    with pytest.raises(TypeError, match=r"includes='splade' is a string: pass a list"):
        cluster.source_filter("splade")
    with pytest.raises(TypeError, match=r"ids='d1' is a string: pass a list of ids"):
        cluster.fetch_field("docs", "d1", "text")
    assert cluster.fetch_field("docs", [], "text") == {}  # no request for no ids
    assert cluster.bulk([]) == []
    with pytest.raises(
        ValueError, match=r"form=.docvalues.: expected one of source, doc_values, stored"
    ):
        cluster.fetch_field("docs", ["d1"], "colbert", form="docvalues")  # before any request


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
@pytest.mark.parametrize(
    ("kind", "status"), [("reset", 0), ("timeout", 0), ("429", 429), ("503", 503), ("400", None)]
)
def test_transient_status_reads_each_clients_errors(engine, kind, status):
    cluster = offline(engine, "9.5.4" if engine == "elasticsearch" else "2.19.6")
    assert cluster.transient_status(client_error(engine, kind)) == status
    assert cluster.transient_status(ValueError("not from the client")) is None


def test_bulk_outcomes_and_fetch_field(cluster, index_names):
    index = index_names(cluster)
    cluster.request(
        "PUT", f"/{index}", body={"mappings": {"properties": {"n": {"type": "integer"}}}}
    )
    actions = [
        {"_index": index, "_id": "a/1", "_source": {"n": 1, "text": "one"}},
        {"_index": index, "_id": "b", "_source": {"n": "not a number"}},
        {"_index": index, "_id": "c", "_source": {"n": 3}},
    ]
    outcomes = cluster.bulk(actions)
    assert [ok for ok, _ in outcomes] == [True, False, True]
    refused = outcomes[1][1]["index"]
    assert refused["_id"] == "b" and refused["status"] == 400
    assert "_op_type" not in actions[0]  # the actions can be sent again as they are
    # _mget is real time: no refresh needed
    assert cluster.fetch_field(index, ["a/1", "b", "c", "x"], "text") == {"a/1": "one"}
    assert cluster.fetch_field(index, ["a/1", "c"], "n") == {"a/1": 1, "c": 3}
