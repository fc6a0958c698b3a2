"""The capability probe against the real nodes, and the README table it produces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from splade_es.cluster.capabilities import markdown_table, probe
from splade_es.engines.spec import ELASTICSEARCH_VERSION, OPENSEARCH_VERSION

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.es
def test_elasticsearch_probe(es_cluster):
    caps = probe(es_cluster)
    assert caps.engine == "elasticsearch"
    assert caps.sparse_vector and caps.sparse_vector_query
    assert caps.binary and caps.binary_doc_values and caps.dense_vector
    # The probe leaves nothing behind.
    left = es_cluster.request("GET", "/_cat/indices/splade-es-probe-*", params={"format": "json"})
    assert left == []


@pytest.mark.opensearch
def test_opensearch_probe(opensearch_cluster):
    caps = probe(opensearch_cluster)
    assert caps.engine == "opensearch"
    assert caps.rank_features and caps.binary
    assert not caps.dense_vector  # OpenSearch has knn_vector (a plugin) instead


@pytest.mark.es
@pytest.mark.opensearch
def test_readme_capability_table_is_the_probe_output(es_cluster, opensearch_cluster, es_node):
    if not es_node.launched:
        pytest.skip("the README table describes the nodes the project launches, not ES_URL")
    if (es_cluster.version, opensearch_cluster.version) != (
        ELASTICSEARCH_VERSION,
        OPENSEARCH_VERSION,
    ):
        pytest.fail("the launched versions differ from the defaults")
    table = markdown_table([probe(es_cluster), probe(opensearch_cluster)])
    text = README.read_text()
    match = re.search(r"<!-- capabilities:start -->\n(.*?)<!-- capabilities:end -->", text, re.S)
    assert match, "README.md lacks the capability block markers"
    assert match.group(1) == table, "README capability table is stale; replace it with:\n" + table
